"""Hostile names in the config: every config string that reaches SQL (database, user) and
every path that reaches a file name, with quotes, backticks, spaces, ``;``, comment starts
and unicode. Each engine rewinds such a target for real; the rewind must work and touch
nothing else (an injection attempt would drop the canary database or table)."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from my_tools import fingerprint as my_fingerprint
from mysql_server import MysqlServer
from pg_server import PgServer
from pg_tools import table_rows

from conftest import make_dump
from reel_tui.config import load_config
from reel_tui.engines.mysql_conn import ident as my_ident
from reel_tui.engines.pg_conn import ident as pg_ident
from reel_tui.engines.pg_conn import literal as pg_literal
from reel_tui.history import HistoryStore
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import Job, JobState
from reel_tui.plan import plan_rewind

PASSWORD_ENV = "REEL_TEST_HOSTILE_PW"


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string (JSON's escapes are valid TOML)."""
    return json.dumps(value)


def rewind(config: Path, history: HistoryStore, app: str, source: str) -> Job:
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan_rewind(load_config(config), app, source))
        assert queue.wait(job, timeout=120)
        return job
    finally:
        queue.shutdown()


def write_config(tmp_path: Path, table: dict[str, object]) -> Path:
    lines = ["[hostile]"] + [
        f"{key} = {value if isinstance(value, int) else toml_string(str(value))}"
        for key, value in table.items()
    ]
    path = tmp_path / "reel.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.chmod(path, 0o600)
    return path


# --- PostgreSQL ----------------------------------------------------------------


