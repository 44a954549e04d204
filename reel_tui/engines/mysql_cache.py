"""Cached copies for MySQL / MariaDB: a shadow schema per cached dump, a ready spare.

MySQL cannot rename or clone a schema, but one ``RENAME TABLE`` moves any set
of tables between schemas atomically. Per cached dump (``K`` the short cache
key, ``T`` the target):

* ``T__reel_cache_K``, the *template*: the dump as loaded, its tables only.
  It is never live: the triggers, views, routines and events of the dump are
  kept as definitions (``SHOW CREATE``, as the swap's journal keeps them) in
  its marker, and created in ``T`` by the swap, as after a cold load.
* ``T__reel_spare_K``, the *spare*: a copy of the template's tables made in the
  background (in ``T__reel_prep_K`` first, moved in when complete), with the
  swap's journal table ready in it, and ``T__reel_spare_K_aside``, its empty
  *aside* schema. A warm rewind swaps the spare in from where it is: its
  marker says "swap" (the next run's recovery finds the journal by it; nothing
  else drops such a schema), its journal table is the swap's, and the swap's
  one ``RENAME TABLE`` sets the replaced tables aside into the undo copy, whose
  previous tables go to the aside schema (not into the spare: its own tables'
  foreign key names are still there). Both are trash afterwards. A spare
  without journal or aside (an earlier version's) is moved into the staging
  schema first, as before.
* ``T__reel_load_K``: a *request* left by a cold rewind: the background loads
  the same dump again there (off the critical path: copying the staged tables
  before the swap would cost the cold rewind about half a load) and moves the
  tables into the template.
* ``T__reel_trash_<n>``: the tables a swap replaced, dropped in the background.
* ``T__reel_undo``, the *undo copy*: the tables the last swap replaced (moved
  there instead of the trash) with the replaced content's objects as
  definitions in its marker. An undo moves its tables into the staging schema
  (one RENAME TABLE) and back if the undo fails; the state it replaces becomes
  the next undo copy. The previous undo copy goes to the trash.
* ``T__reel_snap_<random>``, a *snapshot*: a copy of the target's tables, its
  objects kept as definitions in its marker as for a template, the user's name
  in the marker. Copied under ``LOCK TABLES … READ`` (the application's writes
  wait meanwhile), so the copy is one state of all tables. Rewinding to it
  copies its tables into the staging schema. Never evicted.

Each schema says what it is in a small marker table, :data:`MARKER` (one JSON
row: kind, target, key, …): portable to MySQL 8, which has no schema
comments. Schemas are found by their markers, never by their names alone, so
a user's schema named like ours is never touched. A marker is written last,
after the tables are in place, so a schema whose marker does not say it is
complete is a leftover of a killed worker, dropped by the next one.

Who may do what: a rewind holds the target's ``GET_LOCK``; it may copy from
any template and takes a spare only while holding it. The background holds
the *maintenance* lock (one worker per target) and takes the target's lock
only while it drops templates or spares: it never drops a copy a rewind is
using.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import pymysql

from reel_tui.cache import UNDO_KEY, CachedCopy, copies_of, short
from reel_tui.engines.base import RewindError
from reel_tui.engines.mysql_conn import Connection, error_code, ident
from reel_tui.engines.mysql_objects import Definition, query
from reel_tui.engines.mysql_swap import (
    JOURNAL,
    MARKER,
    derived_name,
    drop_schema,
    lock_name,
    write_marker,
)

COMPLETE = ("cache", "spare", "aside", "request", "trash", "snapshot", "undo")
"""Marker kinds of schemas that are what they say; others ("building", "prep", "taken",
"taking") are unfinished work of a worker or rewind that was killed."""
SWAP = "swap"
"""A spare a rewind swaps in from where it is (its journal says how far it got): only a
rewind's recovery (holding the target's lock) may finish it and make it trash; nothing
drops it, so a killed swap is always finished or rolled back."""
IN_USE = ("taken", "taking")
"""Kinds a running rewind may still be using (a spare or undo copy it empties, a trash it
fills in its swap): the background drops them only while holding the target's lock."""


class NotOurs(RewindError):
    """A schema has the name reel-tui would use, but reel-tui did not make it."""


