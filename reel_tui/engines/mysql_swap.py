"""The MySQL swap: staging schema to target in one ``RENAME TABLE``, journaled on the server.

MySQL cannot rename a database, and DDL commits on its own, so the swap is a
short sequence (``T`` the target, ``S`` = ``T__reel_staging`` the loaded copy,
``O`` = ``T__reel_old``):

1. the definitions of ``S``'s triggers, views, routines and events are read
   (``SHOW CREATE``, with the sql_mode and character set they were made under)
   into the *journal*, a table in ``S``; ``S``'s triggers are dropped (a table
   with triggers cannot change schema);
2. the journal says ``swapping`` and holds ``T``'s own triggers and the views
   in the way of a new table; schema ``O`` is created;
3. ``T``'s triggers (and those views) are dropped, then **one** ``RENAME TABLE``
   moves every table of ``T`` to ``O`` and every table of ``S`` to ``T``: the
   server does it atomically, and other sessions wait on its metadata locks;
4. the journal says ``renamed``; triggers, routines, views and events are
   created in ``T`` (views with ``CREATE OR REPLACE``, so a view the app reads
   is never missing); views of the old content that the dump lacks are dropped;
5. the journal says ``done``; ``O`` and ``S`` are dropped.

A run killed anywhere is finished by the next one (:func:`recover`), which
holds the same ``GET_LOCK``: before the rename it restores ``T``'s triggers
and drops ``S``; after it, it redoes step 4 (each step can run twice) and
drops ``O`` and ``S``. Schemas named like ours but without reel's journal are
never touched.

When the replaced tables are kept (the undo copy) or dropped later (a trash
schema), ``O`` is skipped: the journal names that schema (``old_schema``), and
the same ``RENAME TABLE`` first moves the undo copy's previous tables to a
trash schema made beforehand, then T's into the undo copy, then S's into T
(pairs run in order). Step 4 also writes the undo copy's marker. No ``O``, no
second rename, no DDL after the swap but dropping the emptied ``S``: a killed
run is recovered exactly as above (the rename either happened or did not).

A warm rewind with a ready spare goes without ``S`` (``Plan.staging``): the
spare holds the journal and the new tables, and is found by its marker (kind
"swap", see :mod:`reel_tui.engines.mysql_cache`); recovery is the same, then
the spare and its aside schema are marked trash instead of ``S`` being dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field

import pymysql

from reel_tui.engines.base import RewindContext, RewindError
from reel_tui.engines.mysql_conn import Connection, ident, message
from reel_tui.engines.mysql_objects import Definition, create, create_views, definitions, query

JOURNAL = "__reel_journal"
MARKER = "__reel_cache"
"""The marker table of reel's cache schemas (see :mod:`reel_tui.engines.mysql_cache`)."""
MAX_NAME = 64
LOCK_WAIT = 10
"""Seconds reel's own DDL waits for an application's open transaction before giving up."""


def derived_name(target: str, kind: str) -> str:
    """``<target>__reel_<kind>``, shortened with a hash when it would pass 64 characters."""
    name = f"{target}__reel_{kind}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(target.encode()).hexdigest()[:8]
    suffix = f"_{digest}__reel_{kind}"
    return target[: MAX_NAME - len(suffix)] + suffix


@dataclass(frozen=True)
class Names:
    target: str
    staging: str
    old: str

    @classmethod
    def of(cls, target: str) -> Names:
        return cls(target, derived_name(target, "staging"), derived_name(target, "old"))


