"""Single-row INSERTs sent as multi-row ones: what makes ``pg_dump --inserts`` dumps fast.

A dump of one INSERT per row (``pg_dump --inserts`` / ``--column-inserts``, many
hand-written seed files) costs the server a parse, a plan and an executor start
per row: ``psql -f`` takes minutes per 100 MB. Consecutive INSERTs into the same
table with the same column list are sent as one ``INSERT … VALUES (…), (…)``,
which is what ``pg_dump --rows-per-insert`` writes: the same rows, coerced to the
same columns (the VALUES of an INSERT take the target columns' types), with a
fraction of the statements.

Only a statement whose text after ``VALUES`` is provably one row is merged:
standard strings only (no backslash, dollar quote or comment in the row),
no parentheses but the row's own outside its strings, and nothing after its
closing parenthesis (``ON CONFLICT``, ``RETURNING`` keep their own statement).
A merged batch that fails is replayed by the loader statement by statement,
from the original texts, so an error still names its line.
"""

from __future__ import annotations

import re

from reel_tui.engines.pg_script import Statement

_NAME = r'(?:"(?:[^"]|"")*"|[^\s("])+'
_HEAD = re.compile(
    rf"INSERT\s+INTO\s+{_NAME}\s*"
    r'(?:\((?:[^()"]|"(?:[^"]|"")*")*\)\s*)?'  # the column list of --column-inserts
    r"(?:OVERRIDING\s+(?:SYSTEM|USER)\s+VALUE\s+)?"  # identity columns
    r"VALUES ",
    re.I,
)
_HEADS_KNOWN = 64
"""Heads already checked against :data:`_HEAD` (a dump's tables): the check is the slow part."""


class RowSplitter:
    """Splits single-row INSERTs into head and row, remembering the heads it has checked."""

    def __init__(self) -> None:
        self._heads: dict[str, bool] = {}

    def split(self, text: str) -> tuple[str, str] | None:
        """``(head, row)`` of a single-row INSERT, e.g. ``("INSERT INTO t VALUES ", "(1, 'a')")``,
        or None for any other statement (which is then sent as it is).

        The row must be one parenthesised list whose only parentheses, outside its
        strings, are its own: ``f(x)`` or a cast to ``numeric(10,2)`` are not merged.
        """
        if text[:6].upper() != "INSERT":
            return None
        cut = text.find(" VALUES (")
        if cut < 0:
            cut = text.find(" values (")
            if cut < 0:
                return None
        head, row = text[: cut + 8], text[cut + 8 :].rstrip()
        if row.endswith(";"):
            row = row[:-1].rstrip()
        if "\\" in row or "$" in row or "--" in row or "/*" in row or row[-1] != ")":
            return None
        pieces = row.split("'")
        if len(pieces) % 2 == 0:  # an odd number of quotes: not a plain row
            return None
        outside = "".join(pieces[0::2])
        if outside.count("(") != 1 or outside.count(")") != 1 or ";" in outside:
            return None
        if not self._head_ok(head):
            return None
        return head, row

    def _head_ok(self, head: str) -> bool:
        known = self._heads.get(head)
        if known is None:
            if len(self._heads) >= _HEADS_KNOWN:
                self._heads.clear()
            known = self._heads[head] = _HEAD.fullmatch(head) is not None
        return known


class Batch:
    """Statements waiting to go to the server, kept as the SQL that will be sent: runs of
    single-row INSERTs with the same head (table and columns) folded into multi-row ones.

    The statements themselves are kept too, for a replay one by one after an error.
    """

    def __init__(self) -> None:
        self.statements: list[Statement] = []
        self.size = 0
        """Characters of the statements held."""
        self.rows = RowSplitter()
        self.head: str | None = None
        """The head of the multi-row INSERT being built, None between statements."""
        self._sql: list[str] = []

    def __len__(self) -> int:
        return len(self.statements)

    def add(self, statement: Statement) -> None:
        parts = self.rows.split(statement.text)
        if parts is not None:
            self.add_row(statement, *parts)
            return
        self._close_insert()
        self._sql.append(statement.text)
        self._sql.append("\n")
        self._keep(statement)

    def add_row(self, statement: Statement, head: str, row: str) -> None:
        """Add a single-row INSERT already split by :attr:`rows`."""
        if head == self.head:
            self._sql.append(",\n")
        else:
            self._close_insert()
            self.head = head
            self._sql.append(head)
        self._sql.append(row)
        self._keep(statement)

    def take(self) -> tuple[list[Statement], str]:
        """The statements and their SQL; the batch is empty afterwards."""
        self._close_insert()
        taken = self.statements, "".join(self._sql)
        self.statements, self._sql, self.size = [], [], 0
        return taken

    def _keep(self, statement: Statement) -> None:
        self.statements.append(statement)
        self.size += len(statement.text)

    def _close_insert(self) -> None:
        if self.head is not None:
            self._sql.append(";\n")
            self.head = None
