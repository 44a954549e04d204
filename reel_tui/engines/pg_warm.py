"""The PostgreSQL engine's use of its cache: warm rewinds, keeping copies, background work.

See :mod:`reel_tui.engines.pg_cache` for the databases involved and who may
touch them when. A warm rewind holds the target's advisory lock, like a cold
one, and goes through the same staging name, journal and swap, so an
interrupted warm rewind is finished or rolled back exactly as a cold one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import psycopg2

from reel_tui.cache import (
    EVICT_LOCK_WAIT,
    CachedCopy,
    CacheIndex,
    DigestTask,
    Retention,
    digest_task,
    evictions,
    key_after_load,
    key_now,
    server_lock_held,
)
from reel_tui.config import AppConfig
from reel_tui.engines import pg_cache, pg_swap
from reel_tui.engines.base import RewindContext
from reel_tui.engines.pg_conn import Connection, ident
from reel_tui.engines.pg_database import DatabaseInfo, give_properties
from reel_tui.sources import Source


class PgWarm:
    """One rewind's view of the target's cached copies."""

    def __init__(self, app: AppConfig, index: CacheIndex | None, admin: Connection) -> None:
        self.app = app
        self.index = index
        self.admin = admin
        self.target = app.database
        self.retention = Retention.of(app)
        self.digest: DigestTask | None = None
        self._templates: list[pg_cache.Template] | None = None

    @property
    def enabled(self) -> bool:
        return self.index is not None and self.retention.enabled

    def start(self, source: Source) -> None:
        """Start finding the dump's digest: at once if remembered; before anything else
        if it was hashed before and copies exist (a touched dump may be unchanged);
        else beside the load."""

        self.digest = digest_task(self.index, self.app, source.path,
                                  lambda: bool(self.templates()))  # fmt: skip

    def templates(self) -> list[pg_cache.Template]:
        """The target's templates, listed once per rewind (only a holder of the target's
        lock, this rewind, adds or drops them), without their sizes."""
        if self._templates is None:
            self._templates = pg_cache.templates(self.admin, self.target, sizes=False)
        return self._templates

    def find(self, old: DatabaseInfo | None) -> pg_cache.Template | None:
        """The template for this dump, if there is one that fits the target."""
        key = key_now(self.app, self.digest)
        if key is None:
            return None
        found = next((t for t in self.templates() if t.key == key), None)
        return found if found is not None and pg_cache.fits(found, old) else None

    def stage(self, names: pg_swap.Names, template: pg_cache.Template,
              old: DatabaseInfo | None, ctx: RewindContext) -> None:  # fmt: skip
        """Put a copy of ``template`` under the staging name, with the run's journal."""
        admin = self.admin
        ctx.log(f"cached copy of this dump found ({template.name}): no load")
        journal = pg_swap.journal_comment(names, "loading", session=pg_swap.session(admin))
        started = time.monotonic()
        if pg_cache.take_spare(admin, self.target, template.key, names.staging, journal):
            ctx.log(f"took its ready spare ({time.monotonic() - started:.2f} s)")
            if old is not None:
                _give_owner(admin, names.staging, old.owner, ctx)
        else:
            ctx.progress(phase="preparing", detail="copying the cached database")
            owner = old.owner if old is not None else None
            size = pg_cache.size_of(admin, template.name)
            pg_cache.clone(admin, names.staging, template.name, owner, size)
            pg_swap.write_journal(admin, names.staging, journal)
            ctx.log(f"no spare was ready: copied {template.name} in "
                    f"{time.monotonic() - started:.2f} s")  # fmt: skip
        if old is not None:
            give_properties(admin, names.staging, old, ctx)
        pg_cache.touch(admin, template, self.target)

    def keep(self, names: pg_swap.Names, source: Source, ctx: RewindContext) -> None:
        """After a cold load: copy the staging database as the template for this dump."""
        kept = key_after_load(self.app, self.digest, ctx)
        if kept is None:
            return
        started = time.monotonic()
        ctx.progress(phase="finishing", detail="keeping a cached copy")
        try:
            name = pg_cache.keep(self.admin, self.target, names.staging,
                                 kept[0], source.name)  # fmt: skip
        except psycopg2.Error as exc:
            ctx.log(f"could not keep a cached copy: {exc.diag.message_primary}", "warning")
            return
        except pg_cache.NotOurs as exc:
            ctx.log(f"no cached copy kept: {exc}", "warning")
            return
        ctx.log(f"kept a cached copy for the next rewind of this dump ({name}, "
                f"{time.monotonic() - started:.2f} s)")  # fmt: skip

    def set_aside(self, names: pg_swap.Names, ctx: RewindContext) -> None:
        """The replaced content goes aside for the background to drop."""
        try:
            name = pg_cache.trash(self.admin, self.target, names.old)
        except psycopg2.Error as exc:
            ctx.log(f"could not set {names.old} aside ({exc.diag.message_primary}); the "
                    "next rewind drops it", "warning")  # fmt: skip
            return
        ctx.log(f"the previous content ({name}) is dropped in the background")


