"""SQLite, the embedded default: load into a temp file, then swap it in atomically.

How the promise "the target is exactly as it was, or fully rewound" is kept:

* The dump is loaded into a temp file beside the target. Errors, cancels and
  kills before the swap never touch the target; a temp file left by a kill is
  removed by the next run (which holds the same target lock).
* The swap copies the loaded file into the target with SQLite's online backup
  API in a single step (``pages=-1``): one write transaction on the target,
  under SQLite's own locking. Unlike renaming a file over the target, this is
  safe while the application holds the database open and in WAL mode: a
  renamed file would be paired with the old ``-wal`` / ``-shm`` files
  (SQLite's "mispaired hot journal" corruption) and open handles would keep
  writing into the unlinked old inode. A kill during the step leaves a hot
  journal that SQLite rolls back at the next open, so the old state returns.
* A target that does not exist yet gets the temp file renamed into place.

Warm rewinds (a cached copy of the dump, see :mod:`reel_tui.engines.sqlite_cache`)
rename a *ready spare* of the copy over the target instead, when nothing can make
the rename unsafe: the target is one regular file, no process has it or its
journals open (checked in ``/proc``), no ``-wal`` / ``-shm`` / ``-journal`` is
left after a checkpoint, and the spare can be given the target's mode and owner
(see :mod:`reel_tui.engines.sqlite_rename`). The replaced file is kept as the undo
copy by a hard link, not a copy, so the rewind costs a rename whatever the size;
``--undo`` swaps the two files back the same way. When a check fails the log says
which, and the backup-API copy above is used. The next spare is copied in the
background (:meth:`SqliteEngine.maintain`), as after a cold load.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import TypeVar

from reel_tui.cache import (
    CachedCopy,
    DigestTask,
    Retention,
    digest_task,
    key_after_load,
    key_now,
    snapshot_key,
)
from reel_tui.config import AppConfig
from reel_tui.dumpfile import DumpError, DumpReader
from reel_tui.engines import sqlite_rename
from reel_tui.engines.base import Engine, RewindCancelled, RewindContext, RewindError
from reel_tui.engines.sqlite_cache import SPARE, SqliteCache, fsync_path
from reel_tui.engines.sqlite_rename import NotSafe
from reel_tui.locks import TargetLock, process_alive
from reel_tui.sources import Source

BATCH_BYTES = 256 * 1024
"""Statements are run in batches of about this size: fast, and cancellable between them."""
SWAP_TIMEOUT = 30.0
"""How long the swap waits for the application to release its locks on the target."""
SWAP_ATTEMPT_WAIT = 0.05
"""How long one look for the target's lock waits; a cancel is honoured between looks."""
BACKUP_INSTEAD = "copying with the backup API instead of renaming"
"""How the log starts the line saying why a warm swap was not a rename."""
SPARE_LOCK_WAIT = 60.0
"""How long the background worker waits for the target's lock to name a spare it copied
(a cold load may hold it that long); it gives up then, and the next rewind copies."""
_TRANSACTION = re.compile(r"^\s*(BEGIN|COMMIT|END)(\s+TRANSACTION)?\s*;\s*$", re.I)
_ROLLBACK = re.compile(r"^\s*ROLLBACK\b", re.I)
_CREATE = re.compile(r"^\s*CREATE\s+(TABLE|INDEX|UNIQUE INDEX|VIEW|TRIGGER)\s+(IF NOT EXISTS\s+)?"
                     r"(\"[^\"]+\"|'[^']+'|`[^`]+`|\[[^\]]+\]|\S+?)[\s(]", re.I)  # fmt: skip
_INSERT = re.compile(r"^\s*INSERT\s+INTO\s+(\"[^\"]+\"|'[^']+'|`[^`]+`|\[[^\]]+\]|[^\s(]+)", re.I)
_UNWRITABLE_CODES = {10, 13}
"""SQLITE_IOERR and SQLITE_FULL: the temp file could not be written."""
_UNWRITABLE_TEXTS = {"database or disk is full", "disk I/O error",
                     "database disk image is malformed"}  # fmt: skip
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
_VALUES = re.compile(r"\s*VALUES\s*\(", re.I)


@functools.cache  # compiled on first use: 11 ms, and only rows that are not plain need it
def _one_row_pattern() -> re.Pattern[str]:
    """``(…);`` and a line end: one row of values that is safe to join with others into a
    multi-row INSERT. Only literals qualify (numbers, strings, NULL, blobs, and the
    ``replace(…, char(10))`` calls ``sqlite3 .dump`` writes for line ends, nested up to
    three deep): SQLite computes all the rows of a multi-row INSERT before inserting
    the first, so a subquery (``(SELECT max(id) FROM t)``), a variable or any other
    expression could see other rows than it would one statement at a time. A string
    is followed by no quote, so ``'a''b'`` reads one way only, as SQLite reads it, and
    a row that does not match fails fast whatever it holds."""
    string = r"'[^']*(?:''[^']*)*'(?!')"
    number = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
    literal = rf"(?:NULL|{number}|{string}|[xX]'[0-9a-fA-F]*')"
    value = literal
    for _ in range(3):
        value = rf"(?:{literal}|(?:replace|char|unistr)\(\s*{value}(?:\s*,\s*{value})*\s*\))"
    return re.compile(rf"\(\s*{value}(?:\s*,\s*{value})*\s*\);\n")


