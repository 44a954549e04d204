"""The SQLite engine through the real queue: content, atomicity, live targets."""

from __future__ import annotations

import gzip
import lzma
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import BLOG_SCRIPT, big_dump, file_hash, fingerprint, job_report
from reel_tui.config import AppConfig, Config
from reel_tui.engines import sqlite as sqlite_engine
from reel_tui.history import HistoryStore
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import Job, JobState
from reel_tui.plan import plan_rewind


def rewind(config: Config, history: HistoryStore, source: str | None = None) -> Job:
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan_rewind(config, "blog", source))
        assert queue.wait(job, timeout=60)
        return job
    finally:
        queue.shutdown()


def reference(dump: Path, tmp_path: Path) -> Path:
    """The database the sqlite3 command-line shell makes from the same dump."""
    ref = tmp_path / f"reference-{dump.name}.db"
    ref.unlink(missing_ok=True)
    with open(dump, "rb") as script:
        subprocess.run(["sqlite3", str(ref)], stdin=script, check=True)
    return ref


def test_rewind_creates_target_equal_to_sqlite3_shell(blog, blog_app, history, tmp_path):
    job = rewind(blog, history)
    assert job.state is JobState.SUCCEEDED, job.error
    target = Path(blog_app.database)
    expected = fingerprint(reference(blog_app.source, tmp_path))
    assert fingerprint(target) == expected
    schema, rows = expected
    assert rows["posts"][0][3] == b"\x00\xff'\"\\"
    assert rows["posts"][1][2] == "multi\nline"
    assert rows["authors"][1][1] == "O'Brien; -- not a comment"
    assert any("CREATE TRIGGER posts_guard" in sql for sql in schema)


