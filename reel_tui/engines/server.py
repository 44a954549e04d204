"""What the two server engines share around the copies they keep on the server.

PostgreSQL and MySQL keep cached copies, snapshots and the undo copy as
databases / schemas on the server, guarded by a lock the server holds for the
target. Changing them outside a rewind (``--clear-cache``, renaming or deleting
a snapshot) goes the same way for both: an admin connection, the target's lock,
the cache index told what the server holds afterwards (for ``--list`` and the
TUI), and the driver's errors as one line.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from reel_tui.cache import CachedCopy
from reel_tui.engines.base import Engine, RewindError

_T = TypeVar("_T")


class ServerEngine(Engine):
    """An engine whose copies live on a database server."""

    driver_error: type[Exception]
    """The driver's base error class, reported as one line with the server's address."""

    @abstractmethod
    def _connect_admin(self) -> Any:
        """A connection for changing the copies (autocommit)."""

    @abstractmethod
    def _server_copies(self, admin: Any) -> list[CachedCopy]:
        """The target's copies on the server, as the cache module describes them."""

    @abstractmethod
    def _target_locked(self, admin: Any) -> AbstractContextManager[None]:
        """Hold the target's lock, waiting a while for a running rewind (TimeoutError)."""

    @abstractmethod
    def _one_line(self, exc: Exception) -> str:
        """The driver's error as one line, with where the server is."""

    def _record_copies(self, admin: Any) -> None:
        """Tell the cache index what the server holds now."""
        if self.cache_index is not None:
            self.cache_index.record_copies(self.app.target_key, self._server_copies(admin))

    def _cache_work(self, work: Callable[[Any], _T]) -> _T:
        """Run ``work`` on an admin connection, then record the copies; a lock that stays
        taken is "busy", the driver's errors are one line."""
        admin = self._connect_admin()
        try:
            result = work(admin)
            self._record_copies(admin)
            return result
        except TimeoutError as exc:
            raise RewindError(str(exc), code="busy") from None
        except self.driver_error as exc:
            raise RewindError(self._one_line(exc)) from None
        finally:
            admin.close()

    def _locked(self, change: Callable[[Any], CachedCopy]) -> CachedCopy:
        """Run ``change`` under the target's lock (see :meth:`_cache_work`)."""

        def locked(admin: Any) -> CachedCopy:
            with self._target_locked(admin):
                return change(admin)

        return self._cache_work(locked)