@dataclass(frozen=True)
class Template:
    """A template schema as found on the server."""

    name: str
    key: str
    source: str
    created: float
    used: float
    bytes: int
    tables: list[str]
    definitions: list[Definition] = field(default_factory=list)
    database_options: str = ""


@dataclass(frozen=True)
class Marked:
    """A schema with reel's marker: its name, marker entry and size in bytes."""

    name: str
    entry: dict[str, object]
    bytes: int

    @property
    def kind(self) -> str:
        return str(self.entry.get("kind"))

    @property
    def key(self) -> str:
        return str(self.entry.get("key"))


def cache_name(target: str, key: str) -> str:
    return derived_name(target, f"cache_{short(key)}")


def spare_name(target: str, key: str) -> str:
    return derived_name(target, f"spare_{short(key)}")


def aside_name(target: str, key: str) -> str:
    """The spare's empty companion: where its swap sets the replaced tables aside."""
    return derived_name(target, f"spare_{short(key)}_aside")


def prep_name(target: str, key: str) -> str:
    return derived_name(target, f"prep_{short(key)}")


def load_name(target: str, key: str) -> str:
    return derived_name(target, f"load_{short(key)}")


# --- markers ----------------------------------------------------------------------------


def mark(conn: Connection, schema: str, *, exists: bool = False, **entry: object) -> None:
    """Write (or replace) ``schema``'s marker: one statement, so it is all or nothing.

    ``exists``: the marker table is there already (saves a round trip on a warm rewind).
    """
    if not exists:
        query(
            conn,
            f"CREATE TABLE IF NOT EXISTS {ident(schema)}.{MARKER} (id INT PRIMARY KEY, "
            "entry LONGTEXT NOT NULL) ENGINE=InnoDB",
        )
    write_marker(conn, schema, entry)


def marked(conn: Connection, target: str, *, sizes: bool = True) -> list[Marked]:
    """The schemas whose marker names ``target``.

    Three queries however many schemas there are: the schemas, every marker in one
    UNION, every size in one GROUP BY (``sizes=False``: skipped, bytes are 0; a rewind
    does not need them). Should a schema go meanwhile, its marker is read alone."""
    schemas = [str(row[0]) for row in query(
        conn, "SELECT TABLE_SCHEMA FROM information_schema.TABLES WHERE TABLE_NAME = %s", (MARKER,)
    )]  # fmt: skip
    if not schemas:
        return []
    try:
        entries = dict(query(conn, " UNION ALL ".join(
            f"SELECT %s, entry FROM {_escaped(ident(schema))}.{MARKER} WHERE id = 1"
            for schema in schemas
        ), schemas))  # fmt: skip
    except pymysql.Error:
        return [m for m in map(lambda s: read_marker(conn, s), schemas)
                if m is not None and m.entry.get("target") == target]  # fmt: skip
    mine = {}
    for schema, text in entries.items():
        with contextlib.suppress(ValueError):
            entry = json.loads(text)
            if isinstance(entry, dict) and entry.get("target") == target:
                mine[str(schema)] = entry
    if not mine or not sizes:
        return [Marked(name, entry, 0) for name, entry in mine.items()]
    found_sizes = dict(query(
        conn,
        "SELECT TABLE_SCHEMA, COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) "
        f"FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({', '.join(['%s'] * len(mine))}) "
        "GROUP BY TABLE_SCHEMA",
        tuple(mine),
    ))  # fmt: skip
    return [Marked(name, entry, int(found_sizes.get(name, 0))) for name, entry in mine.items()]


def _escaped(sql: str) -> str:
    """``sql`` for a query with parameters: pymysql formats it with ``%``."""
    return sql.replace("%", "%%")


def read_marker(conn: Connection, schema: str) -> Marked | None:
    """``schema``'s marker; None when it has none (not ours, gone, or just created)."""
    try:
        rows = query(conn, f"SELECT entry FROM {ident(schema)}.{MARKER} WHERE id = 1")
        entry = json.loads(rows[0][0]) if rows else None
    except (pymysql.Error, ValueError):
        return None
    return Marked(schema, entry, schema_bytes(conn, schema)) if isinstance(entry, dict) else None


def schema_bytes(conn: Connection, schema: str) -> int:
    rows = query(
        conn,
        "SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) "
        "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
        (schema,),
    )
    return int(rows[0][0])


