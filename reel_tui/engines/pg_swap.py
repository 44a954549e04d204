"""Staging databases, the swap, and finishing what a killed run left behind.

The swap, step by step (``T`` the target, ``T__reel_staging`` the loaded copy,
``T__reel_old`` the previous content):

1. the staging database's comment (the *journal*) says ``swapping`` and
   whether ``T`` accepted connections;
2. ``ALTER DATABASE T ALLOW_CONNECTIONS false``: applications and poolers that
   reconnect at once are refused from now on, so ending sessions cannot lose
   the race against them;
3. the sessions on ``T`` are listed in the log and ended;
4. one transaction renames ``T`` → ``T__reel_old`` and staging → ``T`` and
   sets the comments: there is never a moment without a database named ``T``;
5. ``DROP DATABASE T__reel_old``.

The journal lives on the server, not on this machine, so a run from any
machine finds it. A run killed after step 1 or 2 is rolled back by the next
run (``T`` accepts connections again, staging is dropped); one killed after
step 4 is completed (the old copy is dropped). Databases named like ours but
without reel's journal are never touched, with one exception: a run killed
between ``CREATE DATABASE`` staging and writing its journal leaves a staging
database with no comment, owned by the target's owner or by reel's user, and
with no objects in it; that one is dropped. Any other is refused, and the
message gives the ``DROP DATABASE`` command.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2
import psycopg2.errors

from reel_tui.engines.base import RewindContext, RewindError
from reel_tui.engines.pg_conn import Connection, ident, literal
from reel_tui.engines.pg_database import DatabaseInfo

JOURNAL_PREFIX = "reel-tui journal: "
SESSION_TIMEOUT = 10.0
"""How long the swap waits for ended sessions to go away."""
LOCK_WAIT = 10
"""Seconds the renames wait for a lock on the databases held elsewhere (an uncommitted
``COMMENT ON`` / ``GRANT … ON DATABASE`` in another database) before giving up: the
target is closed to connections meanwhile, and a cancel waits for the swap."""
LOCK_CLASS = 0x7265656C
"""The advisory lock's first key, "reel": the second is hashtext(target name)."""
MAX_NAME = 63


def derived_name(target: str, kind: str) -> str:
    """``<target>__reel_<kind>``, shortened with a hash when it would pass 63 bytes."""
    name = f"{target}__reel_{kind}"
    if len(name.encode()) <= MAX_NAME:
        return name
    digest = hashlib.sha256(target.encode()).hexdigest()[:8]
    suffix = f"_{digest}__reel_{kind}"
    prefix = target.encode()[: MAX_NAME - len(suffix)].decode(errors="ignore")
    return prefix + suffix


@dataclass(frozen=True)
class Names:
    target: str
    staging: str
    old: str

    @classmethod
    def of(cls, target: str) -> Names:
        return cls(target, derived_name(target, "staging"), derived_name(target, "old"))


def journal_comment(names: Names, state: str, **extra: object) -> str:
    entry = {"target": names.target, "state": state, "pid": os.getpid(),
             "host": os.uname().nodename, "time": round(time.time()), **extra}  # fmt: skip
    return JOURNAL_PREFIX + json.dumps(entry)


