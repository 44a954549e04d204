"""The dump as the splitter reads it: lines, and whole extended INSERTs as bytes.

Nearly all of a mysqldump is ``INSERT INTO `t` VALUES (…),(…);`` statements
of about a megabyte, one row per line in mariadb-dump's output. Splitting
them line by line in Python costs as much CPU as the server spends running
them. At the start of a statement the splitter asks :meth:`ScriptStream.take_rows`
first: it finds the statement's end (``;`` at the end of a line) with one
C-speed search and checks the whole statement with one regex (tuples of
literals: numbers, NULL, quoted strings, ``0x…`` / ``_binary`` literals).
What passes is returned as the file's own bytes, never decoded; anything
else (comments, parentheses inside a tuple, a string with a raw ``;``
line end, ``INSERT … SELECT``, …) is left to the line splitter, which
gives the same statement the slow way. Memory stays at one statement plus
one block.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from reel_tui.dumpfile import DumpReader

BLOCK = 1024 * 1024
FAST_LIMIT = 16 * 1024 * 1024
"""A statement longer than this goes to the line splitter (which holds it too)."""

_STRING = rb"'(?:[^'\\]++|\\.|'')*+'|\"(?:[^\"\\]++|\\.|\"\")*+\""
_CODE = rb"[^'\"`()\\;#/\-]++|-(?!-)|/(?!\*)"
_TUPLE = rb"\((?:" + _CODE + rb"|" + _STRING + rb")*+\)"
_IDENT = rb"(?:`(?:[^`]|``)+`|[A-Za-z0-9_$]+)"
_ROWS = re.compile(
    rb"INSERT\s+INTO\s+(" + _IDENT + rb"(?:\." + _IDENT + rb")?)"
    rb"(?:\s*\((?:\s*" + _IDENT + rb"\s*,)*\s*" + _IDENT + rb"\s*\))?"
    rb"\s*VALUES\s*" + _TUPLE + rb"(?:\s*,\s*" + _TUPLE + rb")*+\s*",
    re.S | re.I,
)
"""A whole plain ``INSERT INTO t [(cols)] VALUES (…),…`` up to its ``;``: group 1 is t."""
_END = re.compile(rb";[ \t\r]*\n")
"""Where a statement that ends at the end of its line ends."""


@dataclass(frozen=True)
class Rows:
    """A plain multi-row INSERT, as the file's bytes without its ``;``."""

    sql: bytes
    line: int
    table: str
    """The table as written, backticks removed (a schema-qualified name keeps its dot)."""
    lines: int
    """How many lines of the file it spans (so the caller can count)."""

    @property
    def text(self) -> str:
        """The statement as text, for the rare paths that rewrite it."""
        return self.sql.decode("utf-8", "surrogateescape")


class ScriptStream:
    """Lines of the dump (decoded as the mysql client reads them), plus :meth:`take_rows`."""

    def __init__(self, reader: DumpReader, on_line: Callable[[str], None] | None = None) -> None:
        """``on_line`` sees every line given out as text (not those inside :class:`Rows`)."""
        self._reader = reader
        self._on_line = on_line
        self._buffer = b""
        self._pos = 0
        self._eof = False
        self.line_number = 0

    def _fill(self, size: int = 0) -> bool:
        """Append up to ``size`` (else :data:`BLOCK`) more bytes; False at the end."""
        if self._eof:
            return False
        chunk = self._reader.read_block(max(size, BLOCK))
        if not chunk:
            self._eof = True
            return False
        self._buffer = self._buffer[self._pos :] + chunk
        self._pos = 0
        return True

    def __iter__(self) -> Iterator[str]:
        """The remaining lines, each with its ending, CRLF read as LF (as the client does)."""
        while True:
            end = self._buffer.find(b"\n", self._pos)
            if end < 0:
                if self._fill():
                    continue
                if self._pos >= len(self._buffer):
                    return
                end = len(self._buffer) - 1
            line = self._buffer[self._pos : end + 1]
            self._pos = end + 1
            self._count_lines(1)
            if line.endswith(b"\r\n"):
                line = line[:-2] + b"\n"
            text = line.decode("utf-8", "surrogateescape")
            if self._on_line is not None:
                self._on_line(text)
            yield text

    def _count_lines(self, count: int) -> None:
        self.line_number += count
        self._reader.line_number = self.line_number

    def take_rows(self) -> Rows | None:
        """The next statement if it is a plain multi-row INSERT ending a line; else None
        and nothing is consumed."""
        while len(self._buffer) - self._pos < 16 and self._fill():
            pass
        if self._buffer[self._pos : self._pos + 7].upper() != b"INSERT ":
            return None
        end = self._find_end()
        if end is None:
            return None
        semicolon, line_end = end
        match = _ROWS.fullmatch(self._buffer, self._pos, semicolon)
        if match is None:
            return None
        sql = self._buffer[self._pos : semicolon].rstrip()
        lines = self._buffer.count(b"\n", self._pos, line_end)
        if b"\r" in sql:
            sql = sql.replace(b"\r\n", b"\n")
        table = match.group(1).decode("utf-8", "surrogateescape")
        rows = Rows(sql, self.line_number + 1, table.replace("`", ""), lines)
        self._pos = line_end
        self._count_lines(lines)
        return rows

    def _find_end(self) -> tuple[int, int] | None:
        """(position of the ``;``, position after its line's ``\\n``) of the statement
        starting here, reading more as needed; None past :data:`FAST_LIMIT`."""
        searched = self._pos
        while True:
            found = _END.search(self._buffer, searched)
            if found is not None:
                return found.start(), found.end()
            if self._eof and self._buffer.endswith(b";"):
                return len(self._buffer) - 1, len(self._buffer)
            pending = len(self._buffer) - self._pos
            if pending >= FAST_LIMIT:
                return None
            searched = max(self._pos, len(self._buffer) - 8)
            start = self._pos
            if not self._fill(pending):
                return None
            searched -= start  # the buffer was rebased at the statement's start
