"""Dump detection from content and the streaming DumpReader: lines, progress, errors, memory."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import re
import sqlite3
import tarfile
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SHARED_DATA
from reel_tui.dumpfile import SNIFF_BYTES, DumpError, DumpFormat, DumpReader, detect_format

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "sample-data" / "dumps"
PAGILA = SHARED_DATA / "pagila/pagila-schema.sql"
PAGILA_README = SHARED_DATA / "pagila/README"
SAKILA = SHARED_DATA / "sakila/sakila-mv-schema.sql"
SAKILA_README = SHARED_DATA / "sakila/README.md"

COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "none": lambda data: data,
    "gzip": lambda data: gzip.compress(data, compresslevel=6),
    "xz": lambda data: lzma.compress(data, preset=1),
    "bz2": bz2.compress,
}
COMPRESSED = ["gzip", "xz", "bz2"]

PG_PLAIN = """--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SET client_encoding = 'UTF8';

CREATE TABLE public.actor (actor_id integer NOT NULL, name text);

COPY public.actor (actor_id, name) FROM stdin;
1\tPENELOPE
2\tNICK
\\.
"""
MYSQL_PLAIN = """-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)
--
-- Host: localhost    Database: shop
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES utf8mb4 */;

DROP TABLE IF EXISTS `actor`;
CREATE TABLE `actor` (`id` int NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
LOCK TABLES `actor` WRITE;
INSERT INTO `actor` VALUES (1),(2);
UNLOCK TABLES;
"""
SQLITE_PLAIN = """PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE posts (id INTEGER PRIMARY KEY, body TEXT);
INSERT INTO posts VALUES(1,'hello');
COMMIT;
"""


def write(path: Path, data: bytes | str, compression: str = "none") -> Path:
    """Write ``data`` to ``path``, compressed as asked; returns the path."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(COMPRESSORS[compression](raw))
    return path


def read_all(path: Path, dump_format: DumpFormat | None = None) -> tuple[list[str], DumpReader]:
    with DumpReader(path, dump_format) as reader:
        lines = list(reader)
    return lines, reader


def split_lines(text: str) -> list[str]:
    """Lines as a universal-newline reader with newline="" sees them, endings kept.

    Written independently of io.TextIOWrapper: only \\n, \\r and \\r\\n end a line
    (str.splitlines would also split on \\x0b, \\x1c, \\u2028, ...).
    """
    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z", text)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- detection: real samples ---------------------------------------------------


def test_pagila_pg_dump_is_detected_as_plain_postgres() -> None:
    found = detect_format(PAGILA)
    assert found == DumpFormat("sql", "none", "postgres")
    assert found.label == "plain"
    assert found.describe() == "PostgreSQL SQL dump"


def test_sakila_mysql_schema_is_detected_as_mysql() -> None:
    found = detect_format(SAKILA)
    assert found == DumpFormat("sql", "none", "mysql")
    assert found.describe() == "MySQL/MariaDB SQL dump"


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("blog/seed.sql", DumpFormat("sql", "none", "sqlite")),
        ("blog/three-posts.sql", DumpFormat("sql", "none", "sqlite")),
        ("shop/seed.sql.gz", DumpFormat("sql", "gzip", "sqlite")),
        ("shop/demo/small.sql.xz", DumpFormat("sql", "xz", "sqlite")),
        ("shop/demo/snapshot.sqlite3", DumpFormat("sqlite-db", "none", "sqlite")),
    ],
)
def test_project_sample_dumps_are_detected(relative: str, expected: DumpFormat) -> None:
    assert detect_format(SAMPLES / relative) == expected


@pytest.mark.parametrize("compression", COMPRESSED)
@pytest.mark.parametrize("name", ["latest", "pagila.sql", "pagila.txt"])
def test_compression_is_detected_from_content_not_the_name(
    tmp_path: Path, compression: str, name: str
) -> None:
    path = write(tmp_path / name, PAGILA.read_bytes(), compression)
    found = detect_format(path)
    assert found == DumpFormat("sql", compression, "postgres")
    assert found.label == compression
    assert found.describe() == f"PostgreSQL SQL dump, {compression}-compressed"


