"""MySQL / MariaDB warm rewinds on a real server: templates, spares, background work, eviction."""

from __future__ import annotations

import os
import subprocess

import pytest
from my_tools import fingerprint, messages, rewind
from mysql_server import MysqlServer
from test_mysql_atomic import SEED, _Context, _Killed, _run_engine

from conftest import REEL, wait_until
from reel_tui.cache import CacheIndex
from reel_tui.config import load_config
from reel_tui.engines import mysql_swap
from reel_tui.history import HistoryStore
from reel_tui.jobs import JobState
from reel_tui.plan import plan_rewind

RICH = SEED.replace(
    "/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;",
    """CREATE TABLE `gen` (`id` int NOT NULL AUTO_INCREMENT PRIMARY KEY, `a` int,
  `twice` int AS (`a` * 2) VIRTUAL) ENGINE=InnoDB AUTO_INCREMENT=50;
INSERT INTO `gen` (`id`, `a`) VALUES (0, 1), (7, 2);
DELIMITER ;;
CREATE PROCEDURE `add_parent`(IN n int) BEGIN INSERT INTO parent VALUES (n, 'p'); END ;;
CREATE FUNCTION `double_it`(x int) RETURNS int DETERMINISTIC RETURN x * 2 ;;
CREATE EVENT `tidy` ON SCHEDULE EVERY 1 DAY STARTS '2026-01-01 00:00:00' DISABLE
  DO DELETE FROM audit ;;
DELIMITER ;
/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;""",
)
"""The atomic tests' dump plus a generated column, an id 0, routines and an event."""


def reel_schemas(server: MysqlServer, target: str) -> dict[str, list[str]]:
    """reel's schemas for the target, by kind (cache, spare, aside, trash, load, staging, …); the
    undo copy (test_snapshots_mysql.py) left out: the rewinds here replace a target."""
    kinds: dict[str, list[str]] = {}
    for db in server.databases():
        if db.startswith(target + "__reel_") and db != target + "__reel_undo":
            kind = "aside" if db.endswith("_aside") else db[len(target) + 7 :].split("_")[0]
            kinds.setdefault(kind, []).append(db)
    return kinds


def ok(job) -> str:  # type: ignore[no-untyped-def]
    assert job.state is JobState.SUCCEEDED, job.error
    return "\n".join(messages(job))


@pytest.fixture
def dumps(my_config):  # type: ignore[no-untyped-def]
    config = my_config()
    (config.parent / "dumps" / "seed.sql").write_text(RICH, encoding="utf-8")
    return config


def test_second_rewind_takes_the_ready_spare_and_equals_a_cold_load(
    dumps, mysql_server, my_dbname, history: HistoryStore
):
    cold = ok(rewind(dumps, history, "seed.sql"))
    assert "loading into staging" in cold
    assert "a cached copy of this dump is made in the background" in cold
    assert "cached copy of seed.sql made" in cold  # the background work reports in the job log
    assert "spare copy of seed.sql ready" in cold
    expected = fingerprint(mysql_server, my_dbname)
    assert {"event tidy", "PROCEDURE add_parent", "FUNCTION double_it", "view names",
            "trigger count_parent"} <= set(expected)  # fmt: skip
    schemas = reel_schemas(mysql_server, my_dbname)
    assert set(schemas) == {"cache", "spare", "aside"}, schemas

    for sql in ("DELETE FROM child", "CREATE TABLE scratch (x int)", "DROP TRIGGER count_parent",
                "DROP VIEW names", "DROP PROCEDURE add_parent"):  # fmt: skip
        mysql_server.execute(sql, my_dbname)
    warm = ok(rewind(dumps, history, "seed.sql"))
    assert "cached copy of this dump found" in warm
    assert "took its ready spare" in warm
    assert "loading into staging" not in warm
    assert fingerprint(mysql_server, my_dbname) == expected
    mysql_server.execute("INSERT INTO parent VALUES (3, 'three')", my_dbname)
    assert mysql_server.execute("SELECT n FROM audit", my_dbname) == [(3,)], "trigger is live"
    assert set(reel_schemas(mysql_server, my_dbname)) == {"cache", "spare", "aside"}


