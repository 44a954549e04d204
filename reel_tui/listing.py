"""An app's sources as JSON-ready entries: what ``--list --json`` prints and the API serves.

Dumps first (from the file system), then the snapshots and the undo copy the cache
index knows (no server is asked: cheap enough for every request).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reel_tui.cache import UNDO_KEY, CacheIndex
from reel_tui.config import AppConfig
from reel_tui.sources import list_sources


def source_entries(index: CacheIndex, app: AppConfig) -> list[dict[str, Any]]:
    """Every source of the app, dumps then stored copies, as ``--list --json`` shows them."""
    dumps = [
        {"name": s.name, "kind": "dump", "size": s.size, "modified": s.modified,
         "format": s.format.label, "flavor": s.format.flavor,
         "compression": s.format.compression, "default": s.is_default,
         "cached": cached_entry(index, app, s.path)}
        for s in list_sources(app)
    ]  # fmt: skip
    return dumps + stored_entries(index, app)


def stored_entries(index: CacheIndex, app: AppConfig) -> list[dict[str, Any]]:
    """The app's snapshots (by name) and its undo copy as --list sources, from the index:
    ``@NAME`` never collides with a dump's path (hidden files are not listed)."""
    copies = [c for c in index.copies(app.target_key) if c.kind != "cache"]
    copies.sort(key=lambda c: (c.kind == "undo", c.source))
    return [
        {"name": f"@{UNDO_KEY}" if c.kind == "undo" else c.source, "kind": c.kind,
         "size": c.bytes, "modified": c.created, "taken": c.created,
         "format": c.kind, "flavor": app.driver, "compression": "none", "default": False,
         "cached": None, "object": c.name, **({"holds": c.source} if c.kind == "undo" else {})}
        for c in copies
    ]  # fmt: skip


def cached_entry(index: CacheIndex, app: AppConfig, path: Path) -> dict[str, Any] | None:
    """What the index knows of a cached copy of this dump, for --list (no server asked)."""
    copy = index.cached_source(app, path)
    if copy is None:
        return None
    return {"bytes": copy.bytes, "name": copy.name, "used": copy.used}
