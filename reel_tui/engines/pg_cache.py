"""Cached copies for PostgreSQL: template databases, ready spares, deferred drops.

Per cached dump (``K`` the short cache key, ``T`` the target):

* ``T__reel_cache_K``, the *template*: a copy of the loaded staging database,
  made with ``CREATE DATABASE … TEMPLATE`` just before the swap. Closed to
  connections (a session on a template blocks cloning from it) and never
  changed. Its comment says what it is (``reel-tui cache: {json}``): target,
  key, source, when made and last used.
* ``T__reel_spare_K``, the *spare*: another clone of the template, made in the
  background after a rewind (``T__reel_prep_K`` while it is being made, so a
  spare under its own name is always complete). A warm rewind renames it to
  the staging name and swaps it in: two renames, whatever the size.
* ``T__reel_trash_<n>``: what a swap replaced, renamed aside so the rewind
  need not wait for ``DROP DATABASE``; the background drops it.
* ``T__reel_undo``, the *undo copy*: what the last swap replaced, kept (by a
  rename, instead of the trash) while the app keeps one (``undo``); an undo
  renames it back in as the staging database, so the state it replaces
  becomes the next undo copy. One per target; the previous one goes to the trash.
* ``T__reel_snap_<random>``, a *snapshot*: a copy of the target made with
  ``CREATE DATABASE … TEMPLATE``, closed to connections; its name (the user's)
  is in its comment, so a rename rewrites only the comment. Rewinding to it
  clones it as the staging database. Never evicted.

Copies are found by their comments, not their names, so a database a user
named like ours is never taken for one. Who may do what:

* a rewind holds the target's advisory lock (:func:`pg_swap.advisory_lock`);
  it may clone from any template, and renames a spare only while holding it;
* the background work holds the *maintenance* lock for the target (one
  worker at a time) and, only while it drops templates or spares, tries the
  target's lock too: it never drops a copy a rewind is using; a spare is
  made without the target's lock, under its ``prep`` name.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2

from reel_tui.cache import UNDO_KEY, CachedCopy, copies_of, short, snapshot_key
from reel_tui.engines.pg_conn import Connection, ident, literal
from reel_tui.engines.pg_database import DatabaseInfo
from reel_tui.engines.pg_swap import LOCK_CLASS, derived_name, drop

CACHE_PREFIX = "reel-tui cache: "
SPARE_PREFIX = "reel-tui spare: "
TRASH_PREFIX = "reel-tui trash: "
PREP_PREFIX = "reel-tui prep: "
SNAPSHOT_PREFIX = "reel-tui snapshot: "
UNDO_PREFIX = "reel-tui undo: "
OURS = (CACHE_PREFIX, SPARE_PREFIX, TRASH_PREFIX, PREP_PREFIX, SNAPSHOT_PREFIX, UNDO_PREFIX)


class NotOurs(Exception):
    """A database has the name reel-tui would use, but reel-tui did not make it."""


MAINTENANCE_LOCK_CLASS = LOCK_CLASS + 1
FILE_COPY_FROM = 64 * 1024 * 1024
"""From this size on, clones use STRATEGY FILE_COPY (PostgreSQL 15+): WAL_LOG writes every
page to the WAL and is slower for big databases; FILE_COPY costs two checkpoints,
which only pays off above some tens of MB."""


@dataclass(frozen=True)
class Template:
    """A template database as found on the server."""

    name: str
    key: str
    source: str
    created: float
    used: float
    bytes: int
    encoding: str
    collate: str
    ctype: str


def cache_name(target: str, key: str) -> str:
    return derived_name(target, f"cache_{short(key)}")


def spare_name(target: str, key: str) -> str:
    return derived_name(target, f"spare_{short(key)}")


def prep_name(target: str, key: str) -> str:
    return derived_name(target, f"prep_{short(key)}")


def _comment(prefix: str, **entry: object) -> str:
    return prefix + json.dumps(entry)


@dataclass(frozen=True)
class _Marked:
    """A database whose comment says it is one of ours, for one target."""

    prefix: str
    name: str
    entry: dict[str, object]
    bytes: int
    encoding: str
    collate: str
    ctype: str


def _listing(conn: Connection, target: str, *, sizes: bool = True) -> list[_Marked]:
    """Every database of ours that names ``target``, in one query. Without ``sizes``
    (their bytes are then 0) it skips ``pg_database_size``, which stats every file of
    every copy: most of the query's time."""
    size = "pg_database_size(oid)" if sizes else "0"
    with conn.cursor() as cur:
        cur.execute(
            f"""SELECT datname, comment, {size},
                      pg_encoding_to_char(encoding), datcollate, datctype
               FROM (SELECT oid, datname, encoding, datcollate, datctype,
                            shobj_description(oid, 'pg_database') AS comment
                     FROM pg_database) AS d
               WHERE split_part(comment, ': ', 1) || ': ' = ANY(%s)
                 AND strpos(comment, %s) > 0""",
            (list(OURS), json.dumps({"target": target})[1:-1]),
        )
        rows = cur.fetchall()
    found = []
    for name, comment, size, encoding, collate, ctype in rows:
        prefix = comment[: comment.index(": ") + 2]
        try:
            entry = json.loads(comment[len(prefix) :])
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("target") == target:
            found.append(_Marked(prefix, name, entry, int(size), encoding, collate, ctype))
    return found


