"""The throwaway test server itself: reachable by TCP with a password, and by its socket."""

from __future__ import annotations

import pymysql
import pytest
from mysql_server import MysqlServer


def test_server_is_mariadb_10_or_mysql_8(mysql_server: MysqlServer):
    version = str(mysql_server.execute("SELECT VERSION()")[0][0])
    assert int(version.split(".")[0]) >= 8
    user = str(mysql_server.execute("SELECT CURRENT_USER()")[0][0])
    assert user.startswith(mysql_server.user + "@")


def test_tcp_needs_the_password(mysql_server: MysqlServer):
    with pytest.raises(pymysql.OperationalError, match="Access denied"):
        mysql_server.connect(password="wrong")


def test_unix_socket_reaches_the_same_server(mysql_server: MysqlServer):
    conn = mysql_server.connect(unix_socket=str(mysql_server.socket), host=None)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@port")
            assert cur.fetchone() == (mysql_server.port,)
    finally:
        conn.close()
