"""The Apps pane: every app with its engine, state and connection."""

from __future__ import annotations

from textual.binding import Binding

from reel_tui.tui.widgets.keyed_table import KeyedTable


class AppList(KeyedTable):
    """Apps from the config; the highlighted one's sources show beside it."""

    COLUMNS = ("app", "engine", "state")
    BINDINGS = [
        Binding("enter", "app.focus_sources", "Sources", tooltip="Go to this app's sources"),
        Binding("d", "app.rewind_default", "Default", tooltip="Rewind to its dbsource"),
        Binding("t", "app.test", "Test", tooltip="Check every app's connection again"),
    ]

    def on_mount(self) -> None:
        # Textual calls KeyedTable.on_mount too (handlers run for every class in the MRO)
        self.show_header = False
