"""The plain-SQL splitter on its own: the statement boundaries psql would find."""

from __future__ import annotations

import io
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reel_tui.dumpfile import DumpError, DumpReader
from reel_tui.engines import pg_script
from reel_tui.engines.pg_script import MetaCommand, ScriptError, ScriptSplitter, Statement


def split(script: str) -> list[Statement | MetaCommand]:
    return list(ScriptSplitter(script.splitlines(keepends=True)))


def texts(script: str) -> list[str]:
    return [item.text for item in split(script) if isinstance(item, Statement)]


def test_statements_with_their_first_lines():
    items = split("-- header\nSET a = 1;\n\nCREATE TABLE t (\n  x int\n);\nSELECT 1; SELECT 2;\n")
    assert [(i.text, i.line) for i in items] == [
        ("SET a = 1;", 2),
        ("CREATE TABLE t (\n  x int\n);", 4),
        ("SELECT 1;", 7),
        ("SELECT 2;", 7),
    ]


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO t VALUES ('a;b', 'it''s; fine');",
        "INSERT INTO t VALUES (E'esc\\'; still', E'back\\\\');",
        "SELECT 'multi\nline; string';",
        'CREATE TABLE "we;ird ""name""" (x int);',
        "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;",
        "CREATE FUNCTION f() RETURNS text AS $body$ SELECT '$$;'; \\. $body$ LANGUAGE sql;",
        "CREATE FUNCTION f() RETURNS text AS $a$ $b$ ; $b$ $a$ LANGUAGE sql;",
        "SELECT 1 /* a; /* nested; */ still comment; */ + 2;",
        "SELECT 1 -- a comment; with a semicolon\n + 2;",
        "CREATE RULE r AS ON INSERT TO t DO INSTEAD (INSERT INTO u VALUES (1); DELETE FROM u);",
        "SELECT a$b, $1 FROM t WHERE x = ';';",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql\n"
        "BEGIN ATOMIC\n  SELECT 1;\n  SELECT CASE WHEN true THEN 2 END;\nEND;",
        "CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC INSERT INTO t VALUES (1); END;",
    ],
)
def test_semicolons_that_do_not_end_a_statement(statement: str):
    assert texts(f"SET x = 1;\n{statement}\nSELECT 'after';\n") == [
        "SET x = 1;",
        statement,
        "SELECT 'after';",
    ]


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE FUNCTION public.begin() RETURNS integer\n    LANGUAGE sql\n    AS $$SELECT 1$$;",
        'CREATE FUNCTION public."ébegin"() RETURNS integer\n    LANGUAGE sql\n    AS $$SELECT 1$$;',
        "CREATE FUNCTION ébegin() RETURNS int LANGUAGE sql RETURN 1;",
        "CREATE OR REPLACE PROCEDURE begin() LANGUAGE sql AS 'SELECT 1';",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $é$ BEGIN ATOMIC SELECT 1; $é$;",
        "CREATE FUNCTION f() RETURNS text LANGUAGE sql RETURN E'\\' BEGIN ATOMIC';",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql /* BEGIN /* ATOMIC */ */ RETURN 1;",
        "CREATE FUNCTION f(begin int, atomic int) RETURNS int LANGUAGE sql RETURN begin;",
        'CREATE FUNCTION f() RETURNS int LANGUAGE sql AS begin "x" atomic;',
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1 AS éend;\nEND;",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1 AS écase;\nEND;",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nbegin -- x\n atomic SELECT 1; end;",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN /* x */ ATOMIC SELECT 1; END;",
    ],
)
def test_routines_end_where_psql_ends_them(statement: str):
    """Only BEGIN ATOMIC opens a block: not a function named begin, ébegin, nor BEGIN
    ATOMIC inside a dollar quote (tag ``$é$``), an E'' string or a nested comment."""
    assert texts(f"SET x = 1;\n{statement}\nSELECT 'after';\n") == [
        "SET x = 1;",
        statement,
        "SELECT 'after';",
    ]


def test_copy_data_is_handed_over_raw_up_to_the_terminator():
    script = (
        "COPY public.t (a, b) FROM stdin;\n1\tit's; not SQL\n2\t\\\\.\\N\n\\.\nSELECT 'next';\n"
    )
    splitter = ScriptSplitter(script.splitlines(keepends=True))
    items = iter(splitter)
    copy = next(items)
    assert isinstance(copy, Statement) and copy.copy_from_stdin
    assert list(splitter.copy_data()) == ["1\tit's; not SQL\n", "2\t\\\\.\\N\n"]
    following = next(items)
    assert following.text == "SELECT 'next';" and following.line == 5


