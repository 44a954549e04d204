"""The Sources pane: the highlighted app's dumps, snapshots and undo copy, filterable with
``/``."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Input

from reel_tui.tui.widgets.keyed_table import KeyedTable


class SourceTable(KeyedTable):
    """Dumps, snapshots and the undo copy of one app; Enter asks to rewind to the highlighted
    one. Rename and delete are offered (and shown in the footer) on a snapshot only."""

    COLUMNS = ("source", "format", "size", "age")
    BINDINGS = [
        Binding("enter", "select_cursor", "Rewind", tooltip="Rewind the app to this source"),
        Binding("slash", "app.filter", "Filter", key_display="/"),
        Binding("d", "app.rewind_default", "Default", tooltip="Rewind to the app's dbsource"),
        Binding("n", "rename_snapshot", "Rename", tooltip="Rename this snapshot"),
        Binding("x,delete", "delete_snapshot", "Delete", key_display="x", tooltip="Delete it"),
        Binding("escape", "app.clear_filter", "Clear filter", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.snapshot_keys: frozenset[str] = frozenset()
        """Keys of the rows that are snapshots (``@NAME``): set with the rows."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("rename_snapshot", "delete_snapshot"):
            return self.current_key in self.snapshot_keys
        return True

    def on_data_table_row_highlighted(self) -> None:
        self.refresh_bindings()  # rename / delete come and go with the highlighted row

    async def action_rename_snapshot(self) -> None:
        await self.app.run_action("rename_snapshot")

    async def action_delete_snapshot(self) -> None:
        await self.app.run_action("delete_snapshot")


class FilterInput(Input):
    """The ``/`` filter above the sources; Esc clears and hides it."""

    BINDINGS = [Binding("escape", "app.clear_filter", "Clear filter")]
