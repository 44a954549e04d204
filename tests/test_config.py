"""Tests for reel_tui.config: loading, validation, messages, lookup and targets."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reel_tui import config as config_module
from reel_tui.config import (
    APP_KEYS,
    AppConfig,
    Config,
    ConfigError,
    Problem,
    Settings,
    find_config,
    load_config,
    split_listen,
)
from reel_tui.plan import Refused, pick_app

GO_REEL_EXAMPLE = """\
[reel]
token="..."
default_app="app"
[app]
dbserver = "127.0.0.1"
dbport = "3306"
database = "example"
dbuser = "example"
dbpassword = "example"
dbdriver = "mysql"
dbsource = "./dumpfiles/example.sql"
dbsources = "./dumpfiles/"
proxy_dest = "https://localhost:8101/"
"""


# --- helpers ------------------------------------------------------------------


def write_toml(folder: Path, text: str, *, name: str = "reel.toml", mode: int = 0o600) -> Path:
    """Write a config (dedented) and chmod it; 0600 by default so no password warning."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    path.chmod(mode)
    return path


def touch_dump(folder: Path, relative: str = "dumps/seed.sql") -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("CREATE TABLE t (id INTEGER);\n", encoding="utf-8")
    return path


def load(folder: Path, text: str, *, mode: int = 0o600) -> Config:
    return load_config(write_toml(folder, text, mode=mode))


def problems_for(
    config: Config, *, key: str | None = None, app: str | None = None
) -> list[Problem]:
    return [
        p
        for p in config.problems
        if (key is None or p.key == key) and (app is None or p.app == app)
    ]


def the_problem(config: Config, *, key: str, app: str | None = None) -> Problem:
    found = problems_for(config, key=key, app=app)
    assert len(found) == 1, [str(p) for p in config.problems]
    return found[0]


def pg_app(name: str = "shop", **keys: object) -> str:
    """A valid postgres app table (dump at dumps/seed.sql) with extra or changed keys."""
    values: dict[str, object] = {
        "dbdriver": "postgres",
        "dbserver": "127.0.0.1",
        "database": name,
        "dbsource": "dumps/seed.sql",
    }
    values.update(keys)
    lines = [f"[{name}]"]
    for key, value in values.items():
        if value is None:
            continue
        shown = f'"{value}"' if isinstance(value, str) else str(value).lower()
        lines.append(f"{key} = {shown}")
    return "\n".join(lines) + "\n"


def line_of(path: Path, fragment: str) -> int:
    """1-based number of the first line of ``path`` containing ``fragment``."""
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if fragment in line:
            return number
    raise AssertionError(f"{fragment!r} not in {path}")


# --- the Go reel's own example --------------------------------------------------


@pytest.fixture
def go_example(tmp_path: Path) -> Path:
    touch_dump(tmp_path, "dumpfiles/example.sql")
    path = tmp_path / "reel.toml"
    path.write_text(GO_REEL_EXAMPLE, encoding="utf-8")
    path.chmod(0o644)
    return path


def test_go_reel_example_loads_with_app_enabled_and_no_errors(go_example: Path):
    config = load_config(go_example)
    assert list(config.apps) == ["app"]
    assert config.disabled == {}
    assert config.errors == []


def test_go_reel_example_values_are_typed(go_example: Path, tmp_path: Path):
    app = load_config(go_example).apps["app"]
    assert app.driver == "mysql"
    assert app.port == 3306
    assert type(app.port) is int
    assert app.server == "127.0.0.1"
    assert app.database == "example"
    assert app.user == "example"
    assert app.password == "example"
    assert app.resolve_password() == "example"
    assert app.source == tmp_path / "dumpfiles" / "example.sql"
    assert app.sources_dir == tmp_path / "dumpfiles"
    assert app.line == 4
    assert app.target == "example@127.0.0.1:3306"


def test_go_reel_example_settings_keep_token_and_default_app(go_example: Path):
    config = load_config(go_example)
    assert config.settings.default_app == "app"
    assert config.settings.token == "..."
    assert "token" not in repr(config.settings)
    assert "..." not in repr(config.settings)


def test_go_reel_example_password_not_in_app_repr(go_example: Path):
    app = load_config(go_example).apps["app"]
    assert "password=" not in repr(app)
    assert "password_env=None" in repr(app)  # the repr is the dataclass one, just without it


def test_go_reel_example_proxy_dest_is_accepted_but_unused_warning(go_example: Path):
    config = load_config(go_example)
    problem = the_problem(config, key="proxy_dest")
    assert problem.severity == "warning"
    assert problem.app == "app"
    assert problem.line == 13
    assert "accepted but unused" in problem.message
    assert str(problem).startswith(f"{go_example}:13: app 'app': proxy_dest: accepted but unused")


def test_go_reel_example_world_readable_warns_only_about_proxy_password_and_token(
    go_example: Path,
):
    """The token now guards the HTTP API: in a file others can read, it is a warning too."""
    config = load_config(go_example)
    assert {p.key for p in config.warnings} == {"proxy_dest", "dbpassword", "token"}


def test_go_reel_example_private_file_warns_only_about_proxy(go_example: Path):
    go_example.chmod(0o600)
    config = load_config(go_example)
    assert [p.key for p in config.problems] == ["proxy_dest"]


def test_go_reel_example_default_app_is_picked_by_plan(go_example: Path):
    config = load_config(go_example)
    assert pick_app(config, None) is config.apps["app"]


# --- ports ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml_value", "expected"),
    [('"3306"', 3306), ("3306", 3306), ('" 5433 "', 5433), ("1", 1), ('"65535"', 65535)],
)
def test_port_accepts_strings_and_integers(tmp_path: Path, toml_value: str, expected: int):
    touch_dump(tmp_path)
    config = load(tmp_path, pg_app() + f"dbport = {toml_value}\n")
    assert config.apps["shop"].port == expected
    assert type(config.apps["shop"].port) is int


@pytest.mark.parametrize(
    "toml_value",
    ["0", "65536", "-1", '"-1"', '"+5432"', '"abc"', '""', "true", "5432.0", "[5432]", '"²"'],
)
def test_port_rejects_non_ports_and_disables_the_app(tmp_path: Path, toml_value: str):
    touch_dump(tmp_path)
    path = write_toml(tmp_path, pg_app() + f"dbport = {toml_value}\n")
    config = load_config(path)
    assert "shop" in config.disabled
    problem = the_problem(config, key="dbport", app="shop")
    assert problem.severity == "error"
    assert problem.line == line_of(path, "dbport")
    assert "expected a port number 1-65535" in problem.message


