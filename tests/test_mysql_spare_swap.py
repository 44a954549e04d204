"""A MySQL warm rewind that swaps the ready spare in from where it is, killed (``kill -9``,
no handler runs) right after each statement that changes what the next run finds.

The spare's marker says "swap" (its journal table is the swap's journal), the journal
says "swapping", one RENAME TABLE moves the previous undo copy to the spare's aside
schema, the target's tables to the undo copy and the spare's to the target; the journal
says "renamed", then "done"; the aside schema and the spare become trash. After a kill
at any of these points the target is the old or the new state, the next run (an undo,
to check the undo copy too) finishes or rolls back the swap and says so, and the
background never drops a swap's spare before that.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from my_tools import (
    fingerprint,
    leftovers,
    messages,
    rewind,
    rewind_cancelled_at_swap,
    rewind_in_an_open_transaction,
)
from mysql_server import MysqlServer
from test_mysql_atomic import _Context
from test_mysql_cache import RICH, ok
from test_snapshots_mysql import snapshot

from reel_tui.cache import UNDO_KEY, CacheIndex
from reel_tui.config import load_config
from reel_tui.engines import mysql_swap
from reel_tui.jobs import JobState
from reel_tui.plan import plan_rewind

KILLER = r"""
import os, re, signal, sys
import pymysql.cursors

pattern = re.compile(os.environ["REEL_TEST_KILL_AFTER"])
nth = int(os.environ["REEL_TEST_KILL_NTH"])
seen = 0
real = pymysql.cursors.Cursor.execute

def execute(self, query, args=None):
    global seen
    result = real(self, query, args)
    if pattern.search(query):
        seen += 1
        if seen == nth:
            os.kill(os.getpid(), signal.SIGKILL)
    return result

pymysql.cursors.Cursor.execute = execute
from reel_tui.cli import main
sys.exit(main(sys.argv[1:]))
"""
"""reel-tui, killed by SIGKILL right after the ``nth`` statement matching a pattern has
run on the server (a real kill: no ``finally``, no ``except``, the connection just drops)."""

SPARE = r"`\w+__reel_spare_[0-9a-f]+`"
POINTS = {
    "spare claimed": (rf"^REPLACE INTO {SPARE}\.__reel_cache", 1, "old"),
    "journal says swapping": (rf"^REPLACE INTO {SPARE}\.__reel_journal", 1, "old"),
    "tables renamed": (r"^RENAME TABLE", 1, "new"),
    "journal says renamed": (rf"^REPLACE INTO {SPARE}\.__reel_journal", 2, "new"),
    "journal says done": (rf"^REPLACE INTO {SPARE}\.__reel_journal", 3, "new"),
    "aside schema is trash": (r"^REPLACE INTO `\w+__reel_spare_[0-9a-f]+_aside`\.__reel_cache",
                              1, "new"),
}  # fmt: skip


def marker_kinds(server: MysqlServer, target: str) -> dict[str, str]:
    """reel's schemas of the target and the kind their marker says."""
    found = {}
    for db in server.databases():
        if db.startswith(target + "__reel_"):
            rows = server.execute(f"SELECT entry FROM `{db}`.__reel_cache WHERE id = 1")
            found[db] = json.loads(rows[0][0])["kind"] if rows else "?"
    return found


