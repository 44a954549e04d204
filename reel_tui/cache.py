"""Cached copies of loaded dumps: what makes the second rewind of a dump near-instant.

The dump stays the source of truth. After a cold load, the engine keeps a copy
of the loaded result, named by a *cache key*: a digest of the dump's bytes plus
the app options that shape the result (``skip_owner``, ``definers``, …). A
later rewind of an unchanged dump finds the copy and swaps it in instead of
loading; a changed dump has another key, so its old copies are never used.

Reading a whole dump to hash it costs about a second per 500 MB, so the
digest is remembered per file with its size, mtime and inode (the same cheap
check ``make`` and rsync rely on): an untouched dump is not read again. A
touched one is hashed again before its copies are trusted.

This module holds what is common to the engines: digests, keys, the local
index (what this machine knows is cached, for ``--list`` and the TUI without
asking any server) and the retention rule. The copies themselves, and the
truth about them, live with the engine: files beside a SQLite target,
databases or schemas on the server.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from reel_tui.config import AppConfig

if TYPE_CHECKING:
    from reel_tui.engines.base import RewindContext

INDEX_FILE = "cache.sqlite3"
INDEX_FORMAT = 1
KEY_LENGTH = 12
"""Hex digits of the key in object names: 48 bits, enough to tell one app's dumps apart."""
_CHUNK = 1 << 20
EVICT_LOCK_WAIT = 3.0
"""How long background work waits for the target's lock before leaving eviction for the
next run: the rewind that started it may hold the lock a moment longer (a server releases
a session's locks once it has processed the disconnect)."""

