"""Job history on disk: survives kill -9 and concurrent writers, prunes, versions."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reel_tui.history import FORMAT_VERSION, HistoryError, HistoryStore
from reel_tui.jobs import Job, JobState, LogLine


def finished_job(store: HistoryStore, app: str, state: JobState, seconds: float) -> Job:
    fields = {"app": app, "source": "s.sql", "target": "t", "created": 1.0, "bytes_total": 1000}
    job = Job(id=store.create(fields), target_key="k", **fields)
    job.state, job.started, job.finished = state, 10.0, 10.0 + seconds
    job.bytes_read = 1000
    store.update(job)
    return job


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from reel_tui.history import HistoryStore
    from reel_tui.jobs import Job, JobState, LogLine
    store = HistoryStore(Path(sys.argv[1]), limit=100_000)
    print("ready", flush=True)
    for n in range(int(sys.argv[2])):
        fields = {"app": sys.argv[3], "source": "s", "target": "t", "created": time.time(),
                  "bytes_total": 1}
        job = Job(id=store.create(fields), target_key="k", **fields)
        writer = store.open_log(job.id)
        writer.write(LogLine(time.time(), "line " * 50))
        writer.close()
        job.state = JobState.SUCCEEDED
        job.started = job.finished = time.time()
        store.update(job)
    """
)


def jobs_written(state_dir: Path) -> int:
    """How many jobs another process has committed to the history so far (read-only)."""
    db = sqlite3.connect(f"file:{state_dir / 'history.sqlite3'}?mode=ro", uri=True, timeout=15)
    try:
        return db.execute("SELECT count(*) FROM jobs").fetchone()[0]
    except sqlite3.OperationalError:  # the writer has not created the table yet
        return 0
    finally:
        db.close()


def test_kill_9_mid_write_leaves_history_readable(state_dir: Path):
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(state_dir), "1000000", "cron"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout.readline().strip() == "ready"
    # killed once it has written a few jobs (a fixed 0.8 s was not always enough on a
    # loaded machine), while it goes on writing: 1,000,000 take far longer than the wait
    deadline = time.monotonic() + 60
    while jobs_written(state_dir) <= 20:
        assert time.monotonic() < deadline and writer.poll() is None, "the writer never got going"
        time.sleep(0.02)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    store = HistoryStore(state_dir)
    records = store.records(limit=1_000_000)
    assert len(records) > 10, "the writer got going before it was killed"
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    ids = [r.id for r in records]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    newest = records[0]
    assert newest.state in ("succeeded", "failed")
    if newest.state == "failed":
        assert newest.error_code == "interrupted"
    store.close()


def test_two_processes_writing_at_once(state_dir: Path):
    HistoryStore(state_dir).close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(state_dir), "150", app], stdout=subprocess.DEVNULL
        )
        for app in ("tui", "cron")
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    store = HistoryStore(state_dir, limit=100_000)
    records = store.records(limit=1000)
    assert len(records) == 300
    assert len({r.id for r in records}) == 300
    assert {r.app for r in records} == {"tui", "cron"}
    assert all(r.state == "succeeded" for r in records)
    assert all(store.read_log(r.id).count("line") == 50 for r in records)
    store.close()


def test_job_of_a_dead_process_is_reported_failed(state_dir: Path):
    store = HistoryStore(state_dir)
    fields = {"app": "a", "source": "s", "target": "t", "created": 1.0, "bytes_total": 1}
    job_id = store.create(fields)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE jobs SET state='running', pid=? WHERE id=?",
                   (int(dead.stdout), job_id))  # fmt: skip
    db.close()
    record = store.get(job_id)
    assert record.state == "failed"
    assert record.error_code == "interrupted"
    assert "ended before the job finished" in record.error
    store.close()


def test_prune_keeps_the_newest_and_deletes_their_logs(state_dir: Path):
    store = HistoryStore(state_dir, limit=3)
    jobs = []
    for n in range(5):
        job = finished_job(store, "a", JobState.SUCCEEDED, 1.0)
        writer = store.open_log(job.id)
        writer.write(LogLine(time.time(), f"log of {n}"))
        writer.close()
        store.update(job)
        jobs.append(job)
    kept = [r.id for r in store.records()]
    assert kept == [j.id for j in reversed(jobs[-3:])]
    assert not store.log_path(jobs[0].id).exists()
    assert "log of 4" in store.read_log(jobs[4].id)
    store.close()


def test_metrics_per_app(state_dir: Path):
    store = HistoryStore(state_dir)
    for seconds in (1.0, 2.0, 3.0, 4.0):
        finished_job(store, "shop", JobState.SUCCEEDED, seconds)
    finished_job(store, "shop", JobState.FAILED, 0.5)
    finished_job(store, "shop", JobState.CANCELLED, 0.2)
    finished_job(store, "blog", JobState.SUCCEEDED, 2.0)
    metrics = store.metrics()
    shop = metrics["shop"]
    assert (shop.runs, shop.succeeded, shop.failed, shop.cancelled) == (6, 4, 1, 1)
    assert shop.mean_duration == pytest.approx(2.5)
    assert shop.last_duration == pytest.approx(0.2)
    assert 3.5 < shop.p95_duration <= 4.0
    assert shop.median_duration == pytest.approx(2.5)
    assert shop.throughput == pytest.approx(4000 / 10.0)
    assert metrics["blog"].runs == 1
    store.close()