@pytest.mark.parametrize("compression", COMPRESSED)
def test_compressed_mysql_sample_is_detected(tmp_path: Path, compression: str) -> None:
    path = write(tmp_path / "backup", SAKILA.read_bytes(), compression)
    assert detect_format(path) == DumpFormat("sql", compression, "mysql")


# --- detection: flavors -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "flavor"),
    [
        (PG_PLAIN, "postgres"),
        (MYSQL_PLAIN, "mysql"),
        (SQLITE_PLAIN, "sqlite"),
        ("-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB\nCREATE TABLE t (x int);\n", "mysql"),
        ("/*!40101 SET NAMES utf8 */;\nCREATE TABLE t (x int);\n", "mysql"),
        ("COPY public.t (x) FROM stdin;\n1\n\\.\n", "postgres"),
        ("CREATE TABLE t (x integer);\nINSERT INTO t VALUES (1);\n", "sql"),
        ("create table t (x integer);\ninsert into t values (1);\n", "sql"),
        ("-- hand written\n/* block\n comment */\nINSERT INTO t VALUES (1);\n", "sql"),
        ("# a MySQL-style comment\nUSE shop;\n", "sql"),
        (";\nSELECT 1;\n", "sql"),
    ],
)
def test_flavor_is_detected_from_the_text(tmp_path: Path, text: str, flavor: str) -> None:
    assert detect_format(write(tmp_path / "dump", text)) == DumpFormat("sql", "none", flavor)


def test_the_dumps_own_header_wins_over_hints_quoted_in_its_data(tmp_path: Path) -> None:
    """A SQLite blog dump whose post body quotes pg_dump output is still a SQLite dump."""
    text = SQLITE_PLAIN.replace(
        "'hello'", "'how to load:\nCOPY public.t (x) FROM stdin;\nSET standard_conforming_strings'"
    )
    assert detect_format(write(tmp_path / "blog.sql", text)).flavor == "sqlite"


def test_flavor_hints_past_the_first_lines_are_found(tmp_path: Path) -> None:
    text = "-- generated\n" * 500 + "CREATE TABLE `t` (`x` int) ENGINE=InnoDB;\n"
    assert detect_format(write(tmp_path / "dump.sql", text)).flavor == "mysql"


def test_a_utf8_byte_order_mark_does_not_hide_a_dump(tmp_path: Path) -> None:
    path = write(tmp_path / "windows.sql", "\ufeffCREATE TABLE t (x int);\n")
    assert detect_format(path) == DumpFormat("sql", "none", "sql")


@pytest.mark.parametrize("text", ["", "\n\n  \n", "-- only a comment\n"])
def test_empty_and_comment_only_text_is_sql(tmp_path: Path, text: str) -> None:
    assert detect_format(write(tmp_path / "empty.sql", text)) == DumpFormat("sql", "none", "sql")


# --- detection: not dumps -----------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "# Shop dumps\n\nThese are the dumps of the shop app, newest first.\n",
        "Use the newest dump when in doubt.\n",
        "Select a dump with --source; the default is seed.sql.\n",
        "With thanks to the team.\n",
        "Update: the old dumps were removed.\nDelete nothing here.\n",
        "just some notes\n",
        "Pagila\n======\n\nA sample database.\n",
    ],
)
def test_prose_is_not_a_dump(tmp_path: Path, text: str) -> None:
    assert detect_format(write(tmp_path / "README.md", text)) == DumpFormat("unknown")


@pytest.mark.parametrize("readme", [PAGILA_README, SAKILA_README])
def test_real_readmes_are_not_dumps(readme: Path) -> None:
    assert detect_format(readme).container == "unknown"


def test_binary_garbage_is_unknown(tmp_path: Path) -> None:
    path = write(
        tmp_path / "Thumbs.db", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(range(256)) * 4
    )
    assert detect_format(path) == DumpFormat("unknown")


def test_text_with_nul_bytes_is_unknown(tmp_path: Path) -> None:
    path = write(tmp_path / "odd.sql", "CREATE TABLE t (x int);\n\x00\x00\x00\n")
    assert detect_format(path).container == "unknown"


