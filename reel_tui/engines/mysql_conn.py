"""Reaching a MySQL / MariaDB server from an app's config.

What the config leaves out comes from ``~/.my.cnf`` (its ``[client]`` group,
read by pymysql), as the mysql client would take it; with no host there
either, the usual local socket is used when it exists. The password only
travels inside the connection handshake, never on a command line, and every
message that might echo it is scrubbed.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pymysql
from pymysql.constants import CLIENT

from reel_tui.config import AppConfig
from reel_tui.engines.base import RewindError, host_is_local

CONNECT_TIMEOUT = 10
DEFAULT_SOCKETS = ("/run/mysqld/mysqld.sock", "/var/run/mysqld/mysqld.sock", "/tmp/mysql.sock")
OPTION_FILE = "~/.my.cnf"

Connection = pymysql.connections.Connection


class _Connection(pymysql.connections.Connection):  # type: ignore[misc]
    """pymysql's connection without the CA store it loads for nothing.

    Without TLS options, pymysql tries TLS when the server offers it and verifies
    nothing (CERT_NONE, no host name check), yet builds that context with
    ``ssl.create_default_context()``, which reads the system's CA store on every
    connect: 30 ms on an idle machine, up to 0.5 s on a busy one, most of a warm
    rewind. The same context without the unused store is built instead. With TLS
    options (``ssl-ca`` in ~/.my.cnf, …) pymysql's own context is used, as before.
    """

    def _create_ssl_ctx(self, sslp: object) -> ssl.SSLContext:
        if sslp != {}:
            return super()._create_ssl_ctx(sslp)  # type: ignore[no-any-return]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx


def connect_params(app: AppConfig, database: str | None = None) -> dict[str, object]:
    """pymysql keywords for the app's server; ~/.my.cnf fills in what the config leaves out."""
    params: dict[str, object] = {
        "database": database,
        "charset": "utf8mb4",
        "autocommit": True,
        "connect_timeout": CONNECT_TIMEOUT,
        "client_flag": CLIENT.MULTI_STATEMENTS,
        "local_infile": False,
        "program_name": "reel-tui",
    }
    option_file = Path(OPTION_FILE).expanduser()
    if option_file.is_file():
        params["read_default_file"] = str(option_file)
    server = app.server
    if server and server.startswith("/"):
        path = Path(server)
        params["unix_socket"] = str(path / "mysqld.sock") if path.is_dir() else server
    elif server:
        params["host"] = server
    elif not _option_file_names_server(option_file):
        local = next((s for s in DEFAULT_SOCKETS if Path(s).exists()), None)
        if local:
            params["unix_socket"] = local
    if app.port:
        params["port"] = app.port
    if app.user:
        params["user"] = app.user
    password = app.resolve_password()
    if password:
        params["password"] = password
    return params


def _option_file_names_server(option_file: Path) -> bool:
    if not option_file.is_file():
        return False
    try:
        text = option_file.read_text(errors="replace")
    except OSError:
        return False
    return any(
        line.strip().split("=")[0].strip() in ("host", "socket") for line in text.splitlines()
    )


def connect(app: AppConfig, database: str | None = None) -> Connection:
    """An autocommit utf8mb4 connection, or :class:`RewindError` naming the server."""
    try:
        return _Connection(**connect_params(app, database))
    except pymysql.Error as exc:
        text = scrub(app, message(exc)) + _password_hint(app)
        raise RewindError(f"cannot connect to {where(app)}: {text}") from None


def message(exc: BaseException) -> str:
    """The server's message of a pymysql error, on one line."""
    args = getattr(exc, "args", ())
    text = str(args[1]) if len(args) >= 2 else str(exc)
    return " ".join(text.split())


def error_code(exc: BaseException) -> int:
    args = getattr(exc, "args", ())
    return int(args[0]) if args and isinstance(args[0], int) else 0


def scrub(app: AppConfig, text: str) -> str:
    """``text`` with the app's password (if any) replaced by ``***``."""
    password = app.resolve_password()
    return text.replace(password, "***") if password else text


def where(app: AppConfig) -> str:
    """The server as the user configured it: ``host:port``, a socket, or the defaults."""
    if app.server and app.server.startswith("/"):
        return app.server
    if app.server:
        return f"{app.server}:{app.port or 3306}"
    return "the local server (default socket or ~/.my.cnf)"


def is_local(app: AppConfig) -> bool:
    """True for a unix socket, a loopback name or address, or the local default."""
    return host_is_local(app.server or "")


def ident(name: str) -> str:
    """``name`` as a backticked identifier."""
    return "`" + name.replace("`", "``") + "`"


def _password_hint(app: AppConfig) -> str:
    """Why there may be no password: the variable named by dbpassword_env is unset."""
    if app.password_env and app.password_env not in os.environ:
        return f" (${app.password_env} is not set)"
    return ""
