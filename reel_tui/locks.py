"""One rewind per target database at a time, across every reel process on the machine.

A lock is an ``flock`` on a file in the state directory, named by a hash of
the target's identity. The kernel releases it when its process dies, so a
``kill -9`` never leaves a stale lock behind; the holder's pid is written into
the file only to tell a waiting user who they are waiting for.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from contextlib import suppress
from pathlib import Path

from reel_tui.engines.base import RewindCancelled, RewindError


class TargetLock:
    """An exclusive, cross-process lock on one target database."""

    def __init__(self, lock_dir: Path, target_key: str, name: str | None = None) -> None:
        lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        digest = hashlib.sha256(target_key.encode()).hexdigest()[:24]
        self.path = lock_dir / (name or f"{digest}.lock")
        self.target_key = target_key
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; never blocks."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        with suppress(OSError):  # the pid is only for messages; a full disk must not leak
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {self.target_key}\n".encode())
        return True

    def holder(self) -> str:
        """Who holds the lock, as far as the file tells ("pid 1234"), for messages."""
        try:
            pid = self.path.read_text().split()[0]
        except (OSError, IndexError):
            return "another process"
        return f"pid {pid}"

    def acquire(self, timeout: float | None, cancel: threading.Event) -> None:
        """Wait for the lock, up to ``timeout`` seconds (None: for ever).

        Raises:
            RewindCancelled: ``cancel`` was set while waiting.
            RewindError: the timeout passed (code ``lock-timeout``).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.try_acquire():
            if cancel.wait(0.1):
                raise RewindCancelled
            if deadline is not None and time.monotonic() >= deadline:
                raise RewindError(
                    f"gave up after {timeout:g} s waiting for another rewind of the same "
                    f"database ({self.holder()})",
                    code="lock-timeout",
                )

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (ours, or another user's)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