def test_copy_data_not_read_by_the_caller_is_skipped():
    assert texts("COPY t FROM stdin;\nx;y\n\\.\nSELECT 1;\n") == [
        "COPY t FROM stdin;",
        "SELECT 1;",
    ]


def test_copy_to_stdout_is_an_ordinary_statement():
    assert not split("COPY t TO stdout;\n")[0].copy_from_stdin


def test_psql_meta_commands_between_statements():
    script = (
        "\\restrict abc123\n"
        "CREATE DATABASE shop;\n"
        "\\connect -reuse-previous=on \"dbname='shop'\"\n"
        "SELECT 1;\n"
        "\\unrestrict abc123\n"
    )
    items = split(script)
    assert items[0] == MetaCommand("restrict", "abc123", 1)
    assert items[2] == MetaCommand("connect", "-reuse-previous=on \"dbname='shop'\"", 3)
    assert items[4] == MetaCommand("unrestrict", "abc123", 5)
    assert [i.text for i in items if isinstance(i, Statement)] == [
        "CREATE DATABASE shop;",
        "SELECT 1;",
    ]


def test_a_backslash_inside_a_string_is_not_a_meta_command():
    assert texts("SELECT 'a\n\\connect x\n';\n") == ["SELECT 'a\n\\connect x\n';"]


def test_standard_conforming_strings_off_makes_backslash_an_escape():
    script = "SET standard_conforming_strings = off;\nSELECT 'a\\';b';\nSELECT 2;\n"
    assert texts(script)[1:] == ["SELECT 'a\\';b';", "SELECT 2;"]


def test_empty_statements_and_trailing_comments_are_ignored():
    assert texts(";\n;SELECT 1;;\n-- the end\n/* really */\n") == ["SELECT 1;"]


@pytest.mark.parametrize(
    ("script", "message", "line"),
    [
        ("SELECT 1;\nINSERT INTO t VALUES (1,\n", "ends inside a statement", 2),
        ("SELECT 'never closed;\n", "ends inside a statement", 1),
        ("SELECT $$ body;\n", "ends inside a statement", 1),
        ("COPY t FROM stdin;\n1\n2\n", "ends inside the COPY data started at line 1", 3),
    ],
)
def test_a_cut_off_script_is_an_error(script: str, message: str, line: int):
    with pytest.raises(ScriptError, match=message) as caught:
        split(script)
    assert caught.value.line == line


def test_streaming_holds_one_statement_not_the_script():
    def lines():
        yield "CREATE TABLE t (x int);\n"
        yield "COPY t FROM stdin;\n"
        for n in range(100_000):
            yield f"{n}\n"
        yield "\\.\n"
        raise AssertionError("read past the point the test stops at")

    splitter = ScriptSplitter(lines())
    items = iter(splitter)
    next(items)
    assert next(items).copy_from_stdin
    assert sum(1 for _ in splitter.copy_data()) == 100_000


# --- property: the splitter finds exactly the statements a script was built from ----------

_safe_text = st.text(alphabet=st.sampled_from(list('ab ;,\n$-/*()"é😀\t')), max_size=12).filter(
    lambda s: "*/" not in s and "/*" not in s
)
_fragment = st.one_of(
    st.sampled_from(["x", "1", "a$b", "$1", "t.col", "+", "E", "x$y$"]),
    _safe_text.map(lambda s: "'" + s.replace("'", "''") + "'"),
    st.text(alphabet=st.sampled_from(list("ab;'\\\n")), max_size=8).map(
        lambda s: "E'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"
    ),
    _safe_text.map(lambda s: '"' + s.replace('"', '""') + '"'),
    st.tuples(st.sampled_from(["", "q", "body_1"]), _safe_text)
    .filter(lambda t: f"${t[0]}$" not in t[1] and not t[1].endswith("$"))
    .map(lambda t: f"${t[0]}${t[1]}${t[0]}$"),
    _safe_text.map(lambda s: "/* " + s + " /* nested; */ */"),
    _safe_text.map(lambda s: "-- " + s.replace("\n", " ") + "\n"),
    st.text(alphabet=st.sampled_from(list("ab ;,é")), max_size=8).map(lambda s: f"(x; {s})"),
)
_statement = st.lists(_fragment, max_size=6).map(lambda parts: "SELECT " + " ".join(parts) + ";")
_separator = st.sampled_from(["\n", " ", "\n\n", "\n-- between; statements\n", " /* ; */ "])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_statement, _separator), min_size=1, max_size=8))
def test_property_statements_come_back_exactly(pairs: list[tuple[str, str]]):
    script = ""
    expected: list[tuple[str, int]] = []
    for statement, separator in pairs:
        expected.append((statement, script.count("\n") + 1))
        script += statement + separator
    found = [(s.text, s.line) for s in split(script) if isinstance(s, Statement)]
    assert found == expected