def _marked(conn: Connection, prefix: str, target: str) -> list[_Marked]:
    """The target's databases whose comment carries ``prefix``."""
    return [m for m in _listing(conn, target) if m.prefix == prefix]


def _time(marked: _Marked, field: str) -> float:
    value = marked.entry.get(field, 0)
    return float(value) if isinstance(value, (int, float)) else 0.0


def _templates(listing: list[_Marked]) -> list[Template]:
    found = [
        Template(m.name, str(m.entry.get("key")), str(m.entry.get("source", "?")),
                 _time(m, "created"), _time(m, "used"), m.bytes, m.encoding, m.collate, m.ctype)
        for m in listing if m.prefix == CACHE_PREFIX
    ]  # fmt: skip
    return sorted(found, key=lambda t: t.used, reverse=True)


def _spares(listing: list[_Marked]) -> dict[str, tuple[str, int]]:
    return {str(m.entry.get("key")): (m.name, m.bytes) for m in listing if m.prefix == SPARE_PREFIX}


def _stored(listing: list[_Marked]) -> list[CachedCopy]:
    return [
        CachedCopy(str(m.entry.get("key")), str(m.entry.get("source", "?")), m.name, m.bytes,
                   _time(m, "created"), _time(m, "used"))
        for prefix in (SNAPSHOT_PREFIX, UNDO_PREFIX) for m in listing if m.prefix == prefix
    ]  # fmt: skip


def templates(conn: Connection, target: str, *, sizes: bool = True) -> list[Template]:
    """The target's cached copies, most recently used first (``bytes`` 0 without ``sizes``)."""
    return _templates(_listing(conn, target, sizes=sizes))


def spares(conn: Connection, target: str) -> dict[str, tuple[str, int]]:
    """Ready spares by key: (database name, bytes)."""
    return _spares(_listing(conn, target))


def copies(conn: Connection, target: str) -> list[CachedCopy]:
    """The target's cached copies as the cache module describes them (spare bytes included),
    its snapshots and its undo copy."""
    listing = _listing(conn, target)
    return copies_of(_templates(listing), _spares(listing)) + _stored(listing)


def stored(conn: Connection, target: str) -> list[CachedCopy]:
    """The target's snapshots and undo copy."""
    return _stored(_listing(conn, target))


def undo_name(target: str) -> str:
    return derived_name(target, "undo")


def new_snapshot_name(target: str) -> str:
    return derived_name(target, f"snap_{os.urandom(6).hex()}")