def read_journal(conn: Connection, name: str) -> dict[str, object] | None:
    """The journal on database ``name``; {} when it exists without one; None when absent."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (name,),
        )
        row = cur.fetchone()
    if row is None:
        return None
    comment = row[0] or ""
    if not comment.startswith(JOURNAL_PREFIX):
        return {}
    try:
        entry = json.loads(comment[len(JOURNAL_PREFIX) :])
    except ValueError:
        return {}
    return entry if isinstance(entry, dict) else {}


_SESSIONS: weakref.WeakKeyDictionary[Connection, list[object]] = weakref.WeakKeyDictionary()


def session(conn: Connection) -> list[object]:
    """This connection's server session, [pid, start], for a journal: while it lives,
    the run that wrote the journal is not over (pg_stat_activity is cluster-wide).
    Asked once per connection (a rewind writes several journals)."""
    known = _SESSIONS.get(conn)
    if known is not None:
        return list(known)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT pid, backend_start::text FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        )
        row = cur.fetchone()
    found: list[object] = [row[0], row[1]] if row else []
    if found:
        _SESSIONS[conn] = found
    return list(found)


def _alive(conn: Connection, recorded: object) -> bool:
    """Whether the session a journal names is still connected."""
    if not (isinstance(recorded, list) and len(recorded) == 2 and isinstance(recorded[0], int)):
        return False
    with conn.cursor() as cur:
        cur.execute(
            "SELECT backend_start::text FROM pg_stat_activity WHERE pid = %s", (recorded[0],)
        )
        row = cur.fetchone()
    if row is None or conn.info.backend_pid == recorded[0]:
        return False
    return row[0] is None or row[0] == recorded[1]  # None: another user's, start not shown


def write_journal(conn: Connection, name: str, comment: str) -> None:
    with conn.cursor() as cur:
        cur.execute(f"COMMENT ON DATABASE {ident(name)} IS {literal(comment)}")


def exists(conn: Connection, name: str) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return cur.fetchone() is not None


def drop(conn: Connection, name: str) -> None:
    force = " WITH (FORCE)" if conn.server_version >= 130000 else ""
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {ident(name)}{force}")


def recover(
    conn: Connection,
    names: Names,
    ctx: RewindContext,
    connect_to: Callable[[str], Connection] | None = None,
) -> None:
    """Complete or roll back what an interrupted run left; refuse look-alikes that aren't ours.

    ``connect_to`` opens a connection to a database by name: with it, a staging
    database without a journal that is empty and ours (see :func:`_unjournaled_leftover`)
    is dropped as the leftover of a run killed before it wrote its journal.
    """
    with conn.cursor() as cur:  # the usual case, nothing left: one query, not five
        cur.execute("SELECT 1 FROM pg_database WHERE datname IN (%s, %s)",
                    (names.old, names.staging))  # fmt: skip
        if cur.fetchone() is None:
            return
    if read_journal(conn, names.staging) == {} and connect_to is not None:
        owner = _unjournaled_leftover(conn, names, connect_to)
        if owner is not None:
            drop(conn, names.staging)
            ctx.log(f"dropped staging database {names.staging} left by a run killed before "
                    f"it wrote its journal (empty, owned by {owner})", "warning")  # fmt: skip
    for name in (names.old, names.staging):
        if read_journal(conn, name) == {}:
            raise RewindError(
                f"database {name} exists but was not made by reel-tui: rename it, or drop "
                f"it with DROP DATABASE {ident(name)}; reel-tui uses that name while "
                f"rewinding {names.target}"
            )
    old = read_journal(conn, names.old)
    if old is not None:
        if not exists(conn, names.target):
            comment = old.get("comment")
            allow = bool(old.get("allow_connections", True))  # journals before it: true
            # the swap had shut it to connections (step 2): open it as it was, at once
            _in_transaction(conn, [
                f"ALTER DATABASE {ident(names.old)} RENAME TO {ident(names.target)}",
                f"COMMENT ON DATABASE {ident(names.target)} IS "
                + ("NULL" if comment is None else literal(str(comment))),
                f"ALTER DATABASE {ident(names.target)} ALLOW_CONNECTIONS {str(allow).lower()}",
            ])  # fmt: skip
            ctx.log(f"rolled back an interrupted swap: {names.old} is {names.target} again",
                    "warning")  # fmt: skip
        else:
            drop(conn, names.old)
            ctx.log(f"completed an interrupted swap: dropped {names.old}, the previous "
                    f"content of {names.target}", "warning")  # fmt: skip
    staging = read_journal(conn, names.staging)
    if staging is not None and _alive(conn, staging.get("session")):
        # The advisory lock is per database: a reel that took it in another maintenance
        # database (template1 when it may not connect to postgres) is not excluded by it.
        raise RewindError(
            f"another reel-tui is rewinding {names.target} right now (pid {staging.get('pid')} "
            f"on {staging.get('host')}, server session {staging['session'][0]}); try again "
            "when it is over",
            code="busy",
        )
    if staging is not None:
        if staging.get("state") == "swapping" and exists(conn, names.target):
            allow_connections(conn, names.target, bool(staging.get("allow_connections", True)))
            ctx.log(f"rolled back an interrupted swap: {names.target} accepts connections "
                    "again", "warning")  # fmt: skip
        if _give_back(conn, names, staging):
            ctx.log(f"{names.staging}, left by an interrupted run, held the undo copy: it is "
                    f"{staging['restore_as']} again", "warning")  # fmt: skip
            return
        drop(conn, names.staging)
        ctx.log(f"dropped staging database {names.staging} left by an interrupted run "
                f"(pid {staging.get('pid')} on {staging.get('host')})", "warning")  # fmt: skip


def _give_back(conn: Connection, names: Names, journal: dict[str, object]) -> bool:
    """A staging database taken from the undo copy (its journal says ``restore_as``) is
    renamed back instead of dropped; False when the journal does not say so."""
    name, comment = journal.get("restore_as"), journal.get("restore_comment")
    if not (isinstance(name, str) and isinstance(comment, str)) or exists(conn, name):
        return False
    _in_transaction(conn, [
        f"ALTER DATABASE {ident(names.staging)} RENAME TO {ident(name)}",
        f"COMMENT ON DATABASE {ident(name)} IS {literal(comment)}",
        f"ALTER DATABASE {ident(name)} ALLOW_CONNECTIONS false",
    ])  # fmt: skip
    return True


FIRST_NORMAL_OID = 16384
"""Objects made after initdb have OIDs from here on: a new database from template0 has none."""
_CATALOGS = "pg_class pg_proc pg_type pg_namespace pg_extension pg_largeobject_metadata "
_CATALOGS += "pg_event_trigger pg_foreign_server pg_publication"
_USER_OBJECTS = " UNION ALL ".join(
    f"SELECT 1 FROM {catalog} WHERE oid >= {FIRST_NORMAL_OID}" for catalog in _CATALOGS.split()
)


def _unjournaled_leftover(
    conn: Connection, names: Names, connect_to: Callable[[str], Connection]
) -> str | None:
    """Whether the journal-less staging database is what a run killed between its
    ``CREATE DATABASE`` and its journal left: no comment at all, owned by the target's
    owner or by the user reel connects as, and no objects in it. Its owner if so."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT pg_get_userbyid(d.datdba), d.datallowconn
               FROM pg_database d
               WHERE d.datname = %s AND shobj_description(d.oid, 'pg_database') IS NULL
                 AND pg_get_userbyid(d.datdba) IN (
                     current_user,
                     COALESCE((SELECT pg_get_userbyid(datdba) FROM pg_database
                               WHERE datname = %s), current_user))""",
            (names.staging, names.target),
        )
        row = cur.fetchone()
    if row is None or not row[1]:
        return None
    try:
        inside = connect_to(names.staging)
    except (psycopg2.Error, RewindError):
        return None
    try:
        with inside.cursor() as cur:
            cur.execute(f"SELECT EXISTS ({_USER_OBJECTS})")
            empty = not cur.fetchone()[0]
    except psycopg2.Error:
        return None
    finally:
        inside.close()
    return str(row[0]) if empty else None


def swap(
    conn: Connection,
    names: Names,
    old: DatabaseInfo | None,
    ctx: RewindContext,
    reconnect: Callable[[], Connection],
    *,
    keep_old: bool = False,
    journal_extra: dict[str, object] | None = None,
) -> bool:
    """Put the loaded staging database in the target's place (see the module doc).

    ``reconnect`` gives a new maintenance connection, to let connections back
    into the target at once if ``conn`` is lost halfway. With ``keep_old``, the
    previous content is left as ``names.old`` for the caller to deal with (step 5
    is skipped); returns whether it is there (after a lost connection it may not be).
    ``journal_extra`` goes into the staging database's journal (how to give back an
    undo copy taken as staging, see :func:`recover`).
    """
    if old is None:
        with ctx.swap():
            _in_transaction(conn, [
                f"ALTER DATABASE {ident(names.staging)} RENAME TO {ident(names.target)}",
                f"COMMENT ON DATABASE {ident(names.target)} IS NULL",
            ])  # fmt: skip
        ctx.log(f"created {names.target}")
        return False
    journal = journal_comment(names, "swapping", allow_connections=old.allow_connections,
                              session=session(conn), **(journal_extra or {}))  # fmt: skip
    write_journal(conn, names.staging, journal)
    with ctx.swap():
        started = time.monotonic()
        allow_connections(conn, names.target, False)
        xid: list[int] = []
        reconnected = False
        try:
            end_sessions(conn, names.target, ctx)
            _in_transaction(conn, [
                f"SET LOCAL lock_timeout = '{int(LOCK_WAIT)}s'",
                f"ALTER DATABASE {ident(names.target)} RENAME TO {ident(names.old)}",
                f"ALTER DATABASE {ident(names.staging)} RENAME TO {ident(names.target)}",
                f"COMMENT ON DATABASE {ident(names.target)} IS "
                + ("NULL" if old.comment is None else literal(old.comment)),
                f"COMMENT ON DATABASE {ident(names.old)} IS "
                + literal(journal_comment(names, "old", comment=old.comment,
                                          allow_connections=old.allow_connections)),
            ] + ([] if old.allow_connections else [
                f"ALTER DATABASE {ident(names.target)} ALLOW_CONNECTIONS false"]), xid)  # fmt: skip
        except BaseException as exc:
            _reopen(conn, reconnect, names, old.allow_connections, ctx)
            if isinstance(exc, psycopg2.errors.LockNotAvailable):
                raise RewindError(
                    f"another session held a lock on {names.target} or {names.staging} "
                    f"for {LOCK_WAIT} s (an open transaction that changed the database "
                    "itself?); nothing was changed",
                    code="busy",
                ) from None
            if not (isinstance(exc, psycopg2.Error) and conn.closed and xid):
                raise
            # the connection was lost during COMMIT: the server knows how it ended
            status = transaction_status(reconnect, xid[0], ctx)
            if status != "committed":
                _lost_commit(names, status, exc)
            ctx.log("lost the connection during the swap's commit, which the server "
                    "had committed", "warning")  # fmt: skip
            reconnected = True  # the caller's connection is gone: drop the old content here
            try:
                conn = reconnect()
            except (psycopg2.Error, RewindError):
                ctx.log(f"could not drop {names.old}; the next rewind will", "warning")
                return False
        ctx.log(f"swapped {names.staging} in as {names.target} "
                f"({time.monotonic() - started:.2f} s without connections)")  # fmt: skip
        if keep_old and not reconnected:
            return True
        try:
            drop(conn, names.old)
        except psycopg2.Error as exc:
            ctx.log(f"could not drop {names.old} ({exc.diag.message_primary}); the next "
                    "rewind will", "warning")  # fmt: skip
        else:
            ctx.log(f"dropped the previous content ({names.old})")
        return False


COMMIT_STATUS_WAIT = 10.0
"""How long to wait for a commit whose reply was lost to be over on the server."""


def transaction_status(
    reconnect: Callable[[], Connection], xid: int, ctx: RewindContext
) -> str | None:
    """``txid_status`` of ``xid`` asked over a new connection, once it is no longer
    in progress (up to :data:`COMMIT_STATUS_WAIT`); None if the server cannot be asked."""
    deadline = time.monotonic() + COMMIT_STATUS_WAIT
    try:
        check = reconnect()
        try:
            with check.cursor() as cur:
                while True:
                    cur.execute("SELECT txid_status(%s)", (xid,))
                    status = cur.fetchone()[0]
                    if status != "in progress" or time.monotonic() > deadline:
                        return str(status) if status is not None else None
                    time.sleep(0.1)
        finally:
            check.close()
    except (psycopg2.Error, RewindError) as exc:
        reason = exc.diag.message_primary if isinstance(exc, psycopg2.Error) else exc
        ctx.log(f"could not ask the server how the transaction ended: {reason}", "warning")
        return None


def _lost_commit(names: Names, status: str | None, exc: BaseException) -> None:
    if status == "aborted":
        raise exc
    raise RewindError(
        f"{names.target}: lost the connection during the swap's commit, and the server "
        f"cannot say whether it committed ({status or 'no answer'}); the next rewind "
        "completes or rolls back the swap"
    ) from None


def _reopen(
    conn: Connection,
    reconnect: Callable[[], Connection],
    names: Names,
    allow: bool,
    ctx: RewindContext,
) -> None:
    """After a failed swap: the target accepts connections again (the journal says if not)."""
    try:
        if not conn.closed:
            allow_connections(conn, names.target, allow)
            return
        fresh = reconnect()
        try:
            allow_connections(fresh, names.target, allow)
        finally:
            fresh.close()
    except (psycopg2.Error, RewindError) as exc:
        ctx.log(f"could not let connections into {names.target} again ({exc}); "
                "the next rewind will", "error")  # fmt: skip


def end_sessions(conn: Connection, name: str, ctx: RewindContext) -> None:
    """List the sessions on ``name`` in the log and end them; RewindError if they stay."""
    deadline = time.monotonic() + SESSION_TIMEOUT
    logged: set[int] = set()
    with conn.cursor() as cur:
        while True:
            cur.execute(
                """SELECT pid, usename, application_name, client_addr::text, state
                   FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()""",
                (name,),
            )
            sessions = cur.fetchall()
            if not sessions:
                return
            for pid, user, application, client, state in sessions:
                if pid not in logged:
                    logged.add(pid)
                    ctx.log(f"ending session pid {pid} on {name}: user {user}, "
                            f"application {application or '-'}, from {client or 'local socket'}, "
                            f"{state or 'background'}")  # fmt: skip
                try:
                    cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
                except psycopg2.Error as exc:
                    raise RewindError(
                        f"cannot end session pid {pid} of {user} on {name}: "
                        f"{exc.diag.message_primary}; nothing was changed",
                        code="busy",
                    ) from None
            if time.monotonic() > deadline:
                raise RewindError(
                    f"{len(sessions)} sessions on {name} did not end within "
                    f"{SESSION_TIMEOUT:.0f} s; nothing was changed",
                    code="busy",
                )
            time.sleep(0.02)


def allow_connections(conn: Connection, name: str, allow: bool) -> None:
    with conn.cursor() as cur:
        cur.execute(f"ALTER DATABASE {ident(name)} ALLOW_CONNECTIONS {str(allow).lower()}")


def _in_transaction(conn: Connection, statements: list[str], xid: list[int] | None = None) -> None:
    """Run ``statements`` as one transaction: all happen, or none. ``xid`` gets the
    transaction's id, to ask the server how it ended if the COMMIT's reply is lost."""
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        try:
            for statement in statements:
                cur.execute(statement)
            if xid is not None:
                cur.execute("SELECT txid_current()")
                xid.append(int(cur.fetchone()[0]))
            cur.execute("COMMIT")
        except BaseException:
            if not conn.closed:
                cur.execute("ROLLBACK")
            raise


def advisory_lock(conn: Connection, target: str, ctx: RewindContext) -> None:
    """Take the server-side lock for ``target``, waiting (cancellably) while another holds it.

    Session-level on the maintenance connection: the server releases it when
    that connection ends, also when the reel process dies.
    """
    query = "SELECT pg_try_advisory_lock(%s, hashtext(%s))"
    with conn.cursor() as cur:
        cur.execute(query, (LOCK_CLASS, target))
        if cur.fetchone()[0]:
            return
        ctx.progress(phase="waiting")
        ctx.log(f"waiting: another reel-tui is rewinding {target} on this server "
                f"({_lock_holder(cur, target)})")  # fmt: skip
        while True:
            ctx.check_cancelled()
            time.sleep(0.2)
            cur.execute(query, (LOCK_CLASS, target))
            if cur.fetchone()[0]:
                ctx.log("the other rewind is over; going on")
                return


def _lock_holder(cur: psycopg2.extensions.cursor, target: str) -> str:
    cur.execute(
        """SELECT a.pid, COALESCE(a.client_addr::text, 'local socket')
           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
           WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = %s
             AND l.objid::bigint = (hashtext(%s)::bigint & 4294967295)""",
        (LOCK_CLASS, target),
    )
    row = cur.fetchone()
    return f"server pid {row[0]}, from {row[1]}" if row else "holder unknown"
