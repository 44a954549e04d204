"""Splitting a plain pg_dump script into statements, COPY data and psql meta-commands.

The PostgreSQL engine loads plain dumps without psql, so it must find the
statement boundaries psql finds: a ``;`` outside quotes, comments and
parentheses ends a statement, except inside a ``BEGIN ATOMIC … END`` function
body. The splitter streams: it holds one statement at a time, and the lines of
a ``COPY … FROM stdin`` block are handed to the caller one by one (up to the
``\\.`` line) without being scanned at all, so a dump of any size loads in flat
memory.

Lexical rules followed (PostgreSQL's, as psql's lexer applies them):

* ``'…'`` strings with ``''``; ``E'…'`` strings also with backslash escapes
  (and plain strings too when the script sets ``standard_conforming_strings``
  off); ``"…"`` identifiers with ``""``;
* dollar quotes ``$$…$$`` and ``$tag$…$tag$`` (a ``$`` inside an identifier,
  ``a$b``, or a parameter, ``$1``, starts none);
* ``--`` comments to the end of the line, nested ``/* … */`` comments;
* a line starting with ``\\`` between statements is a psql meta-command
  (``\\connect``, ``\\restrict KEY``, …).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reel_tui.dumpfile import count_lines

if TYPE_CHECKING:
    from reel_tui.dumpfile import ByteTail
    from reel_tui.engines.pg_inserts import RowSplitter

_CODE = re.compile(r"[;'\"$()]|--|/\*")
_ESCAPED = re.compile(r"['\\]")
_BLOCK = re.compile(r"/\*|\*/")


def _or_non_ascii(ascii_class: str) -> str:
    """``[{ascii_class}\\x80-\\U0010ffff]``, written as the negated class of the other
    ASCII characters: both match the same, but ``re`` compiles a range up to U+10FFFF by
    filling a 64K table in Python (~8 ms a class; ~100 ms for this module, most of a
    PostgreSQL rewind's start-up), the negated class in microseconds."""
    inside = re.compile(f"[{ascii_class}]")
    others = "".join(re.escape(chr(c)) for c in range(128) if not inside.fullmatch(chr(c)))
    return f"[^{others}]"


_NAME_START = _or_non_ascii("A-Za-z_")
_TAG_CHAR = _or_non_ascii(r"\w")
_NAME_CHAR = _or_non_ascii(r"\w$")
_NUMBER_CHAR = _or_non_ascii(r"\w$.")
_DOLLAR_TAG = re.compile(rf"\$(?:{_NAME_START}{_TAG_CHAR}*)?\$")
_IDENT_CHAR = re.compile(_NAME_CHAR)
_COPY_STDIN = re.compile(r"COPY\b.*\bFROM\s+stdin\b", re.I | re.S)
_ROUTINE = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE)\b", re.I)
_SCS = re.compile(r"SET\s+(?:SESSION\s+)?standard_conforming_strings\s*(?:=|TO)\s*'?(\w+)'?", re.I)
# For BEGIN ATOMIC bodies only: a rough tokenizer that is enough to count BEGIN/CASE/END.
# Words and dollar tags are those of the main scanner: an identifier may hold non-ASCII
# letters (``ébegin`` is one word, not ``é`` and ``begin``), and so may a tag (``$é$``).
_ESCAPE_STRING = r"'(?:[^'\\]|\\.|'')*'"


def _routine_tokens(plain_string: str) -> re.Pattern[str]:
    return re.compile(
        rf"(?<!{_NAME_CHAR})[Ee]{_ESCAPE_STRING}|{plain_string}|"
        rf"(?P<word>[()]|{_NAME_START}{_NAME_CHAR}*)|(?P<comment>/\*)|"
        rf"\"(?:[^\"]|\"\")*\"|(?P<line>--[^\n]*)|\d{_NUMBER_CHAR}*|"
        rf"(?P<tag>\$(?:{_NAME_START}{_TAG_CHAR}*)?\$).*?(?P=tag)|\S",
        re.S,
    )


