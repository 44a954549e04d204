"""A rewind over an encrypted connection (``sslmode = "require"``).

reel-tui imports psycopg2 without Python's ``ssl`` module (see
``reel_tui.engines._import_psycopg2``): libpq then initialises its own OpenSSL.
This checks, against a real server with SSL turned on, that the headless
process still rewinds over TLS, and that it did so without loading ``ssl``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pg_server import SERVER_USER, PgServer

HEADLESS_RUN = """\
import sys
from reel_tui.cli import main
code = main(sys.argv[1:])
sys.stderr.write(f"ssl imported: {'ssl' in sys.modules}\\n")
raise SystemExit(code)
"""


@pytest.fixture
def ssl_on(pg_server: PgServer) -> Iterator[Path]:
    """The session's server with SSL (a self-signed certificate) and connections logged,
    for one test; turned off again after it. Yields the server's log file."""
    folder = pg_server.data_dir  # the server's user can read it (pytest's tmp is root's)
    key, cert = folder / "reel-test.key", folder / "reel-test.crt"
    subprocess.run(["openssl", "req", "-new", "-x509", "-days", "1", "-nodes", "-subj",
                    "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)  # fmt: skip
    key.chmod(0o600)
    if os.geteuid() == 0:  # the server runs as postgres and must read them
        for path in (key, cert):
            shutil.chown(path, SERVER_USER, SERVER_USER)
    settings = {"ssl_cert_file": str(cert), "ssl_key_file": str(key), "ssl": "on",
                "log_connections": "on"}  # fmt: skip
    for name, value in settings.items():
        pg_server.execute(f"ALTER SYSTEM SET {name} = '{value}'")
    pg_server.execute("SELECT pg_reload_conf()")
    try:
        [(enabled,)] = pg_server.execute("SHOW ssl")
        assert enabled == "on", "the server did not turn SSL on"
        yield pg_server.log_file
    finally:
        for name in settings:
            pg_server.execute(f"ALTER SYSTEM RESET {name}")
        pg_server.execute("SELECT pg_reload_conf()")
        key.unlink()
        cert.unlink()


def test_headless_rewind_over_ssl_without_pythons_ssl_module(
    pg_server: PgServer, pg_dbname: str, pg_config: Callable[..., Path], ssl_on: Path
):
    source = f"{pg_dbname}_src"
    pg_server.execute(f"CREATE DATABASE {source}")
    try:
        pg_server.execute("CREATE TABLE notes (id int PRIMARY KEY, body text); "
                          "INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 500) g",
                          dbname=source)  # fmt: skip
        config = pg_config('sslmode = "require"\ncache_copies = 0')
        dump = config.parent / "dumps" / "notes.sql"
        subprocess.run(["pg_dump", "-f", str(dump), "-d", source], env=pg_server.env(),
                       check=True)  # fmt: skip
    finally:
        pg_server.execute(f"DROP DATABASE {source}")
    logged = ssl_on.stat().st_size

    done = subprocess.run(
        [sys.executable, "-c", HEADLESS_RUN, "-c", str(config), "--rewind", "--source",
         "notes.sql", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["state"] == "succeeded"
    assert done.stderr.splitlines()[-1] == "ssl imported: False"
    assert pg_server.execute("SELECT count(*), max(body) FROM notes", dbname=pg_dbname) == [
        (500, "note 99")
    ]
    with ssl_on.open(encoding="utf-8", errors="replace") as log:
        log.seek(logged)
        authorized = [line for line in log if "connection authorized" in line
                      and f"user={pg_server.user}" in line]  # fmt: skip
    assert authorized, "the rewind's connections were not logged"
    assert all("SSL enabled" in line for line in authorized), authorized
