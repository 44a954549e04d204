"""PostgreSQL engine, per-app options and what a rewound database keeps: owner, settings,
privileges and comment; dumps from other machines (foreign roles, pg_dump -C); secrets."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from pg_server import PgServer
from pg_tools import messages, rewind

from reel_tui.config import AppConfig, default_jobs, load_config
from reel_tui.engines import pg_restore
from reel_tui.engines.pg_conn import connect_params, is_local, scrub
from reel_tui.engines.pg_database import read_database
from reel_tui.engines.postgres import PostgresEngine
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import JobState
from reel_tui.plan import plan_rewind

FOREIGN = """\
CREATE TABLE public.orders (id integer, total numeric);
ALTER TABLE public.orders OWNER TO prod_owner;
INSERT INTO public.orders VALUES (1, 9.5);
GRANT SELECT ON TABLE public.orders TO prod_app;
REVOKE ALL ON TABLE public.orders FROM PUBLIC;
INSERT INTO public.orders VALUES (2, 10);
"""


@pytest.fixture
def app_role(pg_server: PgServer, pg_dbname: str) -> Iterator[str]:
    """A role to own the target, and one to hold privileges on it."""
    name = "app_owner_" + os.urandom(3).hex()
    pg_server.execute(f"CREATE ROLE {name} LOGIN")
    pg_server.execute(f"CREATE ROLE {name}_ro LOGIN")
    yield name
    for db in pg_server.databases():  # the target and what reel keeps of it (the undo copy)
        if db == pg_dbname or db.startswith(pg_dbname + "__reel"):
            pg_server.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    for role in (name, f"{name}_ro"):
        pg_server.execute(f"DROP OWNED BY {role} CASCADE")
        pg_server.execute(f"DROP ROLE {role}")


def test_database_keeps_owner_settings_privileges_and_comment(
    pg_server, pg_config, pg_dbname, history, tmp_path, app_role
):
    (tmp_path / "dumps" / "one.sql").write_text("CREATE TABLE public.t (x int);\n")
    db = f'"{pg_dbname}"'
    pg_server.execute(f"CREATE DATABASE {db} OWNER {app_role} TEMPLATE template0 "
                      "ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'")  # fmt: skip
    pg_server.execute(f'ALTER DATABASE {db} SET search_path TO "$user", public, "we ird"')
    pg_server.execute(f"ALTER DATABASE {db} SET work_mem TO '8MB'")
    pg_server.execute(f"ALTER ROLE {app_role}_ro IN DATABASE {db} SET statement_timeout TO '5s'")
    pg_server.execute(f"ALTER DATABASE {db} CONNECTION LIMIT 40")
    pg_server.execute(f"REVOKE ALL ON DATABASE {db} FROM PUBLIC")
    pg_server.execute(f"GRANT CONNECT ON DATABASE {db} TO {app_role}_ro")
    pg_server.execute(f"GRANT TEMPORARY ON DATABASE {db} TO {app_role}_ro WITH GRANT OPTION")
    pg_server.execute(f"COMMENT ON DATABASE {db} IS 'the shop; don''t drop'")
    conn = pg_server.connect()
    try:
        before = read_database(conn, pg_dbname)
        job = rewind(pg_config(), history, "one.sql")
        assert job.state is JobState.SUCCEEDED, job.error
        after = read_database(conn, pg_dbname)
    finally:
        conn.close()
    assert after == before
    assert after.encoding == "LATIN1" and after.owner == app_role
    assert after.settings == ['search_path="$user", public, "we ird"', "work_mem=8MB"]
    assert not any("privileges differ" in m for m in messages(job))


def test_foreign_roles_fail_by_default_naming_the_line(pg_server, pg_config, pg_dbname, history,
                                                       tmp_path):  # fmt: skip
    dump = tmp_path / "dumps" / "foreign.sql"
    dump.write_text(FOREIGN)
    job = rewind(pg_config(), history, "foreign.sql")
    assert job.state is JobState.FAILED
    assert job.error.startswith(f'{dump}:2: role "prod_owner" does not exist in: ALTER TABLE')


def test_skip_owner_and_privileges_load_a_dump_from_elsewhere(pg_server, pg_config, pg_dbname,
                                                              history, tmp_path):  # fmt: skip
    (tmp_path / "dumps" / "foreign.sql").write_text(FOREIGN)
    job = rewind(pg_config("skip_owner = true\nskip_privileges = true"), history, "foreign.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    assert pg_server.execute("SELECT count(*) FROM public.orders", pg_dbname) == [(2,)]
    log = messages(job)
    assert "skipped 1 ownership statements (skip_owner = true)" in log
    assert "skipped 2 GRANT / REVOKE statements (skip_privileges = true)" in log


def test_on_error_continue_logs_each_error_and_goes_on(pg_server, pg_config, pg_dbname, history,
                                                       tmp_path):  # fmt: skip
    (tmp_path / "dumps" / "foreign.sql").write_text(FOREIGN)
    job = rewind(pg_config('on_error = "continue"'), history, "foreign.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    assert pg_server.execute("SELECT count(*) FROM public.orders", pg_dbname) == [(2,)]
    warnings = [line.message for line in job.log if line.level == "warning"]
    assert any(':2: role "prod_owner" does not exist' in m for m in warnings)
    assert any(':4: role "prod_app" does not exist' in m for m in warnings)
    assert '2 statements failed and were skipped (on_error = "continue")' in warnings


def test_dump_made_with_create_loads_into_the_apps_database(pg_server, pg_config, pg_dbname,
                                                            history, tmp_path):  # fmt: skip
    source_db = pg_dbname + "_src"
    pg_server.execute(f'CREATE DATABASE "{source_db}"')
    pg_server.execute("CREATE TABLE public.kept (x int); INSERT INTO public.kept VALUES (7)",
                      source_db)  # fmt: skip
    pg_server.execute(f"COMMENT ON DATABASE \"{source_db}\" IS 'from the dump'")
    dump = tmp_path / "dumps" / "created.sql"
    subprocess.run(["pg_dump", "-C", "-f", str(dump), "-d", source_db], env=pg_server.env(),
                   check=True)  # fmt: skip
    pg_server.execute(f'DROP DATABASE "{source_db}"')
    assert "\\connect" in dump.read_text() and "CREATE DATABASE" in dump.read_text()
    job = rewind(pg_config(), history, "created.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    assert pg_server.execute("SELECT x FROM public.kept", pg_dbname) == [(7,)]
    assert source_db not in pg_server.databases()
    log = messages(job)
    assert any(m.startswith("skipped \\connect") for m in log)
    assert any("CREATE / DROP DATABASE (pg_dump -C)" in m for m in log)
    [(comment,)] = pg_server.execute(
        f"SELECT shobj_description(oid, 'pg_database') FROM pg_database "
        f"WHERE datname = '{pg_dbname}'"
    )
    assert comment is None


def test_password_never_in_argv_or_logs(pg_server, pg_config, pg_dbname, history, tmp_path):
    pg_server.execute(f'CREATE DATABASE "{pg_dbname}_src"')
    pg_server.execute("CREATE TABLE t AS SELECT generate_series(1, 200000) AS x",
                      f"{pg_dbname}_src")  # fmt: skip
    archive = tmp_path / "dumps" / "t.dump"
    subprocess.run(["pg_dump", "-Fc", "-f", str(archive), "-d", f"{pg_dbname}_src"],
                   env=pg_server.env(), check=True)  # fmt: skip
    pg_server.execute(f'DROP DATABASE "{pg_dbname}_src"')
    secret = pg_server.password.encode()
    seen: list[bytes] = []
    pg_restore_seen = threading.Event()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    text = cmdline.read_bytes()
                except OSError:
                    continue
                if b"pg_restore" in text:
                    pg_restore_seen.set()
                if secret in text:
                    seen.append(text)
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        job = rewind(pg_config(), history, "t.dump")
    finally:
        stop.set()
        watcher.join()
    assert job.state is JobState.SUCCEEDED, job.error
    assert pg_restore_seen.is_set(), "the watcher never saw pg_restore running"
    assert seen == []
    assert pg_server.password not in history.read_log(job.id)
    assert pg_server.execute("SELECT count(*) FROM t", pg_dbname) == [(200000,)]


def test_wrong_password_is_a_one_line_error_without_it(pg_server, pg_config, history, tmp_path,
                                                       monkeypatch):  # fmt: skip
    (tmp_path / "dumps" / "one.sql").write_text("CREATE TABLE t (x int);\n")
    config = pg_config()
    monkeypatch.setenv("REEL_TEST_PGPASSWORD", "pw-wrong-secret")
    job = rewind(config, history, "one.sql")
    assert job.state is JobState.FAILED
    assert "password authentication failed" in job.error
    assert "pw-wrong-secret" not in job.error + history.read_log(job.id)
    assert "\n" not in job.error


def test_archive_without_pg_restore_names_the_missing_tool(pg_server, pg_config, history,
                                                           tmp_path, monkeypatch):  # fmt: skip
    (tmp_path / "dumps" / "a.dump").write_bytes(b"PGDMP" + b"\0" * 100)
    monkeypatch.setattr(pg_restore, "find_pg_restore", lambda: None)
    job = rewind(pg_config(), history, "a.dump")
    assert job.state is JobState.FAILED
    assert "needs pg_restore, which is not installed" in job.error


def test_a_role_without_createdb_is_told_why(pg_server, pg_config, pg_dbname, history, tmp_path,
                                             monkeypatch):  # fmt: skip
    role = "nocreate_" + os.urandom(3).hex()
    pg_server.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'")
    try:
        (tmp_path / "dumps" / "one.sql").write_text("CREATE TABLE t (x int);\n")
        config = pg_config().read_text().replace(f'dbuser = "{pg_server.user}"',
                                                 f'dbuser = "{role}"')  # fmt: skip
        (tmp_path / "reel.toml").write_text(config)
        monkeypatch.setenv("REEL_TEST_PGPASSWORD", f"pw-{role}")
        job = rewind(tmp_path / "reel.toml", history, "one.sql")
    finally:
        pg_server.execute(f"DROP ROLE {role}")
    assert job.state is JobState.FAILED
    assert job.error == (
        f"user {role} may not create databases (no CREATEDB): database {pg_dbname} does not "
        "exist and cannot be created; create it first"
    )


def test_check_reports_server_database_and_user(pg_server, pg_config, pg_dbname):
    engine = PostgresEngine(load_config(pg_config()).apps["shop"])
    assert "does not exist yet" in engine.check()
    pg_server.execute(f'CREATE DATABASE "{pg_dbname}"')
    found = engine.check()
    assert found.startswith("PostgreSQL 15.")
    assert f"database {pg_dbname} (" in found and f"user {pg_server.user} (superuser)" in found


@pytest.mark.parametrize(
    ("server", "local"),
    [
        (None, True),
        ("/var/run/postgresql", True),
        ("/run/postgresql/.s.PGSQL.5432", True),
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("db.example.com", False),
        ("10.0.0.5", False),
    ],
)
def test_is_local(server, local, monkeypatch):
    monkeypatch.delenv("PGHOST", raising=False)
    assert is_local(AppConfig("a", "postgres", "shop", server=server)) is local


def test_connection_keywords_and_pg_restore_conninfo(monkeypatch):
    monkeypatch.setenv("SHOP_PW", "pw-s3cret 'x")
    app = AppConfig("a", "postgres", "shop db", server="/run/postgresql/.s.PGSQL.5433",
                    port=5433, user="shop", password_env="SHOP_PW", sslmode="require")  # fmt: skip
    params = connect_params(app, "shop db")
    assert params["host"] == "/run/postgresql" and params["sslmode"] == "require"
    assert params["password"] == "pw-s3cret 'x"
    info = pg_restore.conninfo(app, "shop db")
    assert "s3cret" not in info
    assert "dbname='shop db'" in info and "sslmode='require'" in info
    assert scrub(app, "failed for pw-s3cret 'x\nhere") == "failed for *** here"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('on_error = "ignore"', "on_error: expected one of stop, continue"),
        ('rewind_mode = "fast"', "rewind_mode: expected one of auto, swap, in-place"),
        ("skip_owner = 1", "skip_owner: expected true or false"),
        ('sslmode = "maybe"', "sslmode: expected one of disable, allow, prefer"),
        ("jobs = 0", "jobs: expected a whole number 1-32, got int 0"),
        ("jobs = 33", "jobs: expected a whole number 1-32, got int 33"),
        ('jobs = "4"', "jobs: expected a whole number 1-32, got str '4'"),
        ("jobs = true", "jobs: expected a whole number 1-32, got bool True"),
    ],
)
def test_postgres_keys_are_checked(write_config, tmp_path, line, problem):
    (tmp_path / "d.sql").write_text("SELECT 1;\n")
    config = load_config(write_config(
        f'[shop]\ndbdriver = "postgres"\ndatabase = "shop"\ndbsource = "d.sql"\n{line}\n'
    ))  # fmt: skip
    assert "shop" in config.disabled
    assert any(problem in str(p) for p in config.disabled["shop"])


def test_postgres_keys_are_read_and_ignored_elsewhere(write_config, tmp_path):
    (tmp_path / "d.sql").write_text("SELECT 1;\n")
    config = load_config(write_config(
        '[shop]\ndbdriver = "postgres"\ndatabase = "shop"\ndbsource = "d.sql"\n'
        'skip_owner = true\nskip_privileges = true\non_error = "Continue"\nanalyze = false\n'
        'sslmode = "verify-full"\nrewind_mode = "in-place"\njobs = 8\n'
        '[blog]\ndatabase = "b.db"\ndbsource = "d.sql"\nskip_owner = true\njobs = 2\n'
        '[other]\ndbdriver = "postgres"\ndatabase = "o"\ndbsource = "d.sql"\n'
    ))  # fmt: skip
    shop = config.apps["shop"]
    assert (shop.skip_owner, shop.skip_privileges, shop.on_error) == (True, True, "continue")
    assert (shop.analyze, shop.sslmode, shop.rewind_mode) == (False, "verify-full", "in-place")
    assert (shop.jobs, config.apps["other"].jobs) == (8, None)
    assert default_jobs() == min(4, os.cpu_count() or 1)
    for key in ("skip_owner", "jobs"):
        assert any(p.app == "blog" and p.key == key and "ignored for sqlite" in str(p)
                   for p in config.warnings)  # fmt: skip


class _Loading:
    """Stands in for the loading connection: notes whether the guard was held."""

    closed = 0

    def __init__(self, engine: PostgresEngine, error: Exception | None) -> None:
        self.engine, self.error, self.guarded = engine, error, []

    def cancel(self) -> None:
        self.guarded.append(self.engine._guard.locked())
        if self.error is not None:
            raise self.error


@pytest.mark.parametrize("error", [None, psycopg2.InterfaceError("connection already closed")])
def test_interrupt_cancels_under_the_guard_and_a_lost_connection_is_no_error(error):
    """The engine thread may close the connection as a cancel comes in from the queue:
    the cancel runs under the guard the close takes, and its error never escapes."""
    engine = PostgresEngine(AppConfig("a", "postgres", "shop"))
    loading = _Loading(engine, error)
    engine._loading = loading  # type: ignore[assignment]
    engine.interrupt()
    assert loading.guarded == [True]


def test_the_loading_connection_is_closed_under_the_guard(
    pg_server, pg_config, pg_dbname, history, tmp_path, monkeypatch
):
    (tmp_path / "dumps" / "s.sql").write_text("CREATE TABLE public.t (a int);\n")
    plan = plan_rewind(load_config(pg_config("jobs = 3")), "shop", "s.sql")
    engine = plan.engine
    closes: list[tuple[str, bool]] = []

    class Watched(psycopg2.extensions.connection):
        def close(self) -> None:
            closes.append((self.info.dbname, engine._guard.locked()))
            super().close()

    real = psycopg2.connect
    monkeypatch.setattr(psycopg2, "connect",
                        lambda *a, **kw: real(*a, connection_factory=Watched, **kw))  # fmt: skip
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan)
        assert queue.wait(job, timeout=60)
    finally:
        queue.shutdown()
    assert job.state is JobState.SUCCEEDED, job.error
    staging = [guarded for name, guarded in closes if name.endswith("__reel_staging")]
    assert staging == [True] * 4  # the loading connection and the three workers