@settings(max_examples=100, deadline=None)
@example(["\\.\t", "\\.x", " \\."])  # only a line that is exactly \. ends the data
@given(st.lists(st.text(alphabet=st.sampled_from(list("a;'$\\.\t")), max_size=10), max_size=20))
def test_property_copy_data_comes_back_exactly(rows: list[str]):
    rows = [row for row in rows if row != "\\."]
    data = [row + "\n" for row in rows]
    splitter = ScriptSplitter(["COPY t FROM stdin;\n", *data, "\\.\n", "SELECT 1;\n"])
    items = iter(splitter)
    next(items)
    assert list(splitter.copy_data()) == data
    assert next(items).text == "SELECT 1;"


_routine_word = st.sampled_from(
    ["begin", "BEGIN", "ébegin", "beginé", "begin_x", "x$begin", "éend", "écase", "case_x", "1"]
)
_hidden_atomic = st.sampled_from(
    [
        "'begin atomic;'",
        '"begin" atomic',
        "$é$ begin atomic; $é$",
        "$$ begin atomic; $$",
        "/* begin /* atomic; */ */",
        "-- begin atomic;\n",
        "E'\\' begin atomic;'",
        "éatomic",
        ", atomic",
    ]
)
_routine_body = st.lists(st.one_of(_fragment, _routine_word, _hidden_atomic), max_size=6).map(
    " ".join
)
_routine = st.one_of(
    _routine_body.map(lambda body: f"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS {body};"),
    _routine_body.map(
        lambda body: f"CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC SELECT {body}; END;"
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.one_of(_statement, _routine), _separator), min_size=1, max_size=6))
def test_property_routines_come_back_exactly(pairs: list[tuple[str, str]]):
    """Routine bodies with words like begin, ébegin, éend, and BEGIN ATOMIC hidden in
    strings, quoted names, dollar quotes and comments: only a real BEGIN ATOMIC opens."""
    script = ""
    expected: list[tuple[str, int]] = []
    for statement, separator in pairs:
        expected.append((statement, script.count("\n") + 1))
        script += statement + separator
    found = [(s.text, s.line) for s in split(script) if isinstance(s, Statement)]
    assert found == expected


@pytest.mark.parametrize(
    ("fast", "readable"),
    [
        (pg_script._NAME_START, r"[A-Za-z_\x80-\U0010ffff]"),
        (pg_script._TAG_CHAR, r"[\w\x80-\U0010ffff]"),
        (pg_script._NAME_CHAR, r"[\w$\x80-\U0010ffff]"),
        (pg_script._NUMBER_CHAR, r"[\w$.\x80-\U0010ffff]"),
    ],
)
def test_fast_character_classes_match_every_code_point_like_the_ranges(fast, readable):
    everything = "".join(map(chr, range(0x110000)))
    matched = [m.start() for m in re.finditer(fast, everything, re.S)]
    assert matched == [m.start() for m in re.finditer(readable, everything, re.S)]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.text(alphabet=st.sampled_from(list("a;'$\\.\t")), max_size=10), max_size=30),
    st.integers(min_value=1, max_value=40),
)
def test_property_copy_pieces_read_in_bulk_come_back_exactly(rows: list[str], size: int):
    """Bulk reads run past the end of the data into the next COPY: both come back whole,
    with the lines they start on, and the statements after them are split as usual."""
    data = [row + "\n" for row in rows if row != "\\."]
    script = io.StringIO(
        "COPY t FROM stdin;\n" + "".join(data) + "\\.\nCOPY u FROM stdin;\n"
        + "".join(data) + "\\.\nSELECT 1;\n"
    )  # fmt: skip
    splitter = ScriptSplitter(iter(script.readline, ""), script.readlines)
    found = []
    for item in splitter:
        if isinstance(item, Statement) and item.copy_from_stdin:
            pieces = list(splitter.copy_pieces(size))
            found.append((item.line, b"".join(piece for _, piece in pieces).decode()))
            line = item.line + 1
            for first, piece in pieces:
                assert first == line
                line += piece.count(b"\n")
        else:
            found.append((item.line, item.text))
    assert found == [
        (1, "".join(data)),
        (len(data) + 3, "".join(data)),
        (2 * len(data) + 5, "SELECT 1;"),
    ]


