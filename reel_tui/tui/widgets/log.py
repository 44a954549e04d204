"""The Log pane: one job's log, streaming while it runs, bounded in memory."""

from __future__ import annotations

import textwrap
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
        indent = len(stamp) + 2
        style = _STYLES.get(line.level, "")
        width = self._line_width()
        parts = [message]
        if width - indent >= 20 and len(message) > width - indent:
            parts = textwrap.wrap(message, width - indent, break_on_hyphens=False) or parts
        text = Text(stamp, style="dim")
        for number, part in enumerate(parts):
            text.append("  " if number == 0 else "\n" + " " * indent)
            text.append(part, style=style)
        self.write(text, width=width or None)

    def _line_width(self) -> int:
        """The width lines are wrapped to: the pane's, less the vertical scrollbar's, there
        or not yet (0 before the pane has a size). A long message goes on under its own
        start instead of under the time stamp; lines written before a resize keep
        their breaks."""
        width = self.scrollable_content_region.width
        if width and not self.show_vertical_scrollbar:
            width -= self.styles.scrollbar_size_vertical
        return max(width, 0)