_ROUTINE_TOKENS = {True: _routine_tokens(r"'(?:[^']|'')*'"), False: _routine_tokens(_ESCAPE_STRING)}
"""Per standard_conforming_strings: words and parentheses (``word``), comments
(``comment`` starts a nested one, ``line``), and other tokens: strings, quoted
names, numbers, dollar quotes, any other character."""

_PLAIN_STRING = re.compile(r"'[^']*'")
_NEEDS_SCAN = re.compile(r"['\"$]|--|/\*")
_NOT_PAREN = re.compile(r"[^()]+")
_END_OF_COPY = frozenset({"\\.\n", "\\.\r\n", "\\."})
"""The lines psql takes as the end of COPY data: a backslash-dot alone on its line."""

CODE, QUOTE, ESCAPE_QUOTE, IDENT, DOLLAR, COMMENT = range(6)


class ScriptError(Exception):
    """The script cannot be split: it ends inside a statement or inside COPY data."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class Statement:
    """One SQL statement, from its first code character (comments before it dropped)
    to its ``;``. ``copy_from_stdin``: its data lines follow; read them with
    :meth:`ScriptSplitter.copy_data`."""

    text: str
    line: int
    copy_from_stdin: bool = False


@dataclass(frozen=True)
class MetaCommand:
    """A psql backslash command line, e.g. ``\\connect shop`` → ("connect", "shop")."""

    name: str
    argument: str
    line: int


class ScriptSplitter:
    """Iterate over a script's statements and meta-commands, streaming."""

    def __init__(
        self,
        lines: Iterable[str],
        read_lines: Callable[[int], list[str]] | None = None,
        byte_tail: Callable[[], ByteTail | None] | None = None,
    ) -> None:
        """``read_lines(hint)``, when given, returns the next lines of the same input
        (about ``hint`` characters, [] at its end): COPY data is then taken in bulk.
        ``byte_tail()``, when given, returns the input's bytes after the line last read
        (or None): COPY data is then not even decoded."""
        self._source = iter(lines)
        self._read_lines = read_lines
        self._byte_tail = byte_tail
        self._pushed_back: list[str] = []
        """Lines read in bulk past the end of COPY data, in reverse order."""
        self._lines = self._feed()
        self.line_number = 0
        """Number of the line last taken from the input."""
        self.standard_strings = True
        """Whether backslashes are literal in '' strings; follows the script's SET."""
        self._copy_pending = False
        self._after_whole_line = False
        """The statement last yielded was a whole line: the next line starts a new one."""

    def _feed(self) -> Iterator[str]:
        """The input's lines, those read too far in bulk first."""
        pushed_back, source = self._pushed_back, self._source
        while True:
            while pushed_back:
                yield pushed_back.pop()
            line = next(source, None)
            if line is None:
                return
            yield line

    def copy_pieces(self, size: int) -> Iterator[tuple[int, bytes]]:
        """The data lines after a COPY statement, up to (not including) ``\\.``, joined
        into pieces of about ``size`` bytes (UTF-8), each with the line it starts on.

        Without per-line Python work when the input can be read in bulk, and without
        decoding when it can be read as bytes.

        Raises:
            ScriptError: the script ends before the ``\\.`` line.
        """
        tail = self._byte_tail() if self._byte_tail and not self._pushed_back else None
        if tail is not None:
            yield from self._copy_bytes(tail, size)
            return
        for first, piece in self._copy_text(size):
            yield first, piece.encode("utf-8", "surrogateescape")

    def _copy_bytes(self, tail: ByteTail, size: int) -> Iterator[tuple[int, bytes]]:
        start = self.line_number
        self._copy_pending = False
        carry = b""
        used = 0
        while True:
            block = tail.read(size)
            data = carry + block if carry else block
            end, after = _end_of_copy_bytes(data, at_eof=not block)
            if end < 0:
                cut = data.rfind(b"\n") + 1
                if not block:
                    self.line_number += count_lines(data)
                    raise ScriptError(
                        f"the dump ends inside the COPY data started at line {start} "
                        "(truncated file?)",
                        self.line_number,
                    )
                piece, carry = data[:cut], data[cut:]
            else:
                piece = data[:end]
            first = self.line_number + 1
            tail.check(piece, first)
            self.line_number += count_lines(piece)
            used += len(piece)
            if end >= 0:
                self.line_number += 1  # the \. line
                tail.resume(used + after - end, self.line_number - start)
                if piece:
                    yield first, piece
                return
            if piece:
                yield first, piece

    def _copy_text(self, size: int) -> Iterator[tuple[int, str]]:
        read_lines = self._read_lines
        if read_lines is None:
            yield from _joined(self.copy_data(), size, lambda: self.line_number)
            return
        start = self.line_number
        self._copy_pending = False
        while True:
            lines = read_lines(size)
            if self._pushed_back:  # read in bulk with the data before: they come first
                lines[:0] = reversed(self._pushed_back)
                self._pushed_back.clear()
            if not lines:
                raise ScriptError(
                    f"the dump ends inside the COPY data started at line {start} (truncated file?)",
                    self.line_number,
                )
            end = _end_of_copy(lines)
            first = self.line_number + 1
            if end < 0:
                self.line_number += len(lines)
                yield first, "".join(lines)
                continue
            self.line_number += end + 1
            self._pushed_back.extend(reversed(lines[end + 1 :]))
            if end:
                yield first, "".join(lines[:end])
            return

    def rows_after(self, head: str, rows: RowSplitter) -> Iterator[tuple[int, str, str]]:
        """``(line number, statement, row)`` of the lines after the statement just yielded
        that are each one single-row INSERT with the same ``head`` (see
        :mod:`reel_tui.engines.pg_inserts`), up to the first line that is not, which the
        iteration then yields as usual.

        The fast path for ``--inserts`` dumps: such a line needs none of the scanner's work.
        Nothing when the statement just yielded did not end its line.
        """
        if not self._after_whole_line:
            return
        for line in self._lines:
            parts = rows.split(line) if line.startswith(head) and line.endswith(";\n") else None
            if parts is None or parts[0] != head:
                self._pushed_back.append(line)
                return
            self.line_number += 1
            yield self.line_number, line.rstrip(), parts[1]

    def copy_data(self) -> Iterator[str]:
        """The data lines after a COPY statement, up to (not including) ``\\.``.

        Raises:
            ScriptError: the script ends before the ``\\.`` line.
        """
        start = self.line_number
        self._copy_pending = False
        for line in self._lines:
            self.line_number += 1
            if line in _END_OF_COPY:
                return
            yield line
        raise ScriptError(
            f"the dump ends inside the COPY data started at line {start} (truncated file?)",
            self.line_number,
        )

    def __iter__(self) -> Iterator[Statement | MetaCommand]:
        scan = _Scanner(self)
        for line in self._lines:
            self.line_number += 1
            if scan.at_statement_start():
                if line.startswith("\\"):
                    name, _, argument = line[1:].strip().partition(" ")
                    yield MetaCommand(name, argument.strip(), self.line_number)
                    continue
                quick = scan.whole_line(line)
                if quick is not None:
                    self._after_whole_line = True
                    yield quick
                    self._after_whole_line = False
                    if quick.copy_from_stdin and self._copy_pending:
                        for _ in self.copy_data():
                            pass
                    continue
            for statement in scan.feed(line):
                yield statement
                if statement.copy_from_stdin:
                    if self._copy_pending:  # the caller did not read the data
                        for _ in self.copy_data():
                            pass
                    break  # the rest of a COPY line is not SQL
        scan.finish()