def test_rewind_replaces_existing_content(blog, blog_app, history, tmp_path):
    target = Path(blog_app.database)
    with sqlite3.connect(target) as db:
        db.execute("CREATE TABLE scratch (junk TEXT)")
        db.execute("INSERT INTO scratch VALUES ('left over from a demo')")
    db.close()
    job = rewind(blog, history, "other.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    schema, rows = fingerprint(target)
    assert rows == {"other": [(42,)]}
    assert len(schema) == 1


@pytest.mark.parametrize(
    "compress", [gzip.compress, lzma.compress, __import__("bz2").compress], ids=["gz", "xz", "bz2"]
)
def test_compressed_dumps_load_like_plain(blog, blog_app, history, tmp_path, compress):
    plain = blog_app.source
    packed = blog_app.sources_dir / "packed.sql.z"
    packed.write_bytes(compress(plain.read_bytes()))
    job = rewind(blog, history, "packed.sql.z")
    assert job.state is JobState.SUCCEEDED, job.error
    assert fingerprint(Path(blog_app.database)) == fingerprint(reference(plain, tmp_path))
    assert job.bytes_read == packed.stat().st_size


def test_sqlite_database_file_as_source(blog, blog_app, history, tmp_path):
    snapshot = blog_app.sources_dir / "snapshot.sqlite3"
    with sqlite3.connect(snapshot) as db:
        db.executescript(BLOG_SCRIPT)
    db.close()
    job = rewind(blog, history, "snapshot.sqlite3")
    assert job.state is JobState.SUCCEEDED, job.error
    assert fingerprint(Path(blog_app.database)) == fingerprint(snapshot)


def test_error_in_last_statement_leaves_target_byte_for_byte(blog, blog_app, history):
    assert rewind(blog, history).state is JobState.SUCCEEDED
    target = Path(blog_app.database)
    before = file_hash(target)
    broken = blog_app.sources_dir / "broken.sql"
    text = blog_app.source.read_text()
    lines = text.splitlines()
    commit = lines.index("COMMIT;")
    lines.insert(commit, "INSERT INTO no_such_table VALUES (1);")
    broken.write_text("\n".join(lines) + "\n")
    job = rewind(blog, history, "broken.sql")
    assert job.state is JobState.FAILED
    assert f"broken.sql:{commit + 1}:" in job.error
    assert "no such table: no_such_table" in job.error
    assert file_hash(target) == before
    assert not list(target.parent.glob(".blog.sqlite3.reel-*.tmp*"))


def test_dump_cut_inside_a_statement_is_an_error_not_a_shorter_load(blog, blog_app, history):
    text = blog_app.source.read_text()
    cut = blog_app.sources_dir / "cut.sql"
    cut.write_text(text[: text.index("'multi") + 8])
    job = rewind(blog, history, "cut.sql")
    assert job.state is JobState.FAILED
    assert "ends inside a statement" in job.error
    assert not Path(blog_app.database).exists()


def test_dump_written_after_errors_is_refused(blog, blog_app, history):
    bad = blog_app.sources_dir / "rolled-back.sql"
    bad.write_text(
        "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE t (x);\n"
        "ROLLBACK; -- due to errors\n"
    )
    job = rewind(blog, history, "rolled-back.sql")
    assert job.state is JobState.FAILED
    assert "ROLLBACK" in job.error


def test_empty_dump_is_refused(blog, blog_app, history):
    (blog_app.sources_dir / "empty.sql").write_text("")
    job = rewind(blog, history, "empty.sql")
    assert job.state is JobState.FAILED
    assert "no SQL statements" in job.error


def test_wal_target_with_an_open_reader_sees_the_new_state(blog, blog_app, history):
    target = Path(blog_app.database)
    with sqlite3.connect(target) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE old (x)")
        db.execute("INSERT INTO old VALUES (1)")
    db.close()
    app_db = sqlite3.connect(target)  # the application keeps its handle open
    assert app_db.execute("SELECT count(*) FROM old").fetchone() == (1,)
    job = rewind(blog, history)
    assert job.state is JobState.SUCCEEDED, job.error
    tables = {r[0] for r in app_db.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
    assert "old" not in tables and {"authors", "posts"} <= tables
    assert app_db.execute("SELECT count(*) FROM posts").fetchone() == (3,)
    assert app_db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert app_db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    app_db.close()
    with sqlite3.connect(target) as fresh:
        assert fresh.execute("SELECT count(*) FROM authors").fetchone() == (2,)
    fresh.close()


def test_wal_target_with_other_page_size(blog, blog_app, history):
    target = Path(blog_app.database)
    with sqlite3.connect(target) as db:
        db.execute("PRAGMA page_size=1024")
        db.execute("VACUUM")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE old (x)")
    db.close()
    job = rewind(blog, history)
    assert job.state is JobState.SUCCEEDED, job.error
    with sqlite3.connect(target) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM posts").fetchone() == (3,)
    db.close()


def test_swap_waits_for_an_open_write_transaction(blog, blog_app, history):
    target = Path(blog_app.database)
    assert rewind(blog, history, "other.sql").state is JobState.SUCCEEDED
    holder = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO other VALUES (7)")
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan_rewind(blog, "blog", None))
        # the lock is released once the swap says it waits for it (a fixed 1 s timer could
        # fire before a loaded machine got the job that far: then it never waited)
        deadline = time.monotonic() + 30
        while not any("waiting: another connection holds a lock" in line.message
                      for line in job.log):  # fmt: skip
            assert time.monotonic() < deadline and not job.state.is_final, job.error
            time.sleep(0.01)
        time.sleep(0.2)  # a swap that did not wait would finish meanwhile
        assert not job.state.is_final, "the swap went on while the transaction was open"
        holder.execute("ROLLBACK")
        assert queue.wait(job, timeout=60)
    finally:
        holder.close()
        queue.shutdown()
    assert job.state is JobState.SUCCEEDED, job.error
    assert fingerprint(target)[1]["authors"] == [(1, "Ada"), (2, "O'Brien; -- not a comment")]


def test_swap_gives_up_on_a_lock_held_too_long_and_changes_nothing(
    blog, blog_app, history, monkeypatch
):
    monkeypatch.setattr(sqlite_engine, "SWAP_TIMEOUT", 0.5)
    target = Path(blog_app.database)
    assert rewind(blog, history, "other.sql").state is JobState.SUCCEEDED
    holder = sqlite3.connect(target, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # readers may pass, the swap may not
    try:
        job = rewind(blog, history)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert job.state is JobState.FAILED
    assert job.error_code == "busy", job.error
    assert "stayed locked by another connection" in job.error
    assert fingerprint(target)[1] == {"other": [(42,)]}


def test_exclusively_locked_target_is_waited_for(blog, blog_app, history):
    target = Path(blog_app.database)
    assert rewind(blog, history, "other.sql").state is JobState.SUCCEEDED
    holder = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")  # not even readers may pass
    release = threading.Timer(2.5, lambda: holder.execute("ROLLBACK"))
    release.start()
    job = rewind(blog, history)
    release.join()
    holder.close()
    assert job.state is JobState.SUCCEEDED, job.error
    assert fingerprint(target)[1]["authors"][0] == (1, "Ada")


def test_exclusively_locked_target_is_reported_busy(blog, blog_app, history, monkeypatch):
    monkeypatch.setattr(sqlite_engine, "SWAP_TIMEOUT", 1.5)
    target = Path(blog_app.database)
    assert rewind(blog, history, "other.sql").state is JobState.SUCCEEDED
    holder = sqlite3.connect(target, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        job = rewind(blog, history)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert job.state is JobState.FAILED
    assert job.error_code == "busy"
    assert "locked by another connection" in job.error
    assert fingerprint(target)[1] == {"other": [(42,)]}


def test_cancel_mid_load_leaves_target_unchanged_and_no_temp_file(blog, blog_app, history):
    assert rewind(blog, history, "other.sql").state is JobState.SUCCEEDED
    target = Path(blog_app.database)
    before = file_hash(target)
    big_dump(blog_app.sources_dir / "big.sql", 400_000)
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan_rewind(blog, "blog", "big.sql"))
        deadline = time.monotonic() + 20
        while job.bytes_read < 2_000_000 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert job.state is JobState.RUNNING and job.phase == "loading"
        asked = time.monotonic()
        assert queue.cancel(job.id)
        assert queue.wait(job, timeout=30), job_report(job)
        # about 0.1 s when idle; the bound leaves room for a loaded machine (that the load
        # stopped early is checked below: the bytes read)
        assert time.monotonic() - asked < 3.0
    finally:
        queue.shutdown()
    assert job.state is JobState.CANCELLED
    assert 0 < job.bytes_read < job.bytes_total
    assert file_hash(target) == before
    assert not list(target.parent.glob(".blog.sqlite3.reel-*.tmp*"))


def test_leftover_temp_files_are_removed_by_the_next_run(blog, blog_app, history):
    target = Path(blog_app.database)
    stale = target.with_name(".blog.sqlite3.reel-99999-deadbeef.tmp")
    stale.write_bytes(b"half a database")
    Path(f"{stale}-journal").write_bytes(b"x")
    job = rewind(blog, history)
    assert job.state is JobState.SUCCEEDED
    assert not stale.exists() and not Path(f"{stale}-journal").exists()
    assert any("left by an interrupted earlier run" in line.message for line in job.log)


def test_target_that_is_not_a_database_is_reported_not_overwritten(blog, blog_app, history):
    target = Path(blog_app.database)
    target.write_bytes(b"this is somebody's spreadsheet, not SQLite" * 100)
    before = file_hash(target)
    job = rewind(blog, history)
    assert job.state is JobState.FAILED
    assert "not a usable SQLite database" in job.error
    assert file_hash(target) == before


def test_many_statements_on_one_line_and_triggers_with_semicolons(blog, blog_app, history):
    dump = blog_app.sources_dir / "dense.sql"
    dump.write_text(
        "CREATE TABLE a (x); INSERT INTO a VALUES (1); INSERT INTO a VALUES (2);\n"
        "CREATE TABLE log (msg);\n"
        "CREATE TRIGGER a_ins AFTER INSERT ON a BEGIN\n"
        "  INSERT INTO log VALUES ('a;b');\n"
        "  INSERT INTO log VALUES ('c');\n"
        "END;\n"
        "INSERT INTO a VALUES (3);\n"
        "-- a trailing comment\n"
    )
    job = rewind(blog, history, "dense.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    rows = fingerprint(Path(blog_app.database))[1]
    assert rows["a"] == [(1,), (2,), (3,)]
    assert rows["log"] == [("a;b",), ("c",)]


ROWS_JOINED_OR_NOT = """\
CREATE TABLE t (id INTEGER PRIMARY KEY, v, w);
CREATE TABLE u (x);
CREATE TABLE log (seen, id);
CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN
  INSERT INTO log VALUES ((SELECT count(*) FROM t), NEW.id);
END;
INSERT INTO t VALUES(1,'a;b',-2);
INSERT INTO t VALUES(2,replace('x\\ny','\\n',char(10)),3/4);
INSERT INTO t VALUES(3,'it''s (not) a paren',X'00ff');
INSERT INTO t VALUES(4,NULL,1e999);
INSERT INTO t VALUES(5,'five',5);INSERT INTO u VALUES(55);
INSERT INTO t VALUES(6,'six',(SELECT count(*) FROM u));
INSERT INTO t VALUES(7,"seven",7);
INSERT INTO t VALUES(8,'eight',8) RETURNING (id);
INSERT INTO t VALUES(9,'nine -- not a comment /* nor this */',9);
INSERT INTO t VALUES(10,'ten',10 -- a comment with a )
);
INSERT INTO t VALUES (11,'spaced',11);
insert into t values(12,'lower case',12);
INSERT INTO "u" VALUES(66);
INSERT INTO t VALUES(13,'multi
line',13);
INSERT INTO t VALUES(14,(((((14))))),abs(-14));
INSERT INTO t VALUES(15,'LONG',15);
INSERT INTO t VALUES(16,'child',(SELECT max(id) FROM t));
INSERT INTO t VALUES(17,'last',17);
"""


def test_rows_load_as_the_shell_loads_them_joined_or_not(blog, blog_app, history, tmp_path):
    """Runs of one-row INSERTs of literals go to SQLite as multi-row INSERTs; any other
    row (two statements on a line, RETURNING, comments, double quotes, subqueries that
    read the rows inserted before, nesting beyond three) must not be joined. The shell,
    statement by statement, is the judge, triggers counting the rows so far included."""
    dump = blog_app.sources_dir / "rows.sql"
    dump.write_text(ROWS_JOINED_OR_NOT.replace("LONG", "x" * 300_000), encoding="utf-8")
    job = rewind(blog, history, "rows.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    expected = fingerprint(reference(dump, tmp_path))
    assert fingerprint(Path(blog_app.database)) == expected
    rows = expected[1]
    assert [id for _, id in rows["log"]] == list(range(1, 18))
    assert [seen for seen, _ in rows["log"]] == list(range(1, 18))
    assert rows["t"][15] == (16, "child", 15)  # row 15 is in already, as one by one


def test_plain_rows_are_joined_and_others_kept_apart():
    """What the loader sends for a batch: rows of literals joined, the rest as read."""
    cut = len("INSERT INTO t VALUES")

    def script(*rows: str) -> str:
        return sqlite_engine._script([(n, row, cut) for n, row in enumerate(rows, start=1)])

    assert script("INSERT INTO t VALUES(7,'x'',(y)');\n", "INSERT INTO t VALUES(8,X'00',-1e5);\n",
                  "INSERT INTO t VALUES(9,NULL,.5);\n") == (
        "INSERT INTO t VALUES(7,'x'',(y)'),(8,X'00',-1e5),(9,NULL,.5);\n")  # fmt: skip
    now = "INSERT INTO t VALUES(10,CURRENT_TIMESTAMP);\n"  # joined rows would share one time
    assert script("INSERT INTO t VALUES(9,NULL);\n", now, "INSERT INTO t VALUES(11,1);\n") == (
        f"INSERT INTO t VALUES(9,NULL);\n{now}INSERT INTO t VALUES(11,1);\n")  # fmt: skip
    kept_apart = [
        "INSERT INTO t VALUES(2,f(g(2)));\n",
        "INSERT INTO t VALUES(3) RETURNING (x);\n",
        'INSERT INTO t VALUES(4,"d");\n',
        "INSERT INTO t VALUES(5,(SELECT max(id) FROM t));\n",
        "INSERT INTO t VALUES(6,$v);\n",
        "INSERT INTO t VALUES(7 -- ' a comment\n);\n",
    ]
    assert script("INSERT INTO t VALUES(1,'a;b');\n", *kept_apart,
                  "INSERT INTO t VALUES(8,replace('a\\nb','\\n',char(10)));\n",
                  "INSERT INTO t VALUES(9,NULL);\n") == (
        "INSERT INTO t VALUES(1,'a;b');\n" + "".join(kept_apart)
        + "INSERT INTO t VALUES(8,replace('a\\nb','\\n',char(10))),(9,NULL);\n")  # fmt: skip


def test_error_names_line_inside_a_big_batch(blog, blog_app, history):
    dump = big_dump(blog_app.sources_dir / "dup.sql", 20_000)
    lines = dump.read_text().splitlines()
    lines.insert(10_000, "INSERT INTO events VALUES(5,'duplicate','key');")
    dump.write_text("\n".join(lines) + "\n")
    job = rewind(blog, history, "dup.sql")
    assert job.state is JobState.FAILED
    assert "dup.sql:10001:" in job.error
    assert "UNIQUE constraint failed: events.id" in job.error


def test_check_describes_target(blog_app):
    engine = sqlite_engine.SqliteEngine(blog_app)
    assert "does not exist yet" in engine.check()
    shutil.copy(blog_app.sources_dir / "seed.sql", blog_app.sources_dir / "copy.sql")
    Path(blog_app.database).write_bytes(b"")
    assert "0 tables" in engine.check()


def test_engine_reports_app_not_config(blog_app: AppConfig):
    assert sqlite_engine.SqliteEngine(blog_app).is_local()


def test_log_names_each_table_with_its_rows(blog, blog_app, history):
    dump = blog_app.sources_dir / "tables.sql"
    dump.write_text(
        "CREATE TABLE events (x);\nCREATE TABLE events_archive (x);\n"
        + "INSERT INTO events VALUES(1);\n" * 3
        + "INSERT INTO events_archive VALUES(2);\n" * 5
        + 'INSERT INTO "events" VALUES(3);\n'
    )
    job = rewind(blog, history, "tables.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    data = [line.message for line in job.log if line.message.startswith("data:")]
    assert data == ["data: events 3 rows", "data: events_archive 5 rows", "data: events 1 row"]


def test_wal_database_file_as_source_keeps_the_targets_journal_mode(blog, blog_app, history):
    snapshot = blog_app.sources_dir / "wal-snapshot.sqlite3"
    with sqlite3.connect(snapshot) as db:
        db.execute("PRAGMA page_size = 8192")
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(BLOG_SCRIPT)
    db.close()
    target = Path(blog_app.database)
    assert rewind(blog, history, "other.sql").state is JobState.SUCCEEDED
    job = rewind(blog, history, "wal-snapshot.sqlite3")
    assert job.state is JobState.SUCCEEDED, job.error
    with sqlite3.connect(target) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert db.execute("PRAGMA page_size").fetchone() == (4096,)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    assert fingerprint(target) == fingerprint(snapshot)


REWIND_IN_ITS_OWN_STATE_DIR = """
import os, sys
os.environ["REEL_STATE_DIR"] = sys.argv[2]
from reel_tui.cli import main
raise SystemExit(main(["-c", sys.argv[1], "--rewind", "--source", sys.argv[3], "-q"]))
"""


def test_two_processes_with_different_state_dirs_take_turns(blog, blog_app, tmp_path):
    """Another user's cron, or a run with its own state_dir: the lock beside the file
    still makes them take turns, and neither deletes the other's temp file."""
    import subprocess
    import sys

    big_dump(blog_app.sources_dir / "big.sql", 150_000)
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                REWIND_IN_ITS_OWN_STATE_DIR,
                str(blog.path),
                str(tmp_path / f"state-{n}"),
                source,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, source in enumerate(("big.sql", "other.sql"))
    ]
    results = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], results
    rows = fingerprint(Path(blog_app.database))[1]
    assert rows == {"other": [(42,)]} or len(rows.get("events", [])) == 150_000
    assert not list(Path(blog_app.database).parent.glob(".blog.sqlite3.reel-*.tmp*"))


@pytest.mark.timeout(10)
def test_a_row_that_is_not_plain_is_refused_at_once():
    """The per-row pattern reads each string one way only: a row it refuses (here for its
    CRLF line end) takes microseconds, not 2^n steps for n escaped quotes."""
    row = "INSERT INTO t VALUES(1,'" + "O''Brien " * 60 + "');\r\n"
    started = time.monotonic()
    assert sqlite_engine._one_row_pattern().fullmatch(row, len("INSERT INTO t VALUES")) is None
    assert time.monotonic() - started < 1.0


def test_control_characters_from_a_dump_reach_no_terminal(blog, blog_app, history):
    """A table and a dump file named with an escape code (clear the screen) are logged
    with it shown as ``\\x1b``, by the job and by its background work: the lines go to
    terminals, the TUI and the log file as text."""
    dump = blog_app.sources_dir / "evil\x1b[2J.sql"
    name = '"evil\x1b[2J\rname"'
    dump.write_text(f"CREATE TABLE {name} (x);\nINSERT INTO {name} VALUES(1);\n")
    job = rewind(blog, history, dump.name)
    assert job.state is JobState.SUCCEEDED, job.error
    messages = [line.message for line in job.log]
    assert "schema: table evil\\x1b[2J\\x0dname" in messages
    assert any("background" in m for m in messages), messages  # its lines are in too
    assert any(m.startswith("spare ready") and "evil\\x1b[2J.sql" in m for m in messages)
    assert not any("\x1b" in m or "\r" in m for m in messages)
    assert "\x1b" not in history.read_log(job.id)


def test_a_batch_error_comes_before_a_later_read_error(blog, blog_app, history):
    """The batch holding a duplicate key is still running when the next read finds bad
    UTF-8: the duplicate, first in the dump, is the error reported."""
    width = 256  # a batch is 1024 such lines (256 KB), a read 1025: the second read fails

    def line(text: str) -> str:
        return text + " " * (width - len(text) - 1) + "\n"

    lines = [line("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);")]
    lines += [line(f"INSERT INTO t VALUES({n},'row');") for n in range(1, 2048)]
    lines[1000] = line("INSERT INTO t VALUES(5,'duplicate');")
    dump = blog_app.sources_dir / "late.sql"
    dump.write_bytes("".join(lines).encode() + b"INSERT INTO t VALUES(9999,'\xff');\n")
    assert 1024 * width == sqlite_engine.BATCH_BYTES
    job = rewind(blog, history, "late.sql")
    assert job.state is JobState.FAILED
    assert "late.sql:1001:" in job.error and "UNIQUE constraint failed" in job.error, job.error