def data_tables(conn: Connection, schema: str) -> list[str]:
    """The base tables of ``schema``, without reel's journal and marker."""
    rows = query(
        conn,
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
        "AND TABLE_TYPE <> 'VIEW' AND TABLE_NAME NOT IN (%s, %s) ORDER BY TABLE_NAME",
        (schema, JOURNAL, MARKER),
    )
    return [str(r[0]) for r in rows]


# --- what is cached ---------------------------------------------------------------------


def templates(conn: Connection, target: str, found: list[Marked] | None = None) -> list[Template]:
    """The target's cached copies, most recently used first (of ``found``, if listed)."""
    found_templates = [
        _template(schema)
        for schema in (marked(conn, target) if found is None else found)
        if schema.kind == "cache" and schema.name == cache_name(target, schema.key)
    ]
    return sorted(found_templates, key=lambda t: t.used, reverse=True)


def snapshots(conn: Connection, target: str, found: list[Marked] | None = None) -> list[Template]:
    """The target's snapshots and undo copy (shaped as templates: tables and definitions)."""
    return [
        _template(schema)
        for schema in (marked(conn, target) if found is None else found)
        if schema.kind == "snapshot" or (schema.kind == "undo" and schema.name == undo_name(target))
    ]


def undo_name(target: str) -> str:
    return derived_name(target, "undo")


def keep_undo(
    conn: Connection, target: str, old: str, kept: list[Definition], what: str
) -> str | None:
    """Make the tables a swap replaced (in ``old``) the undo copy, with the replaced
    content's objects as definitions; the previous copy goes to the trash (its name, or
    None). ``old`` is dropped.

    Raises:
        NotOurs: a schema named like the undo copy that reel-tui did not make.
    """
    name = undo_name(target)
    trash = None
    tables = data_tables(conn, old)
    options = schema_options(conn, name, old)
    reuse = name in options
    if reuse:
        previous = read_marker(conn, name)
        if previous is None or previous.entry.get("target") != target:
            raise NotOurs(f"database {name} exists but was not made by reel-tui; rename or "
                          "drop it to let reel-tui keep the undo copy under that name")  # fmt: skip
        if options[name] != options.get(old):  # another character set: a new schema
            trash = trash_tables(conn, target, name)
            reuse = False
    if reuse:
        # The undo schema stays: one RENAME TABLE takes the previous copy's tables to the
        # trash and the replaced ones in (pairs run in order), a third of the DDL the
        # application waits for otherwise.
        moves = [(old, name, t) for t in tables]
        previous_tables = data_tables(conn, name)
        if previous_tables:
            trash = new_trash(conn, target)
            moves = [(name, trash, t) for t in previous_tables] + moves
        mark(conn, name, exists=True, kind="building", target=target, key=UNDO_KEY)
        rename_tables(conn, moves)
    else:
        create_schema(conn, name, old)
        mark(conn, name, kind="building", target=target, key=UNDO_KEY)
        move_tables(conn, old, name, tables)
    drop_schema(conn, old)
    now = time.time()
    mark(conn, name, exists=True, kind="undo", target=target, key=UNDO_KEY, source=what,
         created=now, used=now, tables=tables, definitions=[asdict(d) for d in kept])  # fmt: skip
    return trash


def schema_options(conn: Connection, *schemas: str) -> dict[str, tuple[str, str]]:
    """Character set and collation of those of ``schemas`` that exist."""
    rows = query(
        conn,
        "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM "
        f"information_schema.SCHEMATA WHERE SCHEMA_NAME IN ({', '.join(['%s'] * len(schemas))})",
        schemas,
    )
    return {str(name): (str(charset), str(collation)) for name, charset, collation in rows}


def take_undo(conn: Connection, undo: Template, staging: str) -> None:
    """Move the undo copy's tables into ``staging`` (its marker says "taken" first: a run
    killed meanwhile leaves a schema the background drops)."""
    marker = read_marker(conn, undo.name)
    assert marker is not None
    mark(conn, undo.name, exists=True, **{**marker.entry, "kind": "taken"})
    move_tables(conn, undo.name, staging, undo.tables)


