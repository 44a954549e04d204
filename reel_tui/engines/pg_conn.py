"""Reaching a PostgreSQL server from an app's config, and quoting what we send it.

What the config leaves out is left to libpq (``PGHOST``, ``PGUSER``,
``~/.pgpass``, …), so reel behaves like psql on the same machine. The password
only ever travels in connection keywords or a child's environment, and every
message that might echo connection details is scrubbed of it.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg2
import psycopg2.extensions

from reel_tui.config import AppConfig
from reel_tui.engines.base import RewindError, host_is_local

CONNECT_TIMEOUT = 10
APPLICATION_NAME = "reel-tui"
MAINTENANCE_DATABASES = ("postgres", "template1")
"""Where reel connects to create, rename and drop databases, in order of preference."""

Connection = psycopg2.extensions.connection


def socket_dir(server: str) -> str:
    """A unix socket directory from ``dbserver``: a socket file path names its folder."""
    path = Path(server)
    return str(path.parent) if path.name.startswith(".s.PGSQL.") else server


def connect_params(app: AppConfig, dbname: str) -> dict[str, str | int]:
    """libpq keywords for the app's server and ``dbname``; None values left to libpq."""
    params: dict[str, str | int] = {
        "dbname": dbname,
        "connect_timeout": CONNECT_TIMEOUT,
        "application_name": APPLICATION_NAME,
    }
    if app.server:
        params["host"] = socket_dir(app.server)
    if app.port:
        params["port"] = app.port
    if app.user:
        params["user"] = app.user
    password = app.resolve_password()
    if password:
        params["password"] = password
    if app.sslmode:
        params["sslmode"] = app.sslmode
    return params


def scrub(app: AppConfig, text: str) -> str:
    """``text`` on one line, with the app's password (if any) replaced by ``***``."""
    password = app.resolve_password()
    if password:
        text = text.replace(password, "***")
    return " ".join(text.split())


def connect(app: AppConfig, dbname: str) -> Connection:
    """An autocommit connection, or :class:`RewindError` naming the target (never the password)."""
    try:
        conn = psycopg2.connect(**connect_params(app, dbname))
    except psycopg2.Error as exc:
        message = scrub(app, str(exc))
        raise RewindError(f"cannot connect to {dbname} on {where(app)}: {message}") from None
    conn.autocommit = True
    return conn


def connect_maintenance(app: AppConfig) -> Connection:
    """A connection to a database that is never rewound, for CREATE/ALTER/DROP DATABASE."""
    error: RewindError | None = None
    for name in MAINTENANCE_DATABASES:
        try:
            return connect(app, name)
        except RewindError as exc:
            error = error or exc
    assert error is not None
    raise error


def where(app: AppConfig) -> str:
    """The server as the user configured it: ``host:port`` or the socket folder."""
    host = app.server or os.environ.get("PGHOST") or "the default socket"
    port = app.port or os.environ.get("PGPORT") or 5432
    return host if host.startswith("/") else f"{host}:{port}"


def is_local(app: AppConfig) -> bool:
    """True for a unix socket, a loopback name or address, or libpq's default (a socket)."""
    return host_is_local(app.server or os.environ.get("PGHOST") or "")


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """``value`` as a SQL string literal (standard_conforming_strings is on since 9.1)."""
    if "\\" in value:
        return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + value.replace("'", "''") + "'"
