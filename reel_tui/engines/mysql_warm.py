"""The MySQL engine's use of its cache: warm rewinds, asking for copies, background work.

See :mod:`reel_tui.engines.mysql_cache` for the schemas involved and who may
touch them when. A warm rewind holds the target's ``GET_LOCK`` like a cold
one and goes through the same staging schema, journal and swap, so an
interrupted warm rewind is finished or rolled back exactly as a cold one.

Why the template is loaded again in the background rather than copied from
the staging schema before the swap: copying the tables costs about half a
load (INSERT … SELECT), well above what a cold rewind may lose to the cache.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict

import pymysql

from reel_tui.cache import (
    EVICT_LOCK_WAIT,
    UNDO_KEY,
    CachedCopy,
    CacheIndex,
    DigestTask,
    Retention,
    cache_key,
    digest_task,
    evictions,
    key_after_load,
    key_now,
    server_lock_held,
)
from reel_tui.config import AppConfig
from reel_tui.engines import mysql_cache
from reel_tui.engines.base import LogLevel, Phase, RewindContext
from reel_tui.engines.mysql_cache import Marked, ReadySpare, Template
from reel_tui.engines.mysql_conn import Connection, ident, message
from reel_tui.engines.mysql_objects import definitions, query
from reel_tui.engines.mysql_swap import (
    Names,
    Plan,
    create_journal,
    drop_schema,
    retire,
    write_journal,
)
from reel_tui.sources import Source, list_sources

Loader = Callable[[Source, str, RewindContext], str]
"""Loads a dump into a schema, returns the dump's database options (the engine's ``_load``)."""


class MyWarm:
    """One rewind's view of the target's cached copies."""

    def __init__(
        self,
        app: AppConfig,
        index: CacheIndex | None,
        admin: Connection,
        found: list[Marked] | None = None,
    ) -> None:
        self.app = app
        self.index = index
        self.admin = admin
        self.target = app.database
        self.retention = Retention.of(app)
        self.digest: DigestTask | None = None
        self.templates: list[Template] = []
        """Found by :meth:`start`, under the target's lock: nothing drops them meanwhile."""
        self.found: list[Marked] = found or []
        """The target's marked schemas as listed under the target's lock (sizes not read)."""
        self._listed = found is not None
        self.took: float | None = None
        """Seconds taking the spare took; None when no spare was taken."""
        self.aside: list[str] = []
        """Schemas this rewind made or emptied to hold what its swap sets aside (marked
        "taking" until the swap is over, then "trash")."""

    @property
    def keeps_undo(self) -> bool:
        """Whether the replaced content is kept as the undo copy (copies are kept, and the
        app keeps an undo copy)."""
        return self.app.undo and self.retention.enabled

    @property
    def enabled(self) -> bool:
        return self.index is not None and self.retention.enabled

    def start(self, source: Source) -> None:
        """Start finding the dump's digest: first if copies exist (a touched dump may be
        unchanged), else beside the load."""
        if not self.enabled:
            return
        if not self._listed:
            self.found = mysql_cache.marked(self.admin, self.target, sizes=False)
            self._listed = True
        self.templates = mysql_cache.templates(self.admin, self.target, self.found)
        self.digest = digest_task(self.index, self.app, source.path, lambda: bool(self.templates))

    def find(self) -> Template | None:
        """The template for this dump, if there is one."""
        key = key_now(self.app, self.digest)
        return None if key is None else next((t for t in self.templates if t.key == key), None)

    def ready_spare(self, template: Template) -> ReadySpare | None:
        """The template's complete spare, if there is one."""
        return mysql_cache.ready_spare(self.admin, self.target, template, self.found)

    def take_spare(self, names: Names, spare: ReadySpare) -> None:
        """Move the spare's tables into the staging schema (:attr:`took` says if they
        moved); the emptied spare then holds what the swap sets aside."""
        started = time.monotonic()
        if mysql_cache.take_spare(self.admin, spare, names.staging):
            self.aside.append(spare.name)
            self.took = time.monotonic() - started

    def stage(self, names: Names, template: Template, ctx: RewindContext) -> None:
        """Log the spare taken, else copy the template's tables into the staging schema."""
        ctx.log(f"cached copy of this dump found ({template.name}): no load")
        if self.took is not None:
            ctx.log(f"took its ready spare ({self.took:.2f} s)")
        else:
            started = time.monotonic()
            ctx.progress(phase="preparing", detail="copying the cached tables")
            mysql_cache.copy_tables(
                self.admin, template.name, names.staging, template.tables, ctx.check_cancelled
            )
            ctx.log(
                f"no spare was ready: copied {template.name} in {time.monotonic() - started:.2f} s"
            )
        self.touch(template)

    def touch(self, template: Template) -> None:
        """Note the template's use (from its marker as listed: no read)."""
        entry = next((m.entry for m in self.found if m.name == template.name), None)
        mysql_cache.touch(self.admin, template, self.target, entry)

    def trash(self) -> str:
        """A schema for what the swap sets aside: the emptied spare, else a new one."""
        if not self.aside:
            self.aside.append(mysql_cache.new_trash(self.admin, self.target, "taking"))
        return self.aside[0]

    def old_schema(self, names: Names, *, undo: bool, taken_undo: bool) -> str:
        """Where the swap's RENAME TABLE puts the target's tables ("": ``O``, the long
        way): the undo copy when it is kept and exists (``taken_undo``: this run took
        its tables, an ``@undo``), else a trash schema when copies are kept."""
        if undo:
            name = mysql_cache.undo_name(self.target)
            found = self.found if self._listed else mysql_cache.marked(self.admin, self.target,
                                                                      sizes=False)  # fmt: skip
            marker = next((m for m in found if m.name == name), None)
            kinds = ("undo", "taken") if taken_undo else ("undo",)
            ours = marker is not None and marker.key == UNDO_KEY and marker.kind in kinds
            return name if ours else ""
        return self.trash() if self.enabled else ""

    def set_aside_done(self) -> None:
        """The swap is over: what it set aside is trash, dropped in the background without
        the target's lock."""
        for name in self.aside:
            retire(self.admin, name, self.target)

    def drop_aside(self) -> None:
        """After a failed rewind: the schemas made or emptied for it go (best effort; the
        background drops what stays). Nothing the swap set aside is needed: the undo copy
        is never among them."""
        for name in self.aside:
            with contextlib.suppress(pymysql.Error):
                drop_schema(self.admin, name)

    def after_swap(
        self,
        names: Names,
        source: Source,
        template: Template | None,
        ctx: RewindContext,
        plan: Plan,
        undo: bool = False,
    ) -> None:
        """Set the replaced tables aside (unless the swap did, into the undo copy or a
        trash schema: ``plan.old_schema``); after a cold load, ask for a cached copy.

        When the swap set the tables aside, the index (for --list and the TUI) is not
        updated from the server here (listing the copies again costs three queries): the
        caller records what it knows (:meth:`record_known`), the background work what the
        server holds."""
        set_aside = bool(plan.old_schema)
        try:
            self.set_aside_done()
            if set_aside:
                if not undo:
                    ctx.log(f"the previous content ({plan.old_schema}) is dropped in the "
                            "background")  # fmt: skip
            else:
                trash = mysql_cache.trash_tables(self.admin, self.target, names.old)
                if trash is not None:
                    ctx.log(f"the previous content ({trash}) is dropped in the background")
            if template is None:
                self._request(source, ctx)
        except pymysql.Error as exc:
            ctx.log(f"cache: {message(exc)}; the next rewind cleans up", "warning")
        if not set_aside:
            self.record()

    def _request(self, source: Source, ctx: RewindContext) -> None:
        kept = key_after_load(self.app, self.digest, ctx)
        if kept is None:
            return
        key, digest = kept
        if mysql_cache.request(
            self.admin, self.target, key, source=source.name, path=str(source.path), digest=digest
        ):
            ctx.log("a cached copy of this dump is made in the background for the next rewind")

    def record_known(
        self, template: Template | None, undo_entry: dict[str, object], replaced_bytes: int
    ) -> None:
        """Tell the index what changed without asking the server (the background work
        records what the server holds a moment later): the template used now, its spare
        taken, the undo copy holding the replaced content."""
        if self.index is None:
            return
        now = time.time()
        known = []
        for copy in self.index.copies(self.app.target_key):
            if copy.key == UNDO_KEY and undo_entry:
                continue
            if template is not None and copy.key == template.key:
                copy = CachedCopy(copy.key, copy.source, copy.name, template.bytes or copy.bytes,
                                  copy.created, now)  # fmt: skip
            known.append(copy)
        if undo_entry:
            known.append(CachedCopy(UNDO_KEY, str(undo_entry.get("source", "?")),
                                    mysql_cache.undo_name(self.target), replaced_bytes,
                                    now, now))  # fmt: skip
        self.index.record_copies(self.app.target_key, known)

    def record(self) -> None:
        """Tell the index what the server holds now (for --list and the TUI)."""
        if self.index is not None and self.admin.open:
            self.index.record_copies(
                self.app.target_key, mysql_cache.copies(self.admin, self.target)
            )