def give_back(conn: Connection, undo: Template, staging: str) -> None:
    """An undo that did not finish: the tables go back to the undo copy."""
    move_tables(conn, staging, undo.name, [t for t in undo.tables
                                           if t in data_tables(conn, staging)])  # fmt: skip
    marker = read_marker(conn, undo.name)
    assert marker is not None
    mark(conn, undo.name, exists=True, **{**marker.entry, "kind": "undo"})


def _template(schema: Marked) -> Template:
    e = schema.entry
    return Template(
        schema.name,
        schema.key,
        str(e.get("source", "?")),
        float(e.get("created", 0)),  # type: ignore[arg-type]
        float(e.get("used", 0)),  # type: ignore[arg-type]
        schema.bytes,
        [str(t) for t in e.get("tables", [])],  # type: ignore[attr-defined]
        [Definition(**d) for d in e.get("definitions", [])],  # type: ignore[attr-defined]
        str(e.get("database_options", "")),
    )


def snapshot_schema(target: str) -> str:
    return derived_name(target, f"snap_{os.urandom(6).hex()}")


def spares(
    conn: Connection, target: str, found: list[Marked] | None = None
) -> dict[str, tuple[str, int]]:
    """Ready spares by key: (schema name, bytes)."""
    return {
        s.key: (s.name, s.bytes)
        for s in (marked(conn, target) if found is None else found)
        if s.kind == "spare" and s.name == spare_name(target, s.key)
    }


def copies(conn: Connection, target: str, found: list[Marked] | None = None) -> list[CachedCopy]:
    """The target's cached copies as the cache module describes them (spare bytes
    included), and its snapshots. ``found``: the target's marked schemas, when listed
    already (with their sizes)."""
    if found is None:
        found = marked(conn, target)
    return copies_of(templates(conn, target, found), spares(conn, target, found)) + copies_of(
        snapshots(conn, target, found), {}
    )


def touch(conn: Connection, template: Template, target: str, entry: dict | None = None) -> None:
    """Note that the template was used now: the least recently used are evicted first.

    ``entry``: its marker as read under the target's lock (saves reading it again)."""
    if entry is None:
        rows = query(conn, f"SELECT entry FROM {ident(template.name)}.{MARKER} WHERE id = 1")
        entry = json.loads(rows[0][0])
    mark(conn, template.name, exists=True, **{**entry, "used": time.time()})