def _give_owner(admin: Connection, name: str, owner: str, ctx: RewindContext) -> None:
    with admin.cursor() as cur:
        cur.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone()[0] == owner:
            return
        try:
            cur.execute(f"ALTER DATABASE {ident(name)} OWNER TO {ident(owner)}")
        except psycopg2.errors.InsufficientPrivilege:
            ctx.log(f"cannot give the database to {owner} (not a member of that role): it "
                    "is owned by the user reel connects as", "warning")  # fmt: skip


def maintain(app: AppConfig, index: CacheIndex | None, admin: Connection,
             log: Callable[[str], None]) -> None:  # fmt: skip
    """The background work for the target: drop what swaps set aside and unfinished
    spares, evict over the limits, make the spare of the most recently used copy."""
    target = app.database
    pg_cache.maintenance_lock(admin, target)
    try:
        pg_cache.drop_trash(admin, target, log)
        pg_cache.drop_unfinished_spares(admin, target, log)
        found = pg_cache.templates(admin, target)
        if found:
            evict(app, admin, found[0].key, log)
            found = pg_cache.templates(admin, target)
        if found and found[0].key not in pg_cache.spares(admin, target):
            pg_cache.make_spare(admin, target, found[0], log)
    finally:  # the rewind left recording the copies to this work, also when it fails
        if index is not None and not admin.closed:
            with contextlib.suppress(psycopg2.Error):
                index.record_copies(app.target_key, pg_cache.copies(admin, target))


def evict(app: AppConfig, admin: Connection, keep: str, log: Callable[[str], None]) -> None:
    """Drop outdated copies, copies over the app's limits and spares of other dumps than
    ``keep``'s, if no rewind of the target is running (else the next background run does)."""
    target = app.database
    copies = pg_cache.copies(admin, target)
    dropping = evictions(copies, Retention.of(app), keep)
    gone = [copy for copy, _ in dropping]
    extra_spares = [c for c in copies if c.spare_ready and c.key != keep and c not in gone]
    if not (dropping or extra_spares):
        return
    # the rewind that started this work may still hold the lock for a moment: the server
    # releases a session's advisory locks only when it has processed the disconnect
    try:
        with target_locked(app, admin, EVICT_LOCK_WAIT):
            for copy, why in dropping:
                pg_cache.drop_copy(admin, target, copy)
                log(why)
            for copy in extra_spares:
                pg_cache.drop_ours(admin, pg_cache.spare_name(target, copy.key))
    except TimeoutError:
        log("a rewind of the target is running: eviction is left for the next background run")


def drop_all(app: AppConfig, admin: Connection, keys: set[str] | None,
             log: Callable[[str], None], timeout: float = 30.0) -> list[CachedCopy]:  # fmt: skip
    """Drop the target's copies (those of ``keys``; all but snapshots when None), waiting
    for a running rewind of the target to finish first (up to ``timeout``)."""
    target = app.database
    with target_locked(app, admin, timeout):
        dropped = [c for c in pg_cache.copies(admin, target)
                   if (c.key in keys if keys is not None else c.kind != "snapshot")]  # fmt: skip
        for copy in dropped:
            pg_cache.drop_copy(admin, target, copy)
            what = "undo copy" if copy.kind == "undo" else "cached copy"
            log(f"dropped the {what} of {copy.source} ({copy.name})")
        return dropped


def target_locked(
    app: AppConfig, admin: Connection, timeout: float = 30.0
) -> AbstractContextManager[None]:
    """Hold the target's lock on the server, waiting up to ``timeout`` for a running rewind
    (see :func:`reel_tui.cache.server_lock_held`)."""
    return server_lock_held(lambda: pg_cache.try_target_lock(admin, app.database),
                            lambda: pg_cache.release_target_lock(admin, app.database),
                            app.target, timeout)  # fmt: skip
