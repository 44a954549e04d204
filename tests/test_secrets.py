"""The password stays secret through a whole headless run, per server engine: never on any
process's command line while the rewind runs (pg_restore included), never in ``--json``
output, stdout, stderr, the job history or its logs; and everything in the state directory
is readable by the user only, even under ``umask 0``."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mysql_server import MysqlServer
from pg_server import PgServer

from conftest import REEL


@contextmanager
def watch_command_lines(secret: str, wanted: bytes) -> Iterator[dict[str, object]]:
    """Poll every process's command line while the block runs: lines holding ``secret``
    are collected in ``found["leaks"]``; ``found["seen"]`` says whether a command line
    holding ``wanted`` (the process that must be caught running) was seen at all."""
    found: dict[str, object] = {"leaks": [], "seen": False}
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    text = cmdline.read_bytes()
                except OSError:
                    continue
                if wanted in text:
                    found["seen"] = True
                if secret.encode() in text:
                    found["leaks"].append(text)  # type: ignore[union-attr]
            time.sleep(0.01)

    watcher = threading.Thread(target=poll)
    watcher.start()
    try:
        yield found
    finally:
        stop.set()
        watcher.join()


def run_private(args: list[str], state: Path) -> subprocess.CompletedProcess[str]:
    """``reel-tui ARGS`` under ``umask 0``, so any file created without an explicit mode
    would be world-readable."""
    env = {**os.environ, "REEL_STATE_DIR": str(state)}
    return subprocess.run([*REEL, *args], capture_output=True, text=True, timeout=180, env=env,
                          preexec_fn=lambda: os.umask(0))  # fmt: skip


def assert_state_private(state: Path, secret: str) -> None:
    """Every folder 0700, every file 0600 (or stricter), and no file holds ``secret``."""
    paths = [state, *state.rglob("*")]
    assert len(paths) > 4, paths
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} has mode {mode:o}"
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def big_insert_dump(path: Path, rows: int) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write("CREATE TABLE t (n int, s varchar(64));\n")
        for start in range(0, rows, 500):
            values = ",".join(f"({n},'{n:064d}')" for n in range(start, start + 500))
            out.write(f"INSERT INTO t VALUES {values};\n")


def test_mysql_password_stays_secret(mysql_server: MysqlServer, my_config, my_dbname, tmp_path):
    big_insert_dump(tmp_path / "dumps" / "big.sql", 60_000)
    config = my_config()
    state = tmp_path / "private-state"
    with watch_command_lines(mysql_server.password, b"reel_tui") as found:
        result = run_private(
            ["-c", str(config), "--rewind", "crm", "--source", "big.sql", "--json"], state
        )
    assert result.returncode == 0, result.stderr
    assert found["seen"], "the watcher never saw reel running"
    assert found["leaks"] == []
    assert mysql_server.execute("SELECT count(*) FROM t", my_dbname) == [(60_000,)]
    assert mysql_server.password not in result.stdout + result.stderr
    assert_state_private(state, mysql_server.password)


def test_postgres_password_stays_secret_through_pg_restore(pg_server: PgServer, pg_config,
                                                           pg_dbname, tmp_path):  # fmt: skip
    source = pg_dbname + "_src"
    pg_server.execute(f'CREATE DATABASE "{source}"')
    pg_server.execute("CREATE TABLE t AS SELECT g AS n, md5(g::text) AS m "
                      "FROM generate_series(1, 20000) g", source)  # fmt: skip
    subprocess.run(["pg_dump", "-Fc", "-f", str(tmp_path / "dumps" / "t.dump"), "-d", source],
                   env=pg_server.env(), check=True)  # fmt: skip
    pg_server.execute(f'DROP DATABASE "{source}"')
    # the password in the config itself this time (the file is 0600), not in a variable
    config = pg_config(f'dbpassword = "{pg_server.password}"')
    config.write_text(config.read_text().replace('dbpassword_env = "REEL_TEST_PGPASSWORD"', ""))
    state = tmp_path / "private-state"
    with watch_command_lines(pg_server.password, b"pg_restore") as found:
        result = run_private(
            ["-c", str(config), "--rewind", "shop", "--source", "t.dump", "--json"], state
        )
    assert result.returncode == 0, result.stderr
    assert found["seen"], "the watcher never saw pg_restore running"
    assert found["leaks"] == []
    assert pg_server.execute("SELECT count(*) FROM t", pg_dbname) == [(20_000,)]
    listing = run_private(["-c", str(config), "--list", "--json"], state)
    for output in (result, listing):  # the history is checked in its files below
        assert pg_server.password not in output.stdout + output.stderr
    assert_state_private(state, pg_server.password)


@pytest.mark.parametrize("engine", ["postgres", "mysql"])
def test_a_failing_rewind_never_echoes_the_password(engine, request, tmp_path):
    """A SQL error (the server quotes the statement back) on a target reached with the
    password: the error line, the --json events and the log hold no password."""
    server = request.getfixturevalue("pg_server" if engine == "postgres" else "mysql_server")
    config = request.getfixturevalue("pg_config" if engine == "postgres" else "my_config")()
    app = "shop" if engine == "postgres" else "crm"
    (tmp_path / "dumps" / "bad.sql").write_text(
        f"CREATE TABLE t (x int);\nINSERT INTO nowhere VALUES ('{server.password}x');\n"
    )
    state = tmp_path / "private-state"
    result = run_private(
        ["-c", str(config), "--rewind", app, "--source", "bad.sql", "--json"], state
    )
    assert result.returncode == 1
    assert "nowhere" in result.stderr
    assert server.password not in result.stdout + result.stderr
    assert_state_private(state, server.password)
