"""The fast path for plain multi-row INSERTs gives what the line splitter gives."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from reel_tui.dumpfile import DumpReader
from reel_tui.engines import mysql_stream
from reel_tui.engines.mysql_script import ClientCommand, ScriptSplitter, Statement
from reel_tui.engines.mysql_stream import Rows, ScriptStream

Item = tuple[str, str, int]


def slow(script: bytes) -> list[Item]:
    """The line splitter alone, on the lines as DumpReader reads them."""
    text = script.decode("utf-8", "surrogateescape").replace("\r\n", "\n")
    lines = io.StringIO(text, newline="")
    return [_item(i) for i in ScriptSplitter(lines)]


def fast(script: bytes, folder: Path) -> tuple[list[Item], int]:
    """Through ScriptStream: the items, and how many came as Rows."""
    path = folder / "dump.sql"
    path.write_bytes(script)
    with DumpReader(path, mysql_client=True) as reader:
        items = list(ScriptSplitter(ScriptStream(reader)))
    return [_item(i) for i in items], sum(isinstance(i, Rows) for i in items)


def _item(item: Statement | ClientCommand | Rows) -> Item:
    if isinstance(item, ClientCommand):
        return ("command", item.argument, item.line)
    return ("statement", item.text, item.line)


def test_mysqldump_rows_come_whole_as_bytes(tmp_path: Path):
    script = (
        "-- MariaDB dump 10.19\n"
        "/*!40101 SET NAMES utf8mb4 */;\n"
        "INSERT INTO `t` VALUES\n(1,'a;b\\'c',-2.5e-3,NULL),\n(2,_binary 'x\\0\\\\;',0x00ff);\n"
        "INSERT INTO `db`.`t` (`a`, `b`) VALUES (3,'é');\n"
        "UNLOCK TABLES;\n"
    ).encode() + b"INSERT INTO t VALUES (4,'\xff\xfe');\n"
    items, fast_count = fast(script, tmp_path)
    assert items == slow(script)
    assert fast_count == 3
    assert items[1] == ("statement", "INSERT INTO `t` VALUES\n(1,'a;b\\'c',-2.5e-3,NULL),\n"
                        "(2,_binary 'x\\0\\\\;',0x00ff)", 3)  # fmt: skip
    assert items[3] == ("statement", "UNLOCK TABLES", 7)


def test_unusual_inserts_go_the_slow_way_with_the_same_result(tmp_path: Path):
    script = (
        b"INSERT INTO t VALUES (1, NOW());\n"  # parentheses inside a tuple
        b"INSERT INTO t VALUES (1,'x;\n'),(2,'y');\n"  # a raw ';' line end inside a string
        b"INSERT INTO t VALUES (1 /* c */);\n"
        b"INSERT INTO t SELECT * FROM u;\n"
        b"INSERT INTO t VALUES (1); SELECT 2;\n"
        b"INSERT INTO t VALUES (5),\r\n(6);\r\n"
        b"INSERT INTO t VALUES (7)"  # no delimiter at the end
    )
    items, fast_count = fast(script, tmp_path)
    assert items == slow(script)
    assert fast_count == 1  # only the CRLF one


def test_a_statement_longer_than_a_block(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(mysql_stream, "BLOCK", 64)
    rows = ",\n".join(f"({n},'row {n};')" for n in range(200))
    script = f"SET x=1;\nINSERT INTO t VALUES\n{rows};\nSELECT 1;\n".encode()
    items, fast_count = fast(script, tmp_path)
    assert items == slow(script)
    assert fast_count == 1
    assert items[-1] == ("statement", "SELECT 1", 203)


def test_past_the_fast_limit_the_line_splitter_takes_over(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(mysql_stream, "BLOCK", 64)
    monkeypatch.setattr(mysql_stream, "FAST_LIMIT", 256)
    rows = ",\n".join(f"({n})" for n in range(300))
    script = f"INSERT INTO t VALUES\n{rows};\nSELECT 1;\n".encode()
    items, fast_count = fast(script, tmp_path)
    assert items == slow(script)
    assert fast_count == 0


_value = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.just("NULL"),
    st.text(alphabet="ab;\n'\"\\()#-/*`é", max_size=8).map(
        lambda b: "'" + b.replace("\\", "\\\\").replace("'", "''") + "'"
    ),
    st.text(alphabet='ab;\n"\\', max_size=5).map(
        lambda b: '"' + b.replace("\\", "\\\\").replace('"', '\\"') + '"'
    ),
    st.sampled_from(["NOW()", "-- c\n1", "/* c */ 2", "# c\n3", "1--2", "4/2", "0x0A", "\\N"]),
)
_tuple = st.lists(_value, min_size=1, max_size=4).map(lambda v: "(" + ",".join(v) + ")")
_insert = st.tuples(
    st.sampled_from(
        ["INSERT INTO `t` VALUES", "insert into t values ", "INSERT INTO t (a) VALUES"]
    ),
    st.lists(_tuple, min_size=1, max_size=4),
    st.sampled_from([",\n", ",", ", ", ",\r\n"]),
    st.sampled_from([";\n", ";\r\n", "; \n", ";SELECT 1;\n", ";\n-- x\n"]),
).map(lambda p: p[0] + p[2].join(p[1]) + p[3])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_insert, st.just("SELECT 'a;';\n")), min_size=1, max_size=5))
@example(["INSERT INTO t VALUES ('a\n;'),\n(1);\n"])
def test_fast_and_slow_split_alike(statements: list[str]):
    script = "".join(statements).encode()
    with tempfile.TemporaryDirectory() as folder:
        items, _ = fast(script, Path(folder))
    assert items == slow(script)