SNAPSHOT_PREFIX = "snapshot:"
"""Keys of snapshots: the prefix and the user's name (cache keys are hex, never collide)."""
UNDO_KEY = "undo"
"""The key of a target's undo copy: the state its last rewind replaced (one per target)."""
SNAPSHOT_NAME_MAX = 48
"""Characters in a snapshot's name: it is shown in tables and logs, never in object names."""
CopyKind = Literal["cache", "snapshot", "undo"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests (
    path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, inode INTEGER, digest TEXT
);
CREATE TABLE IF NOT EXISTS copies (
    target_key TEXT, key TEXT, source TEXT, object TEXT, bytes INTEGER,
    created REAL, used REAL, PRIMARY KEY (target_key, key)
);
"""


@dataclass(frozen=True)
class FileStamp:
    """What changes when a file is written: checked before a remembered digest is trusted."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> FileStamp:
        """The stamp of a file, or of a pg_dump directory (the newest of its files)."""
        info = path.stat()
        if not path.is_dir():
            return cls(info.st_size, info.st_mtime_ns, info.st_ino)
        size, newest = 0, info.st_mtime_ns
        for child in sorted(path.iterdir()):
            child_info = child.stat()
            size += child_info.st_size
            newest = max(newest, child_info.st_mtime_ns)
        return cls(size, newest, info.st_ino)


@dataclass(frozen=True)
class CachedCopy:
    """One kept copy of a loaded dump, as its engine describes it."""

    key: str
    """The cache key (see :func:`cache_key`), full length."""
    source: str
    """The source's name when it was cached."""
    name: str
    """Where the copy is: a database, a schema, a file; what a user would look for."""
    bytes: int
    created: float
    used: float
    spare_ready: bool = False
    """A second copy is ready to be swapped in by a rename (PostgreSQL, MySQL)."""

    @property
    def kind(self) -> CopyKind:
        """A cached copy of a dump, a user's snapshot, or the undo copy."""
        return kind_of(self.key)


class SnapshotNameError(ValueError):
    """A snapshot name that cannot be used; the message is one line for the user."""


def kind_of(key: str) -> CopyKind:
    if key.startswith(SNAPSHOT_PREFIX):
        return "snapshot"
    return "undo" if key == UNDO_KEY else "cache"


def snapshot_key(name: str) -> str:
    return SNAPSHOT_PREFIX + name


def snapshot_name(name: str) -> str:
    """``name`` (a leading ``@`` dropped) if it can name a snapshot.

    A snapshot is listed among sources as ``@NAME``, so a name never collides with a
    dump's path; ``/`` is refused all the same (it reads as a path), as are control
    characters (they would garble a log line) and ``undo`` (``@undo`` is the undo copy).

    Raises:
        SnapshotNameError: empty, too long, or with a character a name may not hold.
    """
    bare = name[1:] if name.startswith("@") else name
    if not bare.strip():
        raise SnapshotNameError("a snapshot needs a name (letters, digits, - _ . and spaces)")
    if len(bare) > SNAPSHOT_NAME_MAX:
        raise SnapshotNameError(f"snapshot name {bare[:20]!r}… is {len(bare)} characters long; "
                                f"at most {SNAPSHOT_NAME_MAX}")  # fmt: skip
    if "/" in bare or "\\" in bare or not bare.isprintable() or bare != bare.strip():
        raise SnapshotNameError(f"snapshot name {bare!r}: no '/', '\\', control characters "
                                "or spaces at either end")  # fmt: skip
    if bare.lower() == UNDO_KEY:
        raise SnapshotNameError("'undo' names the undo copy (reel-tui --undo); pick another name")
    return bare


@dataclass(frozen=True)
class Retention:
    """How many copies an app keeps, and how much disk they may take (None: no limit)."""

    copies: int
    max_bytes: int | None

    @classmethod
    def of(cls, app: AppConfig) -> Retention:
        return cls(app.cache_copies, app.cache_max_bytes)

    @property
    def enabled(self) -> bool:
        return self.copies > 0


def file_digest(path: Path) -> str:
    """SHA-256 of a dump's bytes as stored (still compressed); of every file, by name,
    for a pg_dump directory. Streams: memory stays flat whatever the size."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    for file in files:
        if path.is_dir():
            digest.update(f"\0{file.name}\0".encode())
        with open(file, "rb", buffering=0) as raw:
            while count := raw.readinto(buffer):
                digest.update(view[:count])
    return digest.hexdigest()


def load_options(app: AppConfig) -> str:
    """The app options that change what a load produces: part of every cache key."""
    return (
        f"{app.driver}:owner={not app.skip_owner}:privileges={not app.skip_privileges}"
        f":on_error={app.on_error}:analyze={app.analyze}:definers={app.definers}"
    )


def cache_key(app: AppConfig, content_digest: str) -> str:
    """The key of a copy made from a dump with this digest by this app's options."""
    return hashlib.sha256(f"{content_digest}\n{load_options(app)}".encode()).hexdigest()


def short(key: str) -> str:
    """The part of a key that goes into object names."""
    return key[:KEY_LENGTH]


def to_evict(
    copies: Iterable[CachedCopy], retention: Retention, keep: str | None
) -> list[CachedCopy]:
    """The copies to drop so the rest fit the retention limits, least recently used first.

    ``keep`` (a key) is never evicted: the copy the current rewind uses or made.
    """
    kept: list[CachedCopy] = []
    evicted: list[CachedCopy] = []
    total = 0
    for copy in sorted(copies, key=lambda copy: (copy.key != keep, -copy.used)):
        fits_count = len(kept) < retention.copies
        fits_disk = retention.max_bytes is None or total + copy.bytes <= retention.max_bytes
        if copy.key == keep or (fits_count and fits_disk):
            kept.append(copy)
            total += copy.bytes
        else:
            evicted.append(copy)
    return evicted


def evictions(
    copies: Iterable[CachedCopy], retention: Retention, keep: str | None
) -> list[tuple[CachedCopy, str]]:
    """What to drop and why, as a line for the job's log.

    First the copies of ``keep``'s source made from another version of the dump
    (an edited dump invalidates its copies), then those over the retention limits: the
    undo copy counts against them like a cached copy; a snapshot never does (only its
    user deletes it).
    """
    copies = [c for c in copies if c.kind != "snapshot"]
    kept = next((c for c in copies if c.key == keep), None)
    outdated = [c for c in copies if kept is not None and c.key != keep and c.kind == "cache"
                and c.source == kept.source]  # fmt: skip
    rest = [c for c in copies if c not in outdated]
    return [(c, f"dropped the cached copy of an earlier version of {c.source} "
                f"({c.bytes:,} bytes)") for c in outdated] + [
        (c, f"evicted {_what(c)} ({c.bytes:,} bytes, least recently used; see "
            "cache_copies / cache_max_size)") for c in to_evict(rest, retention, keep)
    ]  # fmt: skip


def _what(copy: CachedCopy) -> str:
    if copy.kind == "undo":
        return f"the undo copy ({copy.source}): --undo has nothing to go back to"
    return f"the cached copy of {copy.source}"


class CacheIndex:
    """This machine's memory of dump digests and of the copies made for each target.

    A hint, never the truth: an engine checks a copy exists on its server
    before it uses it, and corrects the index when it does not. Kept in the
    state directory beside the job history; safe across threads and processes.
    """

    def __init__(self, state_dir: Path | None) -> None:
        """``state_dir`` None keeps the index in memory (tests, a read-only state dir)."""
        self._lock = threading.Lock()
        path = ":memory:" if state_dir is None else str(state_dir / INDEX_FILE)
        try:
            self._db = self._open(path)
        except (sqlite3.Error, OSError):
            self._db = self._open(":memory:")  # a broken index only costs warm hits

    @staticmethod
    def _open(path: str) -> sqlite3.Connection:
        if path != ":memory:":  # user-only before SQLite creates it with the umask's mode
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        if path != ":memory:":
            db.execute("PRAGMA journal_mode = WAL")
        if db.execute("PRAGMA user_version").fetchone()[0] < INDEX_FORMAT:
            db.executescript(_SCHEMA)  # once: a write at every open costs every run a sync
            db.execute(f"PRAGMA user_version = {INDEX_FORMAT}")
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error:
                return []  # a locked or full index is a missed warm hit, not a failed rewind

    # --- digests ----------------------------------------------------------------

    def known_digest(self, path: Path) -> str | None:
        """The remembered digest of ``path`` if the file is unchanged since; else None."""
        try:
            stamp = FileStamp.of(path)
        except OSError:
            return None
        rows = self._run(
            "SELECT digest FROM digests WHERE path = ? AND size = ? AND mtime_ns = ? AND inode = ?",
            (str(path), stamp.size, stamp.mtime_ns, stamp.inode),
        )
        return str(rows[0][0]) if rows else None

    def seen(self, path: Path) -> bool:
        """Whether a digest was ever remembered for ``path`` (changed since or not)."""
        return bool(self._run("SELECT 1 FROM digests WHERE path = ?", (str(path),)))

    def remember_digest(self, path: Path, stamp: FileStamp, digest: str) -> None:
        self._run(
            "INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?)",
            (str(path), stamp.size, stamp.mtime_ns, stamp.inode, digest),
        )

    def digest(self, path: Path) -> tuple[str, FileStamp]:
        """The digest of ``path``: remembered if unchanged, else read and remembered.

        Raises:
            OSError: the file cannot be read.
        """
        stamp = FileStamp.of(path)
        known = self.known_digest(path)
        if known is not None:
            return known, stamp
        digest = file_digest(path)
        if FileStamp.of(path) == stamp:  # not written to while it was read
            self.remember_digest(path, stamp, digest)
        return digest, stamp

    # --- copies -----------------------------------------------------------------

    def record_copies(self, target_key: str, copies: Iterable[CachedCopy]) -> None:
        """Replace what is known of ``target_key``'s copies with what its engine found."""
        with self._lock:
            try:
                with self._db:
                    self._db.execute("BEGIN")
                    self._db.execute("DELETE FROM copies WHERE target_key = ?", (target_key,))
                    self._db.executemany(
                        "INSERT INTO copies VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [
                            (target_key, c.key, c.source, c.name, c.bytes, c.created, c.used)
                            for c in copies
                        ],
                    )
            except sqlite3.Error:
                pass

    def copies(self, target_key: str) -> list[CachedCopy]:
        """The copies last seen for ``target_key``, most recently used first."""
        rows = self._run(
            "SELECT key, source, object, bytes, created, used FROM copies "
            "WHERE target_key = ? ORDER BY used DESC",
            (target_key,),
        )
        return [CachedCopy(str(k), str(s), str(o), int(b), float(c), float(u))  # type: ignore[arg-type]
                for k, s, o, b, c, u in rows]  # fmt: skip

    def cached_source(self, app: AppConfig, path: Path) -> CachedCopy | None:
        """The copy of this dump the index knows for the app's target, if its digest is known.

        Cheap (no file is read): for listing sources with a "cached" mark.
        """
        digest = self.known_digest(path)
        if digest is None:
            return None
        key = cache_key(app, digest)
        return next((c for c in self.copies(app.target_key) if c.key == key), None)


