"""The throwaway test server itself: reachable by TCP with a password only."""

from __future__ import annotations

import psycopg2
import pytest
from pg_server import PgServer


def test_server_is_postgres_15_or_later(pg_server: PgServer):
    assert pg_server.version >= 150000
    assert pg_server.execute("SELECT current_user") == [(pg_server.user,)]


def test_tcp_needs_the_password(pg_server: PgServer):
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        pg_server.connect(password="wrong")


def test_unix_socket_reaches_the_same_server(pg_server: PgServer):
    conn = pg_server.connect(host=str(pg_server.socket_dir), password=None)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW port")
            assert cur.fetchone() == (str(pg_server.port),)
    finally:
        conn.close()