@pytest.fixture
def pg_hostile(pg_server: PgServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A role and a target database with hostile names, a canary database the names try to
    drop, and the target owned by the role (which may create databases, for the swap)."""
    tag = secrets.token_hex(3)
    canary = f"canary_{tag}"
    role = f'r{tag} "ro\'le"; DROP DATABASE {canary};--ü'
    database = f"we\"ird {tag}'; DROP DATABASE {canary};-- ü"
    password = "pw-" + secrets.token_hex(8)
    pg_server.execute(
        f"CREATE ROLE {pg_ident(role)} LOGIN CREATEDB PASSWORD {pg_literal(password)}"
    )
    pg_server.execute(f"CREATE DATABASE {pg_ident(canary)}")
    pg_server.execute(f"CREATE DATABASE {pg_ident(database)} OWNER {pg_ident(role)}")
    conn = pg_server.connect(database, user=role, password=password)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE old (x int); INSERT INTO old VALUES (1)")
    conn.close()
    monkeypatch.setenv(PASSWORD_ENV, password)
    yield {"role": role, "database": database, "canary": canary, "password": password}
    for name in pg_server.databases():
        if name.startswith(database[:20]) or name == canary:
            pg_server.execute(f"DROP DATABASE IF EXISTS {pg_ident(name)} WITH (FORCE)")
    pg_server.execute(f"DROP ROLE IF EXISTS {pg_ident(role)}")


@pytest.mark.parametrize(
    ("mode", "dump_format"),
    [("swap", "c"), ("in-place", "p")],
    ids=["swap-archive", "in-place-plain"],
)
def test_postgres_hostile_database_and_user_names(pg_server, pg_hostile, history, tmp_path,
                                                  mode, dump_format):  # fmt: skip
    role, database = pg_hostile["role"], pg_hostile["database"]
    source = f"{database} src"
    pg_server.execute(f"CREATE DATABASE {pg_ident(source)} OWNER {pg_ident(role)}")
    conn = pg_server.connect(source, user=role, password=pg_hostile["password"])
    with conn.cursor() as cur:
        cur.execute('CREATE TABLE "t;""x" (v text); '
                    "INSERT INTO \"t;\"\"x\" VALUES ('DROP DATABASE x; --'), ('`b`')")  # fmt: skip
    conn.close()
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    dump = dumps / "new.dump"
    subprocess.run(["pg_dump", f"-F{dump_format}", "-f", str(dump), "-d", source],
                   env=pg_server.env(), check=True)  # fmt: skip
    pg_server.execute(f"DROP DATABASE {pg_ident(source)}")
    before = pg_server.databases()
    config = write_config(tmp_path, {
        "dbdriver": "postgres", "dbserver": pg_server.host, "dbport": pg_server.port,
        "database": database, "dbuser": role, "dbpassword_env": PASSWORD_ENV,
        "dbsources": "dumps", "rewind_mode": mode,
    })  # fmt: skip
    job = rewind(config, history, "hostile", "new.dump")
    assert job.state is JobState.SUCCEEDED, job.error
    assert table_rows(pg_server, database) == table_rows_expected(pg_server, dump, dump_format)
    assert unkept(pg_server.databases()) == unkept(before), (
        "no database added, dropped or left behind"
    )
    [(owner,)] = pg_server.execute(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = " + pg_literal(database)
    )
    assert owner == role


def unkept(names: set[str]) -> set[str]:
    """``names`` without the copies warm rewinds keep on purpose (cache, spare, the undo
    copy)."""
    kept = ("__reel_cache_", "__reel_spare_", "__reel_undo")
    return {name for name in names if not any(k in name for k in kept)}


def table_rows_expected(server: PgServer, dump: Path, dump_format: str) -> dict:
    """The rows psql / pg_restore load from ``dump`` into a plainly named database."""
    reference = "ref_" + secrets.token_hex(4)
    server.execute(f"CREATE DATABASE {reference}")
    try:
        if dump_format == "p":
            command = [
                "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                reference,
                "-f",
                str(dump),
            ]
        else:
            command = ["pg_restore", "--exit-on-error", "-d", reference, str(dump)]
        subprocess.run(command, env=server.env(), check=True, capture_output=True)
        return table_rows(server, reference)
    finally:
        server.execute(f"DROP DATABASE {reference} WITH (FORCE)")


# --- MariaDB -------------------------------------------------------------------


@pytest.fixture
def my_hostile(mysql_server: MysqlServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    """A user and a target database with hostile names, and a canary database."""
    tag = secrets.token_hex(3)
    canary = f"canary_{tag}"
    user = f"u{tag}`'\"; DROP DATABASE {canary};-- ü"
    database = f"we`ird\"{tag}'; DROP DATABASE {canary};-- ü"
    password = "pw-" + secrets.token_hex(8)
    account = f"'{user.replace(chr(39), chr(39) * 2)}'@'%'"
    mysql_server.execute(f"CREATE USER {account} IDENTIFIED BY '{password}'")
    mysql_server.execute(f"GRANT ALL ON *.* TO {account}")
    mysql_server.execute(f"CREATE DATABASE {my_ident(canary)}")
    mysql_server.execute(f"CREATE DATABASE {my_ident(database)}")
    mysql_server.execute(f"CREATE TABLE {my_ident(database)}.old (x int)")
    monkeypatch.setenv(PASSWORD_ENV, password)
    yield {"user": user, "database": database, "canary": canary, "password": password}
    for name in mysql_server.databases():
        if name.startswith(database[:12]) or name == canary:
            mysql_server.execute(f"DROP DATABASE IF EXISTS {my_ident(name)}")
    mysql_server.execute(f"DROP USER IF EXISTS {account}")


def test_mysql_hostile_database_and_user_names(mysql_server, my_hostile, history, tmp_path):
    """The dump's view and trigger are defined by the hostile user (DEFINER=...), so the
    definer check quotes the account too."""
    user, database = my_hostile["user"], my_hostile["database"]
    source = f"src_{secrets.token_hex(3)}"
    mysql_server.execute(f"CREATE DATABASE {source}")
    conn = mysql_server.connect(source, user=user, password=my_hostile["password"])
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE `t;``x` (v varchar(40))")
        cur.execute("INSERT INTO `t;``x` VALUES ('DROP DATABASE x; --'), ('`b`')")
        cur.execute("CREATE VIEW `v``w` AS SELECT v FROM `t;``x`")
        cur.execute("CREATE TRIGGER `tr``g` BEFORE INSERT ON `t;``x` FOR EACH ROW SET @a = 1")
    conn.close()
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    dump = dumps / "new.sql"
    with open(dump, "wb") as out:
        subprocess.run(["mysqldump", *mysql_server.client_args(), "--routines", "--events",
                        source], stdout=out, env=mysql_server.client_env(), check=True)  # fmt: skip
    expected = my_fingerprint(mysql_server, source)
    mysql_server.execute(f"DROP DATABASE {source}")
    before = mysql_server.databases()
    config = write_config(tmp_path, {
        "dbdriver": "mariadb", "dbserver": mysql_server.host, "dbport": mysql_server.port,
        "database": database, "dbuser": user, "dbpassword_env": PASSWORD_ENV,
        "dbsources": "dumps",
    })  # fmt: skip
    job = rewind(config, history, "hostile", "new.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    assert my_fingerprint(mysql_server, database) == expected
    assert unkept(mysql_server.databases()) == unkept(before), (
        "no database added, dropped or left behind but the kept cached copies"
    )


# --- SQLite --------------------------------------------------------------------


def test_sqlite_hostile_paths(tmp_path, history):
    folder = tmp_path / "we\"ird 'dir`; DROP TABLE keep;-- ü"
    target = folder / "tar'get\";`x` ü.db"
    script = 'CREATE TABLE "n;""x" (v TEXT); INSERT INTO "n;""x" VALUES (\'`b`\');'
    make_dump(folder / "dumps ü", "new '\";.sql", script)
    with sqlite3.connect(target) as db:
        db.execute("CREATE TABLE keep (x)")
    db.close()
    neighbour = folder / "keep.db"
    with sqlite3.connect(neighbour) as db:
        db.execute("CREATE TABLE keep (x)")
    db.close()
    config = write_config(tmp_path, {"dbdriver": "sqlite", "database": str(target),
                                     "dbsources": str(folder / "dumps ü")})  # fmt: skip
    job = rewind(config, history, "hostile", "new '\";.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    with sqlite3.connect(target) as db:
        assert db.execute('SELECT * FROM "n;""x"').fetchall() == [("`b`",)]
        assert db.execute("SELECT name FROM sqlite_schema").fetchall() == [('n;"x',)]
    db.close()
    with sqlite3.connect(neighbour) as db:
        assert db.execute("SELECT name FROM sqlite_schema").fetchall() == [("keep",)]
    db.close()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [
            target.name,
            neighbour.name,
            "dumps ü",
            f".{target.name}.reel.lock",
            f".{target.name}.reel-cache",
        ]
    ), "no temp or journal file left beside the target (lock and cache are kept on purpose)"


def test_postgres_names_differing_from_system_databases_only_in_case_are_ordinary(
    pg_server, history, tmp_path, monkeypatch
):
    """PostgreSQL compares database names exactly: ``Postgres`` is not ``postgres``, so
    the config allows it and the rewind lands there, leaving the system database alone."""
    monkeypatch.setenv(PASSWORD_ENV, pg_server.password)
    (tmp_path / "dumps").mkdir()
    (tmp_path / "dumps" / "new.sql").write_text(
        "CREATE TABLE t (x int);\nINSERT INTO t VALUES (7);\n"
    )
    system_before = table_rows(pg_server, "postgres")
    pg_server.execute('CREATE DATABASE "Postgres"')
    try:
        config = write_config(tmp_path, {
            "dbdriver": "postgres", "dbserver": pg_server.host, "dbport": pg_server.port,
            "database": "Postgres", "dbuser": pg_server.user, "dbpassword_env": PASSWORD_ENV,
            "dbsources": "dumps",
        })  # fmt: skip
        job = rewind(config, history, "hostile", "new.sql")
        assert job.state is JobState.SUCCEEDED, job.error
        assert pg_server.execute("SELECT x FROM t", "Postgres") == [(7,)]
        assert table_rows(pg_server, "postgres") == system_before
    finally:
        pg_server.execute('DROP DATABASE IF EXISTS "Postgres" WITH (FORCE)')
