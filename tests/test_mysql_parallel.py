"""MySQL engine: a table's rows over several connections give what ``mysql <`` gives, and a
failure or cancel during that phase leaves the target as it was and no connection behind."""

from __future__ import annotations

import time
from pathlib import Path

from my_tools import fingerprint, leftovers, messages, mysql_reference, rewind, why_not_done
from mysql_server import MysqlServer

from conftest import wait_until
from reel_tui.config import load_config
from reel_tui.history import HistoryStore
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import JobState
from reel_tui.plan import plan_rewind

HEADER = """-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
/*!40101 SET NAMES utf8mb4 */;
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40103 SET TIME_ZONE='+05:30' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;
"""
TRAILER = """/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;
/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;
-- Dump completed on 2026-11-28 10:00:00
"""


def table_data(table: str, first: int, statements: int, per_statement: int) -> str:
    """mariadb-dump style extended INSERTs: one row per line, TIMESTAMPs (time zone
    dependent), text with quotes and backslashes."""
    out, n = [], first
    for _ in range(statements):
        rows = []
        for _ in range(per_statement):
            rows.append(f"({n},'name {n} it\\'s \\\\ ok; é','2024-03-{n % 28 + 1:02d} 10:00:00',"
                        f"{n * 0.5},{n % 7})")  # fmt: skip
            n += 1
        out.append(f"INSERT INTO `{table}` VALUES\n" + ",\n".join(rows) + ";\n")
    return "".join(out)


def dump(big_statements: int = 12, bad_statement: int | None = None) -> str:
    """Tables the workers load (`big`, `child`) and ones they must not (no primary key,
    MyISAM, a trigger already there), with the dump's session settings mattering."""
    big = table_data("big", 1, big_statements, 2500)
    if bad_statement is not None:
        parts = big.split("INSERT INTO")
        parts[bad_statement] = parts[bad_statement].replace("VALUES\n(", "VALUES\n(1,2),\n(", 1)
        big = "INSERT INTO".join(parts)
    columns = "id int NOT NULL, name varchar(80), at timestamp NULL, score double, k int"
    return (
        HEADER
        + f"CREATE TABLE `big` ({columns}, PRIMARY KEY (id), KEY k (k)) ENGINE=InnoDB;\n"
        + "LOCK TABLES `big` WRITE;\n/*!40000 ALTER TABLE `big` DISABLE KEYS */;\n"
        + big
        + "/*!40000 ALTER TABLE `big` ENABLE KEYS */;\nUNLOCK TABLES;\n"
        + "CREATE TABLE `audit` (n int) ENGINE=InnoDB;\n"
        + "DELIMITER ;;\nCREATE TRIGGER big_ins AFTER INSERT ON big FOR EACH ROW "
        "INSERT INTO audit VALUES (NEW.id) ;;\nDELIMITER ;\n"
        + f"CREATE TABLE `nopk` ({columns}) ENGINE=InnoDB;\n"
        + table_data("nopk", 1, 3, 300)
        + f"CREATE TABLE `myi` ({columns}, PRIMARY KEY (id)) ENGINE=MyISAM;\n"
        + "LOCK TABLES `myi` WRITE;\n"
        + table_data("myi", 1, 3, 300)
        + "UNLOCK TABLES;\n"
        + f"CREATE TABLE `child` ({columns}, PRIMARY KEY (id),"
        " CONSTRAINT fk FOREIGN KEY (k) REFERENCES big (id)) ENGINE=InnoDB AUTO_INCREMENT=5;\n"
        + "set autocommit=0;\n"
        + "INSERT INTO `child` VALUES (0,'zero stays 0 (NO_AUTO_VALUE_ON_ZERO)',NULL,0,1);\n"
        + table_data("child", 1, 4, 1000)
        + "commit;\nset autocommit=1;\n"
        + "INSERT INTO `big` VALUES (999999,'after the trigger',NULL,1,1);\n"
        + TRAILER
    )


def connections(server: MysqlServer) -> list[tuple[object, ...]]:
    """The test user's other sessions (reel's connections, if any are left)."""
    return server.execute(
        "SELECT ID, DB, INFO FROM information_schema.PROCESSLIST "
        "WHERE USER = CURRENT_USER() AND ID <> CONNECTION_ID()"
    )