@pytest.mark.parametrize("compression", COMPRESSED)
def test_compressed_prose_is_unknown_but_keeps_its_compression(
    tmp_path: Path, compression: str
) -> None:
    path = write(tmp_path / "notes", "Nothing to see here.\n", compression)
    assert detect_format(path) == DumpFormat("unknown", compression)


@pytest.mark.parametrize("compression", COMPRESSED)
def test_compressed_tar_of_other_files_is_unknown(tmp_path: Path, compression: str) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("app.log")
        payload = b"GET / 200\n" * 10
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    path = write(tmp_path / "logs.tar.x", buffer.getvalue(), compression)
    assert detect_format(path) == DumpFormat("unknown", compression)


# --- detection: binary dump formats ---------------------------------------------


def test_pg_custom_archive_is_detected_by_magic(tmp_path: Path) -> None:
    path = write(tmp_path / "latest", b"PGDMP\x01\x0e\x00\x04\x08\x01\x01" + bytes(600))
    found = detect_format(path)
    assert found == DumpFormat("pg-custom", "none", "postgres")
    assert found.label == "pg custom"
    assert found.describe() == "PostgreSQL custom-format archive"


def test_gzipped_pg_custom_archive_is_detected(tmp_path: Path) -> None:
    path = write(tmp_path / "db.dump.gz", b"PGDMP\x01\x0e\x00" + bytes(100), "gzip")
    assert detect_format(path) == DumpFormat("pg-custom", "gzip", "postgres")


def test_pg_directory_dump_is_detected(tmp_path: Path) -> None:
    folder = tmp_path / "dirdump"
    write(folder / "toc.dat", b"PGDMP" + bytes(50))
    write(folder / "3001.dat.gz", b"1\tx\n\\.\n", "gzip")
    found = detect_format(folder)
    assert found == DumpFormat("pg-directory", "none", "postgres")
    assert found.label == "pg directory"


def test_a_folder_without_toc_dat_is_unknown(tmp_path: Path) -> None:
    write(tmp_path / "folder" / "a.sql", "SELECT 1;\n")
    assert detect_format(tmp_path / "folder") == DumpFormat("unknown")


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_pg_tar_archive_is_detected(tmp_path: Path, compression: str) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, payload in [("toc.dat", b"PGDMP" + bytes(40)), ("3001.dat", b"1\tx\n\\.\n")]:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    path = write(tmp_path / "db.tar", buffer.getvalue(), compression)
    assert detect_format(path) == DumpFormat("pg-tar", compression, "postgres")


def test_sqlite_database_file_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")
    db.close()
    found = detect_format(path)
    assert found == DumpFormat("sqlite-db", "none", "sqlite")
    assert found.describe() == "SQLite database file"


def test_zstd_is_recognised_but_unknown(tmp_path: Path) -> None:
    path = write(tmp_path / "dump.sql.zst", b"\x28\xb5\x2f\xfd" + bytes(40))
    found = detect_format(path)
    assert found == DumpFormat("unknown", "zstd")
    assert found.describe() == "file of unknown format, zstd-compressed"