def test_copy_pieces_of_a_cut_off_dump_name_the_copy():
    script = io.StringIO("COPY t FROM stdin;\n1\n2\n")
    splitter = ScriptSplitter(iter(script.readline, ""), script.readlines)
    next(iter(splitter))
    with pytest.raises(ScriptError, match="ends inside the COPY data started at line 1"):
        list(splitter.copy_pieces(1))


def _split_dump(path: Path, size: int, *, as_bytes: bool) -> list[tuple[int, object]]:
    """What a splitter over a DumpReader of ``path`` gives: statements, and each COPY's
    pieces joined; COPY data read as bytes (``as_bytes``) or as lines in bulk."""
    found: list[tuple[int, object]] = []
    with DumpReader(path) as reader:
        splitter = ScriptSplitter(
            iter(reader), reader.read_lines, reader.byte_tail if as_bytes else None
        )
        for item in splitter:
            if isinstance(item, Statement) and item.copy_from_stdin:
                pieces = list(splitter.copy_pieces(size))
                line = item.line + 1
                for first, piece in pieces:  # each piece starts on the line it says
                    assert first == line
                    line += piece.count(b"\n")
                found.append((item.line, b"".join(piece for _, piece in pieces)))
            else:
                found.append((item.line, getattr(item, "text", item)))
        found.append((reader.line_number, "end"))
    return found


_ROW = st.text(alphabet=st.sampled_from(list("a;'$\\.\té€")), max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(_ROW, st.sampled_from(["\n", "\r\n"])), max_size=30),
    st.integers(min_value=1, max_value=64),
    st.sampled_from(["\\.\n", "\\.\r\n"]),
    st.booleans(),
)
def test_property_copy_data_read_as_bytes_equals_it_read_as_lines(
    rows: list[tuple[str, str]], size: int, marker: str, marker_at_eof: bool
):
    """COPY data handed on undecoded comes back as the line reading gives it: the same
    bytes, pieces starting on the same lines, and the statements after them on the
    lines they are on; a ``\\.`` without its line end only ends data at the end of file."""
    data = "".join(row + end for row, end in rows if row != "\\.")
    script = "SET x = 1;\nCOPY t FROM stdin;\n" + data + marker + "COPY u FROM stdin;\n" + data
    script += "\\." if marker_at_eof else "\\.\nSELECT 'é';\n"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "dump.sql"
        path.write_bytes(script.encode())
        as_lines = _split_dump(path, size, as_bytes=False)
        assert _split_dump(path, size, as_bytes=True) == as_lines
    assert as_lines[1][1] == data.encode()


def test_copy_data_read_as_bytes_names_the_line_of_invalid_utf8(tmp_path: Path):
    path = tmp_path / "dump.sql"
    path.write_bytes(b"COPY t FROM stdin;\n1\tok\n2\t\xff\n\\.\n")
    with DumpReader(path) as reader:
        splitter = ScriptSplitter(iter(reader), reader.read_lines, reader.byte_tail)
        next(iter(splitter))
        with pytest.raises(DumpError, match=r"dump.sql:3: invalid UTF-8"):
            list(splitter.copy_pieces(1024))


def test_copy_data_read_as_bytes_of_a_cut_off_dump_names_the_copy(tmp_path: Path):
    path = tmp_path / "dump.sql"
    path.write_bytes(b"SELECT 1;\nCOPY t FROM stdin;\n1\n2")
    with DumpReader(path) as reader:
        splitter = ScriptSplitter(iter(reader), reader.read_lines, reader.byte_tail)
        items = iter(splitter)
        next(items)
        next(items)
        with pytest.raises(ScriptError, match="ends inside the COPY data started at line 2"):
            list(splitter.copy_pieces(4))
