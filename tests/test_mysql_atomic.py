"""MySQL engine, the promise: a rewind that fails, is cancelled or killed leaves the target as
it was. Each test seeds the target with a first rewind, causes the fault for real, and
compares the target's fingerprint (SHOW CREATE + CHECKSUM TABLE) before and after."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time

import pytest
from my_tools import (
    fingerprint,
    leftovers,
    messages,
    rewind,
    rewind_cancelled_at_swap,
    rewind_in_an_open_transaction,
    why_not_done,
)
from mysql_server import MysqlServer

from conftest import REEL
from reel_tui.config import load_config
from reel_tui.engines import mysql_swap
from reel_tui.history import HistoryStore
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import JobState
from reel_tui.plan import plan_rewind

SEED = """-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
/*!40101 SET NAMES utf8mb4 */;
/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;
CREATE TABLE `parent` (`id` int NOT NULL PRIMARY KEY, `name` varchar(20)) ENGINE=InnoDB;
CREATE TABLE `child` (`id` int NOT NULL PRIMARY KEY, `parent_id` int,
  CONSTRAINT `fk_parent` FOREIGN KEY (`parent_id`) REFERENCES `parent` (`id`)) ENGINE=InnoDB;
CREATE TABLE `audit` (`n` int) ENGINE=InnoDB;
INSERT INTO `child` VALUES (1,1),(2,2);
INSERT INTO `parent` VALUES (1,'one'),(2,'two; it\\'s');
CREATE VIEW `names` AS SELECT name FROM parent;
DELIMITER ;;
CREATE TRIGGER `count_parent` AFTER INSERT ON `parent` FOR EACH ROW BEGIN
  INSERT INTO audit VALUES (NEW.id); -- one row per parent;
END ;;
DELIMITER ;
/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;
-- Dump completed on 2026-11-28 10:00:00
"""
SLOW_INSERT = "INSERT INTO `big` SELECT seq, REPEAT('x', 200) FROM seq_1_to_20000000;\n"
"""One long INSERT of a big table (MariaDB's sequence engine makes the rows)."""


@pytest.fixture
def seeded(my_config, mysql_server: MysqlServer, my_dbname: str, history: HistoryStore):
    """The target after a rewind from ``seed.sql``: (config, fingerprint)."""
    config = my_config()
    dumps = config.parent / "dumps"
    (dumps / "seed.sql").write_text(SEED, encoding="utf-8")
    job = rewind(config, history, "seed.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    return config, fingerprint(mysql_server, my_dbname)


def test_seed_loads_with_its_view_trigger_and_foreign_key(seeded, mysql_server, my_dbname):
    _, found = seeded
    assert "REFERENCES `parent`" in str(found["table child"])
    assert "INSERT INTO audit VALUES (NEW.id); -- one row per parent;" in str(
        found["trigger count_parent"]
    )
    mysql_server.execute("INSERT INTO parent VALUES (3, 'three')", my_dbname)
    assert mysql_server.execute("SELECT n FROM audit", my_dbname) == [(3,)]
    assert leftovers(mysql_server, my_dbname) == set()


def test_second_rewind_replaces_everything_the_app_changed(seeded, mysql_server, my_dbname,
                                                           history):  # fmt: skip
    config, before = seeded
    changes = ("INSERT INTO parent VALUES (9, 'nine')", "CREATE TABLE junk (x int)",
               "CREATE VIEW junk_view AS SELECT 1 AS one", "DROP TRIGGER count_parent")  # fmt: skip
    for sql in changes:
        mysql_server.execute(sql, my_dbname)
    job = rewind(config, history, "seed.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    assert fingerprint(mysql_server, my_dbname) == before
    assert leftovers(mysql_server, my_dbname) == set()
    assert any("in one RENAME TABLE" in m for m in messages(job))


def test_failing_last_statement_leaves_the_target_as_it_was(seeded, mysql_server, my_dbname,
                                                           history):  # fmt: skip
    config, before = seeded
    dump = config.parent / "dumps" / "bad.sql"
    dump.write_text(SEED.replace("-- Dump completed", "INSERT INTO `nosuch` VALUES (1);\n"
                                 "-- Dump completed"), encoding="utf-8")  # fmt: skip
    job = rewind(config, history, "bad.sql")
    assert job.state is JobState.FAILED
    line = SEED.count("\n", 0, SEED.index("-- Dump completed")) + 1
    assert job.error is not None
    assert f"bad.sql:{line}: " in job.error
    assert "doesn't exist in: INSERT INTO `nosuch` VALUES (1)" in job.error
    assert fingerprint(mysql_server, my_dbname) == before
    assert leftovers(mysql_server, my_dbname) == set()


def test_a_dump_of_two_databases_is_refused_before_the_second_is_touched(
    seeded, mysql_server, my_dbname, history
):
    config, before = seeded
    other = my_dbname + "_other"
    (config.parent / "dumps" / "two.sql").write_text(
        f"CREATE DATABASE `{my_dbname}_a`;\nUSE `{my_dbname}_a`;\nCREATE TABLE t (x int);\n"
        f"CREATE DATABASE `{other}`;\nUSE `{other}`;\nCREATE TABLE u (x int);\n"
    )
    job = rewind(config, history, "two.sql")
    assert job.state is JobState.FAILED
    assert "two.sql:4: the dump holds more than one database" in str(job.error)
    assert other not in mysql_server.databases()
    assert f"{my_dbname}_a" not in mysql_server.databases()
    assert fingerprint(mysql_server, my_dbname) == before


def test_truncated_mysqldump_is_refused(seeded, mysql_server, my_dbname, history):
    config, before = seeded
    (config.parent / "dumps" / "cut.sql").write_text(SEED.split("DELIMITER ;;")[0])
    job = rewind(config, history, "cut.sql")
    assert job.state is JobState.FAILED
    assert "no '-- Dump completed' line" in str(job.error)
    assert fingerprint(mysql_server, my_dbname) == before


def test_cancel_mid_insert_stops_within_a_second(seeded, mysql_server, my_dbname, history):
    config, before = seeded
    (config.parent / "dumps" / "slow.sql").write_text(
        "CREATE TABLE `big` (id bigint PRIMARY KEY, pad varchar(200));\n" + SLOW_INSERT
    )
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan_rewind(load_config(config), "crm", "slow.sql"))
        deadline = time.monotonic() + 30
        while not _running(mysql_server, "seq_1_to_"):
            assert time.monotonic() < deadline, "the slow INSERT never started"
            time.sleep(0.05)
        time.sleep(0.3)
        asked = time.monotonic()
        queue.cancel(job.id)
        assert queue.wait(job, timeout=30), why_not_done(job, mysql_server)
        stopped = time.monotonic() - asked
    finally:
        queue.shutdown()
    print(f"cancel mid-INSERT took {stopped:.2f} s")
    assert job.state is JobState.CANCELLED
    # under a second when idle; the bound leaves room for a loaded machine and still says
    # the INSERT was killed (its 20 million rows take far longer)
    assert stopped < 5.0
    assert not _running(mysql_server, "seq_1_to_")
    assert fingerprint(mysql_server, my_dbname) == before
    assert leftovers(mysql_server, my_dbname) == set()


def _running(server: MysqlServer, text: str) -> bool:
    rows = server.execute("SELECT INFO FROM information_schema.PROCESSLIST WHERE INFO LIKE "
                          f"'%{text}%' AND INFO NOT LIKE '%PROCESSLIST%'")  # fmt: skip
    return bool(rows)


def test_kill_9_mid_load_then_the_next_run_cleans_up(seeded, mysql_server, my_dbname):
    config, before = seeded
    (config.parent / "dumps" / "slow.sql").write_text(
        "CREATE TABLE `big` (id bigint PRIMARY KEY, pad varchar(200));\n" + SLOW_INSERT
    )
    proc = subprocess.Popen([*REEL, "-c", str(config), "--rewind", "--source", "slow.sql"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 30
    while not _running(mysql_server, "seq_1_to_"):
        assert time.monotonic() < deadline, "the slow INSERT never started"
        time.sleep(0.05)
    proc.kill()
    proc.wait(10)
    assert f"{my_dbname}__reel_staging" in mysql_server.databases()
    assert fingerprint(mysql_server, my_dbname) == before
    result = subprocess.run([*REEL, "-c", str(config), "--rewind", "--source", "seed.sql"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "left by an interrupted run" in result.stdout
    assert leftovers(mysql_server, my_dbname) == set()
    assert fingerprint(mysql_server, my_dbname) == before


def test_two_rewinds_at_once_wait_for_each_other(seeded, mysql_server, my_dbname, tmp_path):
    """Two reel processes (separate state folders, so only GET_LOCK keeps them apart)."""
    config, before = seeded
    jobs = []

    def run(folder: str) -> None:
        history = HistoryStore(tmp_path / folder)
        try:
            jobs.append(rewind(config, history, "seed.sql"))
        finally:
            history.close()

    threads = [threading.Thread(target=run, args=(f"state{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert [job.state for job in jobs] == [JobState.SUCCEEDED] * 2, [j.error for j in jobs]
    assert fingerprint(mysql_server, my_dbname) == before
    assert leftovers(mysql_server, my_dbname) == set()
    waited = [job for job in jobs if any(m.startswith("waiting: another reel-tui is rewinding")
                                         for m in messages(job))]  # fmt: skip
    assert len(waited) <= 1


def test_json_progress_names_each_table(seeded, my_config):
    config = my_config("cache_copies = 0")  # a cold load, whose progress names the tables
    result = subprocess.run([*REEL, "-c", str(config), "--rewind", "--source", "seed.sql",
                             "--json"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    logged = [e["message"] for e in events if e["event"] == "log"]
    assert "data: child 2 rows" in logged and "data: parent 2 rows" in logged


def test_a_schema_only_named_like_staging_is_never_dropped(seeded, mysql_server, my_dbname,
                                                          history):  # fmt: skip
    config, before = seeded
    staging = f"{my_dbname}__reel_staging"
    mysql_server.execute(f"CREATE DATABASE `{staging}`")
    mysql_server.execute(f"CREATE TABLE `{staging}`.precious (x int)")
    job = rewind(config, history, "seed.sql")
    assert job.state is JobState.FAILED
    assert "exists but was not made by reel-tui" in str(job.error)
    assert mysql_server.execute(f"SHOW TABLES FROM `{staging}`") == [("precious",)]
    assert fingerprint(mysql_server, my_dbname) == before


class _Killed(BaseException):
    """Stands for the process dying at that point: nothing after it runs."""


def test_kill_during_swap_before_the_rename_is_rolled_back(seeded, mysql_server, my_dbname,
                                                           history, monkeypatch):  # fmt: skip
    config, before = seeded
    real = mysql_swap.query

    def dying(conn, sql, args=None):  # type: ignore[no-untyped-def]
        if sql.startswith("RENAME TABLE"):
            raise _Killed
        return real(conn, sql, args)

    monkeypatch.setattr(mysql_swap, "query", dying)
    with pytest.raises(_Killed):
        _run_engine(config, "seed.sql")
    monkeypatch.setattr(mysql_swap, "query", real)
    assert "count_parent" not in str(fingerprint(mysql_server, my_dbname))  # dropped for the move
    job = rewind(config, history, "seed.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    assert any("rolled back an interrupted swap" in m for m in messages(job))
    assert fingerprint(mysql_server, my_dbname) == before
    assert leftovers(mysql_server, my_dbname) == set()


def test_kill_during_swap_after_the_rename_is_completed(seeded, mysql_server, my_dbname,
                                                        history, monkeypatch):  # fmt: skip
    config, before = seeded
    mysql_server.execute("INSERT INTO parent VALUES (7, 'seven')", my_dbname)
    real = mysql_swap.finish

    def dying(*args: object) -> None:
        raise _Killed

    monkeypatch.setattr(mysql_swap, "finish", dying)
    with pytest.raises(_Killed):
        _run_engine(config, "seed.sql")
    monkeypatch.setattr(mysql_swap, "finish", real)
    assert f"{my_dbname}__reel_old" in mysql_server.databases()
    job = rewind(config, history, "seed.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    assert any("completed an interrupted swap" in m for m in messages(job))
    assert fingerprint(mysql_server, my_dbname) == before
    assert leftovers(mysql_server, my_dbname) == set()


def test_open_transaction_of_the_app_makes_the_swap_give_up_cleanly(
    seeded, mysql_server, my_dbname, history, monkeypatch
):
    config, before = seeded
    monkeypatch.setattr(mysql_swap, "LOCK_WAIT", 1)
    job = rewind_in_an_open_transaction(mysql_server, my_dbname, config, history, "seed.sql")
    assert job.state is JobState.FAILED
    assert job.error_code == "busy"
    assert "nothing was changed" in str(job.error) and "open transactions: session" in str(
        job.error
    )
    assert fingerprint(mysql_server, my_dbname) == before
    assert leftovers(mysql_server, my_dbname) == set()


def test_definers_naming_missing_accounts_are_stripped(seeded, mysql_server, my_dbname, history):
    config, _ = seeded
    (config.parent / "dumps" / "ghost.sql").write_text(
        "CREATE TABLE t (x int);\nINSERT INTO t VALUES (1);\n"
        "/*!50001 CREATE ALGORITHM=UNDEFINED */\n"
        "/*!50013 DEFINER=`ghost`@`nowhere` SQL SECURITY DEFINER */\n"
        "/*!50001 VIEW `v` AS select `t`.`x` AS `x` from `t` */;\n"
    )
    job = rewind(config, history, "ghost.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    assert "DEFINER=`ghost`@`nowhere` names no account here: 1 object(s) are defined by the " \
           "user reel connects as instead" in messages(job)  # fmt: skip
    assert mysql_server.execute("SELECT x FROM v", my_dbname) == [(1,)]
    [(definer,)] = mysql_server.execute(
        f"SELECT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{my_dbname}'"
    )
    assert str(definer).startswith(mysql_server.user + "@")


def _run_engine(config, source: str) -> None:  # type: ignore[no-untyped-def]
    """The engine itself, without the queue, so an exception standing for a kill gets out."""
    plan = plan_rewind(load_config(config), "crm", source)
    plan.engine.rewind(plan.source, _Context())


class _Context:
    def log(self, message: str, level: str = "info") -> None:
        pass

    def progress(self, **kwargs: object) -> None:
        pass

    def check_cancelled(self) -> None:
        pass

    def swap(self):  # type: ignore[no-untyped-def]
        return contextlib.nullcontext()


def test_cancel_as_the_swap_begins_leaves_no_staging_or_old_schema(
    seeded, mysql_server, my_dbname, history
):
    """A cancel that lands after the load, when the phase turns to swapping, cancels:
    the staging schema is dropped and no ``__reel_old`` is made (the swap's journal said
    "swapping" before the swap could refuse the cancel: both stayed behind)."""
    config, before = seeded
    (config.parent / "dumps" / "other.sql").write_text(
        SEED.replace("'one'", "'uno'"), encoding="utf-8"
    )
    job = rewind_cancelled_at_swap(config, history, "other.sql")
    assert job.state is JobState.CANCELLED, job.error
    assert fingerprint(mysql_server, my_dbname) == before
    assert leftovers(mysql_server, my_dbname) == set()


def test_qualified_names_in_a_trigger_load_into_staging_not_the_live_target(
    my_config, mysql_server: MysqlServer, my_dbname: str, history: HistoryStore
):
    """SHOW CREATE TRIGGER keeps what the user wrote, so mysqldump writes ``CREATE TRIGGER
    db.t … ON db.u``. Loaded as written into staging, it reached into the live target:
    there it failed ("already exists"), or it came and went with the swap and the
    rewound database had no trigger. It must load into staging and end up on the target."""
    name = my_dbname
    mysql_server.execute(f"CREATE DATABASE `{name}`")
    mysql_server.execute("CREATE TABLE u (id int PRIMARY KEY, n int)", name)
    mysql_server.execute("CREATE TABLE log (id int)", name)
    mysql_server.execute(
        f"CREATE TRIGGER `{name}`.log_u AFTER INSERT ON `{name}`.u FOR EACH ROW "
        f"INSERT INTO `{name}`.log VALUES (NEW.id)",
        name,
    )
    mysql_server.execute("INSERT INTO u VALUES (1, 1)", name)
    config = my_config()
    dump = config.parent / "dumps" / "qualified.sql"
    with dump.open("wb") as out:
        subprocess.run(["mysqldump", *mysql_server.client_args(), "--triggers", name],
                       env=mysql_server.client_env(), stdout=out, check=True)  # fmt: skip
    assert f"TRIGGER `{name}`.log_u" in dump.read_text() or f"TRIGGER {name}.log_u" in (
        dump.read_text()
    ), "the dump keeps the qualified name"
    before = fingerprint(mysql_server, name)
    mysql_server.execute("INSERT INTO u VALUES (2, 2)", name)  # the app's change
    job = rewind(config, history, "qualified.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    assert fingerprint(mysql_server, name) == before
    mysql_server.execute("INSERT INTO u VALUES (3, 3)", name)
    assert mysql_server.execute("SELECT id FROM log ORDER BY id", name) == [(1,), (3,)]
    assert leftovers(mysql_server, name) == set()