# --- background work --------------------------------------------------------------------


def maintain(
    app: AppConfig,
    index: CacheIndex | None,
    admin: Connection,
    load: Loader,
    log: Callable[[str], None],
) -> None:
    """The background work for the target: drop what swaps set aside and unfinished work,
    make the templates cold rewinds asked for, evict over the limits, make the spare of
    the most recently used copy."""
    target = app.database
    mysql_cache.maintenance_lock(admin, target)
    found = mysql_cache.marked(admin, target)
    if index is not None:  # first: a warm rewind recorded only what it knew (--list, TUI)
        index.record_copies(app.target_key, mysql_cache.copies(admin, target, found))
    for schema in found:
        if schema.kind == "trash":
            _drop_logged(admin, schema, "the replaced content", log)
        elif schema.kind not in (*mysql_cache.COMPLETE, mysql_cache.SWAP):
            _drop_unfinished(admin, target, schema, log)
    requests = sorted(
        (s for s in found if s.kind == "request"),
        key=lambda s: float(s.entry.get("time", 0)),
        reverse=True,
    )  # type: ignore[arg-type]
    for n, wanted in enumerate(requests):
        if n < Retention.of(app).copies:
            build(app, index or CacheIndex(None), admin, wanted, load, log)
        drop_schema(admin, wanted.name)
    found_templates = mysql_cache.templates(admin, target)
    if found_templates:
        evict(app, admin, found_templates[0].key, log)
        found_templates = mysql_cache.templates(admin, target)
    if found_templates and found_templates[0].key not in mysql_cache.spares(admin, target):
        make_spare(admin, target, found_templates[0], log)
    if index is not None:
        index.record_copies(app.target_key, mysql_cache.copies(admin, target))