@pytest.mark.parametrize("point", list(POINTS))
def test_kill_9_in_a_swap_of_the_spare_where_it_is(
    point, my_config, mysql_server, my_dbname, history, state_dir
):
    pattern, nth, outcome = POINTS[point]
    config = my_config()
    (config.parent / "dumps" / "seed.sql").write_text(RICH, encoding="utf-8")
    ok(rewind(config, history, "seed.sql"))  # cold: the template, its spare and aside
    log = ok(rewind(config, history, "seed.sql"))  # warm: the undo copy is the seed
    assert "swapped in where it is" in log
    new = fingerprint(mysql_server, my_dbname)
    mysql_server.execute("INSERT INTO parent VALUES (8, 'eight')", my_dbname)
    old = fingerprint(mysql_server, my_dbname)
    assert "aside" in marker_kinds(mysql_server, my_dbname).values()

    _killed_after(config, state_dir, pattern, nth)
    kinds = marker_kinds(mysql_server, my_dbname)
    if point != "aside schema is trash":
        assert "swap" in kinds.values(), kinds
    if point in ("spare claimed", "journal says swapping"):
        assert fingerprint(mysql_server, my_dbname) == old
    elif point in ("journal says done", "aside schema is trash"):
        assert fingerprint(mysql_server, my_dbname) == new

    # the background work (here in-process) leaves a swap's spare to the next rewind
    plan = plan_rewind(load_config(config), "crm", "seed.sql")
    plan.engine.cache_index = CacheIndex(state_dir)
    background: list[str] = []
    plan.engine.maintain(background.append)
    swaps = {name: kind for name, kind in kinds.items() if kind == "swap"}
    assert marker_kinds(mysql_server, my_dbname).items() >= swaps.items(), background

    # the next run recovers first, then swaps the undo copy back: the state before the
    # killed run if its swap was completed, else the one before that
    undone = rewind(config, history, "@undo")
    said = " ".join(messages(undone))
    assert undone.state.value == "succeeded", said
    assert "left by an interrupted run" in said, said
    if outcome == "old":
        assert "rolled back an interrupted swap" in said or point == "spare claimed", said
    elif point in ("tables renamed", "journal says renamed"):
        assert "completed an interrupted swap" in said, said
    assert fingerprint(mysql_server, my_dbname) == (new if outcome == "old" else old)
    assert "swap" not in marker_kinds(mysql_server, my_dbname).values()
    assert leftovers(mysql_server, my_dbname, wait=30) == set()
    ok(rewind(config, history, "seed.sql"))
    assert fingerprint(mysql_server, my_dbname) == new


def _killed_after(config, state_dir, pattern: str, nth: int = 1) -> None:  # type: ignore[no-untyped-def]
    """A headless warm rewind of seed.sql, killed by SIGKILL after that statement."""
    env = {**os.environ, "REEL_STATE_DIR": str(state_dir), "REEL_TEST_KILL_AFTER": pattern,
           "REEL_TEST_KILL_NTH": str(nth)}  # fmt: skip
    killed = subprocess.run([sys.executable, "-c", KILLER, "-c", str(config), "--rewind",
                             "--source", "seed.sql", "-q"], env=env, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)


def test_a_snapshot_first_completes_a_killed_swap_of_the_spare(
    my_config, mysql_server, my_dbname, history, state_dir
):
    config, _ = _warm_ready(my_config, mysql_server, my_dbname, history)
    new = reference_of(mysql_server, my_dbname, config, history)
    _killed_after(config, state_dir, r"^RENAME TABLE")
    job = snapshot(config, history, "after")
    assert job.state is JobState.SUCCEEDED, job.error
    assert "completed an interrupted swap" in " ".join(messages(job))
    assert fingerprint(mysql_server, my_dbname) == new
    assert "swap" not in marker_kinds(mysql_server, my_dbname).values()


def reference_of(server: MysqlServer, target: str, config, history) -> object:  # type: ignore[no-untyped-def]
    """The target's fingerprint after a rewind of seed.sql (then put back as it was by
    an undo)."""
    ok(rewind(config, history, "seed.sql"))
    found = fingerprint(server, target)
    ok(rewind(config, history, "@undo"))
    return found


def _warm_ready(my_config, mysql_server: MysqlServer, my_dbname: str, history):  # type: ignore[no-untyped-def]
    """A config whose next rewind of seed.sql swaps a ready spare in; the target's
    fingerprint before it, with a row the dump lacks."""
    config = my_config()
    (config.parent / "dumps" / "seed.sql").write_text(RICH, encoding="utf-8")
    ok(rewind(config, history, "seed.sql"))
    ok(rewind(config, history, "seed.sql"))
    mysql_server.execute("INSERT INTO parent VALUES (8, 'eight')", my_dbname)
    return config, fingerprint(mysql_server, my_dbname)


def test_cancel_as_the_spare_swap_begins_leaves_the_spare_ready(
    my_config, mysql_server, my_dbname, history
):
    config, before = _warm_ready(my_config, mysql_server, my_dbname, history)
    job = rewind_cancelled_at_swap(config, history, "seed.sql")
    assert job.state is JobState.CANCELLED, job.error
    assert "swapped in where it is" in " ".join(messages(job))
    assert fingerprint(mysql_server, my_dbname) == before
    kinds = marker_kinds(mysql_server, my_dbname)
    assert sorted(kinds.values()) == ["aside", "cache", "spare", "undo"], kinds
    log = ok(rewind(config, history, "seed.sql"))
    assert "swapped in where it is" in log  # the same spare, still ready


