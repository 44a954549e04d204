"""The Sources pane: the highlighted app's dumps, filterable with ``/``."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Input

from reel_tui.tui.widgets.keyed_table import KeyedTable


class SourceTable(KeyedTable):
    """Dumps of one app; Enter asks to rewind to the highlighted one."""

    COLUMNS = ("source", "format", "size", "age")
    BINDINGS = [
        Binding("enter", "select_cursor", "Rewind", tooltip="Rewind the app to this source"),
        Binding("slash", "app.filter", "Filter", key_display="/"),
        Binding("d", "app.rewind_default", "Default", tooltip="Rewind to the app's dbsource"),
        Binding("escape", "app.clear_filter", "Clear filter", show=False),
    ]


class FilterInput(Input):
    """The ``/`` filter above the sources; Esc clears and hides it."""

    BINDINGS = [Binding("escape", "app.clear_filter", "Clear filter")]
