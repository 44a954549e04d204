"""The mysqldump splitter: the boundaries the mysql client finds, streaming."""

from __future__ import annotations

import io

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import SHARED_DATA
from reel_tui.engines.mysql_script import ClientCommand, ScriptError, ScriptSplitter, Statement


def split(script: str, backslash_escapes: bool = True) -> list[Statement | ClientCommand]:
    splitter = ScriptSplitter(io.StringIO(script, newline=""))
    splitter.backslash_escapes = backslash_escapes
    return list(splitter)


def texts(script: str, **kwargs: bool) -> list[str]:
    return [item.text for item in split(script, **kwargs) if isinstance(item, Statement)]


def test_mysqldump_preamble_and_extended_insert():
    script = (
        "/*M!999999\\- enable the sandbox mode */ \n"
        "-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB\n"
        "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n"
        "/*!40101 SET NAMES utf8mb4 */;\n"
        "LOCK TABLES `t` WRITE;\n"
        "INSERT INTO `t` VALUES (1,'a;b','it\\'s'),(2,_binary 'x\\0\\\\;\\'y','-- no');\n"
        "UNLOCK TABLES;\n"
    )
    items = split(script)
    assert isinstance(items[0], ClientCommand) and items[0].name == "sandbox"
    assert [i.text for i in items[1:]] == [  # type: ignore[union-attr]
        "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */",
        "/*!40101 SET NAMES utf8mb4 */",
        "LOCK TABLES `t` WRITE",
        "INSERT INTO `t` VALUES (1,'a;b','it\\'s'),(2,_binary 'x\\0\\\\;\\'y','-- no')",
        "UNLOCK TABLES",
    ]
    assert [i.line for i in items] == [1, 3, 4, 5, 6, 7]


def test_delimiter_changes_and_routine_bodies_keep_their_comments():
    script = (
        "DELIMITER ;;\n"
        "/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER `x` "
        "AFTER INSERT ON `t` FOR EACH ROW BEGIN\n"
        "  # a comment; with semicolons\n"
        "  INSERT INTO u VALUES (1); -- another;\n"
        "END */;;\n"
        "DELIMITER ;\n"
        "delimiter $$\n"
        "CREATE PROCEDURE p() BEGIN SELECT '$$'; /* $$ */ END $$\n"
        "DELIMITER ;\n"
        "SELECT 1;\n"
    )
    items = split(script)
    commands = [i.argument for i in items if isinstance(i, ClientCommand)]
    assert commands == [";;", ";", "$$", ";"]
    statements = [i for i in items if isinstance(i, Statement)]
    assert statements[0].text.endswith("INSERT INTO u VALUES (1); -- another;\nEND */")
    assert "# a comment; with semicolons" in statements[0].text
    assert statements[1].text == "CREATE PROCEDURE p() BEGIN SELECT '$$'; /* $$ */ END"
    assert statements[1].line == 8
    assert statements[2].text == "SELECT 1"


def test_comments_before_a_statement_are_dropped_inside_kept():
    script = "# hash\n-- dashes\n/* block\n; */ SELECT /* in; */ 1 -- x;\n, 2;\n--\n"
    assert texts(script) == ["SELECT /* in; */ 1 -- x;\n, 2"]


def test_two_dashes_without_a_space_are_not_a_comment():
    assert texts("SELECT 1--1;\nSELECT 2;\n") == ["SELECT 1--1", "SELECT 2"]


def test_no_backslash_escapes_makes_backslash_literal():
    script = "SELECT 'a\\';\nSELECT 2;\n"
    assert texts(script, backslash_escapes=False) == ["SELECT 'a\\'", "SELECT 2"]
    with pytest.raises(ScriptError, match="inside a string"):
        texts(script)


def test_multi_line_strings_and_identifiers():
    script = 'INSERT INTO `we;ird``s` VALUES (\'line1;\nline2\', "q;\n""");\nSELECT 3;\n'
    assert texts(script) == [
        'INSERT INTO `we;ird``s` VALUES (\'line1;\nline2\', "q;\n""")',
        "SELECT 3",
    ]


def test_last_statement_without_delimiter_is_sent_as_the_client_does():
    assert texts("SELECT 1;\nSELECT 2\n") == ["SELECT 1", "SELECT 2"]


def test_truncated_inside_a_string_names_its_line():
    with pytest.raises(ScriptError) as caught:
        texts("SELECT 1;\nINSERT INTO t VALUES\n(1,'abc\n")
    assert caught.value.line == 2


def test_sakila_splits_into_the_statements_the_client_sends():
    schema = SHARED_DATA / "sakila" / "sakila-mv-schema.sql"
    with open(schema, encoding="utf-8", newline="") as lines:
        items = list(ScriptSplitter(lines))
    statements = [i for i in items if isinstance(i, Statement)]
    assert [i.argument for i in items if isinstance(i, ClientCommand)].count("$$") == 5
    assert sum(s.text.startswith("CREATE TABLE") for s in statements) == 16
    assert sum(s.text.startswith("CREATE TRIGGER") for s in statements) == 3
    assert sum("FUNCTION" in s.text.split("(")[0] for s in statements) == 3
    assert all(not s.text.endswith((";", "$$", "//")) for s in statements)


# --- property: what is rendered is what is split back ----------------------------------------

_plain = st.text(alphabet="abcXYZ019 _,()=+*", min_size=1, max_size=8).filter(
    lambda t: t.strip() and "*/" not in t and "/*" not in t
)
_string_body = st.text(alphabet="ab;$/*#-'\"`\\\n\0😀 ", max_size=10)


def _sql_string(body: str) -> str:
    return "'" + body.replace("\\", "\\\\").replace("'", "''") + "'"


_fragment = st.one_of(
    _plain,
    _string_body.map(_sql_string),
    _string_body.map(lambda b: '"' + b.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    _string_body.map(lambda b: "`" + b.replace("`", "``") + "`"),
    _string_body.map(lambda b: "/* " + b.replace("*/", "") + " */"),
    _string_body.map(lambda b: "-- " + b.replace("\n", " ") + "\n"),
    _string_body.map(lambda b: "# " + b.replace("\n", " ") + "\n"),
    _plain.map(lambda t: f"/*!40101 {t} */"),
)
_statement = st.lists(_fragment, min_size=1, max_size=6).map(lambda parts: "X " + " ".join(parts))
_delimiter = st.sampled_from([";", ";;", "$$", "//"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_statement, _delimiter, st.booleans()), min_size=1, max_size=6))
@example([("X 'a\\\\' ;", ";", False)])
def test_split_gives_back_each_statement(rendered: list[tuple[str, str, bool]]):
    script, expected, current = "", [], ";"
    for text, delimiter, leading_comment in rendered:
        if delimiter in text:
            continue
        if delimiter != current:
            script += f"DELIMITER {delimiter}\n"
            current = delimiter
        if leading_comment:
            script += "-- comment before\n"
        script += text + delimiter + "\n"
        expected.append(text.strip())
    assert texts(script) == expected


def test_a_last_statement_without_delimiter_is_marked_as_such():
    """The loader refuses it in a mysqldump file (cut short); the client would send it."""
    *rest, last = split("SELECT 1;\nINSERT INTO t VALUES (1),(2)\n")
    assert all(s.delimited for s in rest if isinstance(s, Statement))
    assert isinstance(last, Statement) and not last.delimited
