"""Database engines behind one protocol (see :mod:`reel_tui.engines.base`)."""

from __future__ import annotations

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
        from reel_tui.engines.postgres import PostgresEngine

        return PostgresEngine(app)
    if app.driver == "mysql":
        from reel_tui.engines.mysql import MysqlEngine

        return MysqlEngine(app)
    raise RewindError(
        f"app {app.name!r}: the {app.driver} engine is not available in this version yet",
        code="refused",
    )
