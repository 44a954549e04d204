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
from typing import TYPE_CHECKING, Literal

import psycopg2

from reel_tui.cache import CachedCopy
from reel_tui.config import AppConfig, default_jobs
from reel_tui.engines import pg_cache, pg_swap
from reel_tui.engines.base import Engine, RewindContext, RewindError
from reel_tui.engines.pg_conn import Connection, connect, connect_maintenance, is_local, where
from reel_tui.engines.pg_database import (
    DatabaseInfo,
    create_database,
    give_properties,
    read_database,
)
from reel_tui.engines.pg_warm import PgWarm, drop_all, maintain
from reel_tui.sources import Source

if TYPE_CHECKING:
    from reel_tui.engines.pg_restore import ArchiveRestore

# The loaders (pg_loader, pg_parallel, pg_restore, pg_inplace) are imported where a load
# starts: a warm rewind renames a ready copy in and should not pay for importing them.


class PostgresEngine(Engine):
    """Rewinds a PostgreSQL database from plain (optionally gzipped) dumps or archives."""

    driver = "postgres"
    accepts = frozenset({"postgres", "sql"})
    accepts_containers = frozenset({"sql", "pg-custom", "pg-directory", "pg-tar"})

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
        admin = connect_maintenance(self.app)
        try:
            dropped = drop_all(self.app, admin, None if keys is None else set(keys), log)
            if self.cache_index is not None:
                self.cache_index.record_copies(
                    self.app.target_key, pg_cache.copies(admin, self.app.database)
                )
            return dropped
        except TimeoutError as exc:
            raise RewindError(str(exc), code="busy") from None
        except pg_cache.NotOurs as exc:
            raise RewindError(str(exc)) from None
        except psycopg2.Error as exc:
            raise RewindError(f"{where(self.app)}: {_primary(exc)}") from None
        finally:
            admin.close()

    def maintain(self, log: Callable[[str], None]) -> None:
        admin = connect_maintenance(self.app)
        try:
            maintain(self.app, self.cache_index, admin, log)
        except psycopg2.Error as exc:
            raise RewindError(f"{where(self.app)}: {_primary(exc)}") from None
        finally:
            admin.close()

    def _release(self, conn: Connection) -> None:
        """Forget and close the loading connection, under the guard ``interrupt`` takes."""
        with self._guard:
            if self._loading is conn:
                self._loading = None
            conn.close()

    def rewind(self, source: Source, ctx: RewindContext) -> None:
        if source.format.container != "sql":
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
        pg_swap.recover(admin, names, ctx, lambda name: connect(self.app, name))
        ctx.progress(phase="preparing")
        ctx.log(f"checked target: {self._describe_target(admin)}")
        old = read_database(admin, names.target)
        if self._choose_mode(admin, old, source, ctx) == "in-place":
            self._rewind_in_place(source, ctx)
            return
        warm = PgWarm(self.app, self.cache_index, admin)
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
                self._load(source, names.staging, ctx)
                if old is not None:
                    give_properties(admin, names.staging, old, ctx)
                warm.keep(names, source, ctx)
            ctx.progress(phase="swapping")
            reconnect = lambda: connect_maintenance(self.app)  # noqa: E731
            if pg_swap.swap(admin, names, old, ctx, reconnect, keep_old=warm.enabled):
                warm.set_aside(names, ctx)
        except BaseException:
            self._drop_staging(admin, names, ctx)
            raise
        if warm.enabled:
            warm.record()
            self.maintenance_due = True

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

    def _load(self, source: Source, staging: str, ctx: RewindContext) -> None:
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
                self._load_parallel(source, staging, conn, ctx, started)
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
        self, source: Source, staging: str, conn: Connection, ctx: RewindContext, started: float
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
                if self.app.analyze:
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
