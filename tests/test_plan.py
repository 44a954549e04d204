"""Guards checked before a rewind is queued."""

from __future__ import annotations

import pytest

from reel_tui.config import AppConfig, Config
from reel_tui.engines.sqlite import SqliteEngine
from reel_tui.plan import Refused, plan_rewind


class RemoteEngine(SqliteEngine):
    """The SQLite engine pretending its target is on another machine."""

    def is_local(self) -> bool:
        return False


def test_remote_target_needs_allow_remote(blog: Config):
    with pytest.raises(Refused, match="not on this machine; pass --allow-remote"):
        plan_rewind(blog, "blog", engine_factory=RemoteEngine)
    plan = plan_rewind(blog, "blog", allow_remote=True, engine_factory=RemoteEngine)
    assert plan.source.is_default


def test_default_app_and_default_source(blog: Config):
    plan = plan_rewind(blog, None)
    assert plan.app.name == "blog" and plan.source.name == "seed.sql"
    assert "replace blog (sqlite" in plan.describe()


def test_single_app_needs_no_default(blog: Config):
    blog.settings = type(blog.settings)()
    assert plan_rewind(blog, None).app.name == "blog"


def test_a_dump_of_another_engine_is_refused_clearly(blog: Config, tmp_path):
    app = AppConfig(name="my", driver="mysql", database="shop", source=blog.apps["blog"].source)
    blog.apps["my"] = app
    with pytest.raises(Refused, match="is a SQLite SQL dump; a mysql app cannot load it"):
        plan_rewind(blog, "my")