def test_newer_format_is_refused(state_dir: Path):
    HistoryStore(state_dir).close()
    with sqlite3.connect(state_dir / "history.sqlite3") as db:
        db.execute(f"PRAGMA user_version = {FORMAT_VERSION + 1}")
    db.close()
    with pytest.raises(HistoryError, match="newer reel-tui"):
        HistoryStore(state_dir)


def test_reopening_a_current_history_writes_nothing(state_dir: Path):
    """Commands that only read (--history, the TUI's start) pay no write and no sync."""
    finished_job(HistoryStore(state_dir), "blog", JobState.SUCCEEDED, 1.0)
    with sqlite3.connect(state_dir / "history.sqlite3") as watcher:
        before = watcher.execute("PRAGMA data_version").fetchone()[0]
        store = HistoryStore(state_dir)
        assert [r.app for r in store.records()] == ["blog"]
        store.close()
        # data_version changes when another connection commits anything
        assert watcher.execute("PRAGMA data_version").fetchone()[0] == before
    watcher.close()


def test_garbage_history_file_is_a_clear_error(state_dir: Path):
    state_dir.mkdir(parents=True)
    (state_dir / "history.sqlite3").write_bytes(b"not a database at all" * 100)
    with pytest.raises(HistoryError, match="cannot open job history"):
        HistoryStore(state_dir)


def test_state_files_are_private(state_dir: Path):
    store = HistoryStore(state_dir)
    job = finished_job(store, "a", JobState.SUCCEEDED, 1.0)
    writer = store.open_log(job.id)
    writer.write(LogLine(time.time(), "x"))
    writer.close()
    for folder in (state_dir, store.logs_dir, store.lock_dir):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.log_path(job.id).stat().st_mode) == 0o600
    store.close()


def test_log_file_reads_back_as_lines(state_dir: Path):
    from reel_tui.history import parse_log

    store = HistoryStore(state_dir)
    writer = store.open_log(7)
    writer.write(LogLine(1_800_000_000.0, "loaded 3 statements"))
    writer.write(LogLine(1_800_000_001.0, "boom\nTraceback line", "error"))
    writer.close()
    lines = parse_log(store.read_log(7))
    assert [(line.message, line.level) for line in lines] == [
        ("loaded 3 statements", "info"),
        ("boom", "error"),
        ("Traceback line", "debug"),
    ]
    assert lines[0].time == 1_800_000_000.0 and lines[2].time == lines[1].time
    store.close()


def test_history_file_is_never_readable_by_others(state_dir: Path, monkeypatch):
    """Under umask 0 the history file is already 0600 when SQLite first opens it (not only
    after a chmod that follows: between the two, others could open it)."""
    seen: list[int | None] = []
    real_connect = sqlite3.connect

    def connect(path, *args, **kwargs):
        exists = os.path.exists(path)  # missing: SQLite would create it with the umask's mode
        seen.append(stat.S_IMODE(os.stat(path).st_mode) if exists else None)
        return real_connect(path, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    old = os.umask(0)
    try:
        store = HistoryStore(state_dir)
    finally:
        os.umask(old)
    store.close()
    assert seen == [0o600]


def test_a_format_2_history_gains_the_origin_column(state_dir: Path):
    """Format 3 adds who asked (the HTTP API); older files keep their jobs, origin NULL."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(state_dir / "history.sqlite3") as db:
        db.executescript(
            """CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, app TEXT NOT NULL,
            source TEXT NOT NULL, target TEXT NOT NULL, state TEXT NOT NULL,
            created REAL NOT NULL, started REAL, finished REAL,
            bytes_read INTEGER NOT NULL DEFAULT 0, bytes_total INTEGER NOT NULL DEFAULT 0,
            statements INTEGER NOT NULL DEFAULT 0, error TEXT, error_code TEXT,
            pid INTEGER NOT NULL, host TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'rewind');
            INSERT INTO jobs (app, source, target, state, created, pid, host, kind)
            VALUES ('blog', 'seed.sql', 't', 'succeeded', 1.0, 1, 'h', 'undo');
            PRAGMA user_version = 2;"""
        )
    db.close()
    store = HistoryStore(state_dir)
    (old,) = store.records()
    assert (old.app, old.kind, old.origin) == ("blog", "undo", None)
    new_id = store.create({"app": "blog", "source": "s", "target": "t", "created": 2.0,
                           "bytes_total": 1, "origin": "api 127.0.0.1"})  # fmt: skip
    assert store.get(new_id).origin == "api 127.0.0.1"
    assert store.get(10**30) is None, "an id SQLite cannot hold is no job, not an error"
    store.close()
    with sqlite3.connect(state_dir / "history.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == FORMAT_VERSION == 3
    db.close()