def test_parallel_load_equals_the_mysql_client(mysql_server, my_config, my_dbname, history):
    config = my_config("jobs = 3")
    path = config.parent / "dumps" / "par.sql"
    path.write_text(dump(), encoding="utf-8")
    reference = my_dbname + "_ref"
    try:
        mysql_reference(mysql_server, path, reference)
        expected = fingerprint(mysql_server, reference)
    finally:
        mysql_server.execute(f"DROP DATABASE IF EXISTS `{reference}`")
    job = rewind(config, history, "par.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    assert fingerprint(mysql_server, my_dbname) == expected
    log = messages(job)
    assert "data: big over 3 connections" in log
    assert "data: child over 3 connections" in log
    assert "data: big 30,000 rows" in log
    for sequential in ("nopk", "myi", "audit"):
        assert f"data: {sequential} over 3 connections" not in log
    assert mysql_server.execute("SELECT n FROM audit", my_dbname) == [(999999,)]
    assert mysql_server.execute("SELECT id FROM child WHERE id = 0", my_dbname) == [(0,)]
    assert leftovers(mysql_server, my_dbname) == set()
    assert connections(mysql_server) == []


def test_an_error_in_one_workers_rows_leaves_the_target_as_it_was(
    mysql_server, my_config, my_dbname, history
):
    config = my_config("jobs = 2")
    dumps = config.parent / "dumps"
    (dumps / "good.sql").write_text(dump(big_statements=2), encoding="utf-8")
    assert rewind(config, history, "good.sql").state is JobState.SUCCEEDED
    before = fingerprint(mysql_server, my_dbname)
    text = dump(bad_statement=9)
    (dumps / "bad.sql").write_text(text, encoding="utf-8")
    job = rewind(config, history, "bad.sql")
    assert job.state is JobState.FAILED
    line = text.count("\n", 0, text.index("VALUES\n(1,2),")) + 1
    assert f"bad.sql:{line}: Column count doesn't match value count" in str(job.error)
    assert "in: INSERT INTO `big` VALUES" in str(job.error)
    assert fingerprint(mysql_server, my_dbname) == before
    assert leftovers(mysql_server, my_dbname) == set()
    assert connections(mysql_server) == []


def test_cancel_while_the_workers_load_stops_them_all(
    mysql_server, my_config, my_dbname, history: HistoryStore
):
    """Both workers are held in their INSERTs by a table lock the test takes on the staging
    table: they would wait for it for a day (lock_wait_timeout), so only the cancel's
    KILL QUERY can end them. Held there, the test does not depend on the workers being
    mid-statement by luck, nor on how fast the machine writes: a version that let the
    workers write 70 MB failed twice in CI (a cancel not over in 30 s, cause unknown)."""
    config = my_config("jobs = 2")
    dumps = config.parent / "dumps"
    (dumps / "good.sql").write_text(dump(big_statements=2), encoding="utf-8")
    assert rewind(config, history, "good.sql").state is JobState.SUCCEEDED
    before = fingerprint(mysql_server, my_dbname)
    (dumps / "huge.sql").write_text(dump(big_statements=100), encoding="utf-8")
    staging = f"{my_dbname}__reel_staging"
    queue = JobQueue(history, workers=1)
    locker = mysql_server.connect()
    try:
        job = queue.submit(plan_rewind(load_config(config), "crm", "huge.sql"))
        # once a worker inserts, the loader is past the dump's DISABLE KEYS (an ALTER that
        # the lock would hold up, and the workers with it)
        wait_until(lambda: job.state.is_final or bool(_inserting(mysql_server, my_dbname)),
                   "a worker inserting", 60)  # fmt: skip
        assert not job.state.is_final, job.error
        with locker.cursor() as cur:
            cur.execute(f"LOCK TABLES `{staging}`.`big` WRITE")
        wait_until(lambda: len(_inserting(mysql_server, my_dbname)) == 2,
                   "the two workers waiting on the lock", 60)  # fmt: skip
        asked = time.monotonic()
        queue.cancel(job.id)
        wait_until(lambda: not _inserting(mysql_server, my_dbname),
                   "the workers' INSERTs killed", 8)  # fmt: skip
        stopped = time.monotonic() - asked
        with locker.cursor() as cur:
            cur.execute("UNLOCK TABLES")  # the staging schema can be dropped now
        assert queue.wait(job, timeout=60), why_not_done(job, mysql_server)
    finally:
        locker.close()
        queue.shutdown()
    print(f"cancel during the parallel load stopped the workers in {stopped:.2f} s")
    assert job.state is JobState.CANCELLED, job.error
    assert fingerprint(mysql_server, my_dbname) == before
    assert leftovers(mysql_server, my_dbname) == set()
    assert connections(mysql_server) == []


def _inserting(server: MysqlServer, target: str) -> list[tuple[object, ...]]:
    return server.execute(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'INSERT INTO `big`%' "
        f"AND DB = '{target}__reel_staging'"
    )


def test_jobs_must_be_a_whole_number(tmp_path: Path):
    config = tmp_path / "reel.toml"
    config.write_text('[crm]\ndbdriver = "mariadb"\ndatabase = "crm"\njobs = 0\n')
    problems = load_config(config).problems
    assert any(p.key == "jobs" and "expected a whole number 1-32" in p.message for p in problems)