def test_port_left_out_is_none_and_target_shows_the_default(tmp_path: Path):
    touch_dump(tmp_path)
    app = load(tmp_path, pg_app()).apps["shop"]
    assert app.port is None
    assert app.target == "shop@127.0.0.1:5432"


# --- drivers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "driver"),
    [
        ("postgres", "postgres"),
        ("postgresql", "postgres"),
        ("PostgreSQL", "postgres"),
        ("mysql", "mysql"),
        ("mariadb", "mysql"),
        ("MySQL", "mysql"),
        ("sqlite", "sqlite"),
    ],
)
def test_driver_names_and_aliases(tmp_path: Path, written: str, driver: str):
    touch_dump(tmp_path)
    config = load(tmp_path, pg_app(dbdriver=written, dbserver=None))
    assert config.apps["shop"].driver == driver


def test_unknown_driver_disables_app_with_suggestion(tmp_path: Path):
    touch_dump(tmp_path)
    path = write_toml(tmp_path, pg_app(dbdriver="postgress"))
    config = load_config(path)
    assert config.apps == {}
    problem = the_problem(config, key="dbdriver", app="shop")
    assert problem.severity == "error"
    assert "unknown driver 'postgress'" in problem.message
    assert "did you mean 'postgres'?" in problem.message
    assert problem.line == line_of(path, "dbdriver")
    assert config.disabled["shop"] == [problem]


@pytest.mark.parametrize("written", ["oracle", "", " mysql", "sqlite4"])
def test_unrecognised_driver_names_are_refused(tmp_path: Path, written: str):
    touch_dump(tmp_path)
    config = load(tmp_path, pg_app(dbdriver=written))
    assert "shop" in config.disabled
    problem = the_problem(config, key="dbdriver")
    assert f"unknown driver {written!r}" in problem.message