# --- detection: damaged files never raise ------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSED)
def test_truncated_compressed_dump_is_still_recognised(tmp_path: Path, compression: str) -> None:
    """What decompressed before the cut is enough: loading will then say it ends early."""
    rows = "".join(f"{n}\tname-{n % 997}\n" for n in range(100_000))
    text = PG_PLAIN.replace("2\tNICK\n", rows)  # 1.4 MB: past the first 900 kB bz2 block
    data = COMPRESSORS[compression](text.encode())
    path = write(tmp_path / "cut.sql", data[: len(data) * 3 // 4])
    assert detect_format(path) == DumpFormat("sql", compression, "postgres")


@pytest.mark.parametrize(
    ("magic", "compression"),
    [(b"\x1f\x8b", "gzip"), (b"\xfd7zXZ\x00", "xz"), (b"BZh", "bz2")],
)
def test_magic_followed_by_garbage_is_unknown_without_raising(
    tmp_path: Path, magic: bytes, compression: str
) -> None:
    path = write(tmp_path / "broken", magic + b"\x00garbage" * 20)
    assert detect_format(path) == DumpFormat("unknown", compression)


def test_detection_reads_only_a_sample(tmp_path: Path) -> None:
    """Invalid bytes far past the sniffed head do not change the verdict."""
    text = "CREATE TABLE t (x int);\n" + "-- filler\n" * (SNIFF_BYTES // 10 + 10)
    path = write(tmp_path / "dump.sql", text.encode() + b"\xff\xfe garbage\n")
    assert detect_format(path) == DumpFormat("sql", "none", "sql")


# --- DumpReader: content, lines and progress ----------------------------------------


def test_reader_yields_the_pagila_dump_exactly(tmp_path: Path) -> None:
    lines, reader = read_all(PAGILA)
    expected = PAGILA.read_text(encoding="utf-8")
    assert "".join(lines) == expected
    assert reader.line_number == len(lines) == expected.count("\n")
    assert reader.bytes_read == reader.size == PAGILA.stat().st_size
    assert reader.format == DumpFormat("sql", "none", "postgres")


@pytest.mark.parametrize("compression", COMPRESSED)
def test_reader_decompresses_and_counts_bytes_on_disk(tmp_path: Path, compression: str) -> None:
    text = SAKILA.read_text(encoding="utf-8")
    path = write(tmp_path / "latest", text, compression)
    lines, reader = read_all(path)
    assert "".join(lines) == text
    assert reader.line_number == len(split_lines(text))
    assert reader.bytes_read == path.stat().st_size
    assert reader.bytes_read < len(text.encode())  # compressed bytes, not decompressed ones


@pytest.mark.parametrize("compression", ["none", *COMPRESSED])
def test_bytes_read_grows_and_never_passes_the_file_size(tmp_path: Path, compression: str) -> None:
    text = "".join(
        f"INSERT INTO t VALUES ({n}, '{hashlib.sha1(str(n).encode()).hexdigest()}');\n"
        for n in range(20000)
    )
    path = write(tmp_path / "dump.sql", text, compression)
    size = path.stat().st_size
    seen: list[int] = []
    with DumpReader(path) as reader:
        assert reader.bytes_read == 0
        assert reader.size == size
        for number, _line in enumerate(reader, start=1):
            assert reader.line_number == number
            seen.append(reader.bytes_read)
    assert seen == sorted(seen)
    assert 0 < seen[0] <= size
    if compression != "bz2":  # bz2 yields nothing before a whole 900 kB block is in
        assert seen[0] < size
        assert len(set(seen)) > 2  # progress moves during the read, not only at the end
    assert max(seen) <= size
    assert reader.bytes_read == size
    assert reader.line_number == 20000


def test_line_endings_are_kept(tmp_path: Path) -> None:
    path = write(tmp_path / "dump.sql", "SELECT 1;\r\nSELECT 2;\rSELECT 3;\nSELECT 4;")
    lines, reader = read_all(path)
    assert lines == ["SELECT 1;\r\n", "SELECT 2;\r", "SELECT 3;\n", "SELECT 4;"]
    assert reader.line_number == 4


def test_crlf_split_across_read_chunks_is_one_line_ending(tmp_path: Path) -> None:
    text = "".join("x" * size + "\r\n" for size in range(8185, 8200)) + "end"
    path = write(tmp_path / "dump.sql", text)
    lines, _reader = read_all(path)
    assert lines == split_lines(text)
    assert len(lines) == 16


def test_other_unicode_line_separators_do_not_split_lines(tmp_path: Path) -> None:
    text = "INSERT INTO t VALUES ('a\u2028b\x0bc\x1cd\x85e');\n"
    lines, reader = read_all(write(tmp_path / "dump.sql", text))
    assert lines == [text]
    assert reader.line_number == 1


def test_an_empty_dump_yields_nothing(tmp_path: Path) -> None:
    lines, reader = read_all(write(tmp_path / "empty.sql", b""))
    assert lines == []
    assert reader.line_number == 0
    assert reader.bytes_read == 0


def test_reader_uses_the_format_it_is_given(tmp_path: Path) -> None:
    """A caller that already knows the format (from the source list) skips detection."""
    path = write(tmp_path / "notes", "Use this; or not\n", "gzip")
    lines, reader = read_all(path, DumpFormat("sql", "gzip", "sql"))
    assert lines == ["Use this; or not\n"]
    assert reader.format == DumpFormat("sql", "gzip", "sql")


def test_reader_closes_its_file(tmp_path: Path) -> None:
    path = write(tmp_path / "dump.sql.gz", SQLITE_PLAIN, "gzip")
    before = open_fds()
    with DumpReader(path) as reader:
        next(iter(reader))
        assert open_fds() > before
    assert open_fds() == before


# --- DumpReader: errors are DumpError, and say where -----------------------------------


@pytest.mark.parametrize("compression", ["none", *COMPRESSED])
def test_invalid_utf8_names_the_file_and_the_right_line(tmp_path: Path, compression: str) -> None:
    """The bad byte is on line 500, far past the first decoded chunk."""
    good = "".join(f"INSERT INTO t VALUES ({n}, 'ok');\n" for n in range(1, 500)).encode()
    path = write(
        tmp_path / "latin1.sql", good + b"INSERT INTO t VALUES (500, 'caf\xe9');\n", compression
    )
    lines: list[str] = []
    with pytest.raises(DumpError) as caught, DumpReader(path, DumpFormat("sql", compression)) as r:
        lines.extend(r)
    message = str(caught.value)
    assert message.startswith(f"{path}:500:")
    assert "invalid UTF-8" in message
    assert "\n" not in message
    assert len(lines) == 499
    assert "".join(lines).encode() == good


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"\xffSELECT 1;\n", 1),
        (b"SELECT 1;\nSELECT '\xc3';\n", 2),  # a lone lead byte
        (b"SELECT 1;\nSELECT 2;\nSELECT '\xc3", 3),  # a sequence cut by the end of the file
        (b"SELECT '\xed\xa0\x80';\n", 1),  # an encoded surrogate is not valid UTF-8
        (b"SELECT '\xc0\xaf';\n", 1),  # overlong encoding
    ],
)
def test_invalid_utf8_variants(tmp_path: Path, data: bytes, line: int) -> None:
    path = write(tmp_path / "bad.sql", data)
    with pytest.raises(DumpError, match=rf"^{re.escape(str(path))}:{line}: invalid UTF-8"):
        read_all(path, DumpFormat("sql"))


