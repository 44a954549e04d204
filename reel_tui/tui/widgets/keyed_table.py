"""A DataTable that is refreshed from a list of keyed rows, keeping the cursor on its row."""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable

Cell = str | Text
Row = tuple[str, Sequence[Cell]]


class KeyedTable(DataTable[Cell]):
    """Rows are identified by key; ``sync`` updates cells in place when the keys are unchanged,
    so a table refreshed ten times a second neither flickers nor loses the cursor."""

    COLUMNS: tuple[str, ...] = ()
    WIDTHS: dict[str, int] = {}
    """Fixed widths of some columns; the others fit their content."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._keys: list[str] = []

    def on_mount(self) -> None:
        self.add_columns_sized([])

    def add_columns_sized(self, rows: Sequence[Row]) -> None:
        """Columns as wide as their widest cell: set here, not left to DataTable's
        lazy measuring, which can leave a column as narrow as its header."""
        for index, column in enumerate(self.COLUMNS):
            width = self.WIDTHS.get(column)
            if width is None:
                cells = [cell_len(str(cells[index])) for _, cells in rows]
                width = max([cell_len(column), *cells])
            self.add_column(column, key=column, width=width)

    def _outgrown(self, rows: Sequence[Row]) -> bool:
        """A cell wider than its column: columns have fixed widths once added (see
        :meth:`add_columns_sized`), so growing one means building the table again."""
        widths = {key.value: column.width for key, column in self.columns.items()}
        return any(
            cell_len(str(cell)) > widths.get(column, 0)
            for _, cells in rows
            for column, cell in zip(self.COLUMNS, cells, strict=True)
            if column not in self.WIDTHS
        )

    @property
    def current_key(self) -> str | None:
        """The key of the row under the cursor."""
        if not self._keys or not 0 <= self.cursor_row < len(self._keys):
            return None
        return self._keys[self.cursor_row]

    def sync(self, rows: Sequence[Row]) -> None:
        keys = [key for key, _ in rows]
        if keys == self._keys and not self._outgrown(rows):
            for key, cells in rows:
                for column, cell in zip(self.COLUMNS, cells, strict=True):
                    if self.get_cell(key, column) != cell:
                        self.update_cell(key, column, cell, update_width=True)
            return
        keep = self.current_key
        self.clear(columns=True)  # columns too, so that their widths fit the new rows
        self.add_columns_sized(rows)
        for key, cells in rows:
            self.add_row(*cells, key=key)
        self._keys = keys
        if keep in keys:
            self.move_cursor(row=keys.index(keep), animate=False)