def _drop_unfinished(
    admin: Connection, target: str, schema: Marked, log: Callable[[str], None]
) -> None:
    """Drop a schema a stopped run left unfinished; one a rewind may be using right now
    (:data:`mysql_cache.IN_USE`) only while no rewind of the target runs."""
    if schema.kind not in mysql_cache.IN_USE:
        _drop_logged(admin, schema, "unfinished work of a stopped run", log)
        return
    if not mysql_cache.try_target_lock(admin, target):
        return  # a rewind is running: it may be using it; the next background run drops it
    try:
        if (marker := mysql_cache.read_marker(admin, schema.name)) is not None and (
            marker.kind == schema.kind
        ):
            _drop_logged(admin, marker, "unfinished work of a stopped run", log)
    finally:
        mysql_cache.release_target_lock(admin, target)


def _drop_logged(admin: Connection, schema: Marked, what: str, log: Callable[[str], None]) -> None:
    started = time.monotonic()
    drop_schema(admin, schema.name)
    log(
        f"dropped {what} {schema.name} ({schema.bytes:,} bytes) in "
        f"{time.monotonic() - started:.2f} s"
    )


def build(
    app: AppConfig,
    index: CacheIndex,
    admin: Connection,
    wanted: Marked,
    load: Loader,
    log: Callable[[str], None],
) -> None:
    """Load the dump a cold rewind asked for into its ``load`` schema and make it the
    template, if the dump is still the one that rewind loaded."""
    target, key, entry = app.database, wanted.key, wanted.entry
    source = _source(app, str(entry.get("path")))
    if any(t.key == key for t in mysql_cache.templates(admin, target)):
        return
    if source is None:
        log(f"{entry.get('source')} is gone: no cached copy made")
        return
    digest = DigestTask(index, source.path, background=False)
    if digest.result() != entry.get("digest") or cache_key(app, str(entry["digest"])) != key:
        log(f"{source.name} changed since it was loaded: no cached copy made")
        return
    started = time.monotonic()
    drop_schema(admin, wanted.name)
    mysql_cache.create_schema(admin, wanted.name, target)
    mysql_cache.mark(admin, wanted.name, **{**entry, "kind": "building"})
    options = load(source, wanted.name, _Quiet(log))
    if digest.result() != entry.get("digest"):
        log(f"{source.name} changed while it was loaded again: no cached copy made")
        return
    template = _make_template(admin, target, wanted, options)
    log(f"cached copy of {source.name} made ({template}, {time.monotonic() - started:.2f} s)")