def test_valid_multibyte_text_is_not_an_error(tmp_path: Path) -> None:
    text = "INSERT INTO t VALUES ('héllo', '日本語', '😀', 'Ω');\n" * 3000
    lines, reader = read_all(write(tmp_path / "utf8.sql", text))
    assert "".join(lines) == text
    assert reader.line_number == 3000


def test_truncated_gzip_says_it_ends_early(tmp_path: Path) -> None:
    text = "".join(f"INSERT INTO t VALUES ({n}, '{n:>50}');\n" for n in range(20000))
    data = gzip.compress(text.encode())
    path = write(tmp_path / "seed.sql.gz", data[: len(data) * 2 // 3])
    lines: list[str] = []
    with pytest.raises(DumpError) as caught, DumpReader(path) as reader:
        lines.extend(reader)
    message = str(caught.value)
    assert str(path) in message
    assert "gzip data ends early" in message
    assert f"after line {len(lines)}" in message
    assert 0 < len(lines) < 20000
    assert "".join(lines) == "".join(split_lines(text)[: len(lines)])


@pytest.mark.parametrize("compression", COMPRESSED)
def test_every_cut_of_a_compressed_dump_raises_dump_error(tmp_path: Path, compression: str) -> None:
    data = COMPRESSORS[compression](SQLITE_PLAIN.encode())
    path = tmp_path / "cut.sql"
    for end in range(len(magic_of(compression)), len(data)):
        path.write_bytes(data[:end])
        with pytest.raises(DumpError, match=re.escape(str(path))):
            read_all(path, DumpFormat("sql", compression))


def magic_of(compression: str) -> bytes:
    return {"gzip": b"\x1f\x8b", "xz": b"\xfd7zXZ\x00", "bz2": b"BZh"}[compression]


@pytest.mark.parametrize("compression", COMPRESSED)
def test_truncated_xz_and_bz2_say_they_end_early(tmp_path: Path, compression: str) -> None:
    data = COMPRESSORS[compression](PAGILA.read_bytes())
    path = write(tmp_path / "cut", data[: len(data) - 10])
    with pytest.raises(DumpError, match=f"the {compression} data ends early"):
        read_all(path)


@pytest.mark.parametrize("compression", COMPRESSED)
def test_corrupt_compressed_data_raises_dump_error(tmp_path: Path, compression: str) -> None:
    data = bytearray(COMPRESSORS[compression](PAGILA.read_bytes()))
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0x55 for b in data[middle : middle + 16])
    path = write(tmp_path / "corrupt.sql", bytes(data))
    with pytest.raises(DumpError) as caught:
        read_all(path)
    assert str(path) in str(caught.value)
    assert compression in str(caught.value)


def test_gzip_with_a_wrong_checksum_raises_dump_error(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(SQLITE_PLAIN.encode()))
    data[-8] ^= 0xFF  # the CRC32 in the trailer
    path = write(tmp_path / "crc.sql.gz", bytes(data))
    with pytest.raises(DumpError, match="corrupt gzip data"):
        read_all(path)


@given(
    compression=st.sampled_from(COMPRESSED),
    damage=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=4
    ),
    cut=st.one_of(st.none(), st.floats(0.1, 1, exclude_max=True)),
)
@settings(max_examples=60, deadline=None)
def test_damaged_compressed_dumps_only_ever_raise_dump_error(
    compression: str, damage: list[tuple[float, int]], cut: float | None
) -> None:
    data = bytearray(COMPRESSORS[compression](SQLITE_PLAIN.encode() * 40))
    for where, mask in damage:
        data[int(where * len(data))] ^= mask
    if cut is not None:
        data = data[: max(1, int(cut * len(data)))]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "damaged.sql"
        path.write_bytes(bytes(data))
        detect_format(path)  # never raises for content
        try:
            read_all(path)
        except DumpError as exc:
            assert str(path) in str(exc)