def _end_of_copy(lines: list[str]) -> int:
    """Index of the first ``\\.`` line in ``lines``, -1 if none (list scans, in C)."""
    found = -1
    for marker in _END_OF_COPY:
        try:
            at = lines.index(marker)
        except ValueError:
            continue
        found = at if found < 0 else min(found, at)
    return found


def _end_of_copy_bytes(data: bytes, *, at_eof: bool) -> tuple[int, int]:
    """``(start, end)`` of the first ``\\.`` line in ``data`` (its line end included),
    ``(-1, -1)`` if none; ``data`` starts at a line start. A ``\\.`` without its line
    end counts only at the end of the file (the rest of its line may be unread)."""
    at = 0 if data.startswith(b"\\.") else data.find(b"\n\\.") + 1
    while at > 0 or data.startswith(b"\\."):
        rest = data[at + 2 : at + 4]
        if rest[:1] == b"\n":
            return at, at + 3
        if rest == b"\r\n":
            return at, at + 4
        if not rest and at_eof:
            return at, at + 2
        at = data.find(b"\n\\.", at + 1) + 1
        if at == 0:
            break
    return -1, -1


def _joined(
    lines: Iterable[str], size: int, line_number: Callable[[], int]
) -> Iterator[tuple[int, str]]:
    """``lines`` joined into pieces of about ``size`` characters, each with its first line."""
    piece: list[str] = []
    taken = first = 0
    for line in lines:
        if not piece:
            first = line_number()
        piece.append(line)
        taken += len(line)
        if taken >= size:
            yield first, "".join(piece)
            piece, taken = [], 0
    if piece:
        yield first, "".join(piece)