def test_unknown_driver_without_close_match_has_no_suggestion(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(tmp_path, pg_app(dbdriver="oracle"))
    assert "did you mean" not in the_problem(config, key="dbdriver").message


def test_driver_of_wrong_type_is_one_error_not_a_guessed_sqlite_app(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(tmp_path, pg_app(dbdriver=5, dbport=5432, dbuser="u"))
    assert "shop" in config.disabled
    assert [p.key for p in config.problems] == ["dbdriver"]
    assert "expected a string, got int 5" in config.problems[0].message


# --- sqlite -----------------------------------------------------------------------


def test_sqlite_database_resolves_against_config_folder_not_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    folder = tmp_path / "conf"
    touch_dump(folder)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write_toml(
        folder,
        """\
        [blog]
        dbdriver = "sqlite"
        database = "data/blog.sqlite3"
        dbsource = "dumps/seed.sql"
        """,
    )
    app = load_config(path).apps["blog"]
    assert app.database == str(folder / "data" / "blog.sqlite3")
    assert app.target == str(folder / "data" / "blog.sqlite3")


def test_sqlite_absolute_database_path_is_kept(tmp_path: Path):
    touch_dump(tmp_path)
    db = tmp_path / "other" / "x.db"
    config = load(
        tmp_path, f'[a]\ndbdriver = "sqlite"\ndatabase = "{db}"\ndbsource = "dumps/seed.sql"\n'
    )
    assert config.apps["a"].database == str(db)


def test_sqlite_database_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    touch_dump(tmp_path)
    config = load(
        tmp_path, '[a]\ndbdriver = "sqlite"\ndatabase = "~/x.db"\ndbsource = "dumps/seed.sql"\n'
    )
    assert config.apps["a"].database == str(tmp_path / "home" / "x.db")


def test_tilde_user_that_does_not_exist_is_a_problem_not_a_traceback(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(
        tmp_path,
        """\
        [a]
        dbdriver = "sqlite"
        database = "a.db"
        dbsource = "~no-such-user-reel-tui/seed.sql"
        [b]
        dbdriver = "sqlite"
        database = "~no-such-user-reel-tui/b.db"
        dbsource = "dumps/seed.sql"
        """,
    )
    assert set(config.disabled) == {"a", "b"}
    assert "cannot expand" in the_problem(config, key="dbsource", app="a").message
    assert "cannot expand" in the_problem(config, key="database", app="b").message


def test_sqlite_app_warns_about_server_keys_but_stays_enabled(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(
        tmp_path,
        """\
        [a]
        dbdriver = "sqlite"
        database = "a.db"
        dbsource = "dumps/seed.sql"
        dbserver = "localhost"
        dbport = 5432
        dbuser = "me"
        """,
    )
    assert "a" in config.apps
    assert config.errors == []
    assert {p.key for p in config.warnings} == {"dbserver", "dbport", "dbuser"}
    assert all("ignored for sqlite apps" in p.message for p in config.warnings)


def test_sqlite_database_may_be_named_like_a_server_system_database(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(
        tmp_path, '[a]\ndbdriver = "sqlite"\ndatabase = "mysql"\ndbsource = "dumps/seed.sql"\n'
    )
    assert config.apps["a"].database == str(tmp_path / "mysql")


# --- unknown keys -------------------------------------------------------------------


def test_misspelled_app_key_warns_did_you_mean(tmp_path: Path):
    touch_dump(tmp_path)
    path = write_toml(
        tmp_path, pg_app(dbsource=None, dbsources="dumps") + 'dbsorce = "dumps/seed.sql"\n'
    )
    config = load_config(path)
    assert "shop" in config.apps
    problem = the_problem(config, key="dbsorce", app="shop")
    assert problem.severity == "warning"
    assert "unknown key" in problem.message
    assert "did you mean 'dbsource'?" in problem.message
    assert problem.line == line_of(path, "dbsorce")


def test_misspelled_dump_key_leaves_the_app_without_dumps(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(tmp_path, pg_app(dbsource=None) + 'dbsorce = "dumps/seed.sql"\n')
    assert "shop" in config.disabled
    assert "no dumps configured" in the_problem(config, key="dbsource").message


def test_unknown_key_without_close_match_has_no_suggestion(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(tmp_path, pg_app() + "colour = 3\n")
    problem = the_problem(config, key="colour")
    assert problem.message == "unknown key, ignored"


def test_misspelled_reel_key_warns_did_you_mean(tmp_path: Path):
    touch_dump(tmp_path)
    path = write_toml(tmp_path, '[reel]\ndefualt_app = "shop"\n' + pg_app())
    config = load_config(path)
    problem = the_problem(config, key="defualt_app")
    assert problem.severity == "warning"
    assert problem.app is None
    assert problem.line == 2
    assert "did you mean 'default_app'?" in problem.message
    assert config.settings.default_app is None


def test_proxy_dest_in_reel_table_is_an_unknown_key(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(tmp_path, '[reel]\nproxy_dest = "x"\n' + pg_app())
    assert "unknown key" in the_problem(config, key="proxy_dest").message


# --- relative paths -------------------------------------------------------------------


def test_dump_paths_resolve_against_config_folder_not_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    folder = tmp_path / "project"
    touch_dump(folder, "dumps/seed.sql")
    touch_dump(tmp_path / "elsewhere", "dumps/seed.sql")  # a decoy where cwd would point
    monkeypatch.chdir(tmp_path / "elsewhere")
    path = write_toml(folder, pg_app(dbsources="dumps"))
    app = load_config(path).apps["shop"]
    assert app.source == folder / "dumps" / "seed.sql"
    assert app.sources_dir == folder / "dumps"


def test_relative_config_path_still_gives_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    touch_dump(tmp_path / "conf")
    write_toml(tmp_path / "conf", pg_app(dbsources="dumps"))
    monkeypatch.chdir(tmp_path)
    config = load_config("conf/reel.toml")
    app = config.apps["shop"]
    assert app.source == tmp_path / "conf" / "dumps" / "seed.sql"
    assert app.source.is_absolute()
    assert app.sources_dir is not None and app.sources_dir.is_absolute()
    monkeypatch.chdir(tmp_path / "conf" / "dumps")
    assert app.source.is_file()  # still right after the working directory changes


def test_missing_dump_is_reported_with_its_resolved_path(tmp_path: Path):
    path = write_toml(tmp_path, pg_app(dbsource="dumps/nope.sql"))
    config = load_config(path)
    assert "shop" in config.disabled
    problem = the_problem(config, key="dbsource", app="shop")
    assert problem.message == f"dump not found: {tmp_path / 'dumps' / 'nope.sql'}"
    assert problem.line == line_of(path, "dbsource")


def test_missing_dump_folder_is_reported(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(tmp_path, pg_app(dbsources="no-such-folder"))
    assert "shop" in config.disabled
    problem = the_problem(config, key="dbsources")
    assert problem.message == f"folder not found: {tmp_path / 'no-such-folder'}"


def test_dump_folder_that_is_a_file_is_reported(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(tmp_path, pg_app(dbsources="dumps/seed.sql"))
    assert "folder not found" in the_problem(config, key="dbsources").message


def test_dbsource_folder_is_accepted_only_as_a_directory_format_dump(tmp_path: Path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "pgdir").mkdir()
    (tmp_path / "pgdir" / "toc.dat").write_bytes(b"PGDMP")
    config = load(tmp_path, pg_app("a", dbsource="plain") + pg_app("b", dbsource="pgdir"))
    assert "not a dump file" in the_problem(config, key="dbsource", app="a").message
    assert config.apps["b"].source == tmp_path / "pgdir"


def test_dump_folder_alone_is_enough(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(tmp_path, pg_app(dbsource=None, dbsources="dumps"))
    app = config.apps["shop"]
    assert app.source is None
    assert app.sources_dir == tmp_path / "dumps"


def test_no_dumps_at_all_disables_the_app(tmp_path: Path):
    path = write_toml(tmp_path, pg_app(dbsource=None))
    config = load_config(path)
    assert "shop" in config.disabled
    problem = the_problem(config, key="dbsource")
    assert problem.severity == "error"
    assert "no dumps configured" in problem.message
    assert problem.line == 1  # the app's header: the key is not in the file


# --- passwords ------------------------------------------------------------------------


def test_password_may_be_left_out(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(tmp_path, pg_app(), mode=0o644)
    app = config.apps["shop"]
    assert app.password is None
    assert app.password_env is None
    assert app.resolve_password() is None
    assert config.problems == []


def test_password_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    touch_dump(tmp_path)
    monkeypatch.setenv("SHOP_DB_PASSWORD", "from-env")
    config = load(tmp_path, pg_app(dbpassword_env="SHOP_DB_PASSWORD"), mode=0o644)
    app = config.apps["shop"]
    assert app.password is None
    assert app.password_env == "SHOP_DB_PASSWORD"
    assert app.resolve_password() == "from-env"
    assert config.problems == []  # no plain-text password, so no mode warning
    monkeypatch.setenv("SHOP_DB_PASSWORD", "changed")
    assert app.resolve_password() == "changed"  # read when needed, not at load time


def test_password_env_variable_unset_resolves_to_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    touch_dump(tmp_path)
    monkeypatch.delenv("REEL_TEST_UNSET_PASSWORD", raising=False)
    app = load(tmp_path, pg_app(dbpassword_env="REEL_TEST_UNSET_PASSWORD")).apps["shop"]
    assert app.resolve_password() is None


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_plain_password_in_readable_file_warns(tmp_path: Path, mode: int):
    touch_dump(tmp_path)
    path = write_toml(tmp_path, pg_app(dbpassword="hunter2"), mode=mode)
    config = load_config(path)
    assert "shop" in config.apps  # a warning, not an error
    problem = the_problem(config, key="dbpassword", app="shop")
    assert problem.severity == "warning"
    assert f"mode {mode:o}" in problem.message
    assert "dbpassword_env" in problem.message
    assert problem.line == line_of(path, "dbpassword")
    assert "hunter2" not in str(problem)


def test_plain_password_in_private_file_does_not_warn(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(tmp_path, pg_app(dbpassword="hunter2"), mode=0o600)
    assert config.problems == []
    assert config.apps["shop"].resolve_password() == "hunter2"


def test_secrets_are_not_in_any_repr(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(tmp_path, '[reel]\ntoken = "tok-9f8e7d"\n' + pg_app(dbpassword="pw-1a2b3c"))
    assert config.settings.token == "tok-9f8e7d"
    assert config.apps["shop"].password == "pw-1a2b3c"
    for text in (repr(config), repr(config.settings), repr(config.apps["shop"])):
        assert "tok-9f8e7d" not in text
        assert "pw-1a2b3c" not in text


def test_repr_hides_secrets_on_directly_built_objects():
    app = AppConfig(name="a", driver="postgres", database="d", password="pw-zzz")
    assert "pw-zzz" not in repr(app)
    assert "pw-zzz" not in app.target
    assert "pw-zzz" not in app.target_key
    assert "tok-zzz" not in repr(Settings(token="tok-zzz"))


@pytest.mark.parametrize(
    ("text", "key", "secret"),
    [
        (pg_app(dbpassword=987654321), "dbpassword", "987654321"),
        ("[reel]\ntoken = 123456789\n" + pg_app(), "token", "123456789"),
        (pg_app() + 'dbpassword = ["hunter2"]\n', "dbpassword", "hunter2"),
    ],
)
def test_secret_of_wrong_type_is_not_echoed_in_messages(
    tmp_path: Path, text: str, key: str, secret: str
):
    touch_dump(tmp_path)
    config = load(tmp_path, text)
    problem = the_problem(config, key=key)
    assert problem.severity == "error"
    assert "expected a string" in problem.message
    assert all(secret not in str(p) for p in config.problems)


# --- lookup ---------------------------------------------------------------------------


@pytest.fixture
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the user config location into tmp_path (the file is not created)."""
    path = tmp_path / "user-config" / "reel-tui" / "reel.toml"
    monkeypatch.setattr(config_module, "user_config_path", lambda: path)
    return path


def test_find_config_explicit_path_wins(tmp_path: Path, user_config: Path):
    write_toml(tmp_path, "")
    write_toml(user_config.parent, "", name=user_config.name)
    explicit = tmp_path / "given.toml"
    found = find_config(explicit, environ={"REEL_CONFIG": "/env/reel.toml"}, cwd=tmp_path)
    assert found == explicit


def test_find_config_explicit_path_need_not_exist_yet_but_loading_says_so(tmp_path: Path):
    explicit = tmp_path / "missing.toml"
    assert find_config(str(explicit), environ={}) == explicit
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(explicit)


def test_find_config_environment_beats_local_file(tmp_path: Path, user_config: Path):
    write_toml(tmp_path, "")
    found = find_config(None, environ={"REEL_CONFIG": "/env/reel.toml"}, cwd=tmp_path)
    assert found == Path("/env/reel.toml")


def test_find_config_reads_os_environ_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user_config: Path
):
    monkeypatch.setenv("REEL_CONFIG", str(tmp_path / "from-env.toml"))
    assert find_config() == tmp_path / "from-env.toml"


def test_find_config_empty_environment_variable_is_ignored(tmp_path: Path, user_config: Path):
    local = write_toml(tmp_path, "")
    assert find_config(None, environ={"REEL_CONFIG": ""}, cwd=tmp_path) == local


def test_find_config_local_file_beats_user_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user_config: Path
):
    write_toml(user_config.parent, "", name=user_config.name)
    work = tmp_path / "work"
    local = write_toml(work, "")
    monkeypatch.chdir(work)
    assert find_config(None, environ={}) == local


def test_find_config_falls_back_to_user_config(tmp_path: Path, user_config: Path):
    write_toml(user_config.parent, "", name=user_config.name)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert find_config(None, environ={}, cwd=empty) == user_config


def test_find_config_local_directory_named_reel_toml_is_skipped(tmp_path: Path, user_config: Path):
    (tmp_path / "reel.toml").mkdir()
    write_toml(user_config.parent, "", name=user_config.name)
    assert find_config(None, environ={}, cwd=tmp_path) == user_config


def test_find_config_nothing_found_names_every_place_looked(tmp_path: Path, user_config: Path):
    with pytest.raises(ConfigError) as caught:
        find_config(None, environ={}, cwd=tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "reel.toml") in message
    assert str(user_config) in message
    assert "REEL_CONFIG" in message
    assert "-c" in message
    assert "\n" not in message


def test_user_config_path_is_reel_toml_in_platformdirs_folder(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", "/xdg-test-config")
    path = config_module.user_config_path()
    assert path.name == "reel.toml"
    assert path.parent.name == "reel-tui"
    if sys.platform.startswith("linux"):
        assert path == Path("/xdg-test-config/reel-tui/reel.toml")


# --- fatal errors -------------------------------------------------------------------------


def test_malformed_toml_is_fatal_with_file_and_line(tmp_path: Path):
    path = write_toml(tmp_path, '[a]\ndatabase = "x"\ndbsource = oops\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:3: invalid TOML: ")
    assert "column" in message
    assert "\n" not in message


def test_duplicate_key_is_fatal_with_its_line(tmp_path: Path):
    path = write_toml(tmp_path, '[a]\ndatabase = "x"\n\ndatabase = "y"\n')
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}:4: invalid TOML: "):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "line"),
    [('[a]\ndatabase = "x"\nfoo = [\n', 3), ("[a]\nfoo =\n\n\n", 2), ("x =", 1)],
)
def test_toml_error_at_end_of_file_still_has_a_line(tmp_path: Path, text: str, line: int):
    path = write_toml(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}:{line}: invalid TOML: ")


def test_binary_garbage_is_a_config_error(tmp_path: Path):
    path = tmp_path / "reel.toml"
    path.write_bytes(b"[a]\n\x89PNG\r\n\x1a\n\x00\xff\xfe garbage")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}:2: not a text file (invalid UTF-8)"


def test_valid_utf8_with_control_characters_is_a_config_error(tmp_path: Path):
    path = tmp_path / "reel.toml"
    path.write_bytes(b"\x00\x01\x02\x03")
    with pytest.raises(ConfigError, match=r"invalid TOML"):
        load_config(path)


def test_missing_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"config file not found"):
        load_config(tmp_path / "nope.toml")


def test_directory_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"is a directory"):
        load_config(tmp_path)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "[reel]\nworkers = 3\n"])
def test_file_without_apps_loads_with_a_no_apps_warning(tmp_path: Path, text: str):
    config = load(tmp_path, text)
    assert config.apps == {}
    assert config.disabled == {}
    assert config.errors == []
    assert len(config.warnings) == 1
    assert "no apps configured" in config.warnings[0].message


# --- per-app errors: one line, file, line, app, key -----------------------------------------


ONE_LINE_CASES = [
    # (extra app lines, key, message fragment, fragment of the line it must point at)
    ("database = 5", "database", "expected a string, got int 5", "database = 5"),
    ('dbdriver = "oracle"', "dbdriver", "unknown driver", "dbdriver"),
    ('dbsource = "missing.sql"', "dbsource", "dump not found", "dbsource"),
    ('dbsources = "missing/"', "dbsources", "folder not found", "dbsources"),
    ('dbport = "many"', "dbport", "expected a port number", "dbport"),
    ('protected = "yes"', "protected", "expected true or false", "protected"),
    ("confirm = 1", "confirm", "expected true or false", "confirm"),
    ("dbuser = []", "dbuser", "expected a string", "dbuser"),
    ('database = "template1"', "database", "system database", "database"),
]


@pytest.mark.parametrize(("extra", "key", "fragment", "points_at"), ONE_LINE_CASES)
def test_app_error_is_one_line_naming_file_line_app_and_key(
    tmp_path: Path, extra: str, key: str, fragment: str, points_at: str
):
    touch_dump(tmp_path)
    base = {"dbdriver": "postgres", "database": "shop", "dbsource": "dumps/seed.sql"}
    lines = ["# comment first, so line numbers are not trivially 1", "[my-app]"]
    extra_key = extra.split("=")[0].strip()
    lines += [f'{k} = "{v}"' for k, v in base.items() if k != extra_key]
    lines.append(extra)
    path = write_toml(tmp_path, "\n".join(lines) + "\n")
    config = load_config(path)
    assert "my-app" in config.disabled
    assert config.apps == {}
    problem = the_problem(config, key=key, app="my-app")
    text = str(problem)
    line = line_of(path, points_at)
    assert problem.line == line
    assert text.startswith(f"{path}:{line}: app 'my-app': {key}: ")
    assert fragment in text
    assert "\n" not in text
    assert len(text.splitlines()) == 1
    assert config.disabled["my-app"] == config.errors


def test_missing_database_points_at_app_header(tmp_path: Path):
    touch_dump(tmp_path)
    path = write_toml(
        tmp_path, '# first\n\n[shop]\ndbdriver = "postgres"\ndbsource = "dumps/seed.sql"\n'
    )
    config = load_config(path)
    problem = the_problem(config, key="database", app="shop")
    assert "missing" in problem.message
    assert str(problem).startswith(f"{path}:3: app 'shop': database: missing")
    assert "shop" in config.disabled


def test_bad_app_is_disabled_while_others_keep_working(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(
        tmp_path,
        pg_app("good")
        + pg_app("bad", dbport="nope", database="information_schema", dbdriver="mysql")
        + pg_app("alsogood", dbdriver="mysql"),
    )
    assert list(config.apps) == ["good", "alsogood"]
    assert list(config.disabled) == ["bad"]
    bad = config.disabled["bad"]
    assert {p.key for p in bad} == {"dbport", "database"}
    assert all(p.app == "bad" and p.severity == "error" for p in bad)
    assert config.errors == bad


def test_app_after_an_app_with_warnings_is_still_disabled_by_its_own_error(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(
        tmp_path,
        pg_app("noisy") + 'proxy_dest = "x"\ncolour = 1\n' + pg_app("bad", dbport="nope"),
    )
    assert list(config.apps) == ["noisy"]
    assert list(config.disabled) == ["bad"]
    assert [p.key for p in config.disabled["bad"]] == ["dbport"]


def test_disabled_app_is_refused_by_plan_with_the_reasons(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(tmp_path, pg_app("good") + pg_app("bad", dbport="nope"))
    with pytest.raises(Refused, match=r"app 'bad' is disabled by config errors: .*dbport"):
        pick_app(config, "bad")


def test_warnings_do_not_disable_an_app(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(tmp_path, pg_app() + 'proxy_dest = "x"\nunknown = 1\n')
    assert "shop" in config.apps
    assert config.disabled == {}
    assert len(config.warnings) == 2


def test_top_level_scalar_is_ignored_with_warning(tmp_path: Path):
    touch_dump(tmp_path)
    path = write_toml(tmp_path, 'title = "mine"\n' + pg_app())
    config = load_config(path)
    assert list(config.apps) == ["shop"]
    problem = the_problem(config, key="title")
    assert problem.severity == "warning"
    assert problem.line == 1
    assert "ignored" in problem.message


def test_array_of_tables_is_not_an_app(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(tmp_path, '[[shop]]\ndatabase = "x"\n')
    assert config.apps == {}
    assert config.disabled == {}
    assert "ignored" in the_problem(config, key="shop").message


def test_reel_that_is_not_a_table_is_an_error(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(tmp_path, 'reel = "yes"\n' + pg_app())
    problem = the_problem(config, key="reel")
    assert problem.severity == "error"
    assert problem.line == 1
    assert config.settings == Settings()
    assert "shop" in config.apps


def test_newlines_in_keys_and_app_names_are_escaped_in_messages(tmp_path: Path):
    touch_dump(tmp_path)
    path = write_toml(
        tmp_path,
        pg_app() + '"bad\\nkey" = 1\n["two\\nlines"]\ndatabase = 5\n"\\u2028" = 2\n',
    )
    config = load_config(path)
    assert len(config.problems) == 3  # the key with a newline, database = 5, the odd key
    for problem in config.problems:
        text = str(problem)
        assert "\n" not in text
        assert len(text.splitlines()) == 1, text
    assert any("bad\\nkey" in str(p) for p in config.problems)


def test_paths_with_control_characters_are_escaped_in_messages(tmp_path: Path):
    config = load(tmp_path, pg_app(dbsource="a\\nb.sql"))
    text = str(the_problem(config, key="dbsource"))
    assert "dump not found" in text
    assert "a\\nb.sql" in text
    assert "\n" not in text


def test_line_numbers_ignore_unicode_line_separators_in_comments(tmp_path: Path):
    touch_dump(tmp_path)
    text = "# a\u2028comment\x85with\u2029separators\n" + pg_app() + "dbsorce = 1\n"
    path = write_toml(tmp_path, text)
    problem = the_problem(load_config(path), key="dbsorce")
    assert problem.line == 7


def test_line_numbers_with_windows_line_endings(tmp_path: Path):
    touch_dump(tmp_path)
    path = tmp_path / "reel.toml"
    path.write_bytes(pg_app().replace("\n", "\r\n").encode() + b"dbsorce = 1\r\n")
    path.chmod(0o600)
    config = load_config(path)
    assert the_problem(config, key="dbsorce").line == 6
    assert config.apps["shop"].line == 1


def test_line_numbers_with_quoted_table_and_key_names(tmp_path: Path):
    touch_dump(tmp_path)
    path = write_toml(
        tmp_path,
        '# x\n[ "my app" ]  # note\ndbdriver = "postgres"\n"database" = "d"\n'
        'dbsource = "dumps/seed.sql"\n\'dbport\' = "x"\n',
    )
    config = load_config(path)
    problem = the_problem(config, key="dbport", app="my app")
    assert problem.line == 6
    assert str(problem).startswith(f"{path}:6: app 'my app': dbport: ")


def test_problem_without_line_or_app_still_prints_the_file():
    problem = Problem(Path("/x/reel.toml"), "no apps configured", severity="warning")
    assert str(problem) == "/x/reel.toml: no apps configured"
    assert str(Problem(Path("r.toml"), "m", 7, "a", "k")) == "r.toml:7: app 'a': k: m"


# --- system and empty databases ------------------------------------------------------------


@pytest.mark.parametrize(
    ("driver", "database"),
    [
        ("postgres", "postgres"),
        ("postgres", "template0"),
        ("postgres", "template1"),
        ("postgresql", "template1"),
        ("mysql", "mysql"),
        ("mysql", "MySQL"),
        ("mariadb", "Performance_Schema"),
        ("mysql", "information_schema"),
        ("mysql", "sys"),
        ("mysql", "performance_schema"),
        ("mariadb", "INFORMATION_SCHEMA"),
    ],
)
def test_system_databases_are_refused(tmp_path: Path, driver: str, database: str):
    touch_dump(tmp_path)
    config = load(tmp_path, pg_app("a", dbdriver=driver, database=database) + pg_app("b"))
    assert "a" in config.disabled
    assert "b" in config.apps
    problem = the_problem(config, key="database", app="a")
    assert "system database" in problem.message
    assert repr(database) in problem.message


@pytest.mark.parametrize(
    ("driver", "database"),
    [("postgres", "mysql"), ("mysql", "postgres"), ("postgres", "Postgres"),
     ("postgres", "TEMPLATE1"), ("postgres", "postgres "), ("postgres", "template0_copy")],
)  # fmt: skip
def test_system_database_list_is_per_driver_with_its_case_rules(
    tmp_path: Path, driver: str, database: str
):
    touch_dump(tmp_path)
    config = load(tmp_path, pg_app(dbdriver=driver, database=database))
    assert config.apps["shop"].database == database


@pytest.mark.parametrize("database", ["", "   "])
@pytest.mark.parametrize("driver", ["postgres", "mysql", "sqlite"])
def test_empty_database_name_is_refused(tmp_path: Path, driver: str, database: str):
    touch_dump(tmp_path)
    config = load(tmp_path, pg_app(dbdriver=driver, dbserver=None, database=database))
    assert "shop" in config.disabled
    assert the_problem(config, key="database").message == "must not be empty"


def test_database_with_nul_character_is_refused(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(tmp_path, pg_app(dbdriver="sqlite", dbserver=None, database="a\\u0000b"))
    assert "shop" in config.disabled
    assert "NUL" in the_problem(config, key="database").message


# --- [reel] settings ---------------------------------------------------------------------


def test_settings_defaults_without_reel_table(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(tmp_path, pg_app())
    assert config.settings == Settings()
    assert config.settings.workers == 2
    assert config.settings.history_limit == 500
    assert config.settings.default_app is None
    assert config.settings.token is None
    assert config.settings.state_dir is None


def test_settings_values_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path.parent)
    touch_dump(tmp_path)
    config = load(
        tmp_path,
        '[reel]\ndefault_app = "shop"\ntoken = "t"\nworkers = 4\nhistory_limit = 10\n'
        'state_dir = "state"\n' + pg_app(),
    )
    assert config.problems == []
    assert config.settings.default_app == "shop"
    assert config.settings.token == "t"
    assert config.settings.workers == 4
    assert config.settings.history_limit == 10
    assert config.settings.state_dir == tmp_path / "state"


def test_state_dir_absolute_and_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = load(tmp_path, '[reel]\nstate_dir = "~/st"\n')
    assert config.settings.state_dir == tmp_path / "home" / "st"
    config = load(tmp_path, f'[reel]\nstate_dir = "{tmp_path / "abs"}"\n')
    assert config.settings.state_dir == tmp_path / "abs"


@pytest.mark.parametrize("key", ["workers", "history_limit"])
@pytest.mark.parametrize("toml_value", ["0", "-3", '"4"', "true", "2.5"])
def test_counts_must_be_whole_numbers_of_at_least_one(tmp_path: Path, key: str, toml_value: str):
    touch_dump(tmp_path)
    path = write_toml(tmp_path, f"[reel]\n{key} = {toml_value}\n" + pg_app())
    config = load_config(path)
    problem = the_problem(config, key=key)
    assert problem.severity == "error"
    assert problem.line == 2
    assert "expected a whole number of at least 1" in problem.message
    assert getattr(config.settings, key) == getattr(Settings(), key)  # the default is kept
    assert "shop" in config.apps  # a settings error disables no app


def test_default_app_must_name_an_app(tmp_path: Path):
    touch_dump(tmp_path)
    path = write_toml(tmp_path, '[reel]\n\ndefault_app = "shpo"\n' + pg_app())
    config = load_config(path)
    problem = the_problem(config, key="default_app")
    assert problem.severity == "error"
    assert problem.line == 3
    assert "'shpo'" in problem.message
    assert "did you mean 'shop'?" in problem.message
    assert str(problem).startswith(f"{path}:3: [reel]: default_app: ")
    assert "shop" in config.apps


@pytest.mark.parametrize("name", ["reel", "title"])
def test_default_app_naming_a_non_app_entry_is_an_error(tmp_path: Path, name: str):
    touch_dump(tmp_path)
    config = load(tmp_path, f'title = "x"\n[reel]\ndefault_app = "{name}"\n' + pg_app())
    problem = the_problem(config, key="default_app")
    assert problem.severity == "error"
    assert f"{name!r}" in problem.message


def test_default_app_may_name_a_disabled_app(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(tmp_path, '[reel]\ndefault_app = "bad"\n' + pg_app("bad", dbport="x"))
    assert problems_for(config, key="default_app") == []
    assert "bad" in config.disabled


def test_settings_of_wrong_type_are_errors(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(tmp_path, "[reel]\ndefault_app = 1\nstate_dir = false\n" + pg_app())
    assert {p.key for p in config.errors} == {"default_app", "state_dir"}
    assert config.settings.default_app is None
    assert config.settings.state_dir is None


# --- other app keys ----------------------------------------------------------------------


def test_protected_and_confirm(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(tmp_path, pg_app("a") + pg_app("b", protected=True, confirm=False))
    assert (config.apps["a"].protected, config.apps["a"].confirm) == (False, True)
    assert (config.apps["b"].protected, config.apps["b"].confirm) == (True, False)


def test_empty_server_and_user_mean_defaults(tmp_path: Path):
    touch_dump(tmp_path)
    app = load(tmp_path, pg_app(dbserver="", dbuser="")).apps["shop"]
    assert app.server is None
    assert app.user is None
    assert app.target == "shop@localhost:5432"


def test_app_line_is_its_header(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(tmp_path, "# one\n# two\n" + pg_app("a") + "\n" + pg_app("b"))
    assert config.apps["a"].line == 3
    assert config.apps["b"].line == 3 + 5 + 1


# --- targets ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "target"),
    [
        (AppConfig("a", "postgres", "shop", server="127.0.0.1"), "shop@127.0.0.1:5432"),
        (
            AppConfig("a", "postgres", "shop", server="db.example", port=6543),
            "shop@db.example:6543",
        ),
        (AppConfig("a", "mysql", "shop"), "shop@localhost:3306"),
        (
            AppConfig("a", "postgres", "shop", server="/var/run/postgresql"),
            "shop@/var/run/postgresql",
        ),
        (AppConfig("a", "sqlite", "/data/shop.db"), "/data/shop.db"),
    ],
)
def test_target_is_what_a_user_would_type(app: AppConfig, target: str):
    assert app.target == target


@pytest.mark.parametrize("driver", ["postgres", "mysql", "sqlite"])
def test_target_never_contains_the_password(driver: str):
    app = AppConfig("a", driver, "/d/shop.db", server="h", user="u", password="pw-Q7")
    assert "pw-Q7" not in app.target
    assert "pw-Q7" not in app.target_key


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ({"server": "localhost"}, {"server": "127.0.0.1"}),
        ({"server": "::1"}, {"server": None}),
        ({"server": "127.0.0.1", "port": 5432}, {"server": "localhost"}),
        ({"server": "DB.Example"}, {"server": "db.example"}),
        (
            {"server": "localhost", "user": "a", "password": "x"},
            {"server": "localhost", "user": "b"},
        ),
    ],
)
def test_target_key_is_equal_for_the_same_database(one: dict, other: dict):
    first = AppConfig("one", "postgres", "shop", **one)
    second = AppConfig("two", "postgres", "shop", **other)
    assert first.target_key == second.target_key


@pytest.mark.parametrize(
    "other",
    [
        AppConfig("b", "postgres", "shop2", server="localhost"),
        AppConfig("b", "postgres", "shop", server="localhost", port=5433),
        AppConfig("b", "postgres", "shop", server="db.example"),
        AppConfig("b", "mysql", "shop", server="localhost"),
        AppConfig("b", "postgres", "Shop", server="localhost"),
    ],
)
def test_target_key_differs_for_different_databases(other: AppConfig):
    assert AppConfig("a", "postgres", "shop", server="localhost").target_key != other.target_key


def test_target_key_for_loaded_apps_naming_the_same_server_database(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(
        tmp_path,
        pg_app("a", dbserver="localhost", database="shop")
        + pg_app("b", dbserver="127.0.0.1", dbport="5432", database="shop")
        + pg_app("c", dbserver="127.0.0.1", database="blog"),
    )
    assert config.apps["a"].target_key == config.apps["b"].target_key
    assert config.apps["a"].target_key != config.apps["c"].target_key


def test_target_key_for_sqlite_follows_the_real_file(tmp_path: Path):
    touch_dump(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "data")
    config = load(
        tmp_path,
        '[a]\ndbdriver = "sqlite"\ndatabase = "data/x.db"\ndbsource = "dumps/seed.sql"\n'
        '[b]\ndbdriver = "sqlite"\ndatabase = "./link/../data/x.db"\ndbsource = "dumps/seed.sql"\n'
        '[c]\ndbdriver = "sqlite"\ndatabase = "link/x.db"\ndbsource = "dumps/seed.sql"\n'
        '[d]\ndbdriver = "sqlite"\ndatabase = "data/y.db"\ndbsource = "dumps/seed.sql"\n',
    )
    keys = {name: app.target_key for name, app in config.apps.items()}
    assert keys["a"] == keys["b"] == keys["c"]
    assert keys["a"] != keys["d"]
    assert keys["a"].startswith("sqlite:")


# --- robustness ---------------------------------------------------------------------------


def _toml_string(text: str) -> str:
    """A TOML basic string for any text (control characters escaped)."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


_texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_values = st.one_of(
    _texts.map(_toml_string),
    st.sampled_from(['"postgres"', '"mysql"', '"sqlite"', '"mariadb"', '"5432"', '"template0"']),
    st.sampled_from(['"dumps/seed.sql"', '"dumps"', '"~/x"', '""', '"/"']),
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.booleans().map(lambda b: str(b).lower()),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.just("[1, 2]"),
)
_keys = st.one_of(st.sampled_from([*APP_KEYS, "proxy_dest", "dbsorce"]), _texts)
_tables = st.dictionaries(_keys, _values, max_size=8)
_configs = st.dictionaries(
    st.one_of(st.sampled_from(["reel", "app", "shop"]), _texts), _tables, max_size=4
)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(tables=_configs)
def test_any_well_formed_config_loads_and_every_problem_is_one_line(tmp_path: Path, tables: dict):
    touch_dump(tmp_path)
    lines = []
    for name, table in tables.items():
        lines.append(f"[{_toml_string(name)}]")
        lines += [f"{_toml_string(key)} = {value}" for key, value in table.items()]
    path = tmp_path / "reel.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = load_config(path)  # well-formed TOML must never raise
    for problem in config.problems:
        assert len(str(problem).splitlines()) == 1
        assert str(path) in str(problem)
    for name, app in config.apps.items():
        assert app.driver in ("postgres", "mysql", "sqlite")
        assert app.database.strip()
        assert app.target and app.target_key
        assert name not in config.disabled
    for name, problems in config.disabled.items():
        assert problems
        assert all(p.app == name and p.severity == "error" for p in problems)


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.binary(max_size=200))
def test_any_bytes_load_or_raise_config_error_only(tmp_path: Path, data: bytes):
    path = tmp_path / "reel.toml"
    path.write_bytes(data)
    try:
        config = load_config(path)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        assert str(exc).startswith(str(path))
        return
    assert all(len(str(p).splitlines()) == 1 for p in config.problems)


def test_missing_driver_with_server_keys_is_an_error_not_sqlite(write_config, tmp_path):
    (tmp_path / "d.sql").write_text("SELECT 1;\n")
    path = write_config('[app]\ndbserver = "db.internal"\ndatabase = "shop"\ndbsource = "d.sql"\n')
    config = load_config(path)
    assert "app" in config.disabled
    message = str(config.disabled["app"][0])
    assert "dbdriver: missing" in message and "app 'app'" in message


def test_missing_driver_without_server_keys_is_sqlite(write_config, tmp_path):
    (tmp_path / "d.sql").write_text("SELECT 1;\n")
    config = load_config(write_config('[app]\ndatabase = "app.db"\ndbsource = "d.sql"\n'))
    assert config.apps["app"].driver == "sqlite"


def test_both_password_keys_warn(write_config, tmp_path, monkeypatch):
    (tmp_path / "d.sql").write_text("SELECT 1;\n")
    monkeypatch.setenv("APP_PW", "from-env")
    config = load_config(
        write_config(
            '[app]\ndbdriver = "postgres"\ndatabase = "db"\ndbsource = "d.sql"\n'
            'dbpassword = "inline"\ndbpassword_env = "APP_PW"\n'
        )
    )
    assert config.apps["app"].resolve_password() == "from-env"
    assert any("dbpassword_env wins" in str(w) for w in config.warnings)
    assert not any("inline" in str(p) or "from-env" in str(p) for p in config.problems)


def test_utf8_bom_is_accepted(tmp_path):
    (tmp_path / "d.sql").write_text("SELECT 1;\n")
    path = tmp_path / "bom.toml"
    path.write_bytes(b'\xef\xbb\xbf[app]\ndatabase = "a.db"\ndbsource = "d.sql"\n')
    assert "app" in load_config(path).apps


def test_empty_dbsources_is_refused(write_config, tmp_path):
    config = load_config(write_config('[app]\ndatabase = "a.db"\ndbsources = ""\n'))
    assert "app" in config.disabled
    assert "dbsources: must not be empty" in str(config.disabled["app"][0])


def test_settings_problems_name_the_reel_table(write_config):
    config = load_config(write_config("[reel]\nworkers = 0\n"))
    assert ": [reel]: workers: " in str(config.errors[0])


# --- the HTTP API's keys ------------------------------------------------------------


def test_api_keys_token_env_and_get_rewind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    touch_dump(tmp_path)
    monkeypatch.setenv("REEL_TEST_TOKEN_VAR", "from-env")
    text = '[reel]\ntoken_env = "REEL_TEST_TOKEN_VAR"\napi_get_rewind = true\n' + pg_app()
    settings = load(tmp_path, text).settings
    assert settings.api_get_rewind is True
    assert settings.resolve_token() == "from-env"
    monkeypatch.delenv("REEL_TEST_TOKEN_VAR")
    assert settings.resolve_token() is None
    assert load(tmp_path, pg_app()).settings.api_get_rewind is False
    assert load(tmp_path, '[reel]\ntoken = ""\n' + pg_app()).settings.resolve_token() is None


def test_api_keys_are_validated(tmp_path: Path):
    touch_dump(tmp_path)
    config = load(tmp_path, '[reel]\napi_get_rewind = "yes"\ntoken_env = 3\n' + pg_app())
    assert {p.key for p in config.errors} == {"api_get_rewind", "token_env"}
    both = load(tmp_path, '[reel]\ntoken = "t"\ntoken_env = "T"\n' + pg_app())
    assert [p.key for p in both.warnings] == ["token"]
    assert "token_env wins" in both.warnings[0].message


@pytest.mark.parametrize(
    ("value", "host", "port"),
    [('"127.0.0.1:7999"', "127.0.0.1", 7999), ('" [::1]:0 "', "::1", 0),
     ('"0.0.0.0:80"', "0.0.0.0", 80), ('"localhost:65535"', "localhost", 65535)],
)  # fmt: skip
def test_api_listen_is_kept_as_host_and_port(tmp_path: Path, value: str, host: str, port: int):
    touch_dump(tmp_path)
    config = load(tmp_path, f"[reel]\napi_listen = {value}\n" + pg_app())
    assert not config.errors
    assert split_listen(config.settings.api_listen or "") == (host, port)
    assert config.line_of("reel", "api_listen") == 2
    assert load(tmp_path, pg_app()).settings.api_listen is None


@pytest.mark.parametrize("value", ['"7999"', "7999", '"host:"', '"host:99999"', '":80"',
                                   '"h:８０"', '"h:-1"'])  # fmt: skip
def test_a_bad_api_listen_is_an_error_with_its_line(tmp_path: Path, value: str):
    touch_dump(tmp_path)
    config = load(tmp_path, f'[reel]\ndefault_app = "shop"\napi_listen = {value}\n' + pg_app())
    problem = the_problem(config, key="api_listen")
    assert problem.severity == "error" and problem.line == 3
    assert "HOST:PORT" in problem.message or "0-65535" in problem.message
    assert config.settings.api_listen is None
