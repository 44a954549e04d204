"""Cached copies for SQLite: loaded files kept beside the target.

The folder ``.NAME.reel-cache/`` beside the target holds, per copy, the loaded
database file ``<key>.sqlite3`` and what it is, ``<key>.json``: the source it
came from, when it was made and last used, its page size. Beside the target,
so a copy is on the same file system (kept by a hard link to the loaded temp
file: no copying), and a user looking at the folder sees what it is.

A copy is written once and only ever opened read-only: the swap copies it
into the target with the backup API, as after a cold load, or renames its
spare (a file copy of it) over the target. Its JSON is
written last, after the file is flushed to disk, so a copy without one is a
leftover of an interrupted run and is removed.

Beside a cached copy, ``<key>.spare.sqlite3`` is its *ready spare*: a plain
file copy of it (``shutil.copyfile``: copy_file_range, a reflink where the
file system has them), made in the background after a load or a warm rewind.
A warm rewind renames the spare over the target when nothing else has the
target open (see :mod:`reel_tui.engines.sqlite_rename`): no copying while the
user waits. A spare counts in its copy's size (``--list``, ``cache_max_size``),
goes with its copy, and is removed as a leftover when its copy's JSON is gone.
Snapshots and the undo copy have none.

Files a swap replaced (the previous undo copy, or the old target when no undo
copy is kept) wait there as ``trash-<random>.sqlite3.trash`` until the
background work deletes them: freeing a big file's blocks takes milliseconds
the user should not wait for.

The same folder holds the user's snapshots (``snap-<random>.sqlite3``: the
name is in the JSON, so a rename rewrites only the JSON) and the undo copy
(``undo.sqlite3``): copies of the target itself, taken with the backup API,
which reads a consistent state even while the application writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from reel_tui.cache import UNDO_KEY, CachedCopy, Retention, evictions, short, snapshot_key
from reel_tui.locks import TargetLock, process_alive

COPY_STEP_PAGES = 4096
"""Pages the backup API copies per step when copying the target: cancellable between steps."""
SPARE = ".spare.sqlite3"
"""How a ready spare's name ends: ``<key>.spare.sqlite3`` beside ``<key>.sqlite3``."""
TRASH = ".sqlite3.trash"
"""How the name of a replaced file ends while it waits for the background work to delete
it (``trash-<random>.sqlite3.trash``): deleting a big file takes a while."""
_SPARE_TEMP = re.compile(r"^[0-9a-f]+\.spare-(\d+)\.tmp$")
"""A spare being copied by a background worker (its pid in the name)."""