@pytest.mark.parametrize(
    ("make", "phrase"),
    [
        (lambda p: write(p, b"PGDMP\x01\x0e" + bytes(100)), "custom-format archive"),
        (lambda p: write(p, b"\x28\xb5\x2f\xfd" + bytes(40)), "zstd"),
    ],
)
def test_binary_formats_are_refused_with_dump_error(
    tmp_path: Path, make: Callable[[Path], Path], phrase: str
) -> None:
    path = make(tmp_path / "latest")
    with pytest.raises(DumpError, match=phrase):
        DumpReader(path)


def test_a_sqlite_database_file_is_refused_with_dump_error(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")
    db.close()
    with pytest.raises(DumpError, match="SQLite database file is not a text dump"):
        DumpReader(path)


def test_a_pg_directory_is_refused_with_dump_error(tmp_path: Path) -> None:
    write(tmp_path / "dirdump" / "toc.dat", b"PGDMP" + bytes(40))
    with pytest.raises(DumpError, match="directory-format"):
        DumpReader(tmp_path / "dirdump")


def test_a_missing_file_raises_dump_error(tmp_path: Path) -> None:
    with pytest.raises(DumpError, match=re.escape(f"{tmp_path / 'gone.sql'}: cannot read")):
        DumpReader(tmp_path / "gone.sql")


def test_no_file_descriptor_leaks_when_reading_fails(tmp_path: Path) -> None:
    data = gzip.compress(PAGILA.read_bytes())
    path = write(tmp_path / "cut.sql.gz", data[: len(data) // 2])
    before = open_fds()
    for _ in range(3):
        with pytest.raises(DumpError):
            read_all(path)
    assert open_fds() == before


# --- DumpReader: memory stays flat -------------------------------------------------------

BIG_BYTES = 60 * 1024 * 1024


def write_big_dump(path: Path, compression: str) -> int:
    """About 60 MB of SQL written block by block; returns the number of lines."""
    block = "".join(
        f"INSERT INTO events VALUES({n},'kind-{n % 7}','payload {n:>900}');\n" for n in range(1200)
    ).encode()
    blocks = BIG_BYTES // len(block) + 1
    opener = gzip.open if compression == "gzip" else open
    with opener(path, "wb", **({"compresslevel": 1} if compression == "gzip" else {})) as out:
        for _ in range(blocks):
            out.write(block)
    return blocks * 1200


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_reading_a_60_mb_dump_keeps_memory_flat(tmp_path: Path, compression: str) -> None:
    path = tmp_path / "big.sql"
    lines = write_big_dump(path, compression)
    longest = 0
    tracemalloc.start()
    try:
        with DumpReader(path) as reader:
            for line in reader:
                longest = max(longest, len(line))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reader.line_number == lines
    assert lines * 900 > BIG_BYTES * 0.9  # the dump really was that big
    assert reader.bytes_read == path.stat().st_size
    assert longest < 1000
    assert peak < 30 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB while reading"


# --- property: every compression reads back exactly -----------------------------------------

TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(["\r", "\n", ";", "'", " ", "é", "😀", "\u2028", "\x00"]),
        st.characters(codec="utf-8"),
    ),
    max_size=2000,
)


@given(text=TEXT, compression=st.sampled_from(["none", *COMPRESSED]))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_text_reads_back_exactly(text: str, compression: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / "dump", text, compression)
        lines, reader = read_all(path, DumpFormat("sql", compression))
        assert "".join(lines) == text
        assert lines == split_lines(text)
        assert reader.line_number == len(split_lines(text))
        assert reader.bytes_read == path.stat().st_size


def test_mysql_client_mode_keeps_binary_bytes_reads_crlf_as_lf_and_reports_corruption(
    tmp_path,
):
    dump = tmp_path / "bin.sql"
    dump.write_bytes(b"INSERT INTO t VALUES ('\xff\x00');\r\nSELECT 1;\n")
    with DumpReader(dump, mysql_client=True) as reader:
        lines = list(reader)
    assert lines == ["INSERT INTO t VALUES ('\udcff\x00');\n", "SELECT 1;\n"]
    assert lines[0].encode("utf-8", "surrogateescape") == b"INSERT INTO t VALUES ('\xff\x00');\n"
    broken = tmp_path / "broken.sql.xz"
    packed = lzma.compress(b"SELECT 1;\n" * 20000)
    broken.write_bytes(packed[:200] + b"\x00" * 50 + packed[250:])
    with pytest.raises(DumpError), DumpReader(broken, mysql_client=True) as reader:
        list(reader)


def _lines_then(path: Path, change: Callable[[], None]) -> list[str]:
    """Read a few lines of ``path``, call ``change``, then read the rest."""
    with DumpReader(path) as reader:
        lines = reader.read_lines(1000)
        change()
        while more := reader.read_lines(1 << 16):
            lines += more
    return lines


def test_a_dump_written_to_while_it_is_read_is_refused(tmp_path: Path) -> None:
    """Rewritten in place halfway (cron writing the next dump over it): the rest would be
    another file's, so reading stops with one line saying so, instead of a mixed load."""
    dump = tmp_path / "d.sql"
    dump.write_text("".join(f"INSERT INTO t VALUES ({n});\n" for n in range(100_000)))

    def rewrite() -> None:
        dump.write_text("".join(f"INSERT INTO t VALUES ({-n});\n" for n in range(100_000)))

    with pytest.raises(DumpError, match="the dump changed while it was read"):
        _lines_then(dump, rewrite)
    with pytest.raises(DumpError, match="the dump changed while it was read"):  # cut short
        _lines_then(dump, lambda: os.truncate(dump, 1000))


def test_a_dump_renamed_over_while_it_is_read_is_read_whole(tmp_path: Path) -> None:
    """Renamed over (the atomic way to replace a file), the file opened is still whole."""
    dump = tmp_path / "d.sql"
    text = "".join(f"INSERT INTO t VALUES ({n});\n" for n in range(100_000))
    dump.write_text(text)

    def replace() -> None:
        (tmp_path / "new.sql").write_text("SELECT 1;\n")
        os.replace(tmp_path / "new.sql", dump)

    assert "".join(_lines_then(dump, replace)) == text