@dataclass
class Plan:
    """What the journal holds: enough to finish or undo the swap from another process."""

    state: str = "loading"
    new_tables: list[str] = field(default_factory=list)
    old_tables: list[str] = field(default_factory=list)
    new: list[Definition] = field(default_factory=list)
    old_triggers: list[Definition] = field(default_factory=list)
    old_views_in_the_way: list[Definition] = field(default_factory=list)
    old_routines: list[tuple[str, str]] = field(default_factory=list)
    old_views: list[str] = field(default_factory=list)
    database_options: str = ""
    target_existed: bool = True
    old_definitions: list[Definition] = field(default_factory=list)
    """All of T's objects before the swap: what the undo copy must recreate."""
    old_schema: str = ""
    """Where T's tables go ("": ``O``): the undo copy or a trash schema made beforehand,
    so the replaced tables are set aside by the swap's own RENAME TABLE."""
    set_aside: list[list[str]] = field(default_factory=list)
    """``[schema, table, to schema, to table]`` moved first in the same RENAME TABLE (the
    previous undo copy's tables to the trash, freeing their names for T's)."""
    staging: str = ""
    """The schema holding the journal and the new tables when it is not ``S``: a cached
    copy's ready spare, swapped in from where it is (no ``S`` made, filled, dropped)."""
    retire: list[str] = field(default_factory=list)
    """Schemas of reel's made trash once the swap is over or rolled back (the spare
    swapped in and its aside schema): dropped in the background."""
    undo_entry: dict[str, object] = field(default_factory=dict)
    """The marker the undo copy (``old_schema``) gets once T holds the new tables."""

    def dump(self) -> str:
        entry = asdict(self)
        entry.update(pid=os.getpid(), host=os.uname().nodename, time=round(time.time()))
        return json.dumps(entry)

    @classmethod
    def load(cls, text: str) -> Plan:
        entry = json.loads(text)
        plan = cls(**{k: v for k, v in entry.items() if k in cls.__dataclass_fields__})
        plan.new = [Definition(**d) for d in entry.get("new", [])]
        plan.old_triggers = [Definition(**d) for d in entry.get("old_triggers", [])]
        plan.old_views_in_the_way = [Definition(**d) for d in entry.get("old_views_in_the_way", [])]
        plan.old_routines = [tuple(r) for r in entry.get("old_routines", [])]  # type: ignore[misc]
        plan.old_definitions = [Definition(**d) for d in entry.get("old_definitions", [])]
        plan.set_aside = [list(move) for move in entry.get("set_aside", [])]
        return plan

    def holder(self, names: Names) -> str:
        """The schema holding the journal and the new tables."""
        return self.staging or names.staging

    @property
    def begun(self) -> bool:
        """The swap reached its rename: only finishing or rolling it back is right (by the
        run itself, else by the next run's recovery), never dropping its schemas."""
        return self.state in ("swapping", "renamed")


