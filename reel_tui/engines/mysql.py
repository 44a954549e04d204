"""The MySQL / MariaDB engine: load into a staging schema, then swap it in.

How a rewind runs (see :mod:`reel_tui.engines.mysql_swap` for the swap):

1. connect (config, then ``~/.my.cnf``) and take ``GET_LOCK('reel-tui:<db>')``,
   so reel processes on other machines wait for each other too;
2. finish or undo what a killed run left (its journal is on the server);
3. create ``<db>__reel_staging`` with the target's character set and
   collation, and stream the dump into it over one connection
   (:class:`~reel_tui.engines.mysql_loader.ScriptLoader`), foreign-key checks
   off on that session only;
4. swap it in under ``with ctx.swap():`` and drop the old content.

A failure, a cancel or a lost connection before step 4 drops the staging
schema and leaves the target as it was. :meth:`MysqlEngine.interrupt` stops
the running statement with ``KILL QUERY`` from a second connection.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from dataclasses import asdict
from typing import TYPE_CHECKING, TypeVar

import pymysql

from reel_tui.cache import UNDO_KEY, CachedCopy, snapshot_key
from reel_tui.config import AppConfig, default_jobs
from reel_tui.engines import mysql_cache, mysql_swap
from reel_tui.engines.base import RewindContext, RewindError
from reel_tui.engines.mysql_conn import Connection, connect, ident, is_local, message, where
from reel_tui.engines.mysql_objects import definitions
from reel_tui.engines.mysql_swap import Names, query
from reel_tui.engines.mysql_warm import MyWarm, drop_all, maintain, target_locked
from reel_tui.engines.server import ServerEngine
from reel_tui.sources import Source

if TYPE_CHECKING:
    from reel_tui.engines.mysql_parallel import Sent, Workers

# The loaders (mysql_loader, mysql_parallel) are imported where a load starts: a warm
# rewind moves a ready copy in and should not pay for importing them.


_T = TypeVar("_T")


class MysqlEngine(ServerEngine):
    """Rewinds a MySQL or MariaDB database from mysqldump / mariadb-dump output."""

    driver = "mysql"
    accepts = frozenset({"mysql", "sql"})
    accepts_containers = frozenset({"sql"})
    takes_snapshots = True
    keeps_undo = True
    driver_error = pymysql.Error

    def __init__(self, app: AppConfig) -> None:
        super().__init__(app)
        self._guard = threading.Lock()
        self._loading_ids: list[int] = []
        """Server thread ids of the loading connections, for interrupt()."""
        self._target_bytes = 0
        """The target's size as the rewind found it before the swap (the undo copy's)."""

    def is_local(self) -> bool:
        return is_local(self.app)

    def check(self) -> str:
        conn = connect(self.app)
        try:
            return self._describe_target(conn)
        finally:
            conn.close()

    def _describe_target(self, conn: Connection, exists: bool | None = None) -> str:
        """What :meth:`check` says, over an open connection (a rewind's: no second one).

        ``exists``: whether the target exists, when the caller knows (one query less)."""
        try:
            version, user, count, size_bytes = query(
                conn,
                """SELECT VERSION(), CURRENT_USER(), COUNT(*),
                COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0)
                FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s""",
                (self.app.database,),
            )[0]
            if exists is None:
                exists = mysql_swap.schema_exists(conn, self.app.database)
        except pymysql.Error as exc:
            raise RewindError(f"{where(self.app)}: {message(exc)}") from None
        self._target_bytes = int(size_bytes) if exists else 0
        found = f"database {self.app.database} does not exist yet; a rewind creates it"
        if exists:
            found = f"database {self.app.database} ({count} tables, {int(size_bytes):,} bytes)"
        return f"{version} at {where(self.app)}, {found}, user {user}"

    def interrupt(self) -> None:
        with self._guard:
            threads = list(self._loading_ids)
        if not threads:
            return
        try:
            killer = connect(self.app)
        except RewindError:
            return
        try:
            for thread in threads:
                with contextlib.suppress(pymysql.Error):  # the statement ended meanwhile
                    query(killer, f"KILL QUERY {int(thread)}")
        finally:
            killer.close()

    def cached_copies(self) -> list[CachedCopy]:
        admin = connect(self.app)
        try:
            return mysql_cache.copies(admin, self.app.database)
        finally:
            admin.close()

    def drop_cached(
        self, keys: Collection[str] | None, log: Callable[[str], None]
    ) -> list[CachedCopy]:
        wanted = None if keys is None else set(keys)
        return self._cache_work(lambda admin: drop_all(self.app, admin, wanted, log))

    def maintain(self, log: Callable[[str], None]) -> None:
        admin = connect(self.app)
        try:
            load = lambda source, schema, ctx: self._load(source, schema, ctx, admin)  # noqa: E731
            maintain(self.app, self.cache_index, admin, load, log)
        except pymysql.Error as exc:
            raise RewindError(f"{where(self.app)}: {message(exc)}") from None
        finally:
            admin.close()

    def rewind(self, source: Source, ctx: RewindContext) -> None:
        ctx.progress(phase="connecting")
        admin = connect(self.app)
        try:
            query(admin, f"SET SESSION lock_wait_timeout = {mysql_swap.LOCK_WAIT}")
            self._rewind(admin, source, ctx)
        except pymysql.Error as exc:
            ctx.check_cancelled()
            raise RewindError(f"{self.app.target}: {message(exc)}") from None
        finally:
            admin.close()

    def _rewind(self, admin: Connection, source: Source, ctx: RewindContext) -> None:
        names = Names.of(self.app.database)
        mysql_swap.get_lock(admin, names.target, ctx)
        present = mysql_cache.schema_options(admin, names.target, names.staging, names.old)
        found = mysql_cache.marked(admin, names.target, sizes=False)
        swaps = [m.name for m in found if m.kind == mysql_cache.SWAP]
        mysql_swap.recover(admin, names, ctx, present, swaps)
        if swaps:
            found = mysql_cache.marked(admin, names.target, sizes=False)
        ctx.progress(phase="preparing")
        ctx.log(f"checked target: {self._describe_target(admin, names.target in present)}")
        warm = MyWarm(self.app, self.cache_index, admin, found)
        stored = self._stored(admin, source, ctx)
        if stored is None:
            warm.start(source)
        template = warm.find() if stored is None else None
        spare = warm.ready_spare(template) if template is not None else None
        undo = warm.keeps_undo
        if template is not None and spare is not None and spare.journaled and spare.aside:
            plan = self._swap_spare(admin, names, warm, template, spare, present, source, ctx)
        else:
            plan = self._swap_staging(admin, names, warm, source, stored, template, spare,
                                      present, ctx)  # fmt: skip
        if undo and plan.undo_entry:
            ctx.log(f"kept the replaced state as the undo copy ({plan.old_schema}; "
                    "reel-tui --undo swaps it back)")  # fmt: skip
            if plan.set_aside:
                ctx.log(f"the previous undo copy ({plan.set_aside[0][2]}) is dropped in the "
                        "background")  # fmt: skip
        elif undo:
            self._keep_undo(admin, names, plan, source.name, ctx)
        if warm.enabled:
            warm.after_swap(names, source, template or stored, ctx, plan, undo=undo)
            if plan.old_schema:  # what the index should say now, known without a query
                warm.record_known(template, plan.undo_entry, self._target_bytes)
        self.maintenance_due = warm.enabled or undo

    def _swap_spare(
        self,
        admin: Connection,
        names: Names,
        warm: MyWarm,
        template: mysql_cache.Template,
        spare: mysql_cache.ReadySpare,
        present: dict[str, tuple[str, str]],
        source: Source,
        ctx: RewindContext,
    ) -> mysql_swap.Plan:
        """The warm rewind's short way: the ready spare is swapped in from where it is,
        its journal table being the swap's (no staging schema made, filled or dropped);
        in the same RENAME TABLE the replaced tables go to the undo copy (else to the
        spare's aside schema), the undo copy's previous tables to the aside schema; the
        spare and its aside schema are trash afterwards."""
        ctx.log(f"cached copy of this dump found ({template.name}): no load")
        mysql_cache.claim_spare(admin, spare)
        try:
            warm.touch(template)
            ctx.log(f"took its ready spare ({spare.name}): swapped in where it is")
            ctx.progress(phase="swapping")
            undo = warm.keeps_undo
            exists = names.target in present
            old_schema = spare.aside
            if undo:
                old_schema = warm.old_schema(names, undo=True, taken_undo=False) if exists else ""
            plan = mysql_swap.prepare(admin, names, template.database_options,
                                      template.definitions, new_tables=spare.tables,
                                      target_existed=exists, old_schema=old_schema,
                                      aside=lambda table: (spare.aside, table),
                                      staging=spare.name)  # fmt: skip
            plan.retire = [spare.aside, spare.name]  # the spare last: its marker finds the swap
            if undo and plan.old_schema:
                plan.undo_entry = self._undo_entry(plan, source.name)
            mysql_swap.swap(admin, names, plan, ctx, keep_old=True)
        except BaseException:
            self._unclaim(admin, spare, ctx)
            raise
        return plan

    def _unclaim(
        self, admin: Connection, spare: mysql_cache.ReadySpare, ctx: RewindContext
    ) -> None:
        """After a failure before the swap's rename: the spare is a ready spare again
        (nothing moved); after it, the swap's journal stays for the next run."""
        try:
            if not admin.open:
                return
            if mysql_swap.swap_begun(admin, spare.name):
                return  # the swap's own handling (or the next run) decides
            mysql_cache.mark(admin, spare.name, exists=True, **spare.entry)
        except pymysql.Error as exc:
            ctx.log(f"could not give {spare.name} back ({message(exc)}); the next run will",
                    "warning")  # fmt: skip

    def _swap_staging(
        self,
        admin: Connection,
        names: Names,
        warm: MyWarm,
        source: Source,
        stored: mysql_cache.Template | None,
        template: mysql_cache.Template | None,
        spare: mysql_cache.ReadySpare | None,
        present: dict[str, tuple[str, str]],
        ctx: RewindContext,
    ) -> mysql_swap.Plan:
        """The staging schema ``S`` is made and filled (a load, a copy, a snapshot, the
        undo copy, a spare made by an earlier version), then swapped in."""
        charset = present.get(names.target)
        options = f" CHARACTER SET {charset[0]} COLLATE {charset[1]}" if charset else ""
        undo = warm.keeps_undo
        query(admin, f"CREATE DATABASE {ident(names.staging)}{options}")
        try:
            mysql_swap.create_journal(admin, names.staging)
            mysql_swap.write_journal(admin, names.staging, mysql_swap.Plan())
            new_tables = None
            if stored is not None:
                self._stage_stored(admin, stored, names, ctx)
                new, database_options = stored.definitions, stored.database_options
            elif template is not None:
                if spare is not None:
                    warm.take_spare(names, spare)
                if warm.took is not None:
                    new_tables = template.tables
                warm.stage(names, template, ctx)
                new, database_options = template.definitions, template.database_options
            else:
                ctx.log(f"loading into staging schema {names.staging}")
                new, database_options = None, self._load(source, names.staging, ctx, admin)
            ctx.progress(phase="swapping")
            old_schema = ""
            if names.target in present:
                taken_undo = stored is not None and stored.key == UNDO_KEY
                old_schema = warm.old_schema(names, undo=undo, taken_undo=taken_undo)
            plan = mysql_swap.prepare(admin, names, database_options, new, new_tables=new_tables,
                                      target_existed=names.target in present,
                                      old_schema=old_schema,
                                      aside=lambda table: (warm.trash(), table))  # fmt: skip
            if undo and plan.old_schema:
                plan.undo_entry = self._undo_entry(plan, source.name)
            mysql_swap.swap(admin, names, plan, ctx, keep_old=warm.enabled or undo)
        except BaseException:
            if stored is not None and stored.key == UNDO_KEY:
                self._give_back(admin, stored, names, ctx)
            self._drop_staging(admin, names, ctx)
            warm.drop_aside()
            raise
        return plan

    def _undo_entry(self, plan: mysql_swap.Plan, what: str) -> dict[str, object]:
        """The undo copy's marker once the swap has moved the replaced tables into it."""
        now = time.time()
        return dict(kind="undo", target=self.app.database, key=UNDO_KEY, source=f"before {what}",
                    created=now, used=now, tables=plan.old_tables,
                    definitions=[asdict(d) for d in plan.old_definitions])  # fmt: skip

    def _stage_stored(
        self, admin: Connection, stored: mysql_cache.Template, names: Names, ctx: RewindContext
    ) -> None:
        """The undo copy's tables move into staging (one RENAME TABLE); a snapshot's are
        copied (it stays for next time)."""
        started = time.monotonic()
        if stored.key == UNDO_KEY:
            mysql_cache.take_undo(admin, stored, names.staging)
            ctx.log(f"took the undo copy's tables ({time.monotonic() - started:.2f} s)")
            return
        ctx.progress(phase="preparing", detail="copying the snapshot")
        mysql_cache.copy_tables(admin, stored.name, names.staging, stored.tables,
                                ctx.check_cancelled)  # fmt: skip
        ctx.log(f"copied {stored.name} in {time.monotonic() - started:.2f} s")

    def _give_back(
        self, admin: Connection, undo: mysql_cache.Template, names: Names, ctx: RewindContext
    ) -> None:
        """After a failed undo: the tables are the undo copy's again."""
        try:
            if admin.open and mysql_swap.schema_exists(admin, names.staging):
                if mysql_swap.swap_begun(admin, names.staging):
                    return  # the swap's own handling (or the next run) decides
                mysql_cache.give_back(admin, undo, names.staging)
                ctx.log(f"{undo.name} holds the undo copy again; {names.target} is unchanged")
        except pymysql.Error as exc:
            ctx.log(f"could not give the undo copy back: {message(exc)}", "warning")

    def _keep_undo(
        self, admin: Connection, names: Names, plan: mysql_swap.Plan, what: str,
        ctx: RewindContext,
    ) -> None:  # fmt: skip
        """The replaced tables and objects become the undo copy (else go to the trash)."""
        if not plan.target_existed:  # nothing was replaced
            with contextlib.suppress(pymysql.Error):
                mysql_swap.drop_schema(admin, names.old)
            return
        try:
            trash = mysql_cache.keep_undo(admin, names.target, names.old, plan.old_definitions,
                                          f"before {what}")  # fmt: skip
        except (pymysql.Error, mysql_cache.NotOurs) as exc:
            why = message(exc) if isinstance(exc, pymysql.Error) else str(exc)
            ctx.log(f"no undo copy kept: {why}", "warning")
            with contextlib.suppress(pymysql.Error):
                mysql_cache.trash_tables(admin, names.target, names.old)
            return
        ctx.log(f"kept the replaced state as the undo copy ({mysql_cache.undo_name(names.target)};"
                " reel-tui --undo swaps it back)")  # fmt: skip
        if trash is not None:
            ctx.log(f"the previous undo copy ({trash}) is dropped in the background")
        self._record_copies(admin)

    def _stored(
        self, admin: Connection, source: Source, ctx: RewindContext
    ) -> mysql_cache.Template | None:
        """The snapshot ``source`` names; None for a dump."""
        if source.stored is None:
            return None
        found = next((s for s in mysql_cache.snapshots(admin, self.app.database)
                      if s.key == source.stored), None)  # fmt: skip
        if found is None:
            raise RewindError(f"{source.name} is gone (deleted meanwhile?); nothing was changed")
        taken = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(found.created))
        ctx.log(f"swapping in {source.name} ({found.name}, taken {taken}): no load")
        return found

    # --- snapshots ---------------------------------------------------------------------

    def snapshot(self, name: str, ctx: RewindContext) -> None:
        ctx.progress(phase="connecting")
        admin = connect(self.app)
        with self._guard:
            self._loading_ids.append(admin.thread_id())  # a cancel stops the copy
        try:
            query(admin, f"SET SESSION lock_wait_timeout = {mysql_swap.LOCK_WAIT}")
            self._snapshot(admin, name, ctx)
        except pymysql.Error as exc:
            ctx.check_cancelled()
            raise RewindError(f"{self.app.target}: {message(exc)}") from None
        finally:
            with self._guard:
                self._loading_ids = []
            admin.close()

    def _snapshot(self, admin: Connection, name: str, ctx: RewindContext) -> None:
        target = self.app.database
        names = Names.of(target)
        mysql_swap.get_lock(admin, target, ctx)
        mysql_swap.recover(admin, names, ctx)
        ctx.progress(phase="preparing")
        if not mysql_swap.schema_exists(admin, target):
            raise RewindError(f"nothing to snapshot: database {target} does not exist",
                              code="refused")  # fmt: skip
        key = snapshot_key(name)
        if any(s.key == key for s in mysql_cache.snapshots(admin, target)):
            raise RewindError(f"a snapshot named {name!r} exists already: delete or rename "
                              "it first", code="refused")  # fmt: skip
        schema = mysql_cache.snapshot_schema(target)
        tables = mysql_cache.data_tables(admin, target)
        kept = definitions(admin, target, target, target)
        ctx.progress(phase="loading", detail=f"copying {target}")
        ctx.check_cancelled()
        started = time.monotonic()
        mysql_cache.create_schema(admin, schema, target)
        try:
            mysql_cache.mark(admin, schema, kind="building", target=target, key=key)
            mysql_cache.copy_tables(admin, target, schema, tables, ctx.check_cancelled,
                                    one_state=True)  # fmt: skip
            ctx.check_cancelled()
            now = time.time()
            mysql_cache.mark(admin, schema, exists=True, kind="snapshot", target=target, key=key,
                             source=f"@{name}", created=now, used=now, tables=tables,
                             definitions=[asdict(d) for d in kept])  # fmt: skip
        except BaseException:
            with contextlib.suppress(pymysql.Error):  # made just now: ours to drop
                mysql_swap.drop_schema(admin, schema)
            raise
        ctx.log(f"snapshot @{name} taken: {schema}, {len(tables)} tables, "
                f"{mysql_cache.schema_bytes(admin, schema):,} bytes, "
                f"{time.monotonic() - started:.2f} s")  # fmt: skip
        self._record_copies(admin)

    def rename_snapshot(self, old: str, new: str, log: Callable[[str], None]) -> CachedCopy:
        def rename(admin: Connection) -> CachedCopy:
            found = self._find_snapshot(admin, old)
            if any(s.key == snapshot_key(new)
                   for s in mysql_cache.snapshots(admin, self.app.database)):  # fmt: skip
                raise RewindError(f"a snapshot named {new!r} exists already", code="refused")
            marker = mysql_cache.read_marker(admin, found.name)
            assert marker is not None
            mysql_cache.mark(admin, found.name, exists=True, **{**marker.entry,
                             "key": snapshot_key(new), "source": f"@{new}"})  # fmt: skip
            log(f"renamed snapshot @{old} to @{new}")
            return _as_copy(found)

        return self._locked(rename)

    def delete_snapshot(self, name: str, log: Callable[[str], None]) -> CachedCopy:
        def delete(admin: Connection) -> CachedCopy:
            found = self._find_snapshot(admin, name)
            mysql_cache.drop_ours(admin, found.name, self.app.database)
            log(f"deleted snapshot @{name} ({found.name}, {found.bytes:,} bytes freed)")
            return _as_copy(found)

        return self._locked(delete)

    def _find_snapshot(self, admin: Connection, name: str) -> mysql_cache.Template:
        found = [s for s in mysql_cache.snapshots(admin, self.app.database) if s.key != UNDO_KEY]
        match = next((s for s in found if s.key == snapshot_key(name)), None)
        if match is None:
            listed = ", ".join(s.source for s in found) if found else "it has none"
            raise RewindError(f"no snapshot named @{name} of {self.app.target} ({listed})",
                              code="refused")  # fmt: skip
        return match

    def _connect_admin(self) -> Connection:
        return connect(self.app)

    def _server_copies(self, admin: Connection) -> list[CachedCopy]:
        return mysql_cache.copies(admin, self.app.database)

    def _target_locked(self, admin: Connection) -> AbstractContextManager[None]:
        return target_locked(self.app, admin)

    def _one_line(self, exc: Exception) -> str:
        return f"{where(self.app)}: {message(exc)}"  # type: ignore[arg-type]

    def _load(self, source: Source, staging: str, ctx: RewindContext, admin: Connection) -> str:
        from reel_tui.engines.mysql_loader import ScriptLoader
        from reel_tui.engines.mysql_parallel import Workers

        ctx.progress(phase="loading", bytes_read=0)
        started = time.monotonic()
        accounts = _accounts(admin)
        jobs = self.app.jobs or default_jobs()
        connections: list[Connection] = []
        workers: Workers | None = None
        finished = False
        try:
            for _ in range(1 + (jobs if jobs > 1 else 0)):
                conn = connect(self.app, staging)
                connections.append(conn)
                with self._guard:
                    self._loading_ids.append(conn.thread_id())
                query(conn, "SET SESSION foreign_key_checks = 0")
            if jobs > 1:
                workers = Workers(connections[1:], _describer(source))
                ctx.log(f"table data over {jobs} connections")
            loader = ScriptLoader(source, connections[0], ctx, staging, self.app.definers,
                                  accounts, workers, target=self.app.database)  # fmt: skip
            result = loader.run()
            finished = True
            ctx.log(f"load took {time.monotonic() - started:.1f} s")
            return result.database_options
        except pymysql.Error as exc:
            ctx.check_cancelled()
            raise RewindError(f"{source.path}: {message(exc)}") from None
        finally:
            if workers is not None:  # after a failure or a cancel, nothing may go on running
                workers.close(interrupt=None if finished else self.interrupt)
            with self._guard:
                self._loading_ids = []
            for conn in connections:
                conn.close()  # an uncommitted transaction left by the dump is rolled back

    def _drop_staging(self, admin: Connection, names: Names, ctx: RewindContext) -> None:
        """Best effort after a failure: the next run drops what this could not."""
        try:
            if admin.open and mysql_swap.schema_exists(admin, names.staging):
                if mysql_swap.swap_begun(admin, names.staging):
                    return  # the swap's own handling (or the next run) decides
                mysql_swap.drop_schema(admin, names.staging)
                mysql_swap.drop_schema(admin, names.old)
                ctx.log(f"dropped staging schema {names.staging}; {names.target} is unchanged")
        except pymysql.Error as exc:
            ctx.log(f"could not drop {names.staging} ({message(exc)}); the next run will",
                    "warning")  # fmt: skip


def _as_copy(snapshot: mysql_cache.Template) -> CachedCopy:
    return CachedCopy(snapshot.key, snapshot.source, snapshot.name, snapshot.bytes,
                      snapshot.created, snapshot.used)  # fmt: skip


def _describer(source: Source) -> Callable[[Sent, str], str]:
    """How a worker words a failed statement: the dump's file and line, as the loader does."""

    from reel_tui.engines.mysql_loader import first_line

    def describe(failed: Sent, server_message: str) -> str:
        return f"{source.path}:{failed.line}: {server_message} in: {first_line(failed.sql)}"

    return describe


def _accounts(conn: Connection) -> frozenset[tuple[str, str]]:
    """Accounts that exist here, for definers = "auto"; only the current one if unreadable."""
    current = str(query(conn, "SELECT CURRENT_USER()")[0][0])
    user, _, host = current.rpartition("@")
    found = {(user, host)}
    with contextlib.suppress(pymysql.Error):
        found |= {(str(u), str(h)) for u, h in query(conn, "SELECT User, Host FROM mysql.user")}
    return frozenset(found)
