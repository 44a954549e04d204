"""Splitting a mysqldump / mariadb-dump script into statements, as the mysql client does.

The MySQL engine loads dumps without the mysql client, so it must find the
statement boundaries the client finds. It streams: it holds one statement at
a time, so a dump of any size splits in flat memory.

Rules followed (the client's, from ``mysql.cc``):

* the delimiter (``;`` until a ``DELIMITER`` line changes it, e.g. to ``;;``
  or ``$$`` around routine bodies) ends a statement outside quotes and
  comments; the delimiter itself is not sent;
* ``'…'`` and ``"…"`` strings with doubled quotes and, unless the server's
  ``NO_BACKSLASH_ESCAPES`` is on (:attr:`ScriptSplitter.backslash_escapes`),
  backslash escapes; ```…``` identifiers with doubled backticks;
* ``#`` and ``-- `` (two dashes then a space or control character) comment to
  the end of the line; ``/* … */`` comments; versioned comments ``/*!40101 …*/``
  and ``/*M!100101 …*/`` are code: they are sent, and the server runs them or
  not by its version, as it does for the client;
* ``DELIMITER x`` at the start of a statement, and mariadb-dump's first line
  ``/*M!999999\\- enable the sandbox mode */``, are client commands.

Comments before a statement are dropped; comments inside one (routine bodies)
are kept as the file has them, as ``mysql --comments`` does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from reel_tui.engines.mysql_stream import Rows, ScriptStream

_QUOTED = re.compile(
    r"'[^'\\]*(?:(?:\\.|'')[^'\\]*)*'|\"[^\"\\]*(?:(?:\\.|\"\")[^\"\\]*)*\"|`[^`]*(?:``[^`]*)*`",
    re.S,
)
"""Whole quoted tokens on one line, for the fast path (backslash escapes on)."""
_FAST_SPECIAL = re.compile(r"['\"`#\\]|--|/\*|\*/")
_DELIMITER_COMMAND = re.compile(r"\s*delimiter(?:\s+(\S+)|\s*$)", re.I)
_SANDBOX = re.compile(r"\s*/\*M!999999\\-")
_LINE_COMMENT_END = re.compile(r"[\x00-\x20]")

CODE, QUOTE, COMMENT = range(3)


class ScriptError(Exception):
    """The script cannot be split: it ends inside a string or comment, or a bad DELIMITER."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class Statement:
    """One SQL statement, from its first code character to (not including) the delimiter."""

    text: str
    line: int
    delimited: bool = True
    """False for a last statement the file ends in without its delimiter."""


@dataclass(frozen=True)
class ClientCommand:
    """A mysql client command: ``delimiter`` (argument: the new one) or ``sandbox``."""

    name: str
    argument: str
    line: int