def schema_exists(conn: Connection, name: str) -> bool:
    return bool(query(conn, "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                      (name,)))  # fmt: skip


def tables(conn: Connection, schema: str) -> list[str]:
    rows = query(
        conn,
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
        "AND TABLE_TYPE <> 'VIEW' AND TABLE_NAME <> %s ORDER BY TABLE_NAME",
        (schema, JOURNAL),
    )
    return [str(r[0]) for r in rows]


def create_journal(conn: Connection, schema: str) -> None:
    query(conn, f"CREATE TABLE {ident(schema)}.{JOURNAL} (id INT PRIMARY KEY, "
                "entry LONGTEXT NOT NULL) ENGINE=InnoDB")  # fmt: skip


def write_journal(conn: Connection, schema: str, plan: Plan) -> None:
    query(conn, f"REPLACE INTO {ident(schema)}.{JOURNAL} VALUES (1, %s)", (plan.dump(),))


def read_journal(conn: Connection, schema: str) -> Plan | None:
    """The journal in ``schema``; None when it has none (not ours, or just created)."""
    has = query(conn, "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                      "AND TABLE_NAME = %s", (schema, JOURNAL))  # fmt: skip
    if not has:
        return None
    rows = query(conn, f"SELECT entry FROM {ident(schema)}.{JOURNAL} WHERE id = 1")
    return Plan.load(rows[0][0]) if rows else Plan()


def swap_begun(conn: Connection, schema: str) -> bool:
    """Whether ``schema`` holds the journal of a swap that reached its rename."""
    plan = read_journal(conn, schema)
    return plan is not None and plan.begun


def drop_schema(conn: Connection, name: str) -> None:
    query(conn, f"DROP DATABASE IF EXISTS {ident(name)}")


# --- the swap ---------------------------------------------------------------------------


def prepare(
    conn: Connection,
    names: Names,
    database_options: str,
    new: list[Definition] | None = None,
    *,
    new_tables: list[str] | None = None,
    target_existed: bool | None = None,
    old_schema: str = "",
    aside: Callable[[str], tuple[str, str]] | None = None,
    staging: str = "",
) -> Plan:
    """Step 1 and 2's reading: what moves and what must be recreated; nothing in T changes.

    ``new``: the definitions of the new content when they are known already (a cached
    copy keeps them, its staging schema has none); else read from the staging schema.
    ``new_tables`` / ``target_existed``: known already (saves a query each).
    ``old_schema``: an existing schema of reel's (the undo copy, a trash) T's tables go to
    in the swap's own RENAME TABLE instead of ``O``; ``aside(table)`` says where a table
    goes that must leave it first, in that same statement (schema and name). Left unused
    ("") when T holds a table named like reel's journal or marker (the caller then goes
    the long way, through ``O``).
    ``staging``: the schema holding the new tables and the journal, if not ``S``.
    """
    plan = Plan(state="prepared", database_options=database_options, staging=staging)
    if new is not None:
        plan.new = list(new)
        plan.new_tables = (tables(conn, plan.holder(names)) if new_tables is None
                           else list(new_tables))  # fmt: skip
    else:
        plan.new_tables = tables(conn, names.staging)
        plan.new = definitions(conn, names.staging, names.target, names.staging)
        for definition in plan.new:
            if definition.kind == "trigger":
                query(conn, f"DROP TRIGGER {ident(names.staging)}.{ident(definition.name)}")
        query(conn, "USE information_schema")
        write_journal(conn, names.staging, plan)
    plan.target_existed = (schema_exists(conn, names.target) if target_existed is None
                           else target_existed)  # fmt: skip
    if plan.target_existed:
        old, plan.old_tables, held = target_objects(conn, names.target, old_schema)
        plan.old_definitions = old
        plan.old_triggers = [d for d in old if d.kind == "trigger"]
        plan.old_views_in_the_way = [d for d in old
                                     if d.kind == "view" and d.name in plan.new_tables]  # fmt: skip
        plan.old_views = [d.name for d in old if d.kind == "view"]
        plan.old_routines = [(d.kind, d.name) for d in old if d.kind in ("procedure", "function",
                                                                        "event")]  # fmt: skip
        if old_schema and not {JOURNAL, MARKER} & set(plan.old_tables):
            plan.old_schema = old_schema
            if held:
                assert aside is not None, "tables to set aside and nowhere to put them"
                plan.set_aside = [[old_schema, table, *aside(table)] for table in held]
    return plan


def target_objects(
    conn: Connection, target: str, other: str = ""
) -> tuple[list[Definition], list[str], list[str]]:
    """T's triggers, routines, views and events (as :func:`definitions` reads them), T's
    tables and ``other``'s data tables.

    Two cheap queries when T has no trigger, routine, view or event (the usual case: reading
    them costs five information_schema scans); the full read only when it has some.
    """
    rows = query(
        conn,
        "SELECT 'routine', ROUTINE_NAME, ROUTINE_SCHEMA FROM information_schema.ROUTINES "
        "WHERE ROUTINE_SCHEMA = %s UNION ALL SELECT 'event', EVENT_NAME, EVENT_SCHEMA "
        "FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s UNION ALL SELECT TABLE_TYPE, "
        "TABLE_NAME, TABLE_SCHEMA FROM information_schema.TABLES WHERE TABLE_SCHEMA IN (%s, %s)",
        (target, target, target, other or target),
    )
    has_objects = any(kind in ("routine", "event", "VIEW") and schema == target
                      for kind, _, schema in rows)  # fmt: skip
    # SHOW TRIGGERS reads the schema's trigger files only; information_schema.TRIGGERS
    # opens every table of the schema (three times slower on a 2-core VM)
    has_objects = has_objects or bool(query(conn, f"SHOW TRIGGERS FROM {ident(target)}"))
    old = definitions(conn, target, target, target) if has_objects else []
    if has_objects:
        query(conn, "USE information_schema")
    target_tables = sorted(str(name) for kind, name, schema in rows
                           if schema == target and kind not in ("routine", "event", "VIEW")
                           and name != JOURNAL)  # fmt: skip
    other_tables = sorted(str(name) for kind, name, schema in rows
                          if other and schema == other and kind not in ("routine", "event", "VIEW")
                          and name not in (JOURNAL, MARKER))  # fmt: skip
    return old, target_tables, other_tables


def swap(
    conn: Connection, names: Names, plan: Plan, ctx: RewindContext, *, keep_old: bool = False
) -> None:
    """Steps 2 to 5 (see the module doc); RewindError with T unchanged if it cannot start.

    ``keep_old``: leave the replaced tables in ``O`` for the caller to set aside (the
    cache drops them in the background); the next run drops ``O`` if the caller cannot.
    """
    # entered before the journal says "swapping": a cancel that comes first finds only
    # the staging schema (the caller drops it), not a swap the next run has to finish
    with ctx.swap():
        holder = plan.holder(names)
        plan.state = "swapping"
        write_journal(conn, holder, plan)
        if not plan.old_schema:
            query(conn, f"CREATE DATABASE IF NOT EXISTS {ident(names.old)}")
            if not read_journal(conn, names.old):
                create_journal(conn, names.old)
            write_journal(conn, names.old, Plan(state="old"))
        if not plan.target_existed:
            query(conn, f"CREATE DATABASE IF NOT EXISTS {ident(names.target)}")
        started = time.monotonic()
        try:
            for trigger in plan.old_triggers:
                query(conn, f"DROP TRIGGER IF EXISTS {ident(names.target)}.{ident(trigger.name)}")
            for view in plan.old_views_in_the_way:
                query(conn, f"DROP VIEW IF EXISTS {ident(names.target)}.{ident(view.name)}")
            aside = plan.old_schema or names.old
            moves = [f"{ident(schema)}.{ident(t)} TO {ident(to)}.{ident(new_name)}"
                     for schema, t, to, new_name in plan.set_aside]  # fmt: skip
            moves += [f"{ident(names.target)}.{ident(t)} TO {ident(aside)}.{ident(t)}"
                      for t in plan.old_tables]  # fmt: skip
            moves += [f"{ident(holder)}.{ident(t)} TO {ident(names.target)}.{ident(t)}"
                      for t in plan.new_tables]  # fmt: skip
            if moves:
                query(conn, "RENAME TABLE " + ", ".join(moves))
        except pymysql.Error as exc:
            if rollback(conn, names, plan, ctx):
                cleanup(conn, names, ctx, plan=plan)  # else the journal stays for the next run
            code = "busy" if _is_lock_timeout(exc) else "failed"
            raise RewindError(f"swap into {names.target} failed, nothing was changed: "
                              f"{message(exc)}{_blockers(conn)}", code=code) from None  # fmt: skip
        renamed = time.monotonic()
        plan.state = "renamed"
        write_journal(conn, holder, plan)
        try:
            finish(conn, names, plan)
        except pymysql.Error as exc:
            raise RewindError(
                f"the new tables are in {names.target}, but recreating its triggers, routines "
                f"and views failed ({message(exc)}); the next rewind finishes or redoes it"
            ) from None
        ctx.log(f"swapped {len(plan.new_tables)} tables into {names.target} in one RENAME TABLE "
                f"({(renamed - started) * 1000:.0f} ms), then {len(plan.new)} triggers, routines,"
                f" views and events ({(time.monotonic() - renamed) * 1000:.0f} ms)")  # fmt: skip
    cleanup(conn, names, ctx, keep_old=keep_old or bool(plan.old_schema), plan=plan)


def finish(conn: Connection, names: Names, plan: Plan) -> None:
    """Step 4: objects of the new content in T; may run again after a kill."""
    query(conn, f"USE {ident(names.target)}")
    if plan.database_options:
        query(conn, f"ALTER DATABASE {ident(names.target)} {plan.database_options}")
    order = {"trigger": 0, "procedure": 1, "function": 1, "view": 2, "event": 3}
    new_routines = {(d.kind, d.name) for d in plan.new}
    for kind, name in plan.old_routines:
        if (kind, name) not in new_routines:
            query(conn, f"DROP {kind.upper()} IF EXISTS {ident(name)}")
    views = [d for d in plan.new if d.kind == "view"]
    for definition in sorted(plan.new, key=lambda d: order[d.kind]):
        if definition.kind != "view":
            create(conn, definition)
    create_views(conn, views)
    new_views = {d.name for d in views}
    for name in plan.old_views:
        if name not in new_views and name not in plan.new_tables:
            query(conn, f"DROP VIEW IF EXISTS {ident(name)}")
    query(conn, "USE information_schema")
    if plan.old_schema and plan.undo_entry:  # the undo copy now describes what it holds
        write_marker(conn, plan.old_schema, plan.undo_entry)
    plan.state = "done"
    write_journal(conn, plan.holder(names), plan)


def rollback(conn: Connection, names: Names, plan: Plan, ctx: RewindContext) -> bool:
    """Before the rename happened: T's triggers and views back as they were; False if not."""
    try:
        query(conn, f"USE {ident(names.target)}")
        for definition in plan.old_triggers + plan.old_views_in_the_way:
            create(conn, definition)
        query(conn, "USE information_schema")
    except pymysql.Error as exc:
        ctx.log(f"could not restore the triggers of {names.target} ({message(exc)}); the "
                "next rewind will", "error")  # fmt: skip
        return False
    return True


def cleanup(
    conn: Connection,
    names: Names,
    ctx: RewindContext,
    *,
    keep_old: bool = False,
    plan: Plan | None = None,
) -> None:
    """Drop ``S`` (and ``O`` unless ``keep_old``); a spare that held the new tables
    (and its aside schema) become trash instead, dropped in the background (no DROP
    DATABASE while the application waits)."""
    if plan is not None and plan.staging:
        for schema in plan.retire:
            retire(conn, schema, names.target)
        if plan.old_schema or keep_old:
            return
    drops = () if plan is not None and plan.staging else (names.staging,)
    for name in drops if keep_old else (names.old, *drops):
        try:
            drop_schema(conn, name)
        except pymysql.Error as exc:
            ctx.log(f"could not drop {name} ({message(exc)}); the next rewind will", "warning")


def write_marker(conn: Connection, schema: str, entry: dict[str, object]) -> None:
    """Replace the marker of a schema of reel's: one statement, so it is all or nothing."""
    query(conn, f"REPLACE INTO {ident(schema)}.{MARKER} VALUES (1, %s)", (json.dumps(entry),))


def retire(conn: Connection, schema: str, target: str) -> None:
    """A schema a swap filled or emptied (a spare, an aside schema): now trash, which the
    background drops; one already trash may be gone (a run killed after retiring it)."""
    try:
        write_marker(conn, schema, {"kind": "trash", "target": target, "time": time.time()})
    except pymysql.Error as exc:
        if exc.args[:1] not in ((1049,), (1146,)):  # no such database / table
            raise


def recover(
    conn: Connection,
    names: Names,
    ctx: RewindContext,
    present: Collection[str] | None = None,
    swaps: Collection[str] | None = None,
) -> None:
    """Finish or undo what an interrupted run left; refuse look-alikes that aren't ours.

    ``present``: the schemas that exist, when the caller has listed them already.
    ``swaps``: spares whose marker says a swap was taking them (kind "swap"), when the
    caller has listed the marked schemas already; else they are listed here."""
    if swaps is None:
        from reel_tui.engines import mysql_cache  # it builds on this module

        swaps = [m.name for m in mysql_cache.marked(conn, names.target, sizes=False)
                 if m.kind == mysql_cache.SWAP]  # fmt: skip
    for name in swaps:
        _recover_spare_swap(conn, names, name, ctx)
    staging = old = None
    for name in (names.staging, names.old):
        if not (schema_exists(conn, name) if present is None else name in present):
            continue
        journal = read_journal(conn, name)
        if journal is None and tables(conn, name):
            raise RewindError(
                f"database {name} exists but was not made by reel-tui: rename or drop it; "
                f"reel-tui uses that name while rewinding {names.target}"
            )
        if name == names.staging:
            staging = journal or Plan()
        else:
            old = journal or Plan()
    if staging is None and old is None:
        return
    _end_sessions_in(conn, names.staging, ctx)
    if staging is not None and staging.begun:
        _finish_or_roll_back(conn, names, staging, ctx)
    cleanup(conn, names, ctx)
    ctx.log(f"removed {names.staging} / {names.old} left by an interrupted run", "warning")


def _recover_spare_swap(conn: Connection, names: Names, schema: str, ctx: RewindContext) -> None:
    """A spare a killed run was swapping in from where it is: finish or roll back as for
    ``S``, then it is trash."""
    plan = read_journal(conn, schema)
    if plan is not None and plan.begun:
        plan.staging = schema
        _finish_or_roll_back(conn, names, plan, ctx)
    for name in dict.fromkeys([schema, *(plan.retire if plan is not None else [])]):
        retire(conn, name, names.target)
    ctx.log(f"{schema}, left by an interrupted run, is dropped in the background", "warning")


def _finish_or_roll_back(conn: Connection, names: Names, plan: Plan, ctx: RewindContext) -> None:
    """An interrupted swap: finished if its rename happened (T holds the new tables: none
    is left where they came from), else rolled back."""
    holder = plan.holder(names)
    moved = not any(t in tables(conn, holder) for t in plan.new_tables)
    if plan.state == "renamed" or moved:
        finish(conn, names, plan)
        ctx.log(f"completed an interrupted swap of {names.target}", "warning")
    else:
        rollback(conn, names, plan, ctx)
        ctx.log(f"rolled back an interrupted swap: {names.target} is as it was", "warning")


def _end_sessions_in(conn: Connection, schema: str, ctx: RewindContext) -> None:
    """A killed run's loading session may still run its statement on the server: end it."""
    sessions = query(conn, "SELECT ID FROM information_schema.PROCESSLIST "
                           "WHERE DB = %s AND ID <> CONNECTION_ID()", (schema,))  # fmt: skip
    for (session,) in sessions:
        try:
            query(conn, f"KILL {int(session)}")
            ctx.log(f"ended server session {session}, left loading {schema} by a killed run",
                    "warning")  # fmt: skip
        except pymysql.Error:
            pass  # it ended meanwhile


def _is_lock_timeout(exc: pymysql.Error) -> bool:
    return bool(exc.args) and exc.args[0] in (1205, 1213)


def _blockers(conn: Connection) -> str:
    """Who holds the target's tables: sessions with an open transaction, for the message."""
    try:
        rows = query(
            conn,
            """SELECT p.ID, p.USER, p.HOST, p.DB, p.COMMAND, p.TIME
            FROM information_schema.INNODB_TRX t
            JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id
            WHERE p.ID <> CONNECTION_ID()""",
        )
    except pymysql.Error:
        return ""
    if not rows:
        return ""
    held = "; ".join(f"session {r[0]} of {r[1]} from {r[2]} (db {r[3]}, {r[4]} {r[5]} s)"
                     for r in rows[:5])  # fmt: skip
    return f" (open transactions: {held})"


def lock_name(target: str) -> str:
    """The ``GET_LOCK`` name every rewind of ``target`` takes (at most 64 characters)."""
    name = "reel-tui:" + target
    if len(name) > 64:
        name = "reel-tui:" + hashlib.sha256(target.encode()).hexdigest()[:40]
    return name


def get_lock(conn: Connection, target: str, ctx: RewindContext) -> None:
    """Take the server-side lock for ``target``, waiting (cancellably) while another holds it.

    The server releases it when this connection ends, also when reel dies.
    """
    name = lock_name(target)
    if query(conn, "SELECT GET_LOCK(%s, 0)", (name,))[0][0] == 1:
        return
    holder = query(conn, "SELECT IS_USED_LOCK(%s)", (name,))[0][0]
    ctx.progress(phase="waiting")
    ctx.log(f"waiting: another reel-tui is rewinding {target} on this server "
            f"(server session {holder})")  # fmt: skip
    while True:
        ctx.check_cancelled()
        if query(conn, "SELECT GET_LOCK(%s, 0.2)", (name,))[0][0] == 1:
            ctx.log("the other rewind is over; going on")
            return