class DigestTask:
    """A dump's digest, remembered or computed on a thread beside the load.

    Hashing a dump that was never seen costs a full read; done beside the
    load it costs no wall time. :meth:`result` is None when the file could not
    be read, or changed between the start of the task and the call: a copy of
    a load whose dump changed under it must not be labelled with either digest.
    """

    def __init__(self, index: CacheIndex, path: Path, *, background: bool = True) -> None:
        self._index = index
        self._path = path
        self._digest: str | None = None
        self._thread: threading.Thread | None = None
        try:
            self._stamp: FileStamp | None = FileStamp.of(path)
        except OSError:
            self._stamp = None
            return
        self._digest = index.known_digest(path)
        if self._digest is None:
            self._thread = threading.Thread(target=self._compute, daemon=True, name="digest")
            self._thread.start()
            if not background:
                self._thread.join()

    @property
    def ready(self) -> bool:
        """True when the digest is known now, without waiting for the thread."""
        return self._thread is None or not self._thread.is_alive()

    def _compute(self) -> None:
        try:
            self._digest, _ = self._index.digest(self._path)
        except OSError:
            self._digest = None

    def result(self) -> str | None:
        if self._thread is not None:
            self._thread.join()
        try:
            unchanged = self._stamp is not None and FileStamp.of(self._path) == self._stamp
        except OSError:
            unchanged = False
        return self._digest if unchanged else None


