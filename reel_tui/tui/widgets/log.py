"""The Log pane: one job's log, streaming while it runs, bounded in memory."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.widgets import RichLog

from reel_tui.jobs import LogLine

LINES_SHOWN = 5000
"""Lines the pane keeps; the full log is on disk (``l`` opens it)."""
_STYLES = {"error": "bold red", "warning": "yellow"}


class JobLog(RichLog):
    """Timestamped lines; warnings in yellow, errors in red."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=LINES_SHOWN, wrap=True, markup=False, min_width=20)

    def show(self, lines: Iterable[LogLine | str]) -> None:
        self.clear()
        for line in lines:
            self.add(line)

    def add(self, line: LogLine | str) -> None:
        if isinstance(line, str):
            self.write(Text(line))
            return
        stamp, _, message = line.format().partition("  ")
        text = Text(stamp, style="dim")
        text.append("  ")
        text.append(message, style=_STYLES.get(line.level, ""))
        self.write(text)
