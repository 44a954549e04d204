"""The Jobs pane: queued, running and past jobs (rewinds, undos, snapshots), this process's
and others'."""

from __future__ import annotations

from textual.binding import Binding

from reel_tui.tui.widgets.keyed_table import KeyedTable


class JobTable(KeyedTable):
    """Newest first; the highlighted job's log shows below."""

    COLUMNS = ("job", "kind", "app", "source", "state", "progress", "info")
    WIDTHS = {"progress": 19}
    BINDINGS = [
        Binding("c", "app.cancel_job", "Cancel", tooltip="Cancel the highlighted job"),
        Binding("l", "app.open_log", "Full log", tooltip="The whole log, from disk"),
    ]
