"""Recognising dump files from their content, and reading them as a stream.

Detection looks at magic bytes and, for text, the first few kilobytes, so a
``.sql`` that is really gzip, or a pg_dump file named ``latest``, is still
recognised. Reading never holds more than one line of the dump in memory and
counts the bytes taken from the file itself (compressed or not), which is what
progress is measured in.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

Compression = Literal["none", "gzip", "xz", "bz2", "zstd"]
Container = Literal["sql", "pg-custom", "pg-directory", "pg-tar", "sqlite-db", "unknown"]
Flavor = Literal["postgres", "mysql", "sqlite", "sql", "unknown"]

SNIFF_BYTES = 64 * 1024
_MAGIC: list[tuple[bytes, Compression]] = [
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bz2"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
]
_FLAVOR_HINTS: list[tuple[Flavor, re.Pattern[str]]] = [
    (
        "postgres",
        re.compile(
            r"^-- PostgreSQL database dump|^COPY .* FROM stdin;|pg_catalog\.set_config|"
            r"^SET standard_conforming_strings|^\\connect |^\\restrict ",
            re.M,
        ),
    ),
    (
        "mysql",
        re.compile(
            r"^(?:-- (?:MySQL|MariaDB) dump|/\*![0-9]{5}|/\*M!|(?i:LOCK TABLES) `|(?i:DELIMITER) )|"
            r"(?i:ENGINE)=(?:InnoDB|MyISAM|Aria)",
            re.M,
        ),
    ),
    ("sqlite", re.compile(r"^PRAGMA foreign_keys=OFF;\s*BEGIN TRANSACTION;", re.M)),
]
_SQL_START = re.compile(
    r"(CREATE|INSERT|SET|BEGIN|PRAGMA|DROP|SELECT|COPY|ALTER|USE|LOCK|"
    r"START|DELETE|UPDATE|REPLACE|GRANT|COMMENT|WITH)\b",
    re.I,
)
# What may come before the first statement. A Markdown heading ("# Dumps") is a
# MySQL comment too, so a README is told apart by the prose that follows it.
_LEADING_COMMENTS = re.compile(r"(?:\s+|;|--[^\n]*|#[^\n]*|/\*.*?\*/)*", re.S)
# Prose can start with "Use", "Select" or "With" too; SQL also ends a line with ";".
_STATEMENT_END = re.compile(r";[ \t]*$", re.M)
FLAVOR_NAMES: dict[Flavor, str] = {
    "postgres": "PostgreSQL",
    "mysql": "MySQL/MariaDB",
    "sqlite": "SQLite",
    "sql": "SQL",
    "unknown": "unknown",
}


class DumpError(Exception):
    """The dump cannot be read: corrupt compression, invalid UTF-8, unsupported format."""


@dataclass(frozen=True)
class DumpFormat:
    """What a dump is, detected from its content."""

    container: Container
    compression: Compression = "none"
    flavor: Flavor = "unknown"

    @property
    def label(self) -> str:
        """Short column text: ``plain``, ``gzip``, ``pg custom``, ``sqlite db``, …"""
        if self.container == "sql":
            return "plain" if self.compression == "none" else self.compression
        return self.container.replace("-", " ")

    def describe(self) -> str:
        """A phrase for logs: "PostgreSQL SQL dump, gzip-compressed"."""
        names = {
            "pg-custom": "PostgreSQL custom-format archive",
            "pg-directory": "PostgreSQL directory-format dump",
            "pg-tar": "PostgreSQL tar-format archive",
            "sqlite-db": "SQLite database file",
            "unknown": "file of unknown format",
        }
        flavor = "" if self.flavor in ("sql", "unknown") else f"{FLAVOR_NAMES[self.flavor]} "
        text = names.get(self.container) or f"{flavor}SQL dump"
        if self.compression != "none":
            text += f", {self.compression}-compressed"
        return text


def detect_format(path: Path) -> DumpFormat:
    """Recognise a dump by its content. Never raises for unreadable content."""
    if path.is_dir():
        if (path / "toc.dat").is_file():
            return DumpFormat("pg-directory", flavor="postgres")
        return DumpFormat("unknown")
    with open(path, "rb") as file:
        head = file.read(512)
    compression: Compression = "none"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            compression = name
    if compression == "zstd":
        return DumpFormat("unknown", "zstd")
    if compression == "none":
        if head.startswith(b"PGDMP"):
            return DumpFormat("pg-custom", flavor="postgres")
        if head.startswith(b"SQLite format 3\x00"):
            return DumpFormat("sqlite-db", flavor="sqlite")
    sample = _sniff(path, compression)
    if sample is None:
        return DumpFormat("unknown", compression)
    if sample.startswith(b"PGDMP"):
        return DumpFormat("pg-custom", compression, "postgres")
    if len(sample) >= 262 and sample[257:262] == b"ustar" and b"toc.dat" in sample[:100]:
        return DumpFormat("pg-tar", compression, "postgres")
    text = sample.decode("utf-8", errors="replace").removeprefix("\ufeff")
    if "\x00" in text[:4096]:
        return DumpFormat("unknown", compression)
    flavor = _first_hint(text)
    if flavor is None and not _is_sql(text):
        return DumpFormat("unknown", compression)
    return DumpFormat("sql", compression, flavor or "sql")


def _sniff(path: Path, compression: Compression) -> bytes | None:
    """The first uncompressed bytes; what was decoded before a truncation or corruption.

    A dump cut short is still recognised, so loading it can say that it ends
    early instead of calling it a file of unknown format. None when nothing at
    all could be decompressed.
    """
    sample = b""
    try:
        with open(path, "rb") as raw, _decompressed(raw, compression) as stream:
            while len(sample) < SNIFF_BYTES:
                piece = stream.read(min(8192, SNIFF_BYTES - len(sample)))
                if not piece:
                    break
                sample += piece
    except (OSError, EOFError, *_codec_errors()):
        if not sample:
            return None
    return sample


def _first_hint(text: str) -> Flavor | None:
    """The flavor of the earliest hint in ``text``, or None: a dump's own header beats
    text quoted in its data.

    Looked for in the first 8 KB (cut at a line end) before the whole sample: a
    hint there comes before any later one, and a pattern that finds nothing
    then costs 8 KB of searching instead of 64 KB (``--list`` sniffs every dump).
    """
    cut = text.rfind("\n", 0, 8192) + 1
    for window in (text[:cut], text) if 0 < cut < len(text) else (text,):
        found = [(m.start(), flavor) for flavor, p in _FLAVOR_HINTS if (m := p.search(window))]
        if found:
            return min(found)[1]
    return None


def _is_sql(text: str) -> bool:
    """True for SQL: a flavor hint, only comments, or a first statement and a line ending ";"."""
    if _first_hint(text) is not None:
        return True
    start = _LEADING_COMMENTS.match(text).end()  # type: ignore[union-attr] - matches ""
    if start == len(text):
        return True
    return bool(_SQL_START.match(text, start) and _STATEMENT_END.search(text, start))


def _decompressed(raw: BinaryIO, compression: Compression) -> BinaryIO:
    """A stream of the uncompressed bytes of ``raw``; closing it leaves ``raw`` open.

    The decompressors are imported here, when a dump needs one: every ``reel-tui``
    start-up would pay for them otherwise."""
    if compression == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if compression == "xz":
        import lzma

        return lzma.LZMAFile(raw)  # type: ignore[return-value]
    if compression == "bz2":
        import bz2

        return bz2.BZ2File(raw)  # type: ignore[return-value]
    return raw


def _codec_errors() -> tuple[type[Exception], ...]:
    """The error classes of the decompressors loaded so far: only those can have raised."""
    found: list[type[Exception]] = []
    for module, name in (("zlib", "error"), ("lzma", "LZMAError")):
        if module in sys.modules:
            found.append(getattr(sys.modules[module], name))
    return tuple(found)


class _CountingFile(io.RawIOBase):
    """A raw file that counts the bytes read from disk, for progress, and refuses to go
    on once the file was written to: what is read after that is another file's rest."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed in close()
        self.path = path
        self._stamp = self._now()
        self._position = 0
        self.bytes_read = 0
        """How far into the file reading got (bytes read again after a seek back count once)."""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._position = self._file.seek(offset, whence)
        return self._position

    def tell(self) -> int:
        return self._position

    def _now(self) -> tuple[int, int]:
        info = os.fstat(self._file.fileno())
        return info.st_size, info.st_mtime_ns

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = self._file.readinto(buffer) or 0
        # after the read, so the bytes just read (or the end, after a truncation) are
        # known to be the file's as it was opened. A file renamed over this one does not
        # count: the one opened is still whole.
        if self._now() != self._stamp:
            raise DumpError(
                f"{self.path}: the dump changed while it was read (written to in place): "
                "nothing of it was loaded; rewind again once it is complete"
            )
        self._position += count
        self.bytes_read = max(self.bytes_read, self._position)
        return count

    def close(self) -> None:
        self._file.close()
        super().close()