def test_cache_schemas_hold_nothing_that_fires_or_can_be_called(
    dumps, mysql_server, my_dbname, history
):
    ok(rewind(dumps, history, "seed.sql"))
    schemas = reel_schemas(mysql_server, my_dbname)
    kept = schemas["cache"] + schemas["spare"]
    assert len(kept) == 2
    listed = ", ".join(f"'{name}'" for name in kept)
    for table, column in (("TRIGGERS", "TRIGGER_SCHEMA"), ("EVENTS", "EVENT_SCHEMA"),
                          ("ROUTINES", "ROUTINE_SCHEMA"), ("VIEWS", "TABLE_SCHEMA")):  # fmt: skip
        found = mysql_server.execute(
            f"SELECT COUNT(*) FROM information_schema.{table} WHERE {column} IN ({listed})"
        )
        assert found == [(0,)], table
    for name in kept:  # the data is there, the markers say what the schema is
        assert mysql_server.execute(f"SELECT COUNT(*) FROM `{name}`.parent") == [(2,)]
        assert mysql_server.execute(f"SELECT COUNT(*) FROM `{name}`.__reel_cache") == [(1,)]


def test_warm_rewind_without_a_spare_copies_the_template(dumps, mysql_server, my_dbname, history):
    ok(rewind(dumps, history, "seed.sql"))
    expected = fingerprint(mysql_server, my_dbname)
    for spare in reel_schemas(mysql_server, my_dbname)["spare"]:
        mysql_server.execute(f"DROP DATABASE `{spare}`")
    mysql_server.execute("UPDATE gen SET a = 9", my_dbname)
    warm = ok(rewind(dumps, history, "seed.sql"))
    assert "no spare was ready: copied" in warm
    assert fingerprint(mysql_server, my_dbname) == expected


def test_changed_dump_loads_cold_and_its_outdated_copy_is_dropped(
    dumps, mysql_server, my_dbname, history
):
    ok(rewind(dumps, history, "seed.sql"))
    before = reel_schemas(mysql_server, my_dbname)["cache"]
    dump = dumps.parent / "dumps" / "seed.sql"
    dump.write_text(RICH.replace("(1,'one')", "(1,'uno')"), encoding="utf-8")
    second = ok(rewind(dumps, history, "seed.sql"))
    assert "loading into staging" in second
    assert "dropped the cached copy of an earlier version of seed.sql" in second
    assert mysql_server.execute("SELECT name FROM parent WHERE id = 1", my_dbname) == [("uno",)]
    schemas = reel_schemas(mysql_server, my_dbname)
    assert len(schemas["cache"]) == 1 and schemas["cache"] != before
    assert len(schemas["spare"]) == 1
    [cache] = schemas["cache"]
    assert mysql_server.execute(f"SELECT name FROM `{cache}`.parent WHERE id = 1") == [("uno",)]


def test_retention_evicts_the_least_recently_used_copy(my_config, mysql_server, my_dbname,
                                                       history):  # fmt: skip
    config = my_config("cache_copies = 2\nundo = false")  # dumps only: the undo copy counts too
    for n in range(3):
        (config.parent / "dumps" / f"s{n}.sql").write_text(
            f"CREATE TABLE t (x int);\nINSERT INTO t VALUES ({n});\n"
        )
    for name in ("s0.sql", "s1.sql", "s0.sql"):
        ok(rewind(config, history, name))
    log = ok(rewind(config, history, "s2.sql"))
    assert "evicted the cached copy of s1.sql" in log
    caches = reel_schemas(mysql_server, my_dbname)["cache"]
    kept = sorted(mysql_server.execute(f"SELECT x FROM `{name}`.t")[0][0] for name in caches)
    assert kept == [0, 2]


def test_kill_during_a_warm_swap_is_rolled_back_or_completed(
    dumps, mysql_server, my_dbname, history, monkeypatch
):
    ok(rewind(dumps, history, "seed.sql"))
    before = fingerprint(mysql_server, my_dbname)
    mysql_server.execute("INSERT INTO parent VALUES (8, 'eight')", my_dbname)
    changed = fingerprint(mysql_server, my_dbname)
    real = mysql_swap.query

    def dying(conn, sql, args=None):  # type: ignore[no-untyped-def]
        if sql.startswith("RENAME TABLE") and "__reel_old" in sql:
            raise _Killed
        return real(conn, sql, args)

    monkeypatch.setattr(mysql_swap, "query", dying)
    with pytest.raises(_Killed):
        _run_engine(dumps, "seed.sql")
    monkeypatch.setattr(mysql_swap, "query", real)
    job = rewind(dumps, history, "seed.sql")
    log = ok(job)
    assert "rolled back an interrupted swap" in log
    assert "cached copy of this dump found" in log
    assert fingerprint(mysql_server, my_dbname) == before
    assert changed != before

    real_finish = mysql_swap.finish
    monkeypatch.setattr(mysql_swap, "finish", lambda *a: (_ for _ in ()).throw(_Killed()))
    with pytest.raises(_Killed):
        _run_engine(dumps, "seed.sql")
    monkeypatch.setattr(mysql_swap, "finish", real_finish)
    log = ok(rewind(dumps, history, "seed.sql"))
    assert "completed an interrupted swap" in log
    assert fingerprint(mysql_server, my_dbname) == before
    assert set(reel_schemas(mysql_server, my_dbname)) == {"cache", "spare", "aside"}