def _source(app: AppConfig, path: str) -> Source | None:
    """The app's source at ``path``, if it is still one of the app's sources."""
    return next((s for s in list_sources(app) if str(s.path) == path), None)


def _make_template(admin: Connection, target: str, loaded: Marked, options: str) -> str:
    """Turn the loaded schema into the template: definitions kept in its marker and
    dropped (nothing in a cache schema fires or can be called), tables moved in."""
    schema = loaded.name
    kept = definitions(admin, schema, target, schema)
    for definition in kept:
        query(
            admin,
            f"DROP {definition.kind.upper()} IF EXISTS {ident(schema)}.{ident(definition.name)}",
        )
    query(admin, "USE information_schema")
    tables = mysql_cache.data_tables(admin, schema)
    name = mysql_cache.cache_name(target, loaded.key)
    mysql_cache.drop_ours(admin, name, target)
    mysql_cache.create_schema(admin, name, schema)
    mysql_cache.mark(admin, name, kind="building", target=target, key=loaded.key)
    mysql_cache.move_tables(admin, schema, name, tables)
    created = float(loaded.entry.get("time", time.time()))  # type: ignore[arg-type]
    mysql_cache.mark(
        admin,
        name,
        kind="cache",
        target=target,
        key=loaded.key,
        source=loaded.entry.get("source"),
        created=created,
        used=created,
        tables=tables,
        definitions=[asdict(d) for d in kept],
        database_options=options,
    )
    return name


def make_spare(
    admin: Connection, target: str, template: Template, log: Callable[[str], None]
) -> None:
    """Copy the template's tables into a ready spare: under the ``prep`` name, moved
    into the spare schema when complete."""
    prep = mysql_cache.prep_name(target, template.key)
    spare = mysql_cache.spare_name(target, template.key)
    left = mysql_cache.read_marker(admin, spare)
    if left is not None and left.kind == mysql_cache.SWAP and left.entry.get("target") == target:
        log(f"{spare} holds an interrupted swap: the next rewind finishes it, then its spare")
        return
    started = time.monotonic()
    mysql_cache.drop_ours(admin, prep, target)
    mysql_cache.create_schema(admin, prep, template.name)
    mysql_cache.mark(admin, prep, kind="prep", target=target, key=template.key)
    mysql_cache.copy_tables(admin, template.name, prep, template.tables)
    mysql_cache.drop_ours(admin, spare, target)
    mysql_cache.create_schema(admin, spare, template.name)
    mysql_cache.mark(admin, spare, kind="prep", target=target, key=template.key)
    # the staging schema's journal table, made now: a warm rewind moves it into the staging
    # schema with the tables (in the same RENAME TABLE) instead of creating it
    create_journal(admin, spare)
    write_journal(admin, spare, Plan())
    # and an empty schema beside it, where that swap sets the replaced tables aside (they
    # cannot go into the spare: its own tables' foreign key names are still there)
    aside = mysql_cache.aside_name(target, template.key)
    try:
        mysql_cache.drop_ours(admin, aside, target)
        mysql_cache.create_schema(admin, aside, template.name)
        mysql_cache.mark(admin, aside, kind="aside", target=target, key=template.key)
    except mysql_cache.NotOurs as exc:  # the spare is still used, through the staging schema
        log(f"{exc}; the next rewind takes the spare through the staging schema")
    mysql_cache.move_tables(admin, prep, spare, template.tables)
    mysql_cache.mark(admin, spare, kind="spare", target=target, key=template.key)
    drop_schema(admin, prep)
    log(
        f"spare copy of {template.source} ready for the next rewind "
        f"({time.monotonic() - started:.2f} s)"
    )