def mark_snapshot(conn: Connection, target: str, database: str, name: str) -> None:
    """Say what the just-made copy ``database`` is, and close it to connections (a session
    on it would block cloning from it)."""
    now = time.time()
    comment = _comment(SNAPSHOT_PREFIX, target=target, key=snapshot_key(name),
                       source=f"@{name}", created=now, used=now)  # fmt: skip
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(f"COMMENT ON DATABASE {ident(database)} IS {literal(comment)}")
        cur.execute(f"ALTER DATABASE {ident(database)} ALLOW_CONNECTIONS false")
        cur.execute("COMMIT")


def rename_snapshot(conn: Connection, target: str, copy: CachedCopy, new: str) -> None:
    comment = _comment(SNAPSHOT_PREFIX, target=target, key=snapshot_key(new), source=f"@{new}",
                       created=copy.created, used=copy.used)  # fmt: skip
    with conn.cursor() as cur:
        cur.execute(f"COMMENT ON DATABASE {ident(copy.name)} IS {literal(comment)}")


def undo_comment(target: str, what: str) -> str:
    now = time.time()
    return _comment(UNDO_PREFIX, target=target, key=UNDO_KEY, source=what, created=now, used=now)


def keep_undo(conn: Connection, target: str, old: str, what: str) -> str | None:
    """Make the content a swap replaced (``old``) the undo copy; the previous undo copy goes
    to the trash. The trash name, or None when there was no previous copy.

    Raises:
        NotOurs: a database named like the undo copy that reel-tui did not make.
    """
    name = undo_name(target)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (name,),
        )
        row = cur.fetchone()
    if row is not None and not (row[0] or "").startswith(UNDO_PREFIX):
        raise NotOurs(f"database {name} exists but was not made by reel-tui; rename or drop it "
                      "to let reel-tui keep the undo copy under that name")  # fmt: skip
    trashed = derived_name(target, f"trash_{time.time_ns() // 1000}") if row else None
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        if trashed is not None:
            cur.execute(f"ALTER DATABASE {ident(name)} RENAME TO {ident(trashed)}")
            mark = _comment(TRASH_PREFIX, target=target, time=time.time())
            cur.execute(f"COMMENT ON DATABASE {ident(trashed)} IS {literal(mark)}")
        cur.execute(f"ALTER DATABASE {ident(old)} RENAME TO {ident(name)}")
        cur.execute(f"COMMENT ON DATABASE {ident(name)} IS {literal(undo_comment(target, what))}")
        cur.execute(f"ALTER DATABASE {ident(name)} ALLOW_CONNECTIONS false")
        cur.execute("COMMIT")
    return trashed


def take_undo(conn: Connection, copy: CachedCopy, staging: str, journal: str) -> None:
    """Rename the undo copy to ``staging`` with the run's journal, which says how to put it
    back (see :func:`give_back`) if the rewind does not finish."""
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(f"ALTER DATABASE {ident(copy.name)} RENAME TO {ident(staging)}")
        cur.execute(f"COMMENT ON DATABASE {ident(staging)} IS {literal(journal)}")
        cur.execute(f"ALTER DATABASE {ident(staging)} ALLOW_CONNECTIONS true")
        cur.execute("COMMIT")


def give_back(conn: Connection, staging: str, name: str, comment: str) -> None:
    """A rewind from the undo copy did not finish: its staging database is the undo copy
    again, under its name (a staging database is never dropped when it holds the undo)."""
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(f"ALTER DATABASE {ident(staging)} RENAME TO {ident(name)}")
        cur.execute(f"COMMENT ON DATABASE {ident(name)} IS {literal(comment)}")
        cur.execute(f"ALTER DATABASE {ident(name)} ALLOW_CONNECTIONS false")
        cur.execute("COMMIT")


def fits(template: Template, like: DatabaseInfo | None) -> bool:
    """A copy is usable when the target's encoding and collation are still the copy's."""
    if like is None:
        return True
    return (template.encoding, template.collate, template.ctype) == (
        like.encoding, like.collate, like.ctype)  # fmt: skip