def test_open_transaction_makes_the_spare_swap_give_up_cleanly(
    my_config, mysql_server, my_dbname, history, monkeypatch
):
    config, before = _warm_ready(my_config, mysql_server, my_dbname, history)
    monkeypatch.setattr(mysql_swap, "LOCK_WAIT", 1)
    job = rewind_in_an_open_transaction(mysql_server, my_dbname, config, history, "seed.sql")
    assert job.state is JobState.FAILED
    assert job.error_code == "busy"
    assert "nothing was changed" in str(job.error)
    assert fingerprint(mysql_server, my_dbname) == before
    assert "swap" not in marker_kinds(mysql_server, my_dbname).values()
    assert leftovers(mysql_server, my_dbname) == set()
    ok(rewind(config, history, "@undo"))  # the undo copy is untouched: the seed's state
    ok(rewind(config, history, "@undo"))
    assert fingerprint(mysql_server, my_dbname) == before


def test_the_index_knows_the_new_undo_copy_before_the_background_runs(
    my_config, mysql_server, my_dbname, history, state_dir
):
    config, _ = _warm_ready(my_config, mysql_server, my_dbname, history)
    plan = plan_rewind(load_config(config), "crm", "seed.sql")
    plan.engine.cache_index = CacheIndex(state_dir)
    started = time.time()
    plan.engine.rewind(plan.source, _Context())  # no background work runs after it
    copies = CacheIndex(state_dir).copies(plan.app.target_key)
    [undo] = [c for c in copies if c.key == UNDO_KEY]
    assert undo.created >= started and undo.source == "before seed.sql"
    assert undo.bytes > 0 and undo.name == f"{my_dbname}__reel_undo"
    [cached] = [c for c in copies if c.key != UNDO_KEY]
    assert cached.used >= started and cached.source == "seed.sql"


def _aside_dropped(my_config, mysql_server: MysqlServer, my_dbname: str, history):  # type: ignore[no-untyped-def]
    """A config after one rewind of seed.sql, the target's fingerprint, and the name of
    the ready spare's aside schema, which is then dropped."""
    config = my_config()
    (config.parent / "dumps" / "seed.sql").write_text(RICH, encoding="utf-8")
    ok(rewind(config, history, "seed.sql"))
    expected = fingerprint(mysql_server, my_dbname)
    [aside] = [db for db, kind in marker_kinds(mysql_server, my_dbname).items() if kind == "aside"]
    mysql_server.execute(f"DROP DATABASE `{aside}`")
    return config, expected, aside


def test_a_schema_only_named_like_an_aside_schema_is_never_used_or_dropped(
    my_config, mysql_server, my_dbname, history
):
    config, expected, aside = _aside_dropped(my_config, mysql_server, my_dbname, history)
    mysql_server.execute(f"CREATE DATABASE `{aside}`")  # a user's, under the aside's name
    mysql_server.execute(f"CREATE TABLE `{aside}`.parent (x int)")
    for _ in range(2):
        log = ok(rewind(config, history, "seed.sql"))
        assert "took its ready spare (" in log and "swapped in where it is" not in log
        assert f"database {aside} exists but was not made by reel-tui" in log
        assert fingerprint(mysql_server, my_dbname) == expected
        assert mysql_server.execute(f"SHOW TABLES FROM `{aside}`") == [("parent",)]


def test_a_spare_without_its_aside_schema_goes_through_staging(
    my_config, mysql_server, my_dbname, history
):
    """A spare with no aside schema beside it (as the version before made them, or one
    whose aside schema was dropped) is still taken, through the staging schema; the
    background then makes the next spare with its aside schema, and the short way is back."""
    config, expected, _ = _aside_dropped(my_config, mysql_server, my_dbname, history)
    mysql_server.execute("INSERT INTO parent VALUES (8, 'eight')", my_dbname)
    log = ok(rewind(config, history, "seed.sql"))
    assert "took its ready spare (" in log and "swapped in where it is" not in log
    assert fingerprint(mysql_server, my_dbname) == expected
    assert leftovers(mysql_server, my_dbname) == set()
    assert sorted(marker_kinds(mysql_server, my_dbname).values()) == ["aside", "cache", "spare",
                                                                      "undo"]  # fmt: skip
    mysql_server.execute("INSERT INTO parent VALUES (8, 'eight')", my_dbname)
    log = ok(rewind(config, history, "seed.sql"))
    assert "swapped in where it is" in log
    assert fingerprint(mysql_server, my_dbname) == expected