class DumpReader:
    """Lines of a text dump, decompressed and decoded on the fly.

    Use as a context manager. ``bytes_read`` is how far into the file on disk
    the reader is; ``line_number`` is the number of the line last returned.
    """

    def __init__(
        self, path: Path, dump_format: DumpFormat | None = None, *, mysql_client: bool = False
    ) -> None:
        """Open ``path``; :class:`DumpError` if it cannot be opened or is not a text dump.

        With ``mysql_client``, lines are read as the mysql client reads them: bytes
        that are not UTF-8 (binary strings in INSERTs) pass through as lone
        surrogates, to be encoded back with ``surrogateescape``, and CRLF ends a
        line as LF does (routine bodies then equal the client's).
        """
        self.path = path
        self.line_number = 0
        self.mysql_client = mysql_client
        try:
            self.format = dump_format or detect_format(path)
            _check_readable(path, self.format)
            self.size = os.path.getsize(path)
            self._raw = _CountingFile(path)
        except OSError as exc:
            raise DumpError(f"{path}: cannot read the dump: {exc.strerror or exc}") from None
        buffered = io.BufferedReader(self._raw, buffer_size=256 * 1024)
        binary = _decompressed(buffered, self.format.compression)  # type: ignore[arg-type]
        self._binary = binary
        # Bad bytes become lone surrogates, found line by line in __iter__: a strict
        # decoder fails on a whole chunk ahead and would name the wrong line.
        self._text = io.TextIOWrapper(
            binary, encoding="utf-8", errors="surrogateescape", newline=""
        )

    @property
    def bytes_read(self) -> int:
        return self._raw.bytes_read

    def __enter__(self) -> DumpReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._text.close()
        self._raw.close()

    def byte_tail(self) -> ByteTail | None:
        """The bytes after the line last returned, to read COPY data in bulk without
        decoding it (see :class:`ByteTail`); None for a compressed dump, where going back
        to where the lines are means decompressing again from the start."""
        if self.format.compression != "none" or self.mysql_client:
            return None
        try:
            cookie = self._text.tell()
        except OSError:  # read_lines iterated over the text: no position since
            return None
        if cookie >> 64:  # the decoder holds state (a CR that may start a CRLF)
            return None
        return ByteTail(self, cookie)

    def read_block(self, size: int) -> bytes:
        """Up to ``size`` decompressed bytes (empty at the end), for readers that split
        bytes themselves; they keep :attr:`line_number` up to date for the messages.
        Not to be mixed with iterating over lines."""
        with self._translated_errors():
            return self._binary.read(size)

    @contextlib.contextmanager
    def _translated_errors(self) -> Iterator[None]:
        """Decompression failures as :class:`DumpError` naming the last good line."""
        try:
            yield
        except (EOFError, OSError, *_codec_errors()) as exc:
            raise self._translated(exc) from None

    def _translated(self, exc: BaseException) -> DumpError:
        if isinstance(exc, EOFError):
            return DumpError(f"{self.path}: the {self.format.compression} data ends early "
                             f"(truncated file?) after line {self.line_number}")  # fmt: skip
        return DumpError(f"{self.path}: corrupt {self.format.compression} data "
                         f"after line {self.line_number}: {exc}")  # fmt: skip

    def read_lines(self, hint: int) -> list[str]:
        """The next lines, about ``hint`` characters of them ([] at the end), checked as
        :meth:`__iter__` checks them: for COPY data, without a Python step per line."""
        assert not self.mysql_client, "bulk reads check UTF-8 strictly, as for PostgreSQL"
        with self._translated_errors():
            lines = self._text.readlines(hint)
        if not all(map(str.isascii, lines)):
            for number, line in enumerate(lines, self.line_number + 1):
                try:
                    line.encode("utf-8")
                except UnicodeEncodeError:
                    raise DumpError(f"{self.path}:{number}: invalid UTF-8 in the dump") from None
        self.line_number += len(lines)
        return lines

    def __iter__(self) -> Iterator[str]:
        """Each line with its line ending; raises :class:`DumpError` on bad content."""
        readline = self._text.readline
        while True:
            try:  # not `with self._translated_errors()`: a context manager a line cost seconds
                line = readline()
            except (EOFError, OSError, *_codec_errors()) as exc:
                raise self._translated(exc) from None
            if not line:
                return
            self.line_number += 1
            if self.mysql_client:
                if line.endswith("\r\n"):
                    line = line[:-2] + "\n"
            elif not line.isascii():
                try:
                    line.encode("utf-8")
                except UnicodeEncodeError:
                    raise DumpError(
                        f"{self.path}:{self.line_number}: invalid UTF-8 in the dump"
                    ) from None
            yield line