class SqliteCache:
    """The copies kept for one SQLite target. Callers hold the target's lock."""

    def __init__(self, target: Path) -> None:
        self.folder = target.parent / f".{target.name}.reel-cache"

    def copies(self) -> list[CachedCopy]:
        found = []
        if not self.folder.is_dir():
            return []
        for meta in sorted(self.folder.glob("*.json")):
            info = self._read(meta)
            data = meta.with_suffix(".sqlite3")
            if info is None or not data.is_file():
                continue
            spare = spare_of(data)
            spare_bytes = spare.stat().st_size if spare.is_file() else None
            found.append(
                CachedCopy(
                    str(info["key"]),
                    str(info.get("source", "?")),
                    str(data),
                    data.stat().st_size + (spare_bytes or 0),
                    float(info.get("created", 0)),
                    float(info.get("used", 0)),
                    spare_ready=spare_bytes is not None,
                )
            )
        return found

    @staticmethod
    def _read(meta: Path) -> dict[str, object] | None:
        try:
            info = json.loads(meta.read_text())
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) and isinstance(info.get("key"), str) else None

    def find(self, key: str, page_size: int) -> Path | None:
        """The copy for ``key`` if there is one of this page size (a WAL target keeps its)."""
        meta = self.folder / f"{short(key)}.json"
        info = self._read(meta)
        data = meta.with_suffix(".sqlite3")
        if info is None or info["key"] != key or not data.is_file():
            return None
        if info.get("page_size") != page_size:
            return None
        return data

    def spare(self, key: str) -> Path | None:
        """The ready spare of ``key``'s copy, if one is ready (a complete file: a spare gets
        its name only once it is written and flushed)."""
        spare = spare_of(self.folder / f"{short(key)}.sqlite3")
        return spare if spare.is_file() else None

    def keep(self, loaded: Path, key: str, source: str, page_size: int, *, link: bool) -> Path:
        """Keep the loaded file as the copy for ``key``: a hard link (a copy when the
        loaded file itself becomes the target), then its JSON.

        Raises:
            OSError: the folder cannot be written (the caller only logs it).
        """
        self.folder.mkdir(mode=0o700, exist_ok=True)
        data = self.folder / f"{short(key)}.sqlite3"
        meta = data.with_suffix(".json")
        meta.unlink(missing_ok=True)  # from here on the old copy (if any) is invalid
        data.unlink(missing_ok=True)
        spare_of(data).unlink(missing_ok=True)
        partial = data.with_suffix(".sqlite3.tmp")
        try:
            if link:
                fsync_path(loaded)
                os.link(loaded, data)
            else:
                shutil.copyfile(loaded, partial)
                fsync_path(partial)
                os.replace(partial, data)
            now = time.time()
            self._write(meta, {"key": key, "source": source, "created": now, "used": now,
                               "page_size": page_size})  # fmt: skip
        except OSError:
            # a full disk: what was written of the copy would keep it full until the next
            # run; without its JSON a copy is never used
            for path in (partial, data, meta, meta.with_suffix(".json.tmp")):
                path.unlink(missing_ok=True)
            raise
        return data

    def touch(self, key: str) -> None:
        """Note that the copy was used now (least recently used copies are evicted first)."""
        meta = self.folder / f"{short(key)}.json"
        info = self._read(meta)
        if info is not None:
            info["used"] = time.time()
            with contextlib.suppress(OSError):
                self._write(meta, info)

    @staticmethod
    def _write(meta: Path, info: dict[str, object]) -> None:
        temp = meta.with_suffix(".json.tmp")
        with open(temp, "w") as file:
            json.dump(info, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, meta)
        fsync_path(meta.parent)

    def drop(self, copy: CachedCopy) -> None:
        data = Path(copy.name)
        data.with_suffix(".json").unlink(missing_ok=True)
        data.unlink(missing_ok=True)
        spare_of(data).unlink(missing_ok=True)

    # --- ready spares ------------------------------------------------------------------

    def maintenance_lock(self) -> TargetLock:
        """Held by the background worker making a spare: one worker per target at a time."""
        return TargetLock(self.folder, "", name="maintain.lock")

    def wanting_spare(self) -> CachedCopy | None:
        """The most recently used cached copy of a dump, if its spare is not ready."""
        cached = [c for c in self.copies() if c.kind == "cache"]
        latest = max(cached, key=lambda c: c.used, default=None)
        return latest if latest is not None and not latest.spare_ready else None

    def copy_spare(self, copy: CachedCopy) -> Path:
        """Copy ``copy``'s file to a temp name, flushed to disk; the temp file (see
        :meth:`commit_spare`). A plain file copy: the copy is closed and never written.

        Raises:
            OSError: the copy cannot be read or the spare written (the temp file is removed).
        """
        data = Path(copy.name)
        temp = data.with_name(f"{short(copy.key)}.spare-{os.getpid()}.tmp")
        try:
            shutil.copyfile(data, temp)
            fsync_path(temp)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return temp

    def commit_spare(self, temp: Path, key: str) -> Path | None:
        """Name the copied ``temp`` as ``key``'s spare, if its copy is still there (evicted
        or replaced meanwhile: None, and ``temp`` is left for the caller to remove).
        Callers hold the target's lock."""
        info = self._read(self.folder / f"{short(key)}.json")
        if info is None or info["key"] != key:
            return None
        spare = spare_of(self.folder / f"{short(key)}.sqlite3")
        os.replace(temp, spare)
        fsync_path(self.folder)
        return spare

    def evict(self, retention: Retention, keep: str | None) -> list[str]:
        """Drop outdated copies and those over the app's limits; say what was dropped."""
        said = []
        for copy, why in evictions(self.copies(), retention, keep):
            self.drop(copy)
            said.append(why)
        return said

    # --- snapshots and the undo copy: copies of the target itself ---------------------

    def stored(self, key: str) -> CachedCopy | None:
        return next((c for c in self.copies() if c.key == key), None)

    def copy_target(self, target: Path, partial: Path, step: Callable[[float], None]) -> None:
        """Copy the target's current state into ``partial`` (a rollback-journal file, even
        from a WAL target: it is only read, and read-only opens of a WAL file need its -shm),
        flushed to disk. ``step`` gets the share copied and may raise to stop: ``partial``
        is removed then.

        Raises:
            sqlite3.Error, OSError: the target cannot be read or the copy written.
        """
        self.folder.mkdir(mode=0o700, exist_ok=True)
        try:
            uri = f"{target.resolve().as_uri()}?mode=ro"
            with (
                contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as src,
                contextlib.closing(sqlite3.connect(partial, isolation_level=None)) as dst,
            ):

                def report(status: int, remaining: int, total: int) -> None:
                    step((total - remaining) / max(total, 1))

                src.backup(dst, pages=COPY_STEP_PAGES, progress=report)
                dst.execute("PRAGMA journal_mode = DELETE")
            fsync_path(partial)
        except BaseException:
            partial.unlink(missing_ok=True)
            Path(f"{partial}-journal").unlink(missing_ok=True)
            raise

    def take_snapshot(
        self, target: Path, name: str, page_size: int, step: Callable[[float], None]
    ) -> Path:
        """Copy the target as snapshot ``name``; its file (see :meth:`copy_target`)."""
        data = self.folder / f"snap-{os.urandom(6).hex()}.sqlite3"
        partial = data.with_suffix(".sqlite3.tmp")
        self.copy_target(target, partial, step)
        os.replace(partial, data)
        now = time.time()
        self._write(data.with_suffix(".json"), {"key": snapshot_key(name), "source": f"@{name}",
                    "created": now, "used": now, "page_size": page_size})  # fmt: skip
        return data

    def rename_snapshot(self, copy: CachedCopy, new: str) -> None:
        meta = Path(copy.name).with_suffix(".json")
        info = self._read(meta) or {}
        info.update(key=snapshot_key(new), source=f"@{new}")
        self._write(meta, info)

    def begin_undo(self, target: Path) -> Path:
        """Copy the target, before a swap, as the next undo copy (committed by
        :meth:`commit_undo` once the swap is done); the partial file."""
        partial = self.folder / "undo.sqlite3.tmp"
        self.copy_target(target, partial, lambda share: None)
        return partial

    def link_undo(self, target: Path) -> Path:
        """A second name for the target's file, as the next undo copy: before a swap by
        rename, the replaced file (its inode) stays as the undo copy without being copied.
        Committed by :meth:`commit_undo`; a kill before that leaves the partial name, which
        the next run removes."""
        self.folder.mkdir(mode=0o700, exist_ok=True)
        partial = self.folder / "undo.sqlite3.tmp"
        partial.unlink(missing_ok=True)
        os.link(target, partial)
        return partial

    def commit_undo(self, partial: Path, what: str, page_size: int) -> None:
        """The swap is done: the copy of what it replaced becomes the undo copy."""
        data = self.folder / "undo.sqlite3"
        meta = data.with_suffix(".json")
        meta.unlink(missing_ok=True)  # a crash from here on leaves an orphan, removed later
        if data.exists():  # replacing it would free its blocks while the user waits
            self._to_trash(data)
        os.replace(partial, data)
        now = time.time()
        self._write(meta, {"key": UNDO_KEY, "source": what, "created": now, "used": now,
                           "page_size": page_size})  # fmt: skip

    def link_trash(self, target: Path) -> None:
        """A second name for the target's file before a rename replaces it (no undo copy
        kept): the rename then frees nothing, and the background work deletes it."""
        self.folder.mkdir(mode=0o700, exist_ok=True)
        os.link(target, self._trash_name())

    def _to_trash(self, data: Path) -> None:
        os.replace(data, self._trash_name())

    def _trash_name(self) -> Path:
        return self.folder / f"trash-{os.urandom(6).hex()}{TRASH}"

    def drop_trash(self) -> int:
        """Delete the replaced files set aside; the bytes freed."""
        freed = 0
        for trash in self.folder.glob(f"trash-*{TRASH}") if self.folder.is_dir() else []:
            with contextlib.suppress(FileNotFoundError):
                freed += trash.stat().st_size
                trash.unlink()
        return freed

    def remove_leftovers(self) -> list[Path]:
        """Files of copies an interrupted run did not finish (no JSON beside them), spares
        of copies that are gone, partial files (an undo link, a spare whose worker died)."""
        removed = []
        if not self.folder.is_dir():
            return removed
        for path in sorted(self.folder.iterdir()):
            if _leftover(path):
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed


def spare_of(data: Path) -> Path:
    """The ready spare's name beside a cached copy's file."""
    return data.with_name(data.name.removesuffix(".sqlite3") + SPARE)


def _leftover(path: Path) -> bool:
    """Whether a file in the cache folder was left by an interrupted run."""
    name = path.name
    if name.endswith(SPARE):
        return not path.with_name(name.removesuffix(SPARE) + ".json").exists()
    working = _SPARE_TEMP.match(name)
    if working is not None:
        return not process_alive(int(working.group(1)))
    if path.suffix == ".sqlite3":
        return not path.with_suffix(".json").exists()
    return name.endswith(".tmp")


def fsync_path(path: Path) -> None:
    """Flush a file, or a folder's entries, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