def clone(conn: Connection, name: str, template: str, owner: str | None, size: int) -> None:
    """CREATE DATABASE ``name`` as a copy of ``template`` (no session may be on it)."""
    strategy = ""
    if conn.server_version >= 150000:
        strategy = " STRATEGY FILE_COPY" if size >= FILE_COPY_FROM else " STRATEGY WAL_LOG"
    statement = f"CREATE DATABASE {ident(name)} TEMPLATE {ident(template)}{strategy}"
    with conn.cursor() as cur:
        if owner is None:
            cur.execute(statement)
            return
        try:
            cur.execute(f"{statement} OWNER {ident(owner)}")
        except psycopg2.errors.InsufficientPrivilege:
            cur.execute(statement)


def size_of(conn: Connection, name: str) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_database_size(%s)", (name,))
        return int(cur.fetchone()[0])


def drop_ours(conn: Connection, name: str) -> bool:
    """Drop database ``name`` if reel-tui made it (its comment says so); False if absent.

    Raises:
        NotOurs: it exists and is not reel-tui's: a user's database is never dropped.
    """
    with conn.cursor() as cur:
        cur.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (name,),
        )
        row = cur.fetchone()
    if row is None:
        return False
    if not (row[0] or "").startswith(OURS):
        raise NotOurs(f"database {name} exists but was not made by reel-tui; rename or drop "
                      "it to let reel-tui keep a cached copy under that name")  # fmt: skip
    drop(conn, name)
    return True


def keep(conn: Connection, target: str, staging: str, key: str, source: str) -> str:
    """Copy the loaded staging database as the template for ``key``; its name.

    An older template of the same key (a run that could not finish) is replaced.
    """
    name = cache_name(target, key)
    drop_ours(conn, name)
    clone(conn, name, staging, None, size_of(conn, staging))
    now = time.time()
    comment = _comment(CACHE_PREFIX, target=target, key=key, source=source, created=now, used=now)
    with conn.cursor() as cur:
        cur.execute(f"COMMENT ON DATABASE {ident(name)} IS {literal(comment)}")
        cur.execute(f"ALTER DATABASE {ident(name)} ALLOW_CONNECTIONS false")
    return name


def touch(conn: Connection, template: Template, target: str) -> None:
    """Note that the template was used now: the least recently used are evicted first."""
    comment = _comment(CACHE_PREFIX, target=target, key=template.key, source=template.source,
                       created=template.created, used=time.time())  # fmt: skip
    with conn.cursor() as cur:
        cur.execute(f"COMMENT ON DATABASE {ident(template.name)} IS {literal(comment)}")


def take_spare(conn: Connection, target: str, key: str, staging: str, journal: str) -> bool:
    """Rename the ready spare for ``key`` to ``staging`` with the run's journal; False if
    there is none (another run took it, or the background has not made it yet)."""
    name = spare_name(target, key)
    with conn.cursor() as cur:
        try:
            cur.execute("BEGIN")
            cur.execute(f"ALTER DATABASE {ident(name)} RENAME TO {ident(staging)}")
            cur.execute(f"COMMENT ON DATABASE {ident(staging)} IS {literal(journal)}")
            cur.execute(f"ALTER DATABASE {ident(staging)} ALLOW_CONNECTIONS true")
            cur.execute("COMMIT")
        except psycopg2.errors.InvalidCatalogName:
            cur.execute("ROLLBACK")
            return False
    return True


def trash(conn: Connection, target: str, old: str) -> str:
    """Rename the replaced content aside for the background to drop; its new name."""
    name = derived_name(target, f"trash_{time.time_ns() // 1000}")
    comment = _comment(TRASH_PREFIX, target=target, time=time.time())
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(f"ALTER DATABASE {ident(old)} RENAME TO {ident(name)}")
        cur.execute(f"COMMENT ON DATABASE {ident(name)} IS {literal(comment)}")
        cur.execute("COMMIT")
    return name


def try_target_lock(conn: Connection, target: str) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS, target))
        return bool(cur.fetchone()[0])


def release_target_lock(conn: Connection, target: str) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (LOCK_CLASS, target))