def test_headless_warm_rewind_leaves_the_background_work_to_a_detached_process(
    dumps, mysql_server, my_dbname, tmp_path
):
    env = {**os.environ, "REEL_STATE_DIR": str(tmp_path / "state")}
    args = [*REEL, "-c", str(dumps), "--rewind", "--source", "seed.sql"]
    subprocess.run([*args, "-q"], check=True, env=env)
    expected = fingerprint(mysql_server, my_dbname)
    wait_until(lambda: "spare" in reel_schemas(mysql_server, my_dbname), "the spare", 60)
    warm = subprocess.run(args, capture_output=True, text=True, env=env)
    assert warm.returncode == 0, warm.stderr
    assert "took its ready spare" in warm.stdout
    assert fingerprint(mysql_server, my_dbname) == expected
    # the detached process drops the replaced tables and makes the next spare
    wait_until(lambda: set(reel_schemas(mysql_server, my_dbname)) == {"cache", "spare", "aside"},
               "only the cached copy, its spare and aside schema", 60)  # fmt: skip
    listing = subprocess.run([*REEL, "-c", str(dumps), "--list"], capture_output=True,
                             text=True, env=env)  # fmt: skip
    assert "✓" in listing.stdout
    cleared = subprocess.run([*REEL, "-c", str(dumps), "--clear-cache"], capture_output=True,
                             text=True, env=env)  # fmt: skip
    assert cleared.returncode == 0, cleared.stderr
    assert reel_schemas(mysql_server, my_dbname) == {}


def test_cache_off_keeps_nothing(my_config, mysql_server, my_dbname, history):
    config = my_config("cache_copies = 0")
    (config.parent / "dumps" / "seed.sql").write_text(RICH, encoding="utf-8")
    ok(rewind(config, history, "seed.sql"))
    log = ok(rewind(config, history, "seed.sql"))
    assert "loading into staging" in log
    assert reel_schemas(mysql_server, my_dbname) == {}


def test_a_schema_only_named_like_a_spare_is_never_used_or_dropped(
    dumps, mysql_server, my_dbname, history
):
    ok(rewind(dumps, history, "seed.sql"))
    expected = fingerprint(mysql_server, my_dbname)
    [spare] = reel_schemas(mysql_server, my_dbname)["spare"]
    mysql_server.execute(f"DROP DATABASE `{spare}`")
    mysql_server.execute(f"CREATE DATABASE `{spare}`")  # a user's, under the spare's name
    mysql_server.execute(f"CREATE TABLE `{spare}`.parent (x int)")
    log = ok(rewind(dumps, history, "seed.sql"))
    assert "no spare was ready: copied" in log
    assert f"database {spare} exists but was not made by reel-tui" in log
    assert fingerprint(mysql_server, my_dbname) == expected
    assert mysql_server.execute(f"SHOW TABLES FROM `{spare}`") == [("parent",)]
    ok(rewind(dumps, history, "seed.sql"))  # and again: still the user's
    assert mysql_server.execute(f"SHOW TABLES FROM `{spare}`") == [("parent",)]


def test_background_makes_no_copy_of_a_dump_changed_since_its_load(
    dumps, mysql_server, my_dbname, tmp_path
):
    plan = plan_rewind(load_config(dumps), "crm", "seed.sql")
    plan.engine.cache_index = CacheIndex(tmp_path)
    plan.engine.rewind(plan.source, _Context())  # the engine alone: no background work yet
    assert plan.engine.maintenance_due
    assert set(reel_schemas(mysql_server, my_dbname)) == {"load"}, "a copy was asked for"
    (dumps.parent / "dumps" / "seed.sql").write_text(RICH + "-- edited\n", encoding="utf-8")
    lines: list[str] = []
    plan.engine.maintain(lines.append)
    assert "seed.sql changed since it was loaded: no cached copy made" in lines
    assert reel_schemas(mysql_server, my_dbname) == {}