def _check_readable(path: Path, dump_format: DumpFormat) -> None:
    """Refuse formats that are not text with :class:`DumpError` instead of reading garbage."""
    if dump_format.compression == "zstd":
        raise DumpError(f"{path}: zstd-compressed dumps are not supported; decompress it first")
    if dump_format.container not in ("sql", "unknown"):
        raise DumpError(f"{path}: a {dump_format.describe()} is not a text dump to read by line")


class ByteTail:
    """A plain dump's bytes from just after the line its reader returned last.

    COPY data is most of a dump's bytes and goes to the server as it is: reading it as
    text would decode it, cut it into line objects and encode it again, which cost
    more CPU than the server's own work on it on small machines. The reader of a tail
    takes what it needs with :meth:`read`, then hands the rest back with
    :meth:`resume`: line reading goes on after the bytes it used.
    """

    def __init__(self, reader: DumpReader, start: int) -> None:
        self._reader = reader
        self._text = reader._text
        self._binary = reader._binary
        self._start = start
        self._binary.seek(start)

    def read(self, size: int) -> bytes:
        """Up to ``size`` more bytes; b"" at the end of the file."""
        with self._reader._translated_errors():
            return self._binary.read(size)

    def check(self, data: bytes, first_line: int) -> None:
        """Refuse bytes that are not UTF-8, naming their line, as line reading does."""
        if data.isascii():
            return
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = first_line + count_lines(data[: exc.start])
            raise DumpError(f"{self._reader.path}:{line}: invalid UTF-8 in the dump") from None

    def resume(self, used: int, lines: int) -> None:
        """Go on reading lines after the first ``used`` bytes of the tail, ``lines`` lines."""
        self._text.seek(self._start + used)
        self._reader.line_number += lines


def count_lines(data: bytes) -> int:
    """Line ends in ``data`` as line reading counts them: LF, CRLF and a lone CR."""
    lines = data.count(b"\n")
    if b"\r" in data:  # rare; counting two-byte CRLFs is slow
        lines += data.count(b"\r") - data.count(b"\r\n")
    return lines
