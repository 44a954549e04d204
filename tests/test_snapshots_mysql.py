"""Snapshots on a real MySQL / MariaDB server: schemas copied under LOCK TABLES."""

from __future__ import annotations

import pytest
from my_tools import fingerprint, messages, rewind
from mysql_server import MysqlServer
from test_mysql_cache import RICH

from reel_tui.config import load_config
from reel_tui.engines import engine_for
from reel_tui.engines.base import RewindError
from reel_tui.history import HistoryStore
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import Job, JobEvent, JobState
from reel_tui.plan import Refused, plan_rewind, plan_snapshot

OTHER = "CREATE TABLE `other` (`x` int);\nINSERT INTO `other` VALUES (42);\n"


@pytest.fixture
def seeded(my_config, history):  # type: ignore[no-untyped-def]
    config = my_config()
    (config.parent / "dumps" / "seed.sql").write_text(RICH, encoding="utf-8")
    (config.parent / "dumps" / "other.sql").write_text(OTHER, encoding="utf-8")
    ok(rewind(config, history, "seed.sql"))
    return config


def ok(job: Job) -> str:
    assert job.state is JobState.SUCCEEDED, job.error
    return "\n".join(messages(job))


def snapshot(config, history: HistoryStore, name: str, cancel: bool = False) -> Job:  # type: ignore[no-untyped-def]
    queue = JobQueue(history, workers=1)

    def cancel_when_copying(event: JobEvent) -> None:
        if cancel and event.kind == "progress" and event.job.phase == "loading":
            queue.cancel(event.job.id)

    queue.subscribe(cancel_when_copying)
    try:
        job = queue.submit(plan_snapshot(load_config(config), "crm", name))
        assert queue.wait(job, timeout=60)
        return job
    finally:
        queue.shutdown()


def snaps(server: MysqlServer, dbname: str) -> list[str]:
    return [db for db in server.databases() if db.startswith(f"{dbname}__reel_snap_")]


def test_snapshot_rewind_rename_delete(mysql_server, my_dbname, seeded, history):
    mysql_server.execute(f"INSERT INTO `{my_dbname}`.`gen` (`id`, `a`) VALUES (99, 5)")
    taken = fingerprint(mysql_server, my_dbname)
    assert "snapshot @demo taken" in ok(snapshot(seeded, history, "demo"))
    assert len(snaps(mysql_server, my_dbname)) == 1
    ok(rewind(seeded, history, "other.sql"))
    assert fingerprint(mysql_server, my_dbname) != taken
    back = ok(rewind(seeded, history, "@demo"))
    assert "swapping in @demo" in back and "loading into staging" not in back
    assert fingerprint(mysql_server, my_dbname) == taken  # tables, rows, routines, event
    engine = engine_for(load_config(seeded).apps["crm"])
    said: list[str] = []
    engine.rename_snapshot("demo", "shown", said.append)
    assert said == ["renamed snapshot @demo to @shown"]
    with pytest.raises(Refused, match="no snapshot named @demo"):
        plan_rewind(load_config(seeded), "crm", "@demo")
    ok(rewind(seeded, history, "other.sql"))
    ok(rewind(seeded, history, "@shown"))
    assert fingerprint(mysql_server, my_dbname) == taken
    engine.delete_snapshot("shown", said.append)
    assert snaps(mysql_server, my_dbname) == []
    with pytest.raises(RewindError, match="it has none"):
        engine.delete_snapshot("shown", said.append)


def test_cancelled_snapshot_leaves_nothing_behind(mysql_server, my_dbname, seeded, history):
    job = snapshot(seeded, history, "never", cancel=True)
    assert job.state is JobState.CANCELLED, job.error
    assert snaps(mysql_server, my_dbname) == []


def test_undo_restores_the_replaced_state_and_undo_again_redoes(
    mysql_server, my_dbname, seeded, history
):
    mysql_server.execute(f"INSERT INTO `{my_dbname}`.`gen` (`id`, `a`) VALUES (99, 5)")
    before = fingerprint(mysql_server, my_dbname)
    ok(rewind(seeded, history, "other.sql"))
    after = fingerprint(mysql_server, my_dbname)
    assert f"{my_dbname}__reel_undo" in mysql_server.databases()
    assert "took the undo copy" in ok(rewind(seeded, history, "@undo"))
    assert fingerprint(mysql_server, my_dbname) == before  # rows, routines and the event too
    ok(rewind(seeded, history, "@undo"))
    assert fingerprint(mysql_server, my_dbname) == after
    ok(rewind(seeded, history, "@undo"))
    assert fingerprint(mysql_server, my_dbname) == before


def test_undo_copy_is_evicted_by_retention_and_says_so(mysql_server, my_dbname, my_config,
                                                      history):  # fmt: skip
    config = my_config("cache_copies = 1")
    (config.parent / "dumps" / "seed.sql").write_text(RICH, encoding="utf-8")
    (config.parent / "dumps" / "other.sql").write_text(OTHER, encoding="utf-8")
    ok(rewind(config, history, "seed.sql"))
    ok(rewind(config, history, "other.sql"))
    log = ok(rewind(config, history, "other.sql"))  # the background has made the template now
    assert "evicted the undo copy (before other.sql)" in log
    assert f"{my_dbname}__reel_undo" not in mysql_server.databases()
    with pytest.raises(Refused, match="nothing to undo"):
        plan_rewind(load_config(config), "crm", "@undo")
