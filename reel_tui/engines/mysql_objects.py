"""A schema's triggers, routines, views and events: read as ``SHOW CREATE`` gives them, and
created again elsewhere under the session settings they were made with.

This is how the swap carries them from the staging schema to the target (a
trigger cannot move with its table, a view cannot move at all), as mysqldump
itself does: sql_mode, character_set_client, collation_connection and, for
events, time_zone are set around each ``CREATE`` and restored after.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pymysql

from reel_tui.engines.mysql_conn import Connection, ident
from reel_tui.engines.mysql_rewrite import rename_schema

_UTF8 = ("utf8", "utf8mb3", "utf8mb4")


def query(conn: Connection, sql: str, args: object = None) -> list[tuple]:  # type: ignore[type-arg]
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall()) if cur.description else []


@dataclass
class Definition:
    """One trigger, routine, view or event, as ``SHOW CREATE`` gives it, and its context."""

    kind: str
    name: str
    sql: str
    sql_mode: str | None = None
    charset_client: str | None = None
    collation: str | None = None
    time_zone: str | None = None


def definitions(conn: Connection, schema: str, target: str, source: str) -> list[Definition]:
    """Triggers, routines, views and events of ``schema``, references to ``source`` as
    ``target`` (the staging schema's name never reaches the target)."""
    found: list[Definition] = []
    query(conn, f"USE {ident(schema)}")
    for name, mode, cs, coll in query(conn, """SELECT TRIGGER_NAME, SQL_MODE, CHARACTER_SET_CLIENT,
            COLLATION_CONNECTION FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s
            ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER""",
                                      (schema,)):  # fmt: skip
        sql = query(conn, f"SHOW CREATE TRIGGER {ident(name)}")[0][2]
        found.append(Definition("trigger", name, sql, mode, cs, coll))
    for name, kind, mode, cs, coll in query(
        conn,
        """SELECT ROUTINE_NAME, ROUTINE_TYPE, SQL_MODE,
            CHARACTER_SET_CLIENT, COLLATION_CONNECTION FROM information_schema.ROUTINES
            WHERE ROUTINE_SCHEMA = %s ORDER BY ROUTINE_TYPE DESC, ROUTINE_NAME""",
        (schema,),
    ):
        sql = query(conn, f"SHOW CREATE {kind} {ident(name)}")[0][2]
        found.append(Definition(str(kind).lower(), name, sql, mode, cs, coll))
    for name, cs, coll in query(conn, """SELECT TABLE_NAME, CHARACTER_SET_CLIENT,
            COLLATION_CONNECTION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s
            ORDER BY TABLE_NAME""", (schema,)):  # fmt: skip
        sql = query(conn, f"SHOW CREATE VIEW {ident(name)}")[0][1]
        found.append(Definition("view", name, sql, None, cs, coll))
    for name, mode, zone, cs, coll in query(conn, """SELECT EVENT_NAME, SQL_MODE, TIME_ZONE,
            CHARACTER_SET_CLIENT, COLLATION_CONNECTION FROM information_schema.EVENTS
            WHERE EVENT_SCHEMA = %s ORDER BY EVENT_NAME""", (schema,)):  # fmt: skip
        sql = query(conn, f"SHOW CREATE EVENT {ident(name)}")[0][3]
        found.append(Definition("event", name, sql, mode, cs, coll, zone))
    for definition in found:
        definition.sql = rename_schema(definition.sql, source, target)
    return found


def create(conn: Connection, definition: Definition) -> None:
    """Create ``definition`` in the current database under the session settings it was made
    with; an existing object of that name is replaced (so this can run twice)."""
    kind, name = definition.kind, ident(definition.name)
    sql = definition.sql
    if kind == "view":
        sql = "CREATE OR REPLACE " + sql[len("CREATE ") :]
    else:
        query(conn, f"DROP {kind.upper()} IF EXISTS {name}")
    with _session(conn, definition):
        query(conn, sql)


@contextmanager
def _session(conn: Connection, definition: Definition) -> Iterator[None]:
    saved = query(conn, "SELECT @@SESSION.sql_mode, @@SESSION.collation_connection, "
                        "@@SESSION.character_set_client, @@SESSION.time_zone")[0]  # fmt: skip
    settings, values = [], []
    if definition.sql_mode is not None:
        settings.append("sql_mode = %s")
        values.append(definition.sql_mode)
    if definition.charset_client in _UTF8:
        settings.append("character_set_client = %s")
        values.append(definition.charset_client)
    if definition.collation and definition.collation.split("_")[0] in _UTF8:
        settings.append("collation_connection = %s")
        values.append(definition.collation)
    if definition.time_zone:
        settings.append("time_zone = %s")
        values.append(definition.time_zone)
    if settings:
        query(conn, "SET SESSION " + ", ".join(settings), values)
    try:
        yield
    finally:
        query(conn, "SET SESSION sql_mode = %s, collation_connection = %s, "
                    "character_set_client = %s, time_zone = %s", saved)  # fmt: skip


def create_views(conn: Connection, views: list[Definition]) -> None:
    """Views in any order: one that reads a view not created yet is retried after it."""
    pending = list(views)
    while pending:
        failed: list[Definition] = []
        error: pymysql.Error | None = None
        for view in pending:
            try:
                create(conn, view)
            except pymysql.Error as exc:
                failed.append(view)
                error = exc
        if len(failed) == len(pending):
            assert error is not None
            raise error
        pending = failed