class ScriptSplitter:
    """Iterate over a script's statements and client commands, streaming."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self._take_rows = lines.take_rows if isinstance(lines, ScriptStream) else None
        """The fast path for plain INSERTs, when the lines come from a dump stream."""
        self.line_number = 0
        """Number of the line last taken from the input."""
        self.backslash_escapes = True
        """Whether ``\\`` escapes in strings; the loader follows the server's sql_mode."""
        self._delimiter = ";"
        self._code = _code_patterns(";")
        self._mode = CODE
        self._quote = ""
        self._conditional = 0
        """Nesting of open versioned comments (their content is code)."""
        self._parts: list[str] = []
        self._start = 0

    @property
    def delimiter(self) -> str:
        return self._delimiter

    def __iter__(self) -> Iterator[Statement | ClientCommand | Rows]:
        fast = self._take_rows
        while True:
            if fast is not None and self._at_plain_start():
                rows = fast()
                if rows is not None:
                    self.line_number += rows.lines
                    yield rows
                    continue
            line = next(self._lines, None)
            if line is None:
                break
            self.line_number += 1
            if self._mode == CODE and not self._conditional:
                if not self._parts:
                    command = self._command(line)
                    if command is not None:
                        yield command
                        continue
                quick = self._plain_line(line)
                if quick is not None:
                    if quick.text:
                        yield quick
                    continue
            yield from self._feed(line)
        yield from self._finish()

    def _at_plain_start(self) -> bool:
        """Between statements, in the state where a plain INSERT splits as :class:`Rows`."""
        return (
            not self._parts
            and self._mode == CODE
            and not self._conditional
            and self._delimiter == ";"
            and self.backslash_escapes
        )

    def _command(self, line: str) -> ClientCommand | None:
        match = _DELIMITER_COMMAND.match(line)
        if match:
            if not match.group(1):
                raise ScriptError("DELIMITER needs an argument", self.line_number)
            self._delimiter = match.group(1)
            self._code = _code_patterns(self._delimiter)
            return ClientCommand("delimiter", self._delimiter, self.line_number)
        if _SANDBOX.match(line):
            return ClientCommand("sandbox", line.strip(), self.line_number)
        return None

    def _plain_line(self, line: str) -> Statement | None:
        """The usual dump line, found with two C-speed regex passes instead of the scanner.

        A line without comments, backslashes outside strings or open strings
        either ends the statement with its one ``;`` (returned), or goes on
        without any (kept; an empty statement is returned). None when the line
        needs the scanner.
        """
        if self._delimiter != ";" or not self.backslash_escapes:
            return None
        body = line.rstrip()
        if not body:
            return None
        if not self._parts and not body[0].isalpha():
            return None
        code = _QUOTED.sub("", body) if ("'" in body or '"' in body or "`" in body) else body
        if _FAST_SPECIAL.search(code):
            return None
        ends = code.count(";")
        if ends == 0:
            if not self._parts:
                self._start = self.line_number
            self._parts.append(line)
            return Statement("", self._start)
        if ends != 1 or not body.endswith(";"):
            return None
        if not self._parts:
            return Statement(body[:-1].rstrip(), self.line_number)
        text = ("".join(self._parts) + body[:-1]).strip()
        self._parts = []
        return Statement(text, self._start)

    def _feed(self, line: str) -> Iterator[Statement]:
        """Scan one line; yield each statement it completes."""
        pos = 0
        seg = 0 if self._parts else -1
        """Where the statement's text starts in this line; -1 while no code is seen."""
        end = len(line)
        while pos < end:
            if self._mode == QUOTE:
                pos = self._skip_quote(line, pos)
                continue
            if self._mode == COMMENT:
                found = line.find("*/", pos)
                if found < 0:
                    break
                pos, self._mode = found + 2, CODE
                continue
            match = self._code[self._conditional > 0].search(line, pos)
            if match is None:
                if seg < 0 and line[pos:].strip():
                    seg = pos + len(line[pos:]) - len(line[pos:].lstrip())
                    self._start = self.line_number
                break
            found, token = match.start(), match.group()
            comment = token in ("#", "--") or (token == "/*" and not _is_versioned(line, found))
            if seg < 0 and (line[pos:found].strip() or not comment):
                skipped = line[pos:found]
                seg = pos + len(skipped) - len(skipped.lstrip()) if skipped.strip() else found
                self._start = self.line_number
            pos = match.end()
            if token == self._delimiter:
                text = ("".join(self._parts) + line[seg:found]).strip()
                self._parts, seg, self._conditional = [], -1, 0
                if text:
                    yield Statement(text, self._start)
            elif token in ("'", '"', "`"):
                self._mode, self._quote = QUOTE, token
            elif token == "/*":
                if comment:
                    self._mode = COMMENT
                else:
                    self._conditional += 1
            elif token == "*/":
                self._conditional = max(0, self._conditional - 1)
            else:  # "#" or "-- ": the rest of the line is a comment
                break
        if seg >= 0:
            self._parts.append(line[seg:])

    def _skip_quote(self, line: str, pos: int) -> int:
        """Past the closing quote, or to the end of the line when the string goes on."""
        quote = self._quote
        escapes = self.backslash_escapes and quote != "`"
        while True:
            found = line.find(quote, pos)
            if escapes:
                slash = line.find("\\", pos, found if found >= 0 else len(line))
                if slash >= 0:
                    pos = slash + 2
                    continue
            if found < 0:
                return len(line)
            if line.startswith(quote, found + 1):
                pos = found + 2
                continue
            self._mode = CODE
            return found + 1

    def _finish(self) -> Iterator[Statement]:
        """At the end: a last statement without a delimiter is sent, as the client does."""
        if self._mode != CODE or self._conditional:
            where = "a string" if self._mode == QUOTE else "a comment"
            raise ScriptError(
                f"the dump ends inside {where} (truncated file?): {self._first_line()}",
                self._start,
            )
        text = "".join(self._parts).strip()
        self._parts = []
        if text:
            yield Statement(text, self._start, delimited=False)

    def _first_line(self) -> str:
        return "".join(self._parts).strip().split("\n", 1)[0][:80]


def _code_patterns(delimiter: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Tokens that matter outside strings and comments, the delimiter first (as the client);
    the second pattern also finds the ``*/`` that closes a versioned comment."""
    tokens = [re.escape(delimiter), "['\"`#]", r"--(?=[\x00-\x20]|$)", r"/\*"]
    return re.compile("|".join(tokens)), re.compile("|".join([*tokens, r"\*/"]))


def _is_versioned(line: str, found: int) -> bool:
    """``/*!…`` or ``/*M!…``: a comment whose content the server may run."""
    return line.startswith("/*!", found) or line.startswith("/*M!", found)
