"""The Log pane: one job's log, streaming while it runs, bounded in memory."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.widgets import RichLog

from reel_tui.jobs import LOG_LINES_KEPT, LogLine

_STYLES = {"error": "bold red", "warning": "yellow"}


class JobLog(RichLog):
    """Timestamped lines; warnings in yellow, errors in red. It keeps as many lines as a
    job keeps in memory; the full log is on disk (``l`` opens it)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=LOG_LINES_KEPT, wrap=True, markup=False, min_width=20)
        self._shown: set[int] = set()

    def show(self, lines: Iterable[LogLine | str]) -> None:
        """Replace the content; ``lines`` may be a running job's live log."""
        snapshot = list(lines)  # one C call: the worker cannot append halfway through
        self.clear()
        for line in snapshot:
            self.add(line)
        self._shown = {id(line) for line in snapshot}

    def add_live(self, line: LogLine) -> None:
        """A line from a job event: skipped if ``show`` already had it (the event was
        still queued when the job's log was shown), else added."""
        if id(line) in self._shown:
            self._shown.discard(id(line))
            return
        self._shown.clear()
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
