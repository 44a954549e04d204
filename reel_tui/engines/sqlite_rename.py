"""The fast warm swap: a ready file renamed over a SQLite target, when that is safe.

Renaming a file over a database is unsafe in general (see :mod:`reel_tui.engines.sqlite`):
a process holding the old file open keeps reading, and could keep writing, the unlinked
inode, and a renamed file paired with the old ``-wal`` / ``-shm`` is SQLite's
"mispaired hot journal" corruption. Both need another process (or another connection
of this one) to have the target open, or a journal beside it. So the rename is done
only when, under the target's locks (no other reel rewind runs):

* the target (through its symlinks) is a regular file with one link: the rename goes
  onto the real file, and no other name would keep the old content;
* no process has it, or its ``-wal`` / ``-shm`` / ``-journal``, open: every
  ``/proc/<pid>/fd`` is read (this process's too: an application may embed reel);
  processes of other users whose descriptors cannot be read are counted and said;
* after a checkpoint, no ``-wal``, ``-shm`` or ``-journal`` exists beside it;
* the incoming file is given the target's mode, owner, extended attributes and
  journal mode (WAL or not, in its header), or the rename is not done.

Otherwise the engine copies with the backup API as before. What the checks cannot
close: an application that opens the file between the scan and the rename (a few
milliseconds) opens the old file. SQLite refuses its writes (``SQLITE_READONLY_DBMOVED``:
"attempt to write a readonly database"), so the undo copy is never written, and it
reads the old state until it reopens.

The swap itself is ``os.link`` of the target to the undo slot's partial name (the old
content is kept without copying), ``os.replace`` of the incoming file onto the target
(atomic: the target is always the old file or the new one, whole), then an fsync of the
folder. A kill leaves at most the partial name, removed by the next run.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path

from reel_tui.engines.sqlite_cache import fsync_path

PROC = Path("/proc")
JOURNALS = ("-wal", "-shm", "-journal")
"""The files SQLite keeps beside a database while it is open or was not closed cleanly."""
_WAL_HEADER = 2
"""Bytes 18 and 19 of a database file: 1 for rollback journals, 2 for WAL."""


class NotSafe(Exception):
    """The rename cannot be done safely; the message says why, for the job's log."""


@dataclass(frozen=True)
class Scan:
    """What a scan of /proc found."""

    holders: list[str]
    """Processes that have the target or its journals open: "pid 123 (python3)"."""
    unreadable: int
    """Processes whose descriptors could not be read (another user's)."""
    processes: int
    seconds: float


def real_target(target: Path, folder: Path) -> tuple[Path, os.stat_result]:
    """The file a rename must replace (symlinks resolved) and its stat.

    Raises:
        NotSafe: not a regular file, more than one link, or on another file system than
            the cache folder (a rename cannot cross it).
    """
    real = target.resolve(strict=True)
    info = os.stat(real)
    if not stat.S_ISREG(info.st_mode):
        raise NotSafe(f"{real} is not a regular file")
    if info.st_nlink != 1:
        raise NotSafe(f"{real} has {info.st_nlink} hard links (a rename would leave the "
                      "others holding the old content)")  # fmt: skip
    if os.stat(folder).st_dev != info.st_dev:
        raise NotSafe(f"the cache folder is on another file system than {real}")
    if not (PROC / "self" / "fd").is_dir():
        raise NotSafe("no /proc to tell whether another process has the file open")
    return real, info


def settle_journals(real: Path) -> None:
    """Checkpoint a WAL target so nothing of it lives outside the file.

    Raises:
        NotSafe: a -wal, -shm or -journal file is still there (another connection).
    """
    if not any(Path(f"{real}{suffix}").exists() for suffix in JOURNALS):
        return
    with suppress(sqlite3.Error), closing(sqlite3.connect(real, timeout=0.5)) as db:
        if db.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    no_journals(real)


def no_journals(real: Path) -> None:
    for suffix in JOURNALS:
        if Path(f"{real}{suffix}").exists():
            raise NotSafe(f"a {suffix} file is present (another connection has the "
                          "database open, or a transaction was not finished)")  # fmt: skip