def maintenance_lock(conn: Connection, target: str) -> None:
    """One background worker per target at a time: the next waits for this one."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (MAINTENANCE_LOCK_CLASS, target))


def drop_trash(conn: Connection, target: str, log: Callable[[str], None]) -> None:
    for trashed in _marked(conn, TRASH_PREFIX, target):
        name = trashed.name
        started = time.monotonic()
        drop(conn, name)
        log(f"dropped the replaced content {name} ({trashed.bytes:,} bytes) in "
            f"{time.monotonic() - started:.2f} s")  # fmt: skip


def drop_unfinished_spares(conn: Connection, target: str, log: Callable[[str], None]) -> None:
    """``prep`` databases of workers that died (the caller holds the maintenance lock),
    also one without its comment: the worker was killed while CREATE DATABASE copied."""
    unmarked = _uncommented(conn, "prep")
    for template in templates(conn, target):
        name = prep_name(target, template.key)
        try:
            if name in unmarked:
                drop(conn, name)
                log(f"dropped {name}, a spare whose copy was interrupted")
            elif drop_ours(conn, name):
                log(f"dropped {name}, an unfinished spare")
        except NotOurs as exc:
            log(str(exc))


def drop_unfinished_snapshots(conn: Connection, target: str, log: Callable[[str], None]) -> None:
    """Copies that snapshot runs left without their comment: killed, or their connection
    lost, while CREATE DATABASE copied, before the comment saying what the copy is.

    Dropped though unmarked: the name is the target's with a random suffix, one only
    reel makes, and the caller holds the target's lock, which the creating run held
    until its server session ended, so none is still being made."""
    for name in _uncommented(conn, "snap"):
        suffix = name.rsplit("__reel_snap_", 1)[-1]
        hexadecimal = len(suffix) == 12 and set(suffix) <= set("0123456789abcdef")
        if hexadecimal and derived_name(target, f"snap_{suffix}") == name:
            drop(conn, name)
            log(f"dropped {name}, a snapshot whose copy was interrupted")


def _uncommented(conn: Connection, kind: str) -> set[str]:
    """Databases named ``…__reel_<kind>_…`` that have no comment."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT datname FROM pg_database WHERE strpos(datname, %s) > 0 "
            "AND shobj_description(oid, 'pg_database') IS NULL",
            (f"__reel_{kind}_",),
        )
        return {str(row[0]) for row in cur.fetchall()}


def make_spare(
    conn: Connection, target: str, template: Template, log: Callable[[str], None]
) -> None:
    """Clone ``template`` into a ready spare: under the ``prep`` name, renamed when complete."""
    prep = prep_name(target, template.key)
    started = time.monotonic()
    clone(conn, prep, template.name, None, template.bytes)
    comment = _comment(SPARE_PREFIX, target=target, key=template.key)
    with conn.cursor() as cur:
        mark = _comment(PREP_PREFIX, target=target, key=template.key)
        cur.execute(f"COMMENT ON DATABASE {ident(prep)} IS {literal(mark)}")
        cur.execute(f"ALTER DATABASE {ident(prep)} ALLOW_CONNECTIONS false")
        cur.execute("BEGIN")
        cur.execute(
            f"ALTER DATABASE {ident(prep)} RENAME TO {ident(spare_name(target, template.key))}"
        )
        cur.execute(f"COMMENT ON DATABASE {ident(spare_name(target, template.key))} IS "
                    f"{literal(comment)}")  # fmt: skip
        cur.execute("COMMIT")
    log(f"spare copy of {template.source} ready for the next rewind "
            f"({time.monotonic() - started:.2f} s)")  # fmt: skip


def drop_copy(conn: Connection, target: str, copy: CachedCopy) -> None:
    """Drop a snapshot or the undo copy, or the template and the spare of a cached dump
    (the caller holds the target's lock)."""
    if copy.kind != "cache":
        drop_ours(conn, copy.name)
        return
    drop_ours(conn, spare_name(target, copy.key))
    drop_ours(conn, cache_name(target, copy.key))
