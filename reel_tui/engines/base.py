"""The one small protocol every database engine implements.

Contract, for every engine:

* ``rewind`` replaces the target's content with the dump's, or leaves the
  target exactly as it was. The dump is loaded somewhere the application
  cannot see (a temp file, a staging database) and only then swapped in.
* The swap runs inside ``with ctx.swap():``; while inside, a cancel is
  deferred until the swap has finished, so a swap is never cut
  in half. Before it, :meth:`RewindContext.check_cancelled` is called between
  statements, and :meth:`Engine.interrupt` may be called from another thread
  to stop a long statement.
* Failures are raised as :class:`RewindError` (one line for the user, never a
  password) or :class:`RewindCancelled`; the job records them.
* Leftovers of an interrupted earlier run (temp files, staging databases) are
  removed at the start of the next run, under the same target lock.

Engines that keep cached copies of loaded dumps (see :mod:`reel_tui.cache`)
also implement :meth:`Engine.cached_copies`, :meth:`Engine.drop_cached` and,
when work is left after a rewind (dropping the replaced content, preparing
the next spare copy), :meth:`Engine.maintain`, which the caller runs after
the job has finished, on a thread or in a detached process.

Engines with snapshots (named copies of the target's current state, kept
like cached copies but never evicted) implement :meth:`Engine.snapshot`,
:meth:`Engine.rename_snapshot` and :meth:`Engine.delete_snapshot`; they list
them, and the undo copy, among :meth:`Engine.cached_copies` (see
:attr:`reel_tui.cache.CachedCopy.kind`). A rewind to a :class:`Source` with
``stored`` set swaps that copy in (warm) instead of loading a dump.
"""

from __future__ import annotations

import ipaddress
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from reel_tui.cache import CachedCopy, CacheIndex
    from reel_tui.config import AppConfig
    from reel_tui.dumpfile import Flavor
    from reel_tui.sources import Source

Phase = Literal[
    "queued", "waiting", "connecting", "preparing", "loading", "finishing", "swapping", "done"
]
LogLevel = Literal["info", "warning", "error", "debug"]


class RewindError(Exception):
    """A rewind failed; the target is unchanged. ``code`` classifies it for exit codes.

    Codes: ``failed`` (default), ``refused`` (before anything started), ``busy``
    (the target stayed locked), ``lock-timeout``, ``auth`` (the server refused the
    credentials, or wants a password that was not given).
    """

    def __init__(self, message: str, code: str = "failed") -> None:
        super().__init__(message)
        self.code = code


class RewindCancelled(Exception):
    """The rewind was cancelled before its swap; the target is unchanged."""


class RewindContext(Protocol):
    """What a running job gives its engine: reporting and cancellation."""

    def log(self, message: str, level: LogLevel = "info") -> None:
        """Add a line to the job's log."""

    def progress(
        self,
        *,
        phase: Phase | None = None,
        bytes_read: int | None = None,
        statements: int | None = None,
        detail: str | None = None,
    ) -> None:
        """Report progress; cheap enough to call for every statement."""

    def check_cancelled(self) -> None:
        """Raise :class:`RewindCancelled` if a cancel was requested."""

    def swap(self) -> AbstractContextManager[None]:
        """``with ctx.swap():`` around the swap itself.

        Entering raises :class:`RewindCancelled` if a cancel was requested; inside,
        a cancel waits until the block is left, so a swap is never cut in half.
        """


class Engine(ABC):
    """Rewinds one app's database. One instance per job; not shared across threads,
    except :meth:`interrupt`, which another thread may call at any time."""

    driver: ClassVar[str]
    accepts: ClassVar[frozenset[Flavor]]
    """Dump flavors this engine loads; others are refused before anything changes."""
    accepts_containers: ClassVar[frozenset[str]] = frozenset({"sql"})
    takes_snapshots: ClassVar[bool] = False
    """Implements :meth:`snapshot` (see the module doc)."""
    keeps_undo: ClassVar[bool] = False
    """Keeps the state a rewind replaced as the undo copy (``@undo``)."""

    cache_index: CacheIndex | None = None
    """Lent by the job queue: remembered dump digests and the copies seen; None: no cache."""

    def __init__(self, app: AppConfig) -> None:
        self.app = app
        self.maintenance_due = False
        """Set by :meth:`rewind` when :meth:`maintain` has work to do afterwards."""

    @abstractmethod
    def is_local(self) -> bool:
        """True when the target is on this machine (loopback, unix socket, or a file)."""

    @abstractmethod
    def check(self) -> str:
        """Check the target can be reached and written; return what was found.

        Raises:
            RewindError: unreachable, authentication failed, not writable, …
        """

    @abstractmethod
    def rewind(self, source: Source, ctx: RewindContext) -> None:
        """Replace the target's content with the source's, atomically (see module doc)."""

    def interrupt(self) -> None:  # noqa: B027 - optional for engines without long statements
        """Stop a statement that is running now, from another thread. Optional."""

    def cached_copies(self) -> list[CachedCopy]:
        """The copies kept for this target, as found where they live (the truth, not
        the index). Engines without a cache have none."""
        return []

    def drop_cached(
        self, keys: Collection[str] | None, log: Callable[[str], None]
    ) -> list[CachedCopy]:
        """Drop the copies with these keys (all of this target's when None); return them.

        Takes the target's locks itself: never drops a copy a rewind is using.
        """
        return []

    def maintain(self, log: Callable[[str], None]) -> None:  # noqa: B027 - optional
        """The work a rewind left for afterwards; safe beside a running rewind."""

    def snapshot(self, name: str, ctx: RewindContext) -> None:
        """Keep a copy of the target's current state as snapshot ``name`` (a job, like a
        rewind: locked, cancellable; a failed or cancelled one leaves nothing behind).

        Raises:
            RewindError: no such feature here, a snapshot of that name exists, …
        """
        raise RewindError(f"{self.driver} apps cannot take snapshots yet", code="refused")

    def rename_snapshot(self, old: str, new: str, log: Callable[[str], None]) -> CachedCopy:
        """Rename snapshot ``old`` to ``new`` under the target's lock; the renamed copy.

        Raises:
            RewindError: no snapshot ``old``, or one named ``new`` exists.
        """
        raise RewindError(f"{self.driver} apps have no snapshots", code="refused")

    def delete_snapshot(self, name: str, log: Callable[[str], None]) -> CachedCopy:
        """Drop snapshot ``name`` under the target's lock; the dropped copy.

        Raises:
            RewindError: no snapshot of that name.
        """
        raise RewindError(f"{self.driver} apps have no snapshots", code="refused")

    def stored_copy(self, key: str) -> CachedCopy | None:
        """The snapshot or undo copy with this key, as found where it lives."""
        return next((c for c in self.cached_copies() if c.key == key), None)


_AUTH_HINTS = (
    "password authentication failed",  # PostgreSQL
    "no password supplied",  # libpq, when the server asks and none is known
    "access denied for user",  # MySQL / MariaDB
)


def needs_password(error: RewindError) -> bool:
    """True when asking the user for a password could fix ``error``."""
    text = str(error).lower()
    return error.code == "auth" or any(hint in text for hint in _AUTH_HINTS)


def host_is_local(host: str) -> bool:
    """True for no host (the client's local default), a unix socket path or abstract
    socket (``@name``), a loopback name, or a loopback address."""
    if not host or host.startswith(("/", "@")):
        return True
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