def scan(real: Path, info: os.stat_result) -> Scan:
    """Every process's open files, looking for the target (by device and inode) and its
    journals (by name, in the target's folder: same device and inode of the folder).
    SQLite keeps the database itself open while it has a journal open, so the inode
    check alone finds every connection, whatever path (or mount) it opened it by."""
    started = time.monotonic()
    names = {real.name, *(real.name + suffix for suffix in JOURNALS)}
    folder = os.stat(real.parent)
    holders: list[str] = []
    unreadable = processes = 0
    with os.scandir(PROC) as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            processes += 1
            try:
                if _holds(f"{PROC}/{entry.name}/fd", names, info, folder):
                    holders.append(f"pid {entry.name} ({_command(entry.name)})")
            except PermissionError:
                unreadable += 1
            except FileNotFoundError:  # the process ended meanwhile
                processes -= 1
    return Scan(holders, unreadable, processes, time.monotonic() - started)


def _holds(fds: str, names: set[str], info: os.stat_result, folder: os.stat_result) -> bool:
    """Whether the process whose descriptors are in ``fds`` has one of the files open.
    Only names that match are stat'ed: a readlink per descriptor is the scan's cost."""
    for fd in os.listdir(fds):
        try:
            link = os.readlink(f"{fds}/{fd}")
        except OSError:  # closed meanwhile
            continue
        parent, _, base = link.rpartition("/")
        if base not in names:
            continue
        try:
            found = os.stat(f"{fds}/{fd}")
        except OSError:
            continue
        if (found.st_dev, found.st_ino) == (info.st_dev, info.st_ino):
            return True
        with suppress(OSError):  # a journal: in the target's folder, not one of the same name
            there = os.stat(parent)
            if (there.st_dev, there.st_ino) == (folder.st_dev, folder.st_ino):
                return True
    return False


def _command(pid: str) -> str:
    try:
        return (PROC / pid / "comm").read_text().strip()
    except OSError:
        return "?"


def match_target(incoming: Path, real: Path, info: os.stat_result, wal: bool) -> None:
    """Give the incoming file what the application expects of its database file: the
    target's mode, owner and group, extended attributes (ACLs, security labels) and
    journal mode.

    Raises:
        NotSafe: the owner or an attribute cannot be set (not root), or the file is not
            a usable database.
    """
    os.chmod(incoming, stat.S_IMODE(info.st_mode))
    mine = os.stat(incoming)
    if (mine.st_uid, mine.st_gid) != (info.st_uid, info.st_gid):
        try:
            os.chown(incoming, info.st_uid, info.st_gid)
        except PermissionError:
            raise NotSafe(f"owner differs and cannot be set (an application running as uid "
                          f"{info.st_uid} must still write it)") from None  # fmt: skip
    _copy_xattrs(real, incoming)
    if _is_wal(incoming) != wal:
        try:
            with closing(sqlite3.connect(incoming, isolation_level=None)) as db:
                db.execute(f"PRAGMA journal_mode = {'WAL' if wal else 'DELETE'}")
        except sqlite3.Error as exc:
            raise NotSafe(f"cannot set the journal mode of {incoming.name}: {exc}") from None
        no_journals(incoming)


def _copy_xattrs(real: Path, incoming: Path) -> None:
    """The target's extended attributes onto the incoming file; those it has and the
    target has not are left (a file copy made by this user has none that matter)."""
    try:
        names = os.listxattr(real)
    except OSError:  # a file system without them
        return
    for name in names:
        try:
            os.setxattr(incoming, name, os.getxattr(real, name))
        except OSError as exc:
            raise NotSafe(f"cannot give the new file the target's attribute {name} "
                          f"({exc.strerror or exc})") from None  # fmt: skip


def _is_wal(path: Path) -> bool:
    with open(path, "rb") as file:
        return file.read(20)[18:20] == bytes([_WAL_HEADER, _WAL_HEADER])


def rename_in(incoming: Path, real: Path) -> None:
    """``os.replace`` the incoming file onto the target (the caller has linked the old one
    as the undo copy's partial name), then flush the folder so the rename is on disk."""
    os.replace(incoming, real)
    fsync_path(real.parent)
