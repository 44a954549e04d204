"""The PostgreSQL engine: load into a staging database, then swap it in.

How a rewind runs (see :mod:`reel_tui.engines.pg_swap` for the swap itself):

1. connect to a maintenance database (``postgres``, else ``template1``) and
   take a server-side advisory lock for the target, so reel processes on
   other machines wait for each other too (the per-target flock only covers
   this machine); advisory locks are per database, so the staging journal
   also names this run's server session, and a run that finds the journal of
   a session still connected (locked in another maintenance database) stops
   as busy instead of taking it for a leftover;
2. finish or roll back whatever a killed run left (its journal is on the server);
3. create ``<db>__reel_staging`` with the target's encoding, collation and
   owner, and load the dump into it: plain SQL streamed through
   :class:`~reel_tui.engines.pg_loader.ScriptLoader`, archives through
   pg_restore; then ``ANALYZE``; then the target's settings, privileges and
   connection limit;
4. swap it in under ``with ctx.swap():`` and drop the old content.

A failure, a cancel or a lost connection before step 4 drops the staging
database and leaves the target as it was. Cancel is checked between
statement batches and COPY chunks; :meth:`PostgresEngine.interrupt` also
cancels the running statement on the server and terminates pg_restore.
Once the new content is in (the swap, or the in-place commit), nothing
reports the rewind as cancelled or failed: a cancel or an error during the
ANALYZE that follows an in-place commit only logs a warning.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Literal, TypeVar

import psycopg2

from reel_tui.cache import CachedCopy, Retention, snapshot_key
from reel_tui.config import AppConfig, default_jobs
from reel_tui.engines import pg_cache, pg_swap
from reel_tui.engines.base import RewindContext, RewindError
from reel_tui.engines.pg_conn import (
    Connection,
    connect,
    connect_maintenance,
    ident,
    is_local,
    where,
)
from reel_tui.engines.pg_database import (
    DatabaseInfo,
    create_database,
    give_properties,
    read_database,
)
from reel_tui.engines.pg_warm import PgWarm, drop_all, maintain, target_locked
from reel_tui.engines.server import ServerEngine
from reel_tui.sources import Source

if TYPE_CHECKING:
    from reel_tui.engines.pg_restore import ArchiveRestore

# The loaders (pg_loader, pg_parallel, pg_restore, pg_inplace) are imported where a load
# starts: a warm rewind renames a ready copy in and should not pay for importing them.


_T = TypeVar("_T")
_NEVER_ANALYZED = """SELECT EXISTS (SELECT 1 FROM pg_stat_user_tables WHERE n_mod_since_analyze > 0
    AND last_analyze IS NULL AND last_autoanalyze IS NULL)"""
"""Whether rows were loaded that no ANALYZE saw: a clone of an analyzed copy has
statistics and no changes since; a cold load that left ANALYZE for later has rows."""


class PostgresEngine(ServerEngine):
    """Rewinds a PostgreSQL database from plain (optionally gzipped) dumps or archives."""

    driver = "postgres"
    accepts = frozenset({"postgres", "sql"})
    accepts_containers = frozenset({"sql", "pg-custom", "pg-directory", "pg-tar"})
    takes_snapshots = True
    keeps_undo = True
    driver_error = psycopg2.Error

    def __init__(self, app: AppConfig) -> None:
        super().__init__(app)
        self._guard = threading.Lock()
        self._loading: Connection | None = None
        self._restore: ArchiveRestore | None = None
        self._workers: list[Connection] = []
        """The parallel load's extra connections; ``interrupt`` cancels them too."""

    def is_local(self) -> bool:
        return is_local(self.app)

    def check(self) -> str:
        conn = connect_maintenance(self.app)
        try:
            return self._describe_target(conn)
        finally:
            conn.close()

    def _describe_target(self, conn: Connection) -> str:
        """What :meth:`check` says, over an open maintenance connection."""
        try:
            with conn.cursor() as cur:
                cur.execute(
                    """SELECT current_setting('server_version'), current_user, rolsuper,
                              rolcreatedb,
                              (SELECT pg_size_pretty(pg_database_size(datname))
                               FROM pg_database WHERE datname = %s)
                       FROM pg_roles WHERE rolname = current_user""",
                    (self.app.database,),
                )
                version, user, superuser, createdb, size = cur.fetchone()
        except psycopg2.Error as exc:
            raise RewindError(f"{where(self.app)}: {exc.diag.message_primary}") from None
        role = "superuser" if superuser else ("CREATEDB" if createdb else "no CREATEDB")
        found = f"database {self.app.database} ({size})"
        if size is None:
            found = f"database {self.app.database} does not exist yet; a rewind creates it"
        return f"PostgreSQL {version} at {where(self.app)}, {found}, user {user} ({role})"

    def interrupt(self) -> None:
        # Under the guard: the engine thread clears and closes ``_loading`` under it too,
        # so the cancel never meets a connection being closed.
        with self._guard:
            loading, restore = self._loading, self._restore
            for conn in [loading, *self._workers]:
                if conn is not None and not conn.closed:
                    with contextlib.suppress(psycopg2.Error):  # it may have just been lost
                        conn.cancel()
        if restore is not None:
            restore.terminate()

    def cached_copies(self) -> list[CachedCopy]:
        admin = connect_maintenance(self.app)
        try:
            return pg_cache.copies(admin, self.app.database)
        finally:
            admin.close()

    def drop_cached(
        self, keys: Collection[str] | None, log: Callable[[str], None]
    ) -> list[CachedCopy]:
        wanted = None if keys is None else set(keys)
        return self._cache_work(lambda admin: drop_all(self.app, admin, wanted, log))

    def maintain(self, log: Callable[[str], None]) -> None:
        if self.app.analyze:
            self._analyze_fresh(log)
        admin = connect_maintenance(self.app)
        try:
            maintain(self.app, self.cache_index, admin, log)
        except psycopg2.Error as exc:
            raise RewindError(f"{where(self.app)}: {_primary(exc)}") from None
        finally:
            admin.close()

    def _analyze_fresh(self, log: Callable[[str], None]) -> None:
        """ANALYZE the target's tables that were loaded and never analyzed (a cold load
        that left it for now); nothing for a clone of an analyzed cached copy."""
        from reel_tui.engines.pg_parallel import TABLES_TO_ANALYZE

        started = time.monotonic()
        try:
            conn = connect(self.app, self.app.database)
        except (psycopg2.Error, RewindError):
            return  # no target (yet), or a rewind is swapping it: the next run does it
        tables: list[str] = []
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(_NEVER_ANALYZED)
                if cur.fetchone()[0]:
                    cur.execute(TABLES_TO_ANALYZE)
                    tables = [str(row[0]) for row in cur.fetchall()]
                for table in tables:
                    cur.execute(f"ANALYZE {table}")
        except psycopg2.Error as exc:
            log(f"ANALYZE did not finish ({_primary(exc)}); the server's autovacuum does it")
            return
        finally:
            conn.close()
        if tables:
            log(f"ANALYZE of {len(tables)} tables took {time.monotonic() - started:.1f} s")

    def _release(self, conn: Connection) -> None:
        """Forget and close the loading connection, under the guard ``interrupt`` takes."""
        with self._guard:
            if self._loading is conn:
                self._loading = None
            conn.close()

    def rewind(self, source: Source, ctx: RewindContext) -> None:
        if source.stored is None and source.format.container != "sql":
            from reel_tui.engines.pg_restore import check_archive

            entries = check_archive(source)
            ctx.log(f"archive lists {entries} objects")
        ctx.progress(phase="connecting")
        admin = connect_maintenance(self.app)
        try:
            self._rewind(admin, source, ctx)
        except psycopg2.Error as exc:
            ctx.check_cancelled()
            raise RewindError(f"{self.app.target}: {_primary(exc)}") from None
        finally:
            admin.close()

    def _rewind(self, admin: Connection, source: Source, ctx: RewindContext) -> None:
        names = pg_swap.Names.of(self.app.database)
        pg_swap.advisory_lock(admin, names.target, ctx)
        self._recover(admin, names, ctx)
        ctx.progress(phase="preparing")
        ctx.log(f"checked target: {self._describe_target(admin)}")
        old = read_database(admin, names.target)
        if self._choose_mode(admin, old, source, ctx) == "in-place":
            if source.stored is not None:
                raise RewindError(f"{source.name} is swapped in as a database, which the "
                                  "in-place mode cannot do", code="refused")  # fmt: skip
            self._rewind_in_place(source, ctx)
            return
        warm = PgWarm(self.app, self.cache_index, admin)
        if source.stored is not None:
            self._rewind_stored(admin, names, old, source, (warm, ctx))
            return
        warm.start(source)
        template = warm.find(old)
        if template is None:
            create_database(admin, names.staging, old, ctx)
        try:
            if template is not None:
                warm.stage(names, template, old, ctx)
            else:
                journal = pg_swap.journal_comment(names, "loading", session=pg_swap.session(admin))
                pg_swap.write_journal(admin, names.staging, journal)
                ctx.log(f"loading into staging database {names.staging}")
                self._load(source, names.staging, ctx, analyze_now=warm.enabled)
                if old is not None:
                    give_properties(admin, names.staging, old, ctx)
                warm.keep(names, source, ctx)
            self._swap_in(admin, names, old, source.name, (warm, ctx))
        except BaseException:
            self._drop_staging(admin, names, ctx)
            raise
        self._after_swap(warm)

    def _recover(self, admin: Connection, names: pg_swap.Names, ctx: RewindContext) -> None:
        """What a run stopped halfway left (the caller holds the target's lock)."""
        pg_swap.recover(admin, names, ctx, lambda name: connect(self.app, name))
        pg_cache.drop_unfinished_snapshots(admin, names.target, ctx.log)

    def _keeps_undo(self) -> bool:
        return self.app.undo and Retention.of(self.app).enabled

    def _after_swap(self, warm: PgWarm) -> None:
        """The background work records the copies in the index (for --list and the TUI)
        when it has made the next spare: listing them with their sizes takes a few ms."""
        if warm.enabled or self._keeps_undo():
            self.maintenance_due = True

    def _swap_in(
        self,
        admin: Connection,
        names: pg_swap.Names,
        old: DatabaseInfo | None,
        replaced_by: str,
        run: tuple[PgWarm, RewindContext],
        journal_extra: dict[str, object] | None = None,
    ) -> None:
        """The swap; what it replaced becomes the undo copy, or goes to the trash."""
        warm, ctx = run
        undo = self._keeps_undo()
        ctx.progress(phase="swapping")
        reconnect = lambda: connect_maintenance(self.app)  # noqa: E731
        # the replaced content is kept: as the undo copy, or set aside for the background to
        # drop (dropping a big database takes a while, and the target is already rewound)
        kept = pg_swap.swap(admin, names, old, ctx, reconnect, keep_old=True,
                            journal_extra=journal_extra)  # fmt: skip
        if not kept:
            return
        if not undo:
            warm.set_aside(names, ctx)
            self.maintenance_due = True
            return
        try:
            trashed = pg_cache.keep_undo(admin, names.target, names.old, f"before {replaced_by}")
        except (psycopg2.Error, pg_cache.NotOurs) as exc:
            why = _primary(exc) if isinstance(exc, psycopg2.Error) else str(exc)
            ctx.log(f"no undo copy kept: {why}", "warning")
            warm.set_aside(names, ctx)
            return
        ctx.log(f"kept the replaced state as the undo copy ({pg_cache.undo_name(names.target)}; "
                "reel-tui --undo swaps it back)")  # fmt: skip
        if trashed is not None:
            ctx.log(f"the previous undo copy ({trashed}) is dropped in the background")

    def _rewind_stored(
        self,
        admin: Connection,
        names: pg_swap.Names,
        old: DatabaseInfo | None,
        source: Source,
        run: tuple[PgWarm, RewindContext],
    ) -> None:
        """Swap a snapshot (a clone of it) or the undo copy (itself, renamed) in: no load."""
        ctx = run[1]
        copy = next((c for c in pg_cache.stored(admin, names.target) if c.key == source.stored),
                    None)  # fmt: skip
        if copy is None:
            raise RewindError(f"{source.name} is gone (deleted meanwhile?); nothing was changed")
        taken = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(copy.created))
        ctx.log(f"swapping in {source.name} ({copy.name}, {copy.source}, taken {taken}): no load")
        extra = self._stage_stored(admin, names, old, copy, ctx)
        try:
            if old is not None:
                give_properties(admin, names.staging, old, ctx)
            self._swap_in(admin, names, old, source.name, run, extra)
        except BaseException:
            if extra is None:
                self._drop_staging(admin, names, ctx)
            else:
                self._give_back(admin, names, extra, ctx)
            raise
        self._after_swap(run[0])

    def _stage_stored(
        self,
        admin: Connection,
        names: pg_swap.Names,
        old: DatabaseInfo | None,
        copy: CachedCopy,
        ctx: RewindContext,
    ) -> dict[str, object] | None:
        """Put the copy under the staging name; for the undo copy, what its journal says to
        give it back (None for a snapshot: its clone is dropped on failure)."""
        session = pg_swap.session(admin)
        if copy.kind == "undo":
            extra: dict[str, object] = {
                "restore_as": copy.name,
                "restore_comment": pg_cache.undo_comment(names.target, copy.source),
            }
            journal = pg_swap.journal_comment(names, "loading", session=session, **extra)
            pg_cache.take_undo(admin, copy, names.staging, journal)
            ctx.log(f"took the undo copy as {names.staging} (a rename)")
            return extra
        ctx.progress(phase="preparing", detail="copying the snapshot")
        started = time.monotonic()
        owner = old.owner if old is not None else None
        pg_cache.clone(admin, names.staging, copy.name, owner, copy.bytes)
        journal = pg_swap.journal_comment(names, "loading", session=session)
        pg_swap.write_journal(admin, names.staging, journal)
        ctx.log(f"copied {copy.name} in {time.monotonic() - started:.2f} s")
        return None

    def _give_back(
        self, admin: Connection, names: pg_swap.Names, extra: dict[str, object], ctx: RewindContext
    ) -> None:
        """After a failed undo: the staging database is the undo copy again (over a new
        connection if the failure took the rewind's)."""
        try:
            conn = admin if not admin.closed else connect_maintenance(self.app)
        except (psycopg2.Error, RewindError) as exc:
            ctx.log(f"could not give the undo copy back ({exc}); the next run will", "warning")
            return
        try:
            if pg_swap.exists(conn, names.staging):
                pg_cache.give_back(conn, names.staging, str(extra["restore_as"]),
                                   str(extra["restore_comment"]))  # fmt: skip
                ctx.log(f"{names.staging} is the undo copy again; {names.target} is unchanged")
        except psycopg2.Error as exc:
            ctx.log(f"could not give the undo copy back ({_primary(exc)}); the next run will",
                    "warning")  # fmt: skip
        finally:
            if conn is not admin:
                conn.close()

    # --- snapshots ---------------------------------------------------------------------

    def snapshot(self, name: str, ctx: RewindContext) -> None:
        ctx.progress(phase="connecting")
        admin = connect_maintenance(self.app)
        with self._guard:
            self._loading = admin  # a cancel stops the copy (CREATE DATABASE) on the server
        try:
            self._snapshot(admin, name, ctx)
        except psycopg2.Error as exc:
            ctx.check_cancelled()
            raise RewindError(f"{self.app.target}: {_primary(exc)}") from None
        finally:
            self._release(admin)

    def _snapshot(self, admin: Connection, name: str, ctx: RewindContext) -> None:
        names = pg_swap.Names.of(self.app.database)
        pg_swap.advisory_lock(admin, names.target, ctx)
        self._recover(admin, names, ctx)
        ctx.progress(phase="preparing")
        old = read_database(admin, names.target)
        if old is None:
            raise RewindError(f"nothing to snapshot: database {names.target} does not exist",
                              code="refused")  # fmt: skip
        if any(c.key == snapshot_key(name) for c in pg_cache.stored(admin, names.target)):
            raise RewindError(f"a snapshot named {name!r} exists already: delete or rename "
                              "it first", code="refused")  # fmt: skip
        database = pg_cache.new_snapshot_name(names.target)
        size = pg_cache.size_of(admin, names.target)
        ctx.progress(phase="loading", detail=f"copying {names.target}")
        ctx.check_cancelled()
        started = time.monotonic()
        try:
            pg_cache.clone(admin, database, names.target, None, size)
        except psycopg2.errors.ObjectInUse:
            self._clone_in_use(admin, names, old, database, ctx)
        try:
            ctx.check_cancelled()
            pg_cache.mark_snapshot(admin, names.target, database, name)
        except BaseException:
            with contextlib.suppress(psycopg2.Error):  # made just now, unmarked: ours to drop
                pg_swap.drop(admin, database)
            raise
        ctx.log(f"snapshot @{name} taken: {database}, {size:,} bytes, "
                f"{time.monotonic() - started:.2f} s")  # fmt: skip
        if self.cache_index is not None:
            self.cache_index.record_copies(self.app.target_key,
                                           pg_cache.copies(admin, names.target))  # fmt: skip

    def _clone_in_use(
        self,
        admin: Connection,
        names: pg_swap.Names,
        old: DatabaseInfo,
        database: str,
        ctx: RewindContext,
    ) -> None:
        """Copy the target while sessions are on it: ``CREATE DATABASE … TEMPLATE`` needs
        none, so they are ended as a swap ends them (the target closed to connections
        meanwhile, opened again after). A journal on an empty staging database lets the next
        run open the target again if this one is killed halfway."""
        ctx.log(f"{names.target} has sessions, and copying a database needs none: they are "
                "ended, as a rewind's swap ends them")  # fmt: skip
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {ident(names.staging)} TEMPLATE template0")
        journal = pg_swap.journal_comment(names, "swapping", session=pg_swap.session(admin),
                                          allow_connections=old.allow_connections)  # fmt: skip
        try:
            pg_swap.write_journal(admin, names.staging, journal)
            pg_swap.allow_connections(admin, names.target, False)
            try:
                pg_swap.end_sessions(admin, names.target, ctx)
                pg_cache.clone(admin, database, names.target, None,
                               pg_cache.size_of(admin, names.target))  # fmt: skip
            finally:
                pg_swap.allow_connections(admin, names.target, old.allow_connections)
        finally:
            pg_swap.drop(admin, names.staging)

    def rename_snapshot(self, old: str, new: str, log: Callable[[str], None]) -> CachedCopy:
        def rename(admin: Connection) -> CachedCopy:
            copy = self._find_snapshot(admin, old)
            if any(c.key == snapshot_key(new) for c in pg_cache.stored(admin, self.app.database)):
                raise RewindError(f"a snapshot named {new!r} exists already", code="refused")
            pg_cache.rename_snapshot(admin, self.app.database, copy, new)
            log(f"renamed snapshot @{old} to @{new}")
            return copy

        return self._locked(rename)

    def delete_snapshot(self, name: str, log: Callable[[str], None]) -> CachedCopy:
        def delete(admin: Connection) -> CachedCopy:
            copy = self._find_snapshot(admin, name)
            pg_cache.drop_ours(admin, copy.name)
            log(f"deleted snapshot @{name} ({copy.name}, {copy.bytes:,} bytes freed)")
            return copy

        return self._locked(delete)

    def _find_snapshot(self, admin: Connection, name: str) -> CachedCopy:
        found = [c for c in pg_cache.stored(admin, self.app.database) if c.kind == "snapshot"]
        copy = next((c for c in found if c.key == snapshot_key(name)), None)
        if copy is None:
            listed = ", ".join(c.source for c in found) if found else "it has none"
            raise RewindError(f"no snapshot named @{name} of {self.app.target} ({listed})",
                              code="refused")  # fmt: skip
        return copy

    def _connect_admin(self) -> Connection:
        return connect_maintenance(self.app)

    def _server_copies(self, admin: Connection) -> list[CachedCopy]:
        return pg_cache.copies(admin, self.app.database)

    def _target_locked(self, admin: Connection) -> AbstractContextManager[None]:
        return target_locked(self.app, admin)

    def _one_line(self, exc: Exception) -> str:
        return f"{where(self.app)}: {_primary(exc)}"  # type: ignore[arg-type]

    def _cache_work(self, work: Callable[[Connection], _T]) -> _T:
        """As the shared one; a database under a copy's name that reel did not make is
        named in one line too."""
        try:
            return super()._cache_work(work)
        except pg_cache.NotOurs as exc:
            raise RewindError(str(exc)) from None

    def _choose_mode(
        self, admin: Connection, old: DatabaseInfo | None, source: Source, ctx: RewindContext
    ) -> Literal["swap", "in-place"]:
        """Atomic swap when the role may create and rename databases, else in place."""
        with admin.cursor() as cur:
            cur.execute(
                """SELECT rolsuper, rolcreatedb, current_user,
                          (SELECT pg_has_role(datdba, 'USAGE') FROM pg_database
                           WHERE datname = %s)
                   FROM pg_roles WHERE rolname = current_user""",
                (self.app.database,),
            )
            superuser, createdb, user, owns = cur.fetchone()
        why_not = None
        if not (superuser or createdb):
            why_not = f"user {user} may not create databases (no CREATEDB)"
        elif old is not None and not (superuser or owns):
            why_not = f"user {user} does not own {old.name} (owner: {old.owner})"
        wanted = self.app.rewind_mode
        if wanted == "swap" or (wanted == "auto" and why_not is None):
            if why_not is not None:
                raise RewindError(f"{why_not}, which the atomic swap needs "
                                  "(rewind_mode = \"swap\")", code="refused")  # fmt: skip
            ctx.log("mode: atomic swap (staging database, then rename)")
            return "swap"
        if old is None:
            raise RewindError(
                f"{why_not or 'rewind_mode = in-place'}: database {self.app.database} does "
                "not exist and cannot be created; create it first",
                code="refused",
            )
        reason = 'rewind_mode = "in-place"' if wanted == "in-place" else why_not
        ctx.log(f"mode: in place, in one transaction ({reason})")
        return "in-place"

    def _rewind_in_place(self, source: Source, ctx: RewindContext) -> None:
        """Clear and load the target in one transaction: a failure rolls all of it back."""
        from reel_tui.engines.pg_inplace import clear_owned, end_own_sessions
        from reel_tui.engines.pg_loader import ScriptLoader
        from reel_tui.engines.pg_restore import ArchiveScript

        conn = connect(self.app, self.app.database)
        with self._guard:
            self._loading = conn
        try:
            try:
                conn.set_client_encoding("UTF8")
                end_own_sessions(conn, self.app.database, ctx)
                conn.autocommit = False
                ctx.progress(phase="loading", bytes_read=0)
                clear_owned(conn, ctx)
                script = ArchiveScript(source) if source.format.container != "sql" else None
                ScriptLoader(self.app, source, conn, ctx, script).run()
                with conn.cursor() as cur:
                    cur.execute("SELECT txid_current()")
                    xid = int(cur.fetchone()[0])
                ctx.progress(phase="swapping")
                with ctx.swap():
                    try:
                        conn.commit()
                    except psycopg2.Error as exc:
                        if not conn.closed:
                            raise  # the server answered: the commit failed
                        self._committed_after_all(xid, exc, ctx)
            except psycopg2.Error as exc:
                ctx.check_cancelled()
                raise RewindError(f"{source.path}: {_primary(exc)}") from None
            # Committed: from here on nothing may report the rewind as failed or cancelled.
            # A cancel still interrupts the ANALYZE (``_loading`` is still this
            # connection), which then only logs a warning: the rewind has succeeded.
            ctx.log("committed the new content")
            if self.app.analyze and not conn.closed:
                self._analyze_committed(conn, ctx)
        finally:
            self._release(conn)  # an uncommitted transaction is rolled back by the server

    def _committed_after_all(self, xid: int, lost: psycopg2.Error, ctx: RewindContext) -> None:
        """The connection was lost during COMMIT: ask the server whether it committed.

        Returns if it did; raises RewindError saying the target is unchanged if it
        did not, or that the outcome is unknown if the server cannot tell.
        """
        target = self.app.target
        ctx.log(f"lost the connection during the commit ({_primary(lost)}); asking the "
                "server whether it committed", "warning")  # fmt: skip
        status = pg_swap.transaction_status(lambda: connect_maintenance(self.app), xid, ctx)
        if status == "committed":
            ctx.log("the server committed it before the connection was lost", "warning")
            return
        if status == "aborted":
            raise RewindError(f"{target}: lost the connection during the commit, which the "
                              f"server rolled back; {target} is unchanged") from None  # fmt: skip
        raise RewindError(
            f"{target}: lost the connection during the commit and the server cannot say "
            f"whether it committed (transaction {xid}: {status or 'no answer'}); check "
            f"{target} before using it"
        ) from None

    def _analyze_committed(self, conn: Connection, ctx: RewindContext) -> None:
        """ANALYZE after the commit: optional, so a cancel or an error only skips it."""
        try:
            conn.autocommit = True
            self._analyze(conn, ctx)
        except psycopg2.Error as exc:
            ctx.log(f"ANALYZE did not finish ({_primary(exc)}); the new content is committed: "
                    "the server's autovacuum analyzes it later", "warning")  # fmt: skip

    def _analyze(self, conn: Connection, ctx: RewindContext) -> None:
        ctx.progress(phase="finishing", detail="ANALYZE")
        started = time.monotonic()
        with conn.cursor() as cur:
            cur.execute("ANALYZE")
        ctx.log(f"ANALYZE took {time.monotonic() - started:.1f} s")

    def _load(
        self, source: Source, staging: str, ctx: RewindContext, *, analyze_now: bool = True
    ) -> None:
        """Load ``source`` into ``staging``, then ANALYZE it, unless ``analyze_now`` is
        false and the load was parallel: then the background work after the swap does
        (no cached copy is cloned from staging that would need the statistics)."""
        from reel_tui.engines.pg_loader import ScriptLoader
        from reel_tui.engines.pg_restore import ArchiveRestore

        ctx.progress(phase="loading", bytes_read=0)
        started = time.monotonic()
        if source.format.container != "sql":
            restore = ArchiveRestore(self.app, source, staging, ctx)
            with self._guard:
                self._restore = restore
            try:
                restore.run()
            finally:
                with self._guard:
                    self._restore = None
        conn = self._connect_loading(staging)
        with self._guard:
            self._loading = conn
        try:
            if source.format.container == "sql" and self._jobs(ctx) > 1:
                self._load_parallel(source, staging, conn, ctx, started, analyze_now)
                return
            if source.format.container == "sql":
                ScriptLoader(self.app, source, conn, ctx).run()
            ctx.log(f"load took {time.monotonic() - started:.1f} s")
            if self.app.analyze:
                self._analyze(conn, ctx)
        except psycopg2.Error as exc:
            ctx.check_cancelled()
            raise RewindError(f"{source.path}: {_primary(exc)}") from None
        finally:
            self._release(conn)

    def _connect_loading(self, staging: str) -> Connection:
        """A connection that loads into the staging database (UTF-8, autocommit)."""
        conn = connect(self.app, staging)
        try:
            conn.set_client_encoding("UTF8")
            with conn.cursor() as cur:
                cur.execute("SET synchronous_commit = off")  # the swap's commit flushes it
        except BaseException:
            conn.close()
            raise
        return conn

    def _jobs(self, ctx: RewindContext) -> int:
        """How many connections load a plain dump into the staging database."""
        jobs = self.app.jobs or default_jobs()
        if jobs > 1 and self.app.on_error == "continue":
            ctx.log("loading over one connection: with on_error = \"continue\" a failed "
                    "statement must be skipped in dump order")  # fmt: skip
            return 1
        return jobs

    def _load_parallel(
        self,
        source: Source,
        staging: str,
        conn: Connection,
        ctx: RewindContext,
        started: float,
        analyze_now: bool,
    ) -> None:
        """Load over ``jobs`` more connections (see :mod:`reel_tui.engines.pg_parallel`)."""
        from reel_tui.engines.pg_parallel import ParallelLoader

        jobs = self._jobs(ctx)
        workers: list[Connection] = []
        try:
            for _ in range(jobs):
                worker = self._connect_loading(staging)
                with self._guard:
                    self._workers.append(worker)
                workers.append(worker)
            ctx.log(f"loading data, indexes and constraints over {jobs} connections")
            loader = ParallelLoader(self.app, source, conn, ctx, workers)
            try:
                loader.run()
                ctx.log(f"load took {time.monotonic() - started:.1f} s")
                if self.app.analyze and not analyze_now:
                    self.maintenance_due = True
                    ctx.log("ANALYZE runs in the background once the new content is in place")
                elif self.app.analyze:
                    ctx.progress(phase="finishing", detail="ANALYZE")
                    analyzing = time.monotonic()
                    loader.analyze()
                    ctx.log(f"ANALYZE took {time.monotonic() - analyzing:.1f} s")
            finally:
                loader.close()
        finally:
            with self._guard:
                for worker in workers:
                    self._workers.remove(worker)
                    worker.close()

    def _drop_staging(self, admin: Connection, names: pg_swap.Names, ctx: RewindContext) -> None:
        """Best effort after a failure: the next run drops what this could not."""
        try:
            if not admin.closed and pg_swap.exists(admin, names.staging):
                pg_swap.drop(admin, names.staging)
                ctx.log(f"dropped staging database {names.staging}; {names.target} is unchanged")
        except psycopg2.Error as exc:
            ctx.log(f"could not drop {names.staging} ({_primary(exc)}); the next run will",
                    "warning")  # fmt: skip


def _primary(exc: psycopg2.Error) -> str:
    primary = getattr(exc.diag, "message_primary", None)
    return " ".join((primary or str(exc)).split())
