"""A throwaway PostgreSQL server for the test session (a pytest plugin).

The engine tests need a real server, not a mock: atomic swaps, session
termination, COPY cancel and advisory locks are server behaviour. This plugin
runs ``initdb`` into a temporary folder, starts ``postgres`` on a unix socket
and on 127.0.0.1 (a free port, password authentication, so the password path
is exercised), creates a superuser for the tests, and stops and removes it all
at session end, also after a failure. PostgreSQL refuses to run as root, so
when the tests run as root the server runs as the ``postgres`` user.

If the server cannot start, the tests that use it error with the reason:
they never skip silently.
"""

from __future__ import annotations

import atexit
import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import pytest

SERVER_USER = "postgres"
"""The OS user the server runs as when the tests run as root."""


class PgServerError(RuntimeError):
    """The test server could not be set up; the message says why and what to install."""


def find_bindir() -> Path:
    """Where ``postgres`` and ``initdb`` are: $REEL_PG_BINDIR, Debian's folders, pg_config."""
    candidates: list[str] = []
    if os.environ.get("REEL_PG_BINDIR"):
        candidates.append(os.environ["REEL_PG_BINDIR"])
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(versions, key=lambda p: int(Path(p).parent.name), reverse=True)
    if shutil.which("pg_config"):
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(found.stdout.strip())
    if shutil.which("postgres"):
        candidates.append(str(Path(shutil.which("postgres") or "").parent))
    for candidate in candidates:
        if candidate and (Path(candidate) / "postgres").is_file():
            return Path(candidate)
    raise PgServerError(
        "no PostgreSQL server binaries found (looked in $REEL_PG_BINDIR, "
        "/usr/lib/postgresql/*/bin, pg_config --bindir, PATH): "
        "run `bash scripts/test`, or `apt-get install postgresql`"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PgServer:
    """A running throwaway cluster and how to reach it."""

    bindir: Path
    base: Path
    port: int
    user: str = "reel_test"
    password: str = field(default_factory=lambda: "pw-" + secrets.token_hex(12), repr=False)
    host: str = "127.0.0.1"

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "sock"

    @property
    def log_file(self) -> Path:
        return self.base / "server.log"

    @property
    def version(self) -> int:
        with self.connect() as conn:
            return int(conn.server_version)

    def _as_server_user(self, command: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", SERVER_USER, "--", *command]
        return command

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(
            self._as_server_user(command), capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            log = self.log_file.read_text() if self.log_file.exists() else ""
            raise PgServerError(
                f"`{' '.join(command)}` failed ({done.returncode}): "
                f"{done.stderr.strip() or done.stdout.strip()}\n{log[-2000:]}"
            )

    def start(self) -> None:
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            for path in (self.base, self.socket_dir):
                shutil.chown(path, SERVER_USER, SERVER_USER)
        self._run([str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                   "-E", "UTF8", "--locale=C.UTF-8", "--auth-local=trust",
                   "--auth-host=scram-sha-256", "--no-sync"])  # fmt: skip
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses={self.host} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=60 -c shared_buffers=64MB"
        )
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-l",
                   str(self.log_file), "-o", options, "-w", "-t", "60", "start"])  # fmt: skip
        with psycopg2.connect(
            host=str(self.socket_dir), port=self.port, user="postgres", dbname="postgres"
        ) as conn, conn.cursor() as cur:  # fmt: skip
            cur.execute(f"CREATE ROLE {self.user} LOGIN SUPERUSER PASSWORD %s", (self.password,))
        conn.close()

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            subprocess.run(
                self._as_server_user([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir),
                                      "-m", "immediate", "-w", "stop"]),
                capture_output=True, timeout=60,
            )  # fmt: skip
        shutil.rmtree(self.base, ignore_errors=True)

    def connect(self, dbname: str = "postgres", **kwargs: object) -> psycopg2.extensions.connection:
        """A connection over TCP with the password, autocommit on."""
        params: dict[str, object] = {"host": self.host, "port": self.port, "user": self.user,
                                     "password": self.password, "dbname": dbname}  # fmt: skip
        params.update(kwargs)
        conn = psycopg2.connect(**params)
        conn.autocommit = True
        return conn

    def env(self) -> dict[str, str]:
        """Environment for psql / pg_dump: the password travels here, never in argv."""
        return {**os.environ, "PGHOST": self.host, "PGPORT": str(self.port),
                "PGUSER": self.user, "PGPASSWORD": self.password}  # fmt: skip

    def execute(self, sql: str, dbname: str = "postgres") -> list[tuple[object, ...]]:
        """Run one statement; return its rows (empty for statements without any)."""
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def databases(self) -> set[str]:
        return {row[0] for row in self.execute("SELECT datname FROM pg_database")}


def start_server() -> PgServer:
    """Start a new cluster; on failure stop what was started and raise PgServerError."""
    base = Path(tempfile.mkdtemp(prefix="reel-pg-"))
    server = PgServer(find_bindir(), base, _free_port())
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    atexit.register(server.stop)  # also when pytest exits through an internal error
    return server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's PostgreSQL server; errors (never skips) when it cannot start."""
    try:
        server = start_server()
    except (PgServerError, OSError, subprocess.SubprocessError, psycopg2.Error) as exc:
        pytest.fail(f"cannot start the test PostgreSQL server: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_dbname(pg_server: PgServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database name unique to the test; it and its reel-tui leftovers are dropped after."""
    name = "t_" + secrets.token_hex(4)
    yield name
    for db in pg_server.databases():
        if db == name or db.startswith(name + "__reel"):
            pg_server.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


PASSWORD_ENV = "REEL_TEST_PGPASSWORD"


@pytest.fixture
def pg_config(
    pg_server: PgServer, pg_dbname: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Path]:
    """Write a reel.toml with a postgres app "shop" on the test server; returns its path.

    Dumps go in ``tmp_path / "dumps"``; the password travels in an environment variable.
    """
    monkeypatch.setenv(PASSWORD_ENV, pg_server.password)
    (tmp_path / "dumps").mkdir(exist_ok=True)

    def write(extra: str = "", database: str | None = None) -> Path:
        path = tmp_path / "reel.toml"
        path.write_text(
            f"""[reel]
default_app = "shop"
[shop]
dbdriver = "postgres"
dbserver = "{pg_server.host}"
dbport = {pg_server.port}
database = "{database or pg_dbname}"
dbuser = "{pg_server.user}"
dbpassword_env = "{PASSWORD_ENV}"
dbsources = "dumps"
{extra}
""",
            encoding="utf-8",
        )
        os.chmod(path, 0o600)
        return path

    return write
