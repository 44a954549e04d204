"""Bad dumps, per engine, through the headless face: an empty file, binary junk, the wrong
engine's dump, invalid UTF-8 and a corrupt gzip after statements were already loaded, a
10 MB line of junk, and paths leading outside the sources. Each is one line on stderr and a
non-zero exit, and the target (schema and every row) and the server's list of databases are
exactly as before. A valid 10 MB single-line statement, by contrast, loads."""

from __future__ import annotations

import gzip
import os
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from my_tools import fingerprint as my_fingerprint
from mysql_server import MysqlServer
from pg_server import PgServer
from pg_tools import fingerprint as pg_fingerprint

from conftest import SHARED_DATA
from conftest import fingerprint as sqlite_fingerprint
from reel_tui.cli import main

BIG_LINE = 10 * 1024 * 1024


@dataclass
class Target:
    """One app's target: its config, its dumps folder, and how to see its whole state."""

    engine: str
    config: Path
    app: str
    dumps: Path
    state: Callable[[], object]
    """Fingerprint of the target plus the server's databases (staging leftovers show)."""
    rows: Callable[[str], list[tuple[object, ...]]]
    """Rows of a query run on the target."""


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """A target holding table ``t`` with one row, of each engine."""
    engine = request.param
    dumps = tmp_path / "dumps"
    if engine == "sqlite":
        db = tmp_path / "app.db"
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE t (x TEXT)")
            conn.execute("INSERT INTO t VALUES ('old')")
        conn.close()
        dumps.mkdir()
        config = tmp_path / "reel.toml"
        config.write_text(f'[app]\ndatabase = "{db}"\ndbsources = "dumps"\n')
        config.chmod(0o600)

        def sqlite_rows(sql: str) -> list[tuple[object, ...]]:
            with sqlite3.connect(db) as conn:
                found = conn.execute(sql).fetchall()
            conn.close()
            return found

        def files() -> list[str]:
            """Files beside the target: no temp copy left (the lock file stays on purpose)."""
            skip = {"state", ".app.db.reel.lock"}
            return sorted(p.name for p in tmp_path.iterdir() if p.name not in skip)

        return Target(engine, config, "app", dumps,
                      lambda: (sqlite_fingerprint(db), files()), sqlite_rows)  # fmt: skip
    if engine == "postgres":
        server: PgServer = request.getfixturevalue("pg_server")
        name: str = request.getfixturevalue("pg_dbname")
        config = request.getfixturevalue("pg_config")()
        server.execute(f'CREATE DATABASE "{name}"')
        server.execute("CREATE TABLE t (x text); INSERT INTO t VALUES ('old')", name)
        return Target(engine, config, "shop", dumps,
                      lambda: (pg_fingerprint(server, name), server.databases()),
                      lambda sql: server.execute(sql, name))  # fmt: skip
    my: MysqlServer = request.getfixturevalue("mysql_server")
    name = request.getfixturevalue("my_dbname")
    config = request.getfixturevalue("my_config")()
    my.execute(f"CREATE DATABASE `{name}`")
    my.execute("CREATE TABLE t (x longtext)", name)
    my.execute("INSERT INTO t VALUES ('old')", name)
    return Target(engine, config, "crm", dumps,
                  lambda: (my_fingerprint(my, name), my.databases()),
                  lambda sql: my.execute(sql, name))  # fmt: skip


def statements(count: int) -> bytes:
    """A valid dump for every engine: replaces ``t`` and inserts ``count`` rows."""
    lines = ["DROP TABLE IF EXISTS t;", "CREATE TABLE t (x text);"]
    lines += [f"INSERT INTO t VALUES ('row {n}');" for n in range(count)]
    return ("\n".join(lines) + "\n").encode()


def wrong_engine(engine: str, dumps: Path) -> bytes:
    """Another engine's dump: sakila (MySQL) for PostgreSQL, pagila for the others."""
    if engine == "postgres":
        return (SHARED_DATA / "sakila" / "sakila-mv-schema.sql").read_bytes()
    return (SHARED_DATA / "pagila" / "pagila-schema.sql").read_bytes()


def corrupt_gzip(engine: str, dumps: Path) -> bytes:
    """A gzip whose checksum at the very end is wrong: every statement was loaded before
    the corruption shows, and still nothing may be swapped in."""
    packed = bytearray(gzip.compress(statements(5000), mtime=0))
    packed[-8] ^= 0xFF
    return bytes(packed)


def garbled_gzip(engine: str, dumps: Path) -> bytes:
    """A gzip with a damaged middle: deflate decodes it into garbled SQL, and the first
    statement it breaks fails before the checksum at the end is reached."""
    packed = bytearray(gzip.compress(statements(5000), mtime=0))
    middle = len(packed) // 2
    packed[middle : middle + 64] = bytes(64)
    return bytes(packed)


def pg_archive(engine: str, dumps: Path) -> bytes:
    """Looks like a pg_dump custom archive; only PostgreSQL may take it (and it is broken)."""
    return b"PGDMP\x01\x0e\x00\x04\x08\x01\x01\x01" + bytes(2000)


