"""A throwaway MariaDB (or MySQL) server for the test session (a pytest plugin).

The MySQL engine tests need a real server: atomic ``RENAME TABLE``, ``KILL
QUERY``, ``GET_LOCK`` and metadata locks are server behaviour. This plugin
runs ``mariadb-install-db`` into a temporary folder, starts ``mariadbd`` with
``--no-defaults`` (the machine's my.cnf never leaks in) on a unix socket in
that folder and on 127.0.0.1 (a free port), and creates a test user with a
password through ``--init-file`` (no ``--skip-grant-tables``, so the password
path is exercised). At session end the server is stopped and the folder
removed, also after a failure. As root, the server runs as the ``mysql`` user.

If the server cannot start, the tests that use it error with the reason:
they never skip silently.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pymysql
import pytest

SERVER_USER = "mysql"
"""The OS user the server runs as when the tests run as root."""
START_TIMEOUT = 60.0


class MysqlServerError(RuntimeError):
    """The test server could not be set up; the message says why and what to install."""


def _find(*names: str) -> str:
    for name in names:
        for folder in (os.environ.get("REEL_MYSQL_BINDIR"), "/usr/sbin", "/usr/bin"):
            if folder and (Path(folder) / name).is_file():
                return str(Path(folder) / name)
        found = shutil.which(name)
        if found:
            return found
    raise MysqlServerError(
        f"no {' or '.join(names)} found ($REEL_MYSQL_BINDIR, /usr/sbin, PATH): "
        "run `bash scripts/test`, or `apt-get install mariadb-server mariadb-client`"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class MysqlServer:
    """A running throwaway server and how to reach it."""

    base: Path
    port: int
    user: str = "reel_test"
    password: str = field(default_factory=lambda: "pw-" + secrets.token_hex(12), repr=False)
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def socket(self) -> Path:
        return self.base / "mysqld.sock"

    @property
    def log_file(self) -> Path:
        return self.base / "server.log"

    def _log_tail(self) -> str:
        return self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""

    def start(self) -> None:
        as_root = os.geteuid() == 0
        run_as = ["--user=" + SERVER_USER] if as_root else []
        if as_root:
            shutil.chown(self.base, SERVER_USER, SERVER_USER)
        init = self.base / "init.sql"
        init.write_text(
            f"CREATE USER '{self.user}'@'%' IDENTIFIED BY '{self.password}';\n"
            f"CREATE USER '{self.user}'@'localhost' IDENTIFIED BY '{self.password}';\n"
            f"GRANT ALL ON *.* TO '{self.user}'@'%' WITH GRANT OPTION;\n"
            f"GRANT ALL ON *.* TO '{self.user}'@'localhost' WITH GRANT OPTION;\n"
        )
        os.chmod(init, 0o644)
        # a temp folder of its own: servers started at once in a shared /tmp collide on the
        # names of their temporary tables ("Could not remove temporary table /tmp/#sql-…")
        tmp = self.base / "tmp"
        tmp.mkdir(exist_ok=True)
        if as_root:
            shutil.chown(tmp, SERVER_USER, SERVER_USER)
        env = {**os.environ, "TMPDIR": str(tmp)}
        install = subprocess.run(
            [_find("mariadb-install-db", "mysql_install_db"), "--no-defaults",
             f"--datadir={self.data_dir}", "--auth-root-authentication-method=socket",
             "--skip-test-db", *run_as],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
        if install.returncode != 0:
            raise MysqlServerError(
                f"mariadb-install-db failed ({install.returncode}): "
                f"{install.stderr.strip()[-2000:] or install.stdout.strip()[-2000:]}"
            )
        self.process = subprocess.Popen(
            [_find("mariadbd", "mysqld"), "--no-defaults", *run_as,
             f"--datadir={self.data_dir}", f"--socket={self.socket}", f"--port={self.port}",
             f"--bind-address={self.host}", f"--pid-file={self.base / 'mysqld.pid'}",
             f"--log-error={self.log_file}", f"--init-file={init}", "--skip-name-resolve",
             "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
             "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
             "--innodb-buffer-pool-size=256M", "--innodb-log-file-size=128M",
             "--max-connections=100", "--skip-log-bin", "--max-allowed-packet=64M",
             f"--tmpdir={tmp}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise MysqlServerError(
                    f"mariadbd exited with {self.process.returncode}:\n{self._log_tail()}"
                )
            try:
                self.connect().close()
                return
            except pymysql.Error as exc:
                error = exc
                time.sleep(0.1)
        raise MysqlServerError(f"mariadbd did not accept connections: {error}\n{self._log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.base, ignore_errors=True)

    def connect(self, database: str | None = None, **kwargs: object) -> pymysql.Connection:
        """A connection over TCP with the password, utf8mb4, autocommit on."""
        params: dict[str, object] = {"host": self.host, "port": self.port, "user": self.user,
                                     "password": self.password, "database": database,
                                     "charset": "utf8mb4", "autocommit": True}  # fmt: skip
        params.update(kwargs)
        return pymysql.connect(**params)  # type: ignore[arg-type]

    def execute(self, sql: str, database: str | None = None) -> list[tuple[object, ...]]:
        """Run one statement; return its rows (empty for statements without any)."""
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()

    def databases(self) -> set[str]:
        return {str(row[0]) for row in self.execute("SHOW DATABASES")}

    def client_env(self) -> dict[str, str]:
        """Environment for the mysql client / mysqldump: the password travels here (MYSQL_PWD)."""
        return {**os.environ, "MYSQL_PWD": self.password}

    def client_args(self) -> list[str]:
        """Connection options for the mysql client and mysqldump (no password)."""
        return ["--no-defaults", f"--host={self.host}", f"--port={self.port}",
                f"--user={self.user}", "--protocol=tcp"]  # fmt: skip


def start_server() -> MysqlServer:
    """Start a new server; on failure stop what was started and raise MysqlServerError."""
    base = Path(tempfile.mkdtemp(prefix="reel-my-"))
    os.chmod(base, 0o755)
    server = MysqlServer(base, _free_port())
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    atexit.register(server.stop)  # also when pytest exits through an internal error
    return server


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[MysqlServer]:
    """The session's MariaDB server; errors (never skips) when it cannot start."""
    try:
        server = start_server()
    except (MysqlServerError, OSError, subprocess.SubprocessError, pymysql.Error) as exc:
        pytest.fail(f"cannot start the test MariaDB server: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def my_dbname(mysql_server: MysqlServer) -> Iterator[str]:
    """A database name unique to the test; it and its reel-tui leftovers are dropped after."""
    name = "t_" + secrets.token_hex(4)
    yield name
    for db in mysql_server.databases():
        if db == name or db.startswith(name + "__reel"):
            mysql_server.execute(f"DROP DATABASE IF EXISTS `{db}`")


PASSWORD_ENV = "REEL_TEST_MYPASSWORD"


@pytest.fixture
def my_config(
    mysql_server: MysqlServer, my_dbname: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Path]:
    """Write a reel.toml with a mysql app "crm" on the test server; returns its path.

    Dumps go in ``tmp_path / "dumps"``; the password travels in an environment variable.
    """
    monkeypatch.setenv(PASSWORD_ENV, mysql_server.password)
    (tmp_path / "dumps").mkdir(exist_ok=True)

    def write(extra: str = "", database: str | None = None) -> Path:
        path = tmp_path / "reel.toml"
        path.write_text(
            f"""[reel]
default_app = "crm"
[crm]
dbdriver = "mariadb"
dbserver = "{mysql_server.host}"
dbport = {mysql_server.port}
database = "{database or my_dbname}"
dbuser = "{mysql_server.user}"
dbpassword_env = "{PASSWORD_ENV}"
dbsources = "dumps"
{extra}
""",
            encoding="utf-8",
        )
        os.chmod(path, 0o600)
        return path

    return write