def drop_ours(conn: Connection, name: str, target: str) -> bool:
    """Drop schema ``name`` if reel-tui made it for ``target`` (its marker says so, or it is
    empty: made by a run killed before its marker); False if there is no such schema.

    Raises:
        NotOurs: it exists and is not reel-tui's: a user's schema is never dropped.
    """
    if not query(conn, "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                 (name,)):  # fmt: skip
        return False
    marker = read_marker(conn, name)
    if marker is not None and marker.kind == SWAP and marker.entry.get("target") == target:
        return False  # a swap's journal: the next rewind's recovery finishes it first
    if marker is None:
        ours = not _holds_anything(conn, name)
    else:
        ours = marker.entry.get("target") == target
    if not ours:
        raise NotOurs(f"database {name} exists but was not made by reel-tui; rename or drop "
                      "it to let reel-tui keep a cached copy under that name")  # fmt: skip
    drop_schema(conn, name)
    return True


def _holds_anything(conn: Connection, schema: str) -> bool:
    for table, column in (("TABLES", "TABLE_SCHEMA"), ("ROUTINES", "ROUTINE_SCHEMA"),
                          ("EVENTS", "EVENT_SCHEMA")):  # fmt: skip
        found = query(conn, f"SELECT 1 FROM information_schema.{table} WHERE {column} = %s "
                            "LIMIT 1", (schema,))  # fmt: skip
        if found:
            return True
    return False


# --- copying tables ---------------------------------------------------------------------


def copy_tables(
    conn: Connection,
    source: str,
    dest: str,
    names: list[str],
    check: Callable[[], None] = lambda: None,
    *,
    one_state: bool = False,
) -> None:
    """Copy tables ``names`` of ``source`` into the existing schema ``dest``: definitions as
    SHOW CREATE gives them (foreign keys included, which CREATE TABLE … LIKE drops), rows
    with INSERT … SELECT of the stored columns. ``check`` runs between statements.

    ``one_state``: ``source`` is live (a snapshot of the target): the rows are copied under
    ``LOCK TABLES source.… READ``, so all tables come from one state (writers wait until
    the copy is done, readers do not)."""
    saved = query(
        conn, "SELECT @@SESSION.foreign_key_checks, @@SESSION.unique_checks, @@SESSION.sql_mode"
    )[0]
    query(conn, "SET SESSION foreign_key_checks = 0, unique_checks = 0, "
                "sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'")  # fmt: skip
    locking = one_state and bool(names)
    try:
        query(conn, f"USE {ident(dest)}")
        for table in names:
            check()
            create = query(conn, f"SHOW CREATE TABLE {ident(source)}.{ident(table)}")[0][1]
            query(conn, create)
        columns = {table: ", ".join(ident(c) for c in _stored_columns(conn, source, table))
                   for table in names}  # fmt: skip
        if locking:
            query(conn, "LOCK TABLES " + ", ".join(
                [f"{ident(source)}.{ident(t)} READ" for t in names]
                + [f"{ident(dest)}.{ident(t)} WRITE" for t in names]))  # fmt: skip
        try:
            for table in names:
                check()
                listed = columns[table]
                query(conn, f"INSERT INTO {ident(dest)}.{ident(table)} ({listed}) "
                            f"SELECT {listed} FROM {ident(source)}.{ident(table)}")  # fmt: skip
        finally:
            if locking:
                query(conn, "UNLOCK TABLES")
    finally:
        query(conn, "USE information_schema")
        query(conn, "SET SESSION foreign_key_checks = %s, unique_checks = %s, sql_mode = %s", saved)


def _stored_columns(conn: Connection, schema: str, table: str) -> list[str]:
    """Columns that take values (generated ones are computed again), invisible ones too.

    Generated columns are told by their expression: MySQL 8 also says "DEFAULT_GENERATED"
    in EXTRA for a column whose default is an expression, whose values must be copied.
    """
    rows = query(
        conn,
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
        "AND TABLE_NAME = %s AND COALESCE(GENERATION_EXPRESSION, '') = '' "
        "ORDER BY ORDINAL_POSITION",
        (schema, table),
    )
    return [str(r[0]) for r in rows]


def move_tables(conn: Connection, source: str, dest: str, names: list[str]) -> None:
    """One atomic RENAME TABLE of ``names`` from ``source`` to ``dest``."""
    rename_tables(conn, [(source, dest, t) for t in names])


def rename_tables(conn: Connection, moves: list[tuple[str, str, str]]) -> None:
    """One atomic RENAME TABLE of each ``(source schema, dest schema, table)``, in order."""
    if moves:
        query(conn, "RENAME TABLE " + ", ".join(
            f"{ident(source)}.{ident(t)} TO {ident(dest)}.{ident(t)}" for source, dest, t in moves
        ))  # fmt: skip


def create_schema(conn: Connection, name: str, like: str | None) -> None:
    """CREATE DATABASE ``name`` with the character set and collation of ``like``."""
    options = ""
    if like is not None:
        found = query(
            conn,
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM "
            "information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
            (like,),
        )
        if found:
            options = f" CHARACTER SET {found[0][0]} COLLATE {found[0][1]}"
    query(conn, f"CREATE DATABASE {ident(name)}{options}")


# --- the rewind's side ------------------------------------------------------------------


@dataclass(frozen=True)
class ReadySpare:
    """A complete spare found for a template: its schema, marker, whether it carries a
    journal table and its empty aside schema (made by this version: the spare is then
    swapped in from where it is, its journal table being the swap's)."""

    name: str
    entry: dict[str, object]
    tables: list[str]
    journaled: bool
    aside: str = ""
    """Its empty aside schema ("": none ready)."""


def ready_spare(
    conn: Connection, target: str, template: Template, found: list[Marked] | None = None
) -> ReadySpare | None:
    """The template's spare if it is complete; None if not (another run took it, or the
    background has not made it yet). ``found``: the target's marked schemas, listed
    under the target's lock (saves reading the marker again)."""
    name = spare_name(target, template.key)
    if found is None:
        spare = read_marker(conn, name)
    else:
        spare = next((m for m in found if m.name == name), None)
    if spare is None or (spare.kind, spare.key, spare.entry.get("target")) != (
        "spare",
        template.key,
        target,
    ):
        return None
    aside = aside_name(target, template.key)
    companion = None if found is None else next((m for m in found if m.name == aside), None)
    listed: dict[str, set[str]] = {name: set(), aside: set()}
    for schema, table in query(
        conn, "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE "
              "TABLE_SCHEMA IN (%s, %s) AND TABLE_TYPE <> 'VIEW'", (name, aside)):  # fmt: skip
        listed[str(schema)].add(str(table))
    held = listed[name]
    if sorted(held - {JOURNAL, MARKER}) != sorted(template.tables):
        return None
    ready = (companion is not None and companion.kind == "aside" and companion.key == template.key
             and listed[aside] == {MARKER})  # fmt: skip
    return ReadySpare(name, spare.entry, list(template.tables), JOURNAL in held,
                      aside if ready else "")  # fmt: skip


def claim_spare(conn: Connection, spare: ReadySpare) -> None:
    """The spare is swapped in from where it is: its marker says "swap" first (a killed
    run's next rewind finds its journal by it)."""
    mark(conn, spare.name, exists=True, **{**spare.entry, "kind": SWAP})


def take_spare(conn: Connection, spare: ReadySpare, staging: str) -> bool:
    """Move the spare's tables into ``staging`` in one RENAME TABLE (its journal table, if
    any, stays: ``staging`` has its own); False if that failed.

    The spare's marker says "taking" before its tables move: a run killed in between
    leaves a schema the background drops, never a spare without tables. The emptied
    schema stays (no DROP DATABASE while the application waits): the swap fills it with
    the tables it sets aside, and it is dropped in the background as a trash schema.
    """
    mark(conn, spare.name, exists=True, **{**spare.entry, "kind": "taking"})
    try:
        move_tables(conn, spare.name, staging, spare.tables)
    except pymysql.Error:
        return False
    return True


def request(conn: Connection, target: str, key: str, **entry: object) -> bool:
    """Ask the background to make the template for ``key``; False if already asked."""
    name = load_name(target, key)
    try:
        query(conn, f"CREATE DATABASE {ident(name)}")
    except pymysql.Error as exc:
        if error_code(exc) == 1007:  # exists: asked already, or being made
            return False
        raise
    mark(conn, name, kind="request", target=target, key=key, time=time.time(), **entry)
    return True


def trash_tables(conn: Connection, target: str, old: str) -> str | None:
    """Move the replaced tables from ``old`` to a trash schema the background drops; its
    name, or None when there was nothing to keep aside. ``old`` is dropped."""
    names = data_tables(conn, old)
    trash = None
    if names:
        trash = new_trash(conn, target)
        move_tables(conn, old, trash, names)
    drop_schema(conn, old)
    return trash


def new_trash(conn: Connection, target: str, kind: str = "trash") -> str:
    """A new, marked, empty trash schema for ``target``; its name.

    ``kind`` "taking": a swap is about to fill it; marked "trash" once it has."""
    trash = derived_name(target, f"trash_{time.time_ns() // 1000}")
    query(conn, f"CREATE DATABASE {ident(trash)}")
    mark(conn, trash, kind=kind, target=target, time=time.time())
    return trash


# --- locks ------------------------------------------------------------------------------


def _maintenance_lock_name(target: str) -> str:
    name = "reel-tui-maintain:" + target
    if len(name) > 64:
        name = "reel-tui-maintain:" + hashlib.sha256(target.encode()).hexdigest()[:40]
    return name


def try_target_lock(conn: Connection, target: str, wait: float = 0) -> bool:
    """Take the target's lock if it is free within ``wait`` seconds."""
    return query(conn, "SELECT GET_LOCK(%s, %s)", (lock_name(target), wait))[0][0] == 1


def release_target_lock(conn: Connection, target: str) -> None:
    query(conn, "SELECT RELEASE_LOCK(%s)", (lock_name(target),))


def maintenance_lock(conn: Connection, target: str) -> None:
    """One background worker per target at a time: the next waits for this one
    (the server releases the lock when the worker's connection ends)."""
    while query(conn, "SELECT GET_LOCK(%s, 60)", (_maintenance_lock_name(target),))[0][0] != 1:
        pass