def evict(app: AppConfig, admin: Connection, keep: str, log: Callable[[str], None]) -> None:
    """Drop outdated copies, copies over the app's limits and spares of other dumps than
    ``keep``'s, if no rewind of the target is running (else the next background run does)."""
    target = app.database
    found = mysql_cache.copies(admin, target)
    dropping = evictions(found, Retention.of(app), keep)
    gone = [copy for copy, _ in dropping]
    extra_spares = [c for c in found if c.spare_ready and c.key != keep and c not in gone]
    if not (dropping or extra_spares):
        return
    if not mysql_cache.try_target_lock(admin, target, EVICT_LOCK_WAIT):
        log("a rewind of the target is running: eviction is left for the next background run")
        return
    try:
        for copy, why in dropping:
            drop_copy(admin, target, copy)
            log(why)
        for copy in extra_spares:
            mysql_cache.drop_ours(admin, mysql_cache.spare_name(target, copy.key), target)
            mysql_cache.drop_ours(admin, mysql_cache.aside_name(target, copy.key), target)
    finally:
        mysql_cache.release_target_lock(admin, target)


def drop_copy(admin: Connection, target: str, copy: CachedCopy) -> None:
    """Drop a snapshot, or the template and the spare of a cached dump (the caller holds
    the target's lock)."""
    if copy.kind != "cache":
        mysql_cache.drop_ours(admin, copy.name, target)
        return
    mysql_cache.drop_ours(admin, mysql_cache.spare_name(target, copy.key), target)
    mysql_cache.drop_ours(admin, mysql_cache.aside_name(target, copy.key), target)
    mysql_cache.drop_ours(admin, mysql_cache.cache_name(target, copy.key), target)


def drop_all(
    app: AppConfig,
    admin: Connection,
    keys: set[str] | None,
    log: Callable[[str], None],
    timeout: float = 30.0,
) -> list[CachedCopy]:
    """Drop the target's copies (those of ``keys``; all but snapshots, and pending requests,
    when None), waiting for a running rewind of the target to finish first (up to
    ``timeout``)."""
    target = app.database
    with target_locked(app, admin, timeout):
        dropped = [c for c in mysql_cache.copies(admin, target)
                   if (c.key in keys if keys is not None else c.kind != "snapshot")]  # fmt: skip
        for copy in dropped:
            drop_copy(admin, target, copy)
            log(f"dropped the cached copy of {copy.source} ({copy.name})")
        if keys is None:
            for schema in mysql_cache.marked(admin, target):
                if schema.kind not in ("snapshot", mysql_cache.SWAP):
                    drop_schema(admin, schema.name)
        return dropped


def target_locked(
    app: AppConfig, admin: Connection, timeout: float = 30.0
) -> AbstractContextManager[None]:
    """Hold the target's lock on the server, waiting up to ``timeout`` for a running rewind
    (see :func:`reel_tui.cache.server_lock_held`)."""
    return server_lock_held(lambda: mysql_cache.try_target_lock(admin, app.database),
                            lambda: mysql_cache.release_target_lock(admin, app.database),
                            app.target, timeout)  # fmt: skip


class _Quiet:
    """The context a background load reports to: warnings reach the job's log, the
    per-table chatter of a load does not; nothing cancels it."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self._log = log

    def log(self, message: str, level: LogLevel = "info") -> None:
        if level in ("warning", "error"):
            self._log(f"loading the cached copy: {message}")

    def progress(
        self,
        *,
        phase: Phase | None = None,
        bytes_read: int | None = None,
        statements: int | None = None,
        detail: str | None = None,
    ) -> None:
        pass

    def check_cancelled(self) -> None:
        pass

    @contextlib.contextmanager
    def swap(self) -> Iterator[None]:
        yield
