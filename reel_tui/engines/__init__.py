"""Database engines behind one protocol (see :mod:`reel_tui.engines.base`)."""

from __future__ import annotations

import sys

from reel_tui.config import AppConfig
from reel_tui.engines.base import Engine, RewindCancelled, RewindContext, RewindError

__all__ = ["Engine", "RewindCancelled", "RewindContext", "RewindError", "engine_for"]


def engine_for(app: AppConfig) -> Engine:
    """A new engine instance for the app's driver.

    Raises:
        RewindError: the driver has no engine in this version (code ``refused``).
    """
    if app.driver == "sqlite":
        from reel_tui.engines.sqlite import SqliteEngine

        return SqliteEngine(app)
    if app.driver == "postgres":
        _import_psycopg2()
        from reel_tui.engines.postgres import PostgresEngine

        return PostgresEngine(app)
    if app.driver == "mysql":
        from reel_tui.engines.mysql import MysqlEngine

        return MysqlEngine(app)
    raise RewindError(
        f"app {app.name!r}: the {app.driver} engine is not available in this version yet",
        code="refused",
    )


def _import_psycopg2() -> None:
    """Import psycopg2 without Python's ``ssl`` module, a tenth of a warm rewind's time.

    psycopg2 imports ``ssl`` only so that Python sets up the locking callbacks
    OpenSSL 1.0 needed, then tells libpq not to set them up again. OpenSSL 1.1
    and later need none, and psycopg2-binary's libpq links its own OpenSSL 3, not
    the one Python's ``ssl`` loads. When ``ssl`` cannot be imported psycopg2 lets
    libpq initialise OpenSSL itself, which is what happens here; encrypted
    connections (``sslmode``) work as before (tests/test_postgres_ssl.py).
    Skipped when either module is already loaded (the HTTP API imports ``ssl``).
    """
    if "psycopg2" in sys.modules or "ssl" in sys.modules:
        return
    sys.modules["ssl"] = None  # type: ignore[assignment]  # makes `import ssl` fail
    try:
        import psycopg2  # noqa: F401
    finally:
        if "ssl" in sys.modules and sys.modules["ssl"] is None:
            del sys.modules["ssl"]