class SqliteEngine(Engine):
    """Rewinds a SQLite database file from a ``sqlite3 .dump`` script or a database file."""

    driver = "sqlite"
    accepts = frozenset({"sqlite", "sql"})
    accepts_containers = frozenset({"sql", "sqlite-db"})
    takes_snapshots = True
    keeps_undo = True

    def __init__(self, app: AppConfig) -> None:
        super().__init__(app)
        self.target = Path(self.app.database)
        self._loading: sqlite3.Connection | None = None
        self._cache = SqliteCache(self.target)

    def is_local(self) -> bool:
        return True

    def check(self, timeout: float = 2.0) -> str:
        folder = self.target.parent
        if not folder.is_dir():
            raise RewindError(f"folder of the database file does not exist: {folder}")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise RewindError(f"cannot write in the database's folder: {folder}")
        if not self.target.exists():
            return f"{self.target} does not exist yet; a rewind creates it"
        try:
            with closing(
                sqlite3.connect(f"{self.target.as_uri()}?mode=ro", uri=True, timeout=timeout)
            ) as db:
                tables = db.execute(
                    "SELECT count(*) FROM sqlite_schema WHERE type = 'table'"
                ).fetchone()[0]
                mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise _target_error(self.target, exc) from None
        size = self.target.stat().st_size
        return (
            f"SQLite {sqlite3.sqlite_version} database {self.target}: "
            f"{_count(tables, 'table')}, {size:,} bytes, journal mode {mode}"
        )

    def _lock(self) -> TargetLock:
        return TargetLock(self.target.parent, "", name=f".{self.target.name}.reel.lock")

    def interrupt(self) -> None:
        loading = self._loading
        if loading is not None:
            with suppress(sqlite3.ProgrammingError):  # closed meanwhile: nothing to stop
                loading.interrupt()

    def rewind(self, source: Source, ctx: RewindContext) -> None:
        with self._file_locked(ctx):
            self._rewind_locked(source, ctx)

    @contextmanager
    def _file_locked(self, ctx: RewindContext) -> Iterator[None]:
        """Hold the lock beside the file, not only the one in this user's state directory:
        another user's cron, or a run with another state_dir, rewinds the same file."""
        lock = self._lock()
        if not lock.try_acquire():
            ctx.progress(phase="waiting", detail=f"waiting for {lock.holder()}")
            ctx.log(f"waiting for another rewind of {self.target} ({lock.holder()})")
            lock.acquire(None, _CancelEvent(ctx))
        try:
            yield
        finally:
            lock.release()

    def _rewind_locked(self, source: Source, ctx: RewindContext) -> None:
        self._remove_leftovers(ctx)
        ctx.progress(phase="preparing", detail="")
        ctx.log(f"checked target: {_while_busy(ctx, self.check)}")
        page_size, journal_mode = _while_busy(ctx, self._target_settings)
        if source.stored is not None:
            self._rewind_stored(source, (page_size, journal_mode), ctx)
            return
        digest = digest_task(self.cache_index, self.app, source.path,
                             lambda: bool(self._cache.copies()))  # fmt: skip
        key = key_now(self.app, digest)
        cached = self._cache.find(key, page_size) if key is not None else None
        if key is not None and cached is not None:
            self._rewind_warm((key, cached), (page_size, journal_mode), ctx, source)
            return
        temp = self.target.with_name(
            f".{self.target.name}.reel-{os.getpid()}-{os.urandom(4).hex()}.tmp"
        )
        try:
            self._load(source, temp, page_size, ctx)
            # a new target gets the temp file itself (a link): the copy must be another file
            kept = self._keep(temp, source, digest, page_size, journal_mode is not None, ctx)
            ctx.progress(phase="swapping")
            if journal_mode is None:
                self._create(temp, ctx)
            else:
                self._swap_keeping_undo(temp, source.name, page_size, ctx)
        finally:
            for leftover in (temp, Path(f"{temp}-journal")):
                leftover.unlink(missing_ok=True)
        if kept is not None:
            self._evict(kept, ctx)
            self.maintenance_due = True  # its spare, so the first warm rewind is a rename

    # --- the cache of loaded copies (see reel_tui.engines.sqlite_cache) -------------

    def _rewind_warm(
        self, copy: tuple[str, Path], settings: tuple[int, str | None], ctx: RewindContext,
        source: Source,
    ) -> None:  # fmt: skip
        """Swap a cached copy in: no load. The copy is only read, so it stays for next time."""
        key, path = copy
        page_size, journal_mode = settings
        ctx.log(f"cached copy of this dump found ({path.name}): swapping it in, no load")
        ctx.progress(phase="swapping")
        spare = self._cache.spare(key) if source.stored is None else None
        if source.stored is None:
            self.maintenance_due = True  # the spare this uses, or the one not ready yet
        if journal_mode is None:
            if spare is None or not self._create_from_spare(spare, ctx):
                self._create_from_copy(path, ctx)
        else:
            if spare is None and source.stored is None:
                ctx.log(f"no spare was ready (one is made in the background): {BACKUP_INSTEAD}")
            if spare is None or not self._swap_by_rename(spare, source.name, settings, ctx):
                self._swap_keeping_undo(path, source.name, page_size, ctx)
        self._cache.touch(key)
        self._evict(key, ctx)

    def _create_from_copy(self, path: Path, ctx: RewindContext) -> None:
        temp = self.target.with_name(
            f".{self.target.name}.reel-{os.getpid()}-{os.urandom(4).hex()}.tmp"
        )
        try:
            shutil.copyfile(path, temp)
            self._create(temp, ctx)
        finally:
            temp.unlink(missing_ok=True)

    def _create_from_spare(self, spare: Path, ctx: RewindContext) -> bool:
        """A first rewind from a ready spare: link it in as the target, never over a file
        that appeared meanwhile (False then: the caller swaps into it)."""
        try:
            with ctx.swap():
                os.link(spare, self.target)
                spare.unlink()
                fsync_path(self.target.parent)
        except FileExistsError:
            return False
        ctx.log(f"took its ready spare: created {self.target} (a rename, no copy)")
        return True

    def _swap_by_rename(
        self, incoming: Path, replaced_by: str, settings: tuple[int, str | None],
        ctx: RewindContext,
    ) -> bool:  # fmt: skip
        """The fast warm swap (see :mod:`reel_tui.engines.sqlite_rename`): rename
        ``incoming`` over the target, the replaced file kept as the undo copy by a link.
        False, with the reason in the log, when it is not safe: the caller copies."""
        page_size, journal_mode = settings
        try:
            real, info = sqlite_rename.real_target(self.target, self._cache.folder)
            sqlite_rename.settle_journals(real)
            sqlite_rename.match_target(incoming, real, info, journal_mode == "wal")
            found = sqlite_rename.scan(real, info)
            if found.holders:
                raise NotSafe(f"held open by {', '.join(found.holders)}")
            sqlite_rename.no_journals(real)
        except (NotSafe, OSError) as exc:
            ctx.log(f"{BACKUP_INSTEAD}: {exc}")
            return False
        others = (f"; {found.unreadable} processes of other users could not be checked"
                  if found.unreadable else "")  # fmt: skip
        ctx.log(f"no other process has {real.name} open ({found.processes} processes "
                f"checked in {found.seconds * 1000:.1f} ms{others}): renaming the new "
                "file into place")  # fmt: skip
        keeps_undo = self.app.undo and Retention.of(self.app).enabled
        partial: Path | None = None
        self.maintenance_due = True  # the next spare; deleting what is set aside
        with ctx.swap():
            if keeps_undo:
                try:
                    partial = self._cache.link_undo(real)
                except OSError as exc:
                    ctx.log(f"no undo copy: cannot link {real.name}: {exc}", "warning")
            else:
                with suppress(OSError):  # else the rename frees its blocks itself
                    self._cache.link_trash(real)
            try:
                sqlite_rename.rename_in(incoming, real)
            except BaseException:
                if partial is not None:
                    partial.unlink(missing_ok=True)
                raise
        took = "took its ready spare: " if incoming.name.endswith(SPARE) else ""
        ctx.log(f"{took}renamed the new content into {real} (no copy; the old file is "
                f"{'the undo copy' if partial is not None else 'gone'})")  # fmt: skip
        if partial is not None:
            self._commit_undo(partial, replaced_by, page_size, ctx)
        return True

    def _rewind_stored(
        self, source: Source, settings: tuple[int, str | None], ctx: RewindContext
    ) -> None:
        """Swap a snapshot or the undo copy in, as a cached copy: no load."""
        assert source.stored is not None
        copy = self._cache.stored(source.stored)
        if copy is None:
            raise RewindError(f"{source.name} is gone (deleted meanwhile?); nothing was changed")
        taken = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(copy.created))
        ctx.log(f"swapping in {source.name} ({Path(copy.name).name}, {copy.source}, "
                f"taken {taken}): no load")  # fmt: skip
        path = Path(copy.name)
        if copy.kind == "undo" and settings[1] is not None:
            # the undo copy and the target trade places: the target becomes the next undo
            ctx.progress(phase="swapping")
            if self._swap_by_rename(path, source.name, settings, ctx):
                self._record_index()
                return
        elif copy.kind == "snapshot" and settings[1] is not None:
            ctx.progress(phase="swapping")
            if self._swap_copy_by_rename(path, source.name, settings, ctx):
                self._cache.touch(copy.key)
                self._record_index()
                return
        self._rewind_warm((copy.key, path), settings, ctx, source)

    def _swap_copy_by_rename(
        self, path: Path, replaced_by: str, settings: tuple[int, str | None],
        ctx: RewindContext,
    ) -> bool:  # fmt: skip
        """A snapshot stays, so it has no spare: a plain file copy of it (copy_file_range,
        in the kernel; a reflink where the file system has them) is renamed in instead,
        which still spares the page-by-page backup copy and the undo copy."""
        incoming = self._cache.folder / f"incoming-{os.getpid()}.tmp"
        try:
            try:
                shutil.copyfile(path, incoming)
                fsync_path(incoming)
            except OSError as exc:
                ctx.log(f"{BACKUP_INSTEAD}: cannot copy {path.name}: {exc}")
                return False
            return self._swap_by_rename(incoming, replaced_by, settings, ctx)
        finally:
            incoming.unlink(missing_ok=True)

    def _swap_keeping_undo(
        self, path: Path, replaced_by: str, page_size: int, ctx: RewindContext
    ) -> None:
        """Swap ``path`` in; the state it replaces becomes the undo copy, unless the app
        keeps none. Writes the application makes between the copy and the swap (the time
        the copy takes) are in neither."""
        partial = self._begin_undo(ctx)
        try:
            self._swap(path, ctx)
        except BaseException:
            if partial is not None:
                partial.unlink(missing_ok=True)
            raise
        if partial is not None:
            self._commit_undo(partial, replaced_by, page_size, ctx)

    def _commit_undo(
        self, partial: Path, replaced_by: str, page_size: int, ctx: RewindContext
    ) -> None:
        self.maintenance_due = True  # the undo copy it replaces is deleted afterwards
        try:
            self._cache.commit_undo(partial, f"before {replaced_by}", page_size)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            ctx.log(f"could not keep the undo copy: {exc}", "warning")
            return
        ctx.log("kept the replaced state as the undo copy (reel-tui --undo swaps it back)")

    def _begin_undo(self, ctx: RewindContext) -> Path | None:
        """Copy the target before the swap; None when the app keeps no undo copy."""
        if not self.app.undo or not Retention.of(self.app).enabled:
            return None
        ctx.check_cancelled()
        ctx.progress(detail="copying the current state for undo")
        started = time.monotonic()
        try:
            partial = self._cache.begin_undo(self.target)
        except (sqlite3.Error, OSError) as exc:
            ctx.log(f"no undo copy: cannot copy {self.target}: {exc}", "warning")
            return None
        ctx.log(f"copied the current state for undo ({partial.stat().st_size:,} bytes, "
                f"{time.monotonic() - started:.2f} s; undo = false skips this)")  # fmt: skip
        return partial

    # --- snapshots ---------------------------------------------------------------------

    def snapshot(self, name: str, ctx: RewindContext) -> None:
        with self._file_locked(ctx):
            self._snapshot_locked(name, ctx)

    def _snapshot_locked(self, name: str, ctx: RewindContext) -> None:
        self._remove_leftovers(ctx)
        ctx.progress(phase="preparing", detail="")
        if not self.target.exists():
            raise RewindError(f"nothing to snapshot: {self.target} does not exist yet",
                              code="refused")  # fmt: skip
        if self._cache.stored(snapshot_key(name)) is not None:
            raise RewindError(f"a snapshot named {name!r} exists already: delete or rename "
                              "it first", code="refused")  # fmt: skip
        page_size, _ = _while_busy(ctx, self._target_settings)
        size = self.target.stat().st_size
        ctx.progress(phase="loading", bytes_read=0, detail=f"copying {self.target.name}")
        started = time.monotonic()

        def step(share: float) -> None:
            ctx.check_cancelled()
            ctx.progress(bytes_read=int(size * share))

        try:
            data = self._cache.take_snapshot(self.target, name, page_size, step)
        except sqlite3.Error as exc:
            ctx.check_cancelled()
            raise RewindError(f"cannot copy {self.target}: {exc}") from None
        except OSError as exc:
            raise RewindError(f"cannot write the snapshot in {self._cache.folder}: "
                              f"{exc.strerror or exc}") from None  # fmt: skip
        ctx.log(f"snapshot @{name} taken: {self._cache.folder.name}/{data.name}, "
                f"{data.stat().st_size:,} bytes, {time.monotonic() - started:.2f} s")  # fmt: skip
        self._record_index()

    def rename_snapshot(self, old: str, new: str, log: Callable[[str], None]) -> CachedCopy:
        with self._locked():
            copy = self._snapshot(old)
            if self._cache.stored(snapshot_key(new)) is not None:
                raise RewindError(f"a snapshot named {new!r} exists already", code="refused")
            self._cache.rename_snapshot(copy, new)
            log(f"renamed snapshot @{old} to @{new}")
            self._record_index()
            return copy

    def delete_snapshot(self, name: str, log: Callable[[str], None]) -> CachedCopy:
        with self._locked():
            copy = self._snapshot(name)
            self._cache.drop(copy)
            log(f"deleted snapshot @{name} ({copy.bytes:,} bytes freed)")
            self._record_index()
            return copy

    def _snapshot(self, name: str) -> CachedCopy:
        copy = self._cache.stored(snapshot_key(name))
        if copy is None:
            known = [c.source for c in self._cache.copies() if c.kind == "snapshot"]
            listed = ", ".join(known) if known else "it has none"
            raise RewindError(f"no snapshot named @{name} of {self.target} ({listed})",
                              code="refused")  # fmt: skip
        return copy

    @contextmanager
    def _locked(self) -> Iterator[None]:
        lock = self._lock()
        lock.acquire(None, threading.Event())
        try:
            yield
        finally:
            lock.release()

    def _record_index(self) -> None:
        if self.cache_index is not None:
            self.cache_index.record_copies(self.app.target_key, self._cache.copies())

    def _keep(
        self,
        temp: Path,
        source: Source,
        digest: DigestTask | None,
        page_size: int,
        link: bool,
        ctx: RewindContext,
    ) -> str | None:
        """Keep the loaded file as a cached copy, unless the dump changed while loading;
        the copy's key, or None."""
        kept_key = key_after_load(self.app, digest, ctx)
        if kept_key is None:
            return None
        key = kept_key[0]
        try:
            kept = self._cache.keep(temp, key, source.name, page_size, link=link)
        except OSError as exc:
            ctx.log(f"could not keep a cached copy: {exc}", "warning")
            return None
        ctx.log(f"kept a cached copy for the next rewind of this dump ({kept.parent.name}/"
                f"{kept.name})")  # fmt: skip
        return key

    def _evict(self, keep: str, ctx: RewindContext) -> None:
        for line in self._cache.evict(Retention.of(self.app), keep):
            ctx.log(line)
        self._record_index()

    def cached_copies(self) -> list[CachedCopy]:
        return self._cache.copies()

    def maintain(self, log: Callable[[str], None]) -> None:
        """Make the ready spare of the most recently used cached copy, if it has none: a
        file copy to a temp name, named as the spare under the target's lock (a rewind
        may be evicting the copy), then evict over the limits the spare may now pass.
        Before that, delete the files swaps set aside instead of freeing them while the
        user waited. One worker per target: another one running means the work is in hand."""
        working = self._cache.maintenance_lock()
        if not working.try_acquire():
            log(f"another background worker is preparing spares of {self.target.name}")
            return
        try:
            freed = self._cache.drop_trash()
            if freed:
                log(f"deleted the replaced files set aside ({freed:,} bytes)")
            copy = self._cache.wanting_spare()
            if copy is not None:
                self._make_spare(copy, log)
        finally:
            working.release()

    def _make_spare(self, copy: CachedCopy, log: Callable[[str], None]) -> None:
        started = time.monotonic()
        temp = self._cache.copy_spare(copy)
        try:
            lock = self._lock()
            lock.acquire(SPARE_LOCK_WAIT, threading.Event())
            try:
                spare = self._cache.commit_spare(temp, copy.key)
                if spare is None:
                    log(f"the cached copy of {copy.source} went while its spare was copied")
                    return
                log(f"spare ready: the next rewind of {copy.source} renames {spare.name} "
                    f"into place ({spare.stat().st_size:,} bytes copied in "
                    f"{time.monotonic() - started:.2f} s)")  # fmt: skip
                for line in self._cache.evict(Retention.of(self.app), copy.key):
                    log(line)
                self._record_index()
            finally:
                lock.release()
        finally:
            temp.unlink(missing_ok=True)

    def drop_cached(
        self, keys: Collection[str] | None, log: Callable[[str], None]
    ) -> list[CachedCopy]:
        with self._locked():  # all: cached copies and the undo copy; snapshots stay
            dropped = [c for c in self._cache.copies() if _dropped_by(c, keys)]
            for copy in dropped:
                self._cache.drop(copy)
                log(f"dropped the {_copy_kind(copy)} of {copy.source} ({copy.name})")
            self._cache.drop_trash()
            self._record_index()
            return dropped

    def _create(self, temp: Path, ctx: RewindContext) -> None:
        """A first rewind: link the loaded file into place, never over a file that
        appeared meanwhile (the application may have created it: then swap into it)."""
        fsync_path(temp)
        try:
            with ctx.swap():
                os.link(temp, self.target)
                fsync_path(self.target.parent)
        except FileExistsError:
            self._swap(temp, ctx)
            return
        ctx.log(f"created {self.target}")

    def _target_settings(self, timeout: float = 1.0) -> tuple[int, str | None]:
        """Page size and journal mode of the existing target; (4096, None) if none."""
        if not self.target.exists():
            return 4096, None
        try:
            with closing(sqlite3.connect(self.target, timeout=timeout)) as db:
                page_size = db.execute("PRAGMA page_size").fetchone()[0]
                mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise _target_error(self.target, exc) from None
        return page_size, mode

    def _load(self, source: Source, temp: Path, page_size: int, ctx: RewindContext) -> None:
        ctx.progress(phase="loading", bytes_read=0)
        db = sqlite3.connect(temp, isolation_level=None, check_same_thread=False)
        self._loading = db
        try:
            db.execute(f"PRAGMA page_size = {int(page_size)}")
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            if source.format.container == "sqlite-db":
                self._copy_database(source, db, ctx)
                # the copy brought the source's header: a WAL source would make the
                # temp (and, through the swap, the target) WAL and fix its page size
                db.execute("PRAGMA journal_mode = OFF")
            else:
                _ScriptLoader(source, db, ctx).run()
            if db.execute("PRAGMA page_size").fetchone()[0] != page_size:
                db.execute(f"PRAGMA page_size = {int(page_size)}")
                db.execute("VACUUM")
        except sqlite3.OperationalError as exc:
            ctx.check_cancelled()
            raise RewindError(f"{source.path}: {exc}") from None
        finally:
            self._loading = None
            db.close()

    def _copy_database(self, source: Source, db: sqlite3.Connection, ctx: RewindContext) -> None:
        ctx.log(f"copying SQLite database file {source.path}")
        uri = f"{source.path.resolve().as_uri()}?mode=ro"
        try:
            with closing(sqlite3.connect(uri, uri=True)) as src:

                def report(status: int, remaining: int, total: int) -> None:
                    ctx.check_cancelled()
                    done = total - remaining
                    ctx.progress(bytes_read=source.size * done // max(total, 1))

                src.backup(db, pages=1024, progress=report)
        except sqlite3.DatabaseError as exc:
            raise RewindError(f"{source.path}: not a usable SQLite database: {exc}") from None
        ctx.progress(bytes_read=source.size)

    def _swap(self, temp: Path, ctx: RewindContext) -> None:
        """Copy the loaded file into the target in one backup step, waiting while busy.

        The wait for an application's lock is outside ``ctx.swap()``, so a cancel stops it
        at once; only a step that found the lock free is a swap (and finishes)."""
        deadline = time.monotonic() + SWAP_TIMEOUT
        waited = False
        while True:
            # read-only: a temp file that vanished must not become an empty database;
            # immutable: nobody else writes it (we hold the lock), and a WAL-mode file (an
            # undo copy that was the target) then needs no -shm beside it
            with (
                closing(sqlite3.connect(f"{temp.as_uri()}?mode=ro&immutable=1", uri=True)) as src,
                closing(sqlite3.connect(self.target, timeout=SWAP_ATTEMPT_WAIT)) as dst,
            ):
                try:
                    if _lock_is_free(dst):
                        dst.execute("PRAGMA busy_timeout = 0")
                        with ctx.swap():
                            src.backup(dst, pages=-1, progress=_raise_when_busy)
                        ctx.log(f"swapped the new content into {self.target}")
                        return
                except _TargetBusy:
                    pass
                except sqlite3.DatabaseError as exc:
                    raise RewindError(f"swap into {self.target} failed: {exc}") from None
            if not waited:
                ctx.log(
                    "waiting: another connection holds a lock on the target "
                    "(an open transaction in the application?)",
                    "warning",
                )
                waited = True
            if time.monotonic() > deadline:
                raise RewindError(
                    f"{self.target} stayed locked by another connection for "
                    f"{SWAP_TIMEOUT:.0f} s; nothing was changed",
                    code="busy",
                )
            ctx.check_cancelled()
            time.sleep(0.05)

    def _remove_leftovers(self, ctx: RewindContext) -> None:
        """Delete temp files of interrupted runs: those whose process is gone."""
        for leftover in self._cache.remove_leftovers():
            what = ("left by an interrupted earlier run" if leftover.name.endswith(".tmp")
                    else "an unfinished cached copy")  # fmt: skip
            ctx.log(f"removed {leftover.name}, {what}", "warning")
        pattern = f".{self.target.name}.reel-*.tmp*"
        for leftover in sorted(self.target.parent.glob(pattern)):
            pid = leftover.name[len(self.target.name) + 7 :].split("-", 1)[0]
            if pid.isdigit() and process_alive(int(pid)):
                continue
            leftover.unlink(missing_ok=True)
            ctx.log(f"removed {leftover.name}, left by an interrupted earlier run", "warning")


def _dropped_by(copy: CachedCopy, keys: Collection[str] | None) -> bool:
    """Whether clearing ``keys`` (None: the whole cache) drops ``copy``: a snapshot only
    when named, since only its user deletes it."""
    return copy.key in keys if keys is not None else copy.kind != "snapshot"


def _copy_kind(copy: CachedCopy) -> str:
    return {"cache": "cached copy", "undo": "undo copy", "snapshot": "snapshot"}[copy.kind]


def _target_error(target: Path, exc: sqlite3.DatabaseError) -> RewindError:
    """A locked target is "busy" (try again later); anything else means it is not SQLite."""
    if "locked" in str(exc) or "busy" in str(exc):
        return RewindError(
            f"{target} is locked by another connection (an open transaction in the "
            f"application?); nothing was changed",
            code="busy",
        )
    return RewindError(f"{target} is not a usable SQLite database: {exc}")


T = TypeVar("T")


def _while_busy(ctx: RewindContext, read: Callable[..., T]) -> T:
    """``read(timeout=1)`` again while the target is locked, up to SWAP_TIMEOUT,
    staying cancellable: an application's transaction ends, usually soon."""
    deadline = time.monotonic() + SWAP_TIMEOUT
    while True:
        try:
            return read(timeout=1.0)
        except RewindError as exc:
            if exc.code != "busy" or time.monotonic() > deadline:
                raise
        ctx.check_cancelled()


class _CancelEvent:
    """The job's cancel, shaped like the threading.Event that TargetLock waits on."""

    def __init__(self, ctx: RewindContext) -> None:
        self.ctx = ctx

    def wait(self, timeout: float) -> bool:
        time.sleep(timeout)
        try:
            self.ctx.check_cancelled()
        except RewindCancelled:
            return True
        return False


class _TargetBusy(Exception):
    """The backup step found the target locked; nothing was copied."""


def _lock_is_free(db: sqlite3.Connection) -> bool:
    """Whether ``db`` could take the exclusive lock (within its busy timeout): taken and
    given back at once, it makes the backup step that follows unlikely to find it busy.
    Waiting here rather than in that step keeps the wait out of ``ctx.swap()``."""
    try:
        db.execute("BEGIN EXCLUSIVE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return False
        raise
    db.rollback()
    return True


def _raise_when_busy(status: int, remaining: int, total: int) -> None:
    if status in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        raise _TargetBusy


_Statement = tuple[int, str, int]
"""A statement's first line, its text, and where its row of values starts if it is an
``INSERT INTO t VALUES(…);`` that may join others of its table (else 0)."""
_LITERAL_CHARS = str.maketrans("", "", "0123456789+-., \t\n()NULXxeE")
"""What plain rows of literals hold outside their strings (numbers, NULL, X'…' blobs)."""


def _script(statements: list[_Statement]) -> str:
    """The batch as one script, each run of one-row INSERTs of a table that hold only
    literals as one multi-row INSERT: SQLite runs that in about half the time of the
    separate statements, and in one step, so the loader's thread holds the GIL far
    less often meanwhile. Rows with anything else (a subquery, a function, a variable)
    stay apart: SQLite computes all the rows of a multi-row INSERT before inserting
    the first, so they could see other rows than one statement at a time would."""
    parts: list[str] = []
    at, count = 0, len(statements)
    while at < count:
        _, text, cut = statements[at]
        at += 1
        if not cut:
            parts.append(text)
            continue
        prefix, rows = text[:cut], [text]
        while at < count and statements[at][2] == cut and statements[at][1].startswith(prefix):
            rows.append(statements[at][1])
            at += 1
        parts.append(_joined(prefix, rows) if len(rows) > 1 else text)
    return "".join(parts)


def _joined(prefix: str, rows: list[str]) -> str:
    """Rows ``prefix(…);`` and a line end, as multi-row INSERTs where that means the same."""
    cut = len(prefix)
    values = [row[cut:-2] for row in rows]
    outside = "".join("".join(values).split("'")[::2])  # complete statements: quotes pair up
    if (outside.count("(") == len(values) == outside.count(")")  # one flat tuple each
            and "--" not in outside and not outside.translate(_LITERAL_CHARS)):  # fmt: skip
        return f"{prefix}{','.join(values)};\n"
    parts: list[str] = []  # some rows hold more than plain literals: look at each
    run: list[str] = []
    for row, value in zip(rows, values, strict=True):
        if _one_row_pattern().fullmatch(row, cut):
            run.append(value)
            continue
        if run:
            parts.append(f"{prefix}{','.join(run)};\n")
            run = []
        parts.append(row)
    if run:
        parts.append(f"{prefix}{','.join(run)};\n")
    return "".join(parts)


class _ScriptLoader:
    """Runs a SQL script into a fresh database, in batches, tracking lines for errors.

    Reading and splitting the dump is Python's work and running a batch is SQLite's,
    which releases the GIL: each batch runs on a thread of its own while the next one
    is read, so the two overlap (at most two batches are in memory). Errors, progress
    and the replay that names a failing line all happen on the loader's thread, once
    the batch's thread is joined.
    """

    def __init__(self, source: Source, db: sqlite3.Connection, ctx: RewindContext) -> None:
        self.source = source
        self.db = db
        self.ctx = ctx
        self.batch: list[_Statement] = []
        self.batch_bytes = 0
        self.statements = 0
        self.table: str | None = None
        self.rows = 0
        self.insert_prefix = "\0"
        """How the current table's INSERTs start: the fast path skips the regexes."""
        self.values_prefix: str | None = None
        """``INSERT INTO t VALUES(`` as the current table's INSERTs write it, if they do:
        runs of such one-row INSERTs are sent as one multi-row INSERT (see _script)."""
        self.open_transaction: int | None = None
        """The line of the dump's own BEGIN while its COMMIT has not come."""
        self.running: _Batch | None = None

    def run(self) -> None:
        try:
            self._read()
        except BaseException:
            # the batch still running comes first in the dump: its own error wins, and
            # its thread must be done before the connection is closed
            self.finish_running()
            raise

    def _read(self) -> None:
        ctx = self.ctx
        ctx.log(f"loading {self.source.path} ({self.source.format.describe()})")
        try:
            with DumpReader(self.source.path, self.source.format) as reader:
                pending: list[str] = []
                start = 0
                complete = sqlite3.complete_statement
                while lines := reader.read_lines(BATCH_BYTES):  # one read per 256 KB
                    number = reader.line_number - len(lines)
                    for line in lines:
                        number += 1
                        if not pending:
                            if not line.strip():
                                continue
                            start = number
                            if line.endswith(";\n") and complete(line):
                                self.add(start, line)  # the usual case: one line, one statement
                                if self.batch_bytes >= BATCH_BYTES:
                                    self.flush(reader.bytes_read)
                                continue
                        pending.append(line)
                        if ";" in line:
                            text = "".join(pending)
                            if complete(text):
                                self.add(start, text)
                                pending = []
                                if self.batch_bytes >= BATCH_BYTES:
                                    self.flush(reader.bytes_read)
                self.flush(reader.bytes_read)
                self.finish_running()
                rest = "".join(pending)
                if _COMMENTS.sub("", rest).strip():
                    raise RewindError(
                        f"{self.source.path}:{start}: the dump ends inside a statement "
                        f"(truncated file?): {_first_line(rest)}"
                    )
                if self.open_transaction is not None:  # the sqlite3 shell would roll it back
                    raise RewindError(
                        f"{self.source.path}:{self.open_transaction}: the dump's transaction "
                        "has no COMMIT: it was cut short (truncated file?)"
                    )
        except DumpError as exc:
            raise RewindError(str(exc)) from None
        if self.statements == 0:
            raise RewindError(f"{self.source.path}: the dump holds no SQL statements")
        self.note_table(None)
        ctx.log(f"loaded {_count(self.statements, 'statement')}")

    def add(self, line: int, text: str) -> None:
        if text.startswith(self.insert_prefix):
            self.rows += 1
            self.add_row(line, text)
            return
        transaction = _TRANSACTION.match(text)
        if transaction:
            begins = transaction.group(1).upper() == "BEGIN"
            self.open_transaction = line if begins else None
            return
        if _ROLLBACK.match(text):
            raise RewindError(
                f"{self.source.path}:{line}: the dump ends with ROLLBACK: it was written "
                "by a `sqlite3 .dump` that met errors, so it is incomplete"
            )
        insert = _INSERT.match(text)
        if insert:
            self.note_table(insert.group(1))
            self.insert_prefix = text[: insert.end() + 1]  # with the character after the name
            values = _VALUES.match(text, insert.end())
            self.values_prefix = text[: values.end()] if values else None
            self.rows += 1
            self.add_row(line, text)
            return
        created = _CREATE.match(text)
        if created:
            self.note_table(None)
            self.ctx.log(f"schema: {created.group(1).lower()} {_unquote(created.group(3))}")
        self.batch.append((line, text, 0))
        self.batch_bytes += len(text)

    def add_row(self, line: int, text: str) -> None:
        """An INSERT of the current table; noted as one that may join others (see _script)."""
        values, cut = self.values_prefix, 0
        if values is not None and text.startswith(values) and text.endswith(");\n"):
            cut = len(values) - 1
        self.batch.append((line, text, cut))
        self.batch_bytes += len(text)

    def note_table(self, table: str | None) -> None:
        """Log a table's row count when the dump moves on from it."""
        if table == self.table:
            return
        if self.table is not None:
            self.ctx.log(f"data: {_unquote(self.table)} {_count(self.rows, 'row')}")
        self.table, self.rows = table, 0
        self.insert_prefix, self.values_prefix = "\0", None
        if table is not None:
            self.ctx.progress(detail=f"data: {_unquote(table)}")

    def flush(self, bytes_read: int) -> None:
        """Start running the batch read so far, once the one before it has run."""
        self.ctx.check_cancelled()
        if not self.batch:
            return
        self.finish_running()
        batch = _Batch(self.batch, bytes_read, _script(self.batch))
        self.batch, self.batch_bytes = [], 0
        batch.thread = threading.Thread(target=batch.run, args=(self.db,), daemon=True,
                                        name="reel-sqlite-batch")  # fmt: skip
        batch.thread.start()
        self.running = batch

    def finish_running(self) -> None:
        """Wait for the running batch; report it, or raise its error (its line named)."""
        batch, self.running = self.running, None
        if batch is None:
            return
        batch.thread.join()
        exc = batch.error
        if isinstance(exc, sqlite3.OperationalError):
            if "interrupted" in str(exc):
                self.ctx.check_cancelled()
            self._unless_unwritable(exc)
            self.replay(batch.statements)
            raise RewindError(f"{self.source.path}: {exc}") from None
        if isinstance(exc, sqlite3.DatabaseError):
            self._unless_unwritable(exc)
            self.replay(batch.statements)  # names the line when a single statement fails
            raise RewindError(f"{self.source.path}: {exc}") from None
        if exc is not None:
            raise exc
        self.statements += len(batch.statements)
        self.ctx.progress(bytes_read=batch.bytes_read, statements=self.statements)

    def _unless_unwritable(self, exc: sqlite3.DatabaseError) -> None:
        """A temp file that could not be written is not a statement's fault: a full disk
        or a file-size limit shows as "disk is full", an I/O error, or (journal off) as a
        "malformed" temp; replaying would blame a line of the dump."""
        code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF  # Python 3.11+
        if code in _UNWRITABLE_CODES or str(exc) in _UNWRITABLE_TEXTS:
            folder = self.source.path.parent
            with suppress(sqlite3.Error):
                folder = Path(self.db.execute("PRAGMA database_list").fetchone()[2]).parent
            raise RewindError(
                f"cannot write the loaded copy in {folder} ({exc}): is the "
                "disk full, or a file-size limit set?"
            ) from None

    def replay(self, statements: list[_Statement]) -> None:
        """Rerun the failed batch statement by statement to name the failing line."""
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        for line, text, _ in statements:
            try:
                self.db.executescript(text)
            except sqlite3.DatabaseError as exc:
                raise RewindError(
                    f"{self.source.path}:{line}: {exc} in: {_first_line(text)}"
                ) from None


class _Batch:
    """Statements run as one transaction on a thread of their own (see _ScriptLoader)."""

    def __init__(self, statements: list[_Statement], bytes_read: int, script: str) -> None:
        self.statements = statements
        """Each statement as read, for the replay that names a failing line."""
        self.bytes_read = bytes_read
        self.script = script
        self.thread: threading.Thread
        self.error: BaseException | None = None

    def run(self, db: sqlite3.Connection) -> None:
        try:
            db.executescript(f"BEGIN;\n{self.script}\nCOMMIT;")
        except BaseException as exc:  # raised on the loader's thread, see finish_running
            self.error = exc


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _first_line(text: str) -> str:
    first = _COMMENTS.sub("", text).strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= 80 else first[:77] + "..."


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] in "\"'`[" and name[-1] in "\"'`]":
        return name[1:-1]
    return name