class _Scanner:
    """The lexer state carried from line to line."""

    def __init__(self, owner: ScriptSplitter) -> None:
        self.owner = owner
        self.mode = CODE
        self.tag = ""
        self.depth = 0
        """Nesting of /* */ comments."""
        self.parens = 0
        self.parts: list[str] = []
        self.start = 0

    def at_statement_start(self) -> bool:
        return self.mode == CODE and not self.parts

    def feed(self, line: str) -> Iterator[Statement]:
        """Scan one line; yield each statement it completes."""
        pos = 0
        seg = 0 if self.parts else -1
        """Where the statement's text starts in this line; -1 while no code is seen."""
        end = len(line)
        while pos < end:
            mode = self.mode
            if mode == CODE:
                match = _CODE.search(line, pos)
                if match is None:
                    if seg < 0 and line[pos:].strip():
                        seg = pos + len(line[pos:]) - len(line[pos:].lstrip())
                        self.start = self.owner.line_number
                    break
                found = match.start()
                token = match.group()
                if seg < 0 and (line[pos:found].strip() or token not in ("--", "/*")):
                    skipped = line[pos:found]
                    seg = pos + len(skipped) - len(skipped.lstrip()) if skipped.strip() else found
                    self.start = self.owner.line_number
                pos = match.end()
                if token == ";":
                    if self.parens > 0:
                        continue
                    text = "".join(self.parts) + line[seg:pos]
                    if (
                        _ROUTINE.match(text)
                        and _atomic_depth(text, self.owner.standard_strings) > 0
                    ):
                        continue
                    self.parts = []
                    seg = -1
                    statement = self.statement(text)
                    if statement is not None:
                        yield statement
                        if statement.copy_from_stdin:
                            return
                elif token == "'":
                    escape = found > 0 and line[found - 1] in "Ee" and (
                        found < 2 or not _IDENT_CHAR.match(line[found - 2])
                    )  # fmt: skip
                    self.mode = ESCAPE_QUOTE if escape or not self.owner.standard_strings else QUOTE
                elif token == '"':
                    self.mode = IDENT
                elif token == "$":
                    tag = _DOLLAR_TAG.match(line, found)
                    if tag and not (found > 0 and _IDENT_CHAR.match(line[found - 1])):
                        self.mode, self.tag, pos = DOLLAR, tag.group(), tag.end()
                elif token == "(":
                    self.parens += 1
                elif token == ")":
                    self.parens = max(0, self.parens - 1)
                elif token == "--":
                    break
                else:  # /*
                    self.mode, self.depth = COMMENT, 1
            elif mode in (QUOTE, IDENT):
                quote = "'" if mode == QUOTE else '"'
                found = line.find(quote, pos)
                if found < 0:
                    break
                if line.startswith(quote, found + 1):
                    pos = found + 2
                else:
                    pos, self.mode = found + 1, CODE
            elif mode == ESCAPE_QUOTE:
                match = _ESCAPED.search(line, pos)
                if match is None:
                    break
                found = match.start()
                if match.group() == "\\" or line.startswith("'", found + 1):
                    pos = found + 2
                else:
                    pos, self.mode = found + 1, CODE
            elif mode == DOLLAR:
                found = line.find(self.tag, pos)
                if found < 0:
                    break
                pos, self.mode = found + len(self.tag), CODE
            else:  # COMMENT
                match = _BLOCK.search(line, pos)
                if match is None:
                    break
                pos = match.end()
                self.depth += 1 if match.group() == "/*" else -1
                if self.depth == 0:
                    self.mode = CODE
        if seg >= 0:
            self.parts.append(line[seg:])

    def whole_line(self, line: str) -> Statement | None:
        """The usual dump line, one whole statement with plain strings, without a full scan.

        None when the line needs the scanner: comments, identifiers in double
        quotes, dollar quotes, backslashes, more than one ``;``, unbalanced
        parentheses, or anything not starting with a keyword.
        """
        if not line.endswith(";\n") or "\\" in line or not self.owner.standard_strings:
            return None
        code = _PLAIN_STRING.sub("", line)
        if code.count(";") != 1 or _NEEDS_SCAN.search(code):
            return None
        parens = _NOT_PAREN.sub("", code)
        while "()" in parens:
            parens = parens.replace("()", "")
        text = line.strip()
        if parens or not text[0].isalpha() or _ROUTINE.match(text):
            return None
        self.start = self.owner.line_number
        return self.statement(text)

    def statement(self, text: str) -> Statement | None:
        """The finished statement, or None for an empty one (a lone ``;``)."""
        if text == ";":
            return None
        scs = _SCS.match(text)
        if scs:
            self.owner.standard_strings = scs.group(1).lower() in ("on", "true", "1", "yes")
        copy = bool(_COPY_STDIN.match(text))
        self.owner._copy_pending = copy
        self.parens = 0
        return Statement(text, self.start, copy)

    def finish(self) -> None:
        """At the end of the script: anything but comments left over is a cut-off statement."""
        if self.parts or self.mode not in (CODE, COMMENT):
            first = "".join(self.parts).strip().split("\n", 1)[0][:80]
            raise ScriptError(
                f"the dump ends inside a statement (truncated file?): {first}", self.start
            )


