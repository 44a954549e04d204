"""Rewinding in place, for a role that may not create databases.

Without CREATEDB there is no staging database to swap in, so the target is
cleared and reloaded inside one transaction on the target itself: every
schema the role owns is dropped (not only ``public``: pagila has ``legacy``,
and a reload would fail on ``CREATE SCHEMA legacy``), as is every table,
view, sequence, routine, type and extension the role owns in schemas it does
not own (``public`` is kept, as pg_dump expects it to exist). Then the dump
loads in the same transaction. Any failure, a cancel, a killed reel process
or a dropped connection rolls all of it back: the target stays as it was.

Unlike ``DROP OWNED BY``, this leaves privileges granted *to* the role alone,
so the application keeps its access to the database and to others' objects.
Objects the role does not own are not cleared; a dump that creates them again
fails with "already exists" and changes nothing.
"""

from __future__ import annotations

import psycopg2

from reel_tui.engines.base import RewindContext, RewindError
from reel_tui.engines.pg_conn import Connection

LOCK_TIMEOUT = "10s"
"""How long clearing waits for a lock an application session holds before giving up."""
_SYSTEM_SCHEMAS = "n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'"
_OWNED_SCHEMAS = f"""
    SELECT format('DROP SCHEMA IF EXISTS %I CASCADE', n.nspname) FROM pg_namespace n
    WHERE n.nspowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
      AND n.nspname <> 'public' AND {_SYSTEM_SCHEMAS}
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                      AND d.objid = n.oid AND d.deptype = 'e')
"""
_OWNED_OBJECTS = f"""
    WITH me AS (SELECT oid FROM pg_roles WHERE rolname = current_user),
    mine AS (SELECT n.oid FROM pg_namespace n, me
             WHERE n.nspowner = me.oid AND n.nspname <> 'public')
    SELECT format('DROP EXTENSION IF EXISTS %I CASCADE', e.extname), 0
      FROM pg_extension e, me WHERE e.extowner = me.oid AND e.extname <> 'plpgsql'
    UNION ALL
    SELECT format('DROP %s IF EXISTS %s CASCADE',
                  CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                       WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                  c.oid::regclass), 1
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, me
     WHERE c.relowner = me.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
       AND NOT c.relispartition AND n.oid NOT IN (SELECT oid FROM mine) AND {_SYSTEM_SCHEMAS}
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                       AND d.objid = c.oid AND d.deptype IN ('e', 'a', 'i'))
    UNION ALL
    SELECT format('DROP %s IF EXISTS %s CASCADE',
                  CASE p.prokind WHEN 'a' THEN 'AGGREGATE' ELSE 'ROUTINE' END,
                  p.oid::regprocedure), 2
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, me
     WHERE p.proowner = me.oid AND n.oid NOT IN (SELECT oid FROM mine) AND {_SYSTEM_SCHEMAS}
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                       AND d.objid = p.oid AND d.deptype = 'e')
    UNION ALL
    SELECT format('DROP %s IF EXISTS %s CASCADE',
                  CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::regtype), 3
      FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace, me
     WHERE t.typowner = me.oid AND n.oid NOT IN (SELECT oid FROM mine) AND {_SYSTEM_SCHEMAS}
       AND (t.typtype IN ('e', 'd', 'r', 'm')
            OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                       AND d.objid = t.oid AND d.deptype IN ('e', 'i'))
    ORDER BY 2, 1
"""


def end_own_sessions(conn: Connection, dbname: str, ctx: RewindContext) -> None:
    """List the other sessions on the target and end those this role may end."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT pid, usename, application_name, client_addr::text FROM pg_stat_activity
               WHERE datname = %s AND pid <> pg_backend_pid()
                 AND backend_type = 'client backend'""",
            (dbname,),
        )
        for pid, user, application, client in cur.fetchall():
            try:
                cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
                ended = "ended"
            except psycopg2.Error:
                ended = "left running (another role's; it may hold locks the rewind waits for)"
            ctx.log(f"session pid {pid} on {dbname} (user {user}, application "
                    f"{application or '-'}, from {client or 'local socket'}): {ended}")  # fmt: skip


def clear_owned(conn: Connection, ctx: RewindContext) -> None:
    """Inside the caller's transaction: drop what the current role owns (see module doc)."""
    with conn.cursor() as cur:
        cur.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        cur.execute(_OWNED_SCHEMAS)
        schemas = [row[0] for row in cur.fetchall()]
        cur.execute(_OWNED_OBJECTS)
        objects = [row[0] for row in cur.fetchall()]
        try:
            for statement in schemas + objects:
                cur.execute(statement)
        except psycopg2.errors.LockNotAvailable:
            raise RewindError(
                f"another session holds a lock on the target for more than {LOCK_TIMEOUT} "
                "(an open transaction in the application?); nothing was changed",
                code="busy",
            ) from None
        cur.execute("SET LOCAL lock_timeout = 0")
    ctx.log(f"cleared in place: {len(schemas)} schemas and {len(objects)} other objects "
            "owned by the rewinding role (rolled back if the load fails)")  # fmt: skip