def sqlite_file(engine: str, dumps: Path) -> bytes:
    """A SQLite database file: whole for the other engines, which must refuse it; cut
    short for the SQLite engine, which takes whole ones."""
    scratch = dumps.parent / "scratch.db"
    with sqlite3.connect(scratch) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.executemany("INSERT INTO t VALUES (?)", [(n * 100,) for n in range(5000)])
    conn.close()
    data = scratch.read_bytes()
    scratch.unlink()
    return data[: len(data) // 2] if engine == "sqlite" else data


BAD_SOURCES: dict[str, tuple[Callable[[str, Path], bytes], str]] = {
    "empty": (lambda e, d: b"", "holds no SQL statements"),
    "binary junk": (lambda e, d: os.urandom(4096), "not a dump reel-tui recognises"),
    "wrong engine": (wrong_engine, "app cannot load it"),
    "pg archive": (pg_archive, ""),
    "sqlite database file": (sqlite_file, ""),
    "invalid utf-8 late": (
        lambda e, d: statements(1000) + b"INSERT INTO t VALUES ('\xff\xfe');\n",
        "invalid UTF-8",
    ),
    "corrupt gzip": (corrupt_gzip, "corrupt"),
    "garbled gzip": (garbled_gzip, ""),  # a SQL error or the checksum: whichever comes first
    "10 MB junk line": (
        lambda e, d: statements(3) + b"INSERT INTO t VALUES (" + b"x" * BIG_LINE + b"\n",
        "",
    ),
}


def run_rewind(target: Target, source: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``reel-tui --rewind APP --source SOURCE -q`` in process: exit code, stderr."""
    code = main(["-c", str(target.config), "--rewind", target.app, "--source", source, "-q"])
    return code, capsys.readouterr().err


def expected_fragment(engine: str, case: str) -> str:
    """What the one line must say for ``case`` on ``engine``."""
    fragment = BAD_SOURCES[case][1]
    if case == "pg archive" and engine == "postgres":
        return "the archive lists no objects (TOC Entries: 0)"
    if case == "sqlite database file":
        return "" if engine == "sqlite" else "app cannot load it"  # SQLite's is cut short
    if case == "pg archive":
        return "app cannot load it"
    if case == "invalid utf-8 late" and engine == "mysql":
        return "Incorrect string value"  # sent as bytes, as the mysql client does
    return fragment


def test_bad_sources_are_one_line_non_zero_and_target_unchanged(target: Target, capsys):
    """Every case against one target (one setup, one full fingerprint before and after,
    the rows and the list of databases after each case): fast enough to run per engine."""
    before = target.state()
    for case, (make, _) in BAD_SOURCES.items():
        name = f"bad-{case.replace(' ', '-')}.sql"
        (target.dumps / name).write_bytes(make(target.engine, target.dumps))
        code, err = run_rewind(target, name, capsys)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code != 0 and len(lines) == 1, (case, code, err)
        fragment = expected_fragment(target.engine, case)
        assert lines[0].startswith("reel-tui: ") and fragment in lines[0], (case, lines[0])
        assert target.rows("SELECT x FROM t") == [("old",)], case
    assert target.state() == before


@pytest.mark.parametrize("target", ["sqlite"], indirect=True)
@pytest.mark.parametrize("name", ["../reel.toml", "/etc/passwd", "../../../../etc/hostname",
                                  "escape.sql"])  # fmt: skip
def test_paths_outside_the_sources_are_refused(target: Target, name: str, capsys):
    """Refused by the plan, before any engine runs (so one engine stands for all)."""
    (target.dumps / "escape.sql").symlink_to(target.config)
    before = target.state()
    code, err = run_rewind(target, name, capsys)
    assert code == 2
    assert err.count("\n") == 1 and "outside the app's sources" in err, err
    assert target.state() == before


def test_a_valid_10_mb_single_line_statement_loads(target: Target, capsys):
    value = "v" * BIG_LINE
    kind = "longtext" if target.engine == "mysql" else "text"
    (target.dumps / "big.sql").write_text(
        f"DROP TABLE IF EXISTS t;\nCREATE TABLE t (x {kind});\nINSERT INTO t VALUES ('{value}');\n"
    )
    code, err = run_rewind(target, "big.sql", capsys)
    assert code == 0, err
    assert target.rows("SELECT length(x) FROM t") == [(BIG_LINE,)]


def test_broken_pg_archives_change_nothing(pg_server, pg_dbname, pg_config, tmp_path, capsys):
    """An archive with an empty table of contents (pg_restore would restore it as nothing,
    without an error), a gzipped archive and one cut short in its data: each refused, and in
    place (where pg_restore's SQL runs in reel's transaction), checked before either mode
    is chosen."""
    config = pg_config('rewind_mode = "in-place"')
    pg_server.execute(f'CREATE DATABASE "{pg_dbname}"')
    pg_server.execute("CREATE TABLE t (x text); INSERT INTO t VALUES ('old')", pg_dbname)
    source = pg_dbname + "_src"
    pg_server.execute(f'CREATE DATABASE "{source}"')
    pg_server.execute("CREATE TABLE big AS SELECT g AS n, md5(g::text) AS m "
                      "FROM generate_series(1, 50000) g", source)  # fmt: skip
    whole = tmp_path / "whole.dump"
    subprocess.run(["pg_dump", "-Fc", "-Z0", "-f", str(whole), "-d", source],
                   env=pg_server.env(), check=True)  # fmt: skip
    pg_server.execute(f'DROP DATABASE "{source}"')
    data = whole.read_bytes()
    cases = {
        "empty-toc.dump": (pg_archive("postgres", tmp_path), "lists no objects"),
        "gzipped.dump": (gzip.compress(data), "decompress it first"),
        "cut.dump": (data[: len(data) * 2 // 3], "end of file"),
    }
    target = Target("postgres", config, "shop", tmp_path / "dumps",
                    lambda: (pg_fingerprint(pg_server, pg_dbname), pg_server.databases()),
                    lambda sql: pg_server.execute(sql, pg_dbname))  # fmt: skip
    before = target.state()
    for name, (content, fragment) in cases.items():
        (target.dumps / name).write_bytes(content)
        code, err = run_rewind(target, name, capsys)
        assert code != 0 and err.count("\n") == 1 and fragment in err, (name, err)
        assert target.rows("SELECT x FROM t") == [("old",)], name
    assert target.state() == before
