"""MySQL engine: connection settings, the definers key, statement rewriting, errors without
the password, GET_LOCK between two reel processes, and check()."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
from my_tools import messages, rewind, why_not_done
from mysql_server import MysqlServer

from reel_tui.config import AppConfig, load_config
from reel_tui.engines import mysql_rewrite as rewrite
from reel_tui.engines.mysql import MysqlEngine
from reel_tui.engines.mysql_conn import connect_params, is_local
from reel_tui.history import HistoryStore
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import JobState
from reel_tui.plan import plan_rewind

SMALL = "CREATE TABLE t (x int);\nINSERT INTO t VALUES (42);\n"


def test_rename_schema_touches_identifiers_only():
    text = ("SELECT sakila.film.x, `sakila` . y, 'sakila.z', \"sakila.q\", /* sakila.c */ "
            "a.sakila.b, sakila_x.c, `sakila`.`t` FROM sakila.t # sakila.d\n")  # fmt: skip
    assert rewrite.rename_schema(text, "sakila", "st") == (
        "SELECT `st`.film.x, `st` . y, 'sakila.z', \"sakila.q\", /* sakila.c */ "
        "a.sakila.b, sakila_x.c, `st`.`t` FROM `st`.t # sakila.d\n"
    )
    assert rewrite.rename_schema("SELECT 'it\\'s sakila.x'", "sakila", "st") == (
        "SELECT 'it\\'s sakila.x'"
    )


def test_database_statements_inside_versioned_comments():
    create = rewrite.database_statement(
        "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `we``ird` /*!40100 DEFAULT CHARACTER SET "
        "utf8mb4 COLLATE utf8mb4_general_ci */"
    )
    assert create == rewrite.DatabaseStatement(
        "create", "we`ird", "DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
    )
    assert rewrite.database_statement("/*!40000 DROP DATABASE IF EXISTS `x`*/").kind == "drop"  # type: ignore[union-attr]
    assert rewrite.database_statement("USE sakila").name == "sakila"  # type: ignore[union-attr]
    assert rewrite.database_statement("DROP TABLE IF EXISTS `x`") is None
    assert rewrite.database_statement("CREATE TABLE `database` (x int)") is None


def test_definer_found_only_in_the_head_of_a_definition():
    trigger = ("/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER x "
               "BEFORE INSERT ON t FOR EACH ROW SET @a = 'DEFINER=x@y' */")  # fmt: skip
    assert rewrite.definer(trigger) == "`root`@`localhost`"
    assert "DEFINER=`root`" not in rewrite.strip_definer(trigger)
    assert "'DEFINER=x@y'" in rewrite.strip_definer(trigger)
    assert rewrite.account("'u'@'%'") == ("u", "%")
    assert rewrite.account("CURRENT_USER") is None
    assert rewrite.definition_kind("CREATE TABLE `event` (x int)") is None
    assert rewrite.definition_kind("CREATE DEFINER=a@b FUNCTION f() RETURNS int RETURN 1") == (
        "function"
    )


def test_connection_comes_from_config_then_option_file(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CRM_PW", "s3cret")
    app = AppConfig("a", "mysql", "crm", server="/run/x.sock", port=3307, user="crm",
                    password_env="CRM_PW")  # fmt: skip
    params = connect_params(app)
    assert params["unix_socket"] == "/run/x.sock" and params["password"] == "s3cret"
    assert "read_default_file" not in params
    (tmp_path / ".my.cnf").write_text("[client]\nuser = fromfile\npassword = pw\n")
    params = connect_params(AppConfig("a", "mysql", "crm", server="db.example"))
    assert params["read_default_file"] == str(tmp_path / ".my.cnf")
    assert params["host"] == "db.example" and "user" not in params and "password" not in params
    assert is_local(AppConfig("a", "mysql", "crm", server="127.0.0.1"))
    assert not is_local(AppConfig("a", "mysql", "crm", server="db.example"))


@pytest.mark.parametrize(
    ("line", "message"),
    [('definers = "drop"', "definers: expected one of auto, keep, strip")],
)
def test_bad_definers_value_is_a_one_line_error(write_config, line, message):
    config = load_config(write_config(f'[a]\ndbdriver = "mysql"\ndatabase = "crm"\n'
                                      f'dbsources = "."\n{line}\n'))  # fmt: skip
    assert any(message in str(p) for p in config.errors)


def test_wrong_password_is_a_one_line_error_without_it(my_config, history, monkeypatch):
    config = my_config()
    (config.parent / "dumps" / "small.sql").write_text(SMALL)
    monkeypatch.setenv("REEL_TEST_MYPASSWORD", "wrong-pw-123")
    job = rewind(config, history, "small.sql")
    assert job.state is JobState.FAILED
    assert "Access denied" in str(job.error) and "wrong-pw-123" not in str(job.error)
    log = history.log_path(job.id).read_text()
    assert "wrong-pw-123" not in log


def test_unix_socket_and_check(mysql_server: MysqlServer, my_config, my_dbname):
    config = my_config()
    app = load_config(config).apps["crm"]
    engine = MysqlEngine(AppConfig(**{**app.__dict__, "server": str(mysql_server.socket),
                                      "port": None}))  # fmt: skip
    found = engine.check()
    assert "MariaDB" in found and f"database {my_dbname} does not exist yet" in found


def test_second_rewind_waits_for_the_server_lock_and_says_so(
    mysql_server: MysqlServer, my_config, my_dbname, tmp_path: Path
):
    """Another reel process (here: a session holding the lock) makes the rewind wait."""
    config = my_config()
    (config.parent / "dumps" / "small.sql").write_text(SMALL)
    holder = mysql_server.connect()
    with holder.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, 0)", (f"reel-tui:{my_dbname}",))
    history = HistoryStore(tmp_path / "other-state")
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan_rewind(load_config(config), "crm", "small.sql"))
        deadline = time.monotonic() + 20
        while not any(m.startswith("waiting: another reel-tui") for m in messages(job)):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert job.state is JobState.RUNNING
        threading.Timer(0.3, holder.close).start()
        assert queue.wait(job, timeout=30), why_not_done(job, mysql_server)
    finally:
        queue.shutdown()
        history.close()
    assert job.state is JobState.SUCCEEDED, job.error
    assert "the other rewind is over; going on" in messages(job)
    assert mysql_server.execute(f"SELECT x FROM `{my_dbname}`.t") == [(42,)]


def test_no_backslash_escapes_set_by_the_dump_is_followed(mysql_server, my_config, my_dbname,
                                                          history):  # fmt: skip
    config = my_config()
    (config.parent / "dumps" / "nbe.sql").write_text(
        "CREATE TABLE t (s varchar(10));\n"
        "/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_BACKSLASH_ESCAPES' */;\n"
        "INSERT INTO t VALUES ('a\\'), ('b;c');\n"
        "/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;\n"
        "INSERT INTO t VALUES ('d\\'e');\n"
    )
    job = rewind(config, history, "nbe.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    rows = mysql_server.execute(f"SELECT s FROM `{my_dbname}`.t")
    assert rows == [("a\\",), ("b;c",), ("d'e",)]


@pytest.mark.parametrize(
    ("fast", "readable"),
    [
        (rewrite._NAME_CHAR, r"[\w$\x80-\uffff]"),
        (rewrite._NAME_OR_QUALIFIER_CHAR, r"[\w$.`\x80-\uffff]"),
    ],
)
@pytest.mark.parametrize("flags", [0, re.I])
def test_fast_identifier_classes_match_every_code_point_like_the_ranges(fast, readable, flags):
    """The same code points up to U+FFFF; none beyond (MySQL identifiers have none)."""
    everything = "".join(map(chr, range(0x10000)))
    matched = [m.start() for m in re.finditer(fast, everything, re.S | flags)]
    assert matched == [m.start() for m in re.finditer(readable, everything, re.S | flags)]
    beyond = "".join(map(chr, range(0x10000, 0x110000)))
    assert re.search(fast, beyond, flags) is None