def _routine_words(text: str, standard_strings: bool) -> Iterator[str]:
    """The words and parentheses of ``text``, and "" for any other token (a string, a
    quoted name, a number, a dollar quote); comments left out."""
    tokens = _ROUTINE_TOKENS[standard_strings]
    pos = 0
    while True:
        match = tokens.search(text, pos)
        if match is None:
            return
        pos = match.end()
        if match.group("comment"):  # nested, as in the main scanner
            depth = 1
            while depth:
                block = _BLOCK.search(text, pos)
                if block is None:
                    return
                pos = block.end()
                depth += 1 if block.group() == "/*" else -1
        elif not match.group("line"):
            yield match.group("word") or ""


def _atomic_depth(text: str, standard_strings: bool = True) -> int:
    """How many ``BEGIN ATOMIC`` (and, inside one, CASE) blocks are open.

    psql's heuristic, narrowed to ``BEGIN`` followed by ``ATOMIC``: a function
    named ``begin`` (``CREATE FUNCTION public.begin()``) opens no block.
    """
    depth = parens = 0
    after_begin = False
    for word in _routine_words(text, standard_strings):
        lower = word.lower()
        if after_begin:
            after_begin = False
            if lower == "atomic":
                depth += 1
                continue
        if word == "(":
            parens += 1
        elif word == ")":
            parens -= 1
        elif parens == 0:
            if lower == "begin":
                after_begin = True
            elif lower == "case" and depth > 0:
                depth += 1
            elif lower == "end" and depth > 0:
                depth -= 1
    return depth