def digest_task(
    index: CacheIndex | None, app: AppConfig, path: Path, has_copies: Callable[[], bool]
) -> DigestTask | None:
    """The dump's digest for a rewind; None when the app's cache is off.

    Remembered: known at once. Hashed before: hashed first when the target has copies (the
    dump was touched since, it may still be the same). Never seen: hashed beside the load.
    """
    if index is None or not Retention.of(app).enabled:
        return None
    first = index.seen(path) and has_copies()
    return DigestTask(index, path, background=not first)


def key_now(app: AppConfig, task: DigestTask | None) -> str | None:
    """The dump's cache key if its digest is known without waiting: to look for a copy."""
    if task is None or not task.ready:
        return None
    digest = task.result()
    return None if digest is None else cache_key(app, digest)


def key_after_load(
    app: AppConfig, task: DigestTask | None, ctx: RewindContext
) -> tuple[str, str] | None:
    """(key, digest) to keep a copy of what was just loaded; None when the cache is off, or
    when the dump changed while it was loaded (said in the log)."""
    if task is None:
        return None
    digest = task.result()
    if digest is None:
        ctx.log("the dump changed while it was loaded: no cached copy kept", "warning")
        return None
    return cache_key(app, digest), digest


@contextmanager
def server_lock_held(
    try_lock: Callable[[], bool], release: Callable[[], None], target: str, timeout: float = 30.0
) -> Iterator[None]:
    """Hold a server-side lock on ``target`` (taken by ``try_lock``), waiting up to
    ``timeout`` seconds for a running rewind to let go of it: what the cache commands
    (evict, rename, delete) do before they touch a target's copies.

    Raises:
        TimeoutError: the rewind is still running.
    """
    deadline = time.monotonic() + timeout
    while not try_lock():
        if time.monotonic() > deadline:
            raise TimeoutError(f"a rewind of {target} is still running")
        time.sleep(0.05)
    try:
        yield
    finally:
        release()


class TemplateFacts(Protocol):
    """What :func:`copies_of` reads of an engine's template."""

    key: str
    source: str
    name: str
    bytes: int
    created: float
    used: float


def copies_of(
    templates: Iterable[TemplateFacts], spares: Mapping[str, tuple[str, int]]
) -> list[CachedCopy]:
    """Engines' templates and ready spares (key: name, bytes) as cached copies; a copy's
    bytes count its spare too."""
    return [
        CachedCopy(
            t.key,
            t.source,
            t.name,
            t.bytes + spares.get(t.key, ("", 0))[1],
            t.created,
            t.used,
            spare_ready=t.key in spares,
        )
        for t in templates
    ]
