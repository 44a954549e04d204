"""Words, glyphs and bars for the TUI: state readable without colour."""

from __future__ import annotations

import re
import time

from rich.text import Text

from reel_tui.config import Driver

ENGINE_TAGS: dict[Driver, str] = {"postgres": "PG", "mysql": "MY", "sqlite": "SQ"}
STATE_GLYPHS = {
    "queued": ("◌", "yellow"),
    "running": ("●", "cyan"),
    "succeeded": ("✓", "green"),
    "failed": ("✗", "red"),
    "cancelled": ("⊘", "magenta"),
}
STORED_GLYPHS = {"snapshot": ("◆", "magenta"), "undo": ("↶", "cyan")}
"""Marks of the app's own copies among its dumps: a snapshot, the undo copy."""
KIND_STYLES = {"rewind": "dim", "snapshot": "magenta", "undo": "cyan"}
"""A job's kind in the Jobs table: rewinds are the usual case, the others stand out."""


def ago(timestamp: float | None, now: float | None = None) -> str:
    """``3m ago``, ``2d ago``: how long ago, compact enough for a narrow column."""
    if timestamp is None:
        return ""
    elapsed = max(0, (now or time.time()) - timestamp)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if elapsed >= size:
            return f"{int(elapsed // size)}{unit} ago"
    return "now"


def seconds(value: float | None) -> str:
    """``0.8 s``, ``1:05``: a duration or an ETA."""
    if value is None:
        return ""
    if value < 1:
        return f"{value:.2f} s"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(value), 60)
    return f"{minutes}:{secs:02d}"


def bar(fraction: float, width: int = 10) -> Text:
    """A progress bar: thick for done, thin for to do (readable without colour)."""
    filled = round(max(0.0, min(fraction, 1.0)) * width)
    return Text.assemble(("━" * filled, "cyan"), ("─" * (width - filled), "dim"))


def eta(value: float | None) -> str:
    """``5s``, ``1:05``: time left, compact."""
    if value is None:
        return ""
    if value < 60:
        return f"{value:.0f}s"
    minutes, secs = divmod(int(value), 60)
    return f"{minutes}:{secs:02d}"


def state_text(state: str, extra: str = "") -> Text:
    """``● running 42%``: glyph and word in the state's colour, then ``extra``."""
    glyph, colour = STATE_GLYPHS.get(state, ("?", "white"))
    text = Text(f"{glyph} {state}", style=colour)
    if extra:
        text.append(f" {extra}")
    return text


def short(text: str, width: int) -> str:
    """``text`` cut at a word boundary to ``width`` characters, with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    cut = text[: width - 1].rsplit(" ", 1)[0]
    return (cut if len(cut) > width // 2 else text[: width - 1]) + "…"


def short_left(text: str, width: int) -> str:
    """``text`` cut from the left to ``width`` characters: the end of a path is the
    part worth keeping (``…/dumps/blog.sqlite3``)."""
    if len(text) <= width:
        return text
    return "…" + text[len(text) - width + 1 :]


_PATH = re.compile(r"(?<![\w.])/(?:[^\s/:]+/)+([^\s/:]+)")


def without_folders(text: str) -> str:
    """Absolute paths in ``text`` cut to their file names, for narrow columns."""
    return _PATH.sub(r"\1", text)
