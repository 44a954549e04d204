"""Snapshots and undo on SQLite: named copies of the target, and the state a rewind replaced."""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
from pathlib import Path

import pytest

from conftest import REEL, fingerprint
from reel_tui.cache import SnapshotNameError, snapshot_name
from reel_tui.config import Config, load_config
from reel_tui.history import HistoryStore
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import Job, JobEvent, JobState
from reel_tui.plan import Refused, RewindPlan, plan_rewind, plan_snapshot


def run(history: HistoryStore, plan: RewindPlan, state: JobState = JobState.SUCCEEDED) -> Job:
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan)
        assert queue.wait(job, timeout=60)
        assert job.state is state, job.error
        return job
    finally:
        queue.shutdown()


def rewind(config: Config, history: HistoryStore, source: str | None = None) -> Job:
    return run(history, plan_rewind(config, "blog", source))


def snapshot(config: Config, history: HistoryStore, name: str) -> Job:
    return run(history, plan_snapshot(config, "blog", name))


def messages(job: Job) -> str:
    return "\n".join(line.message for line in job.log)


def write(target: Path, sql: str) -> None:
    with sqlite3.connect(target) as db:
        db.execute(sql)
    db.close()


def cache_files(tmp_path: Path) -> list[str]:
    folder = tmp_path / ".blog.sqlite3.reel-cache"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def with_keys(config: Config, text: str) -> Config:
    config.path.write_text(config.path.read_text() + text)
    return load_config(config.path)


# --- names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "says"),
    [("", "needs a name"), ("  ", "needs a name"), ("a/b", "no '/'"), ("x" * 49, "at most 48"),
     ("tab\there", "control characters"), (" pad", "either end"), ("undo", "undo copy")],
)  # fmt: skip
def test_bad_snapshot_names_are_refused_with_one_line(name, says):
    with pytest.raises(SnapshotNameError, match=says) as caught:
        snapshot_name(name)
    assert "\n" not in str(caught.value)


def test_a_name_may_be_given_with_its_at_sign():
    assert snapshot_name("@before demo") == "before demo"


# --- snapshots -------------------------------------------------------------------


def test_snapshot_then_rewind_to_it_restores_every_row(blog, history):
    target = Path(blog.apps["blog"].database)
    rewind(blog, history)
    write(target, "INSERT INTO authors VALUES (7, 'hand-made')")
    taken = fingerprint(target)
    job = snapshot(blog, history, "demo")
    assert "snapshot @demo taken" in messages(job)
    rewind(blog, history, "other.sql")
    assert fingerprint(target) != taken
    back = rewind(blog, history, "@demo")
    assert "swapping in @demo" in messages(back)
    assert "loaded" not in messages(back)
    assert fingerprint(target) == taken
    write(target, "DELETE FROM posts")  # the snapshot is a copy: the target's writes stay out
    rewind(blog, history, "@demo")
    assert fingerprint(target) == taken
    kinds = [r.kind for r in history.records()]
    assert kinds == ["rewind", "rewind", "rewind", "snapshot", "rewind"]


def test_a_snapshot_is_never_evicted_and_survives_clear_cache(tmp_path, blog, history):
    config = with_keys(blog, "cache_copies = 1\n")
    target = Path(config.apps["blog"].database)
    rewind(config, history)
    taken = fingerprint(target)
    snapshot(config, history, "keep me")
    for source in ("other.sql", "seed.sql", "other.sql"):
        job = rewind(config, history, source)
        assert "evicted" in messages(job)  # the limit is met by other copies
        assert "keep me" not in messages(job)
    env = {**os.environ, "REEL_STATE_DIR": str(history.state_dir)}
    cleared = subprocess.run([*REEL, "-c", str(config.path), "--clear-cache"],
                             capture_output=True, text=True, env=env)  # fmt: skip
    assert cleared.returncode == 0, cleared.stderr
    assert "keep me" not in cleared.stdout
    rewind(config, history, "@keep me")
    assert fingerprint(target) == taken


def test_snapshot_of_an_existing_name_is_refused_before_a_job(blog, history):
    rewind(blog, history)
    snapshot(blog, history, "demo")
    with pytest.raises(Refused, match="a snapshot named @demo exists already"):
        plan_snapshot(blog, "blog", "demo")


def test_snapshot_before_the_first_rewind_is_refused(blog):
    with pytest.raises(Refused, match="nothing to snapshot"):
        plan_snapshot(blog, "blog", "demo")


def test_rewind_to_an_unknown_snapshot_names_those_there_are(blog, history):
    rewind(blog, history)
    snapshot(blog, history, "one")
    with pytest.raises(Refused, match=r"no snapshot named @two \(snapshots: @one\)"):
        plan_rewind(blog, "blog", "@two")


def test_cancelled_snapshot_leaves_nothing_behind(tmp_path, blog, history):
    target = Path(blog.apps["blog"].database)
    rewind(blog, history)
    rows = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500)"
    write(target, f"CREATE TABLE bulk AS {rows} SELECT i, randomblob(16000) AS b FROM n")
    before = cache_files(tmp_path)
    queue = JobQueue(history, workers=1)

    def cancel_when_copying(event: JobEvent) -> None:
        if event.kind == "progress" and event.job.phase == "loading":
            queue.cancel(event.job.id)

    queue.subscribe(cancel_when_copying)
    try:
        job = queue.submit(plan_snapshot(blog, "blog", "big"))
        assert queue.wait(job, timeout=60)
    finally:
        queue.shutdown()
    assert job.state is JobState.CANCELLED, job.error
    assert cache_files(tmp_path) == before
    assert all(c.kind != "snapshot" for c in queue.cache_index.copies(
        blog.apps["blog"].target_key))  # fmt: skip


def test_failed_snapshot_leaves_nothing_behind(tmp_path, blog, history):
    """A snapshot that cannot be written (a file-size limit: a full disk, for real)."""
    target = Path(blog.apps["blog"].database)
    rewind(blog, history)
    write(target, "CREATE TABLE bulk AS SELECT randomblob(1000000) AS b")
    before = cache_files(tmp_path)
    env = {**os.environ, "REEL_STATE_DIR": str(history.state_dir)}

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))

    failed = subprocess.run([*REEL, "-c", str(blog.path), "--snapshot", "big"], env=env,
                            capture_output=True, text=True, preexec_fn=limited)  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    assert "cannot" in failed.stderr and failed.stderr.count("\n") == 1
    assert cache_files(tmp_path) == before


def test_rename_and_delete(blog, history, tmp_path):
    engine_plan = plan_rewind(blog, "blog")
    rewind(blog, history)
    taken = fingerprint(Path(blog.apps["blog"].database))
    snapshot(blog, history, "a")
    snapshot(blog, history, "b")
    engine = engine_plan.engine
    said: list[str] = []
    with pytest.raises(Exception, match="a snapshot named 'b' exists already"):
        engine.rename_snapshot("a", "b", said.append)
    engine.rename_snapshot("a", "c", said.append)
    assert said == ["renamed snapshot @a to @c"]
    names = sorted(c.source for c in engine.cached_copies() if c.kind == "snapshot")
    assert names == ["@b", "@c"]
    rewind(blog, history, "other.sql")
    rewind(blog, history, "@c")
    assert fingerprint(Path(blog.apps["blog"].database)) == taken
    engine.delete_snapshot("b", said.append)
    engine.delete_snapshot("c", said.append)
    assert not [f for f in cache_files(tmp_path) if f.startswith("snap-")]
    with pytest.raises(Exception, match=r"no snapshot named @c .*it has none"):
        engine.delete_snapshot("c", said.append)


# --- undo ----------------------------------------------------------------------------


def test_undo_restores_what_the_rewind_replaced_and_undo_again_redoes(blog, history):
    target = Path(blog.apps["blog"].database)
    rewind(blog, history)
    write(target, "INSERT INTO authors VALUES (9, 'unsaved work')")
    before = fingerprint(target)
    rewind(blog, history, "other.sql")
    after = fingerprint(target)
    undo = rewind(blog, history, "@undo")
    assert undo.kind == "undo"
    assert fingerprint(target) == before
    redo = rewind(blog, history, "@undo")
    assert "kept the replaced state as the undo copy" in messages(redo)
    assert fingerprint(target) == after
    rewind(blog, history, "@undo")
    assert fingerprint(target) == before


def test_undo_after_a_warm_rewind_and_after_going_to_a_snapshot(blog, history):
    target = Path(blog.apps["blog"].database)
    rewind(blog, history)
    snapshot(blog, history, "clean")
    write(target, "DELETE FROM posts")
    edited = fingerprint(target)
    warm = rewind(blog, history)
    assert "cached copy of this dump found" in messages(warm)
    rewind(blog, history, "@undo")
    assert fingerprint(target) == edited
    rewind(blog, history, "@clean")
    rewind(blog, history, "@undo")
    assert fingerprint(target) == edited


def test_undo_copy_counts_against_retention_and_its_eviction_is_said(blog, history, tmp_path):
    config = with_keys(blog, "cache_copies = 1\n")
    rewind(config, history)
    job = rewind(config, history, "other.sql")
    assert "evicted the undo copy (before other.sql)" in messages(job)
    assert "undo.sqlite3" not in cache_files(tmp_path)
    with pytest.raises(Refused, match="nothing to undo"):
        plan_rewind(config, "blog", "@undo")


def test_undo_false_keeps_no_copy(blog, history, tmp_path):
    config = with_keys(blog, "undo = false\n")
    rewind(config, history)
    job = rewind(config, history, "other.sql")
    assert "undo copy" not in messages(job) and "for undo" not in messages(job)
    assert "undo.sqlite3" not in cache_files(tmp_path)
    with pytest.raises(Refused, match="nothing to undo"):
        plan_rewind(config, "blog", "@undo")


def test_failed_rewind_keeps_the_previous_undo_copy(blog, history, tmp_path):
    target = Path(blog.apps["blog"].database)
    rewind(blog, history)
    rewind(blog, history, "other.sql")
    undo = tmp_path / ".blog.sqlite3.reel-cache" / "undo.sqlite3"
    kept = undo.read_bytes()
    (tmp_path / "dumps" / "broken.sql").write_text("CREATE TABLE x (;\n")
    run(history, plan_rewind(blog, "blog", "broken.sql"), JobState.FAILED)
    assert undo.read_bytes() == kept
    assert not [f for f in cache_files(tmp_path) if f.endswith(".tmp")]
    rewind(blog, history, "@undo")
    assert "authors" in fingerprint(target)[1]


# --- headless -----------------------------------------------------------------------


def test_headless_snapshot_list_undo_rename_delete(blog, tmp_path):
    env = {**os.environ, "REEL_STATE_DIR": str(tmp_path / "state")}
    reel = [*REEL, "-c", str(blog.path)]

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*reel, *args], capture_output=True, text=True, env=env)

    assert call("--rewind", "-q").returncode == 0
    assert call("--snapshot", "demo", "-q").returncode == 0
    again = call("--snapshot", "demo")
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and "exists already" in again.stderr
    bad = call("--snapshot", "a/b")
    assert (bad.returncode, bad.stderr.count("\n")) == (2, 1)
    assert call("--rewind", "--source", "other.sql", "-q").returncode == 0
    listed = json.loads(call("--list", "--json").stdout)["apps"][0]["sources"]
    stored = {s["name"]: s["kind"] for s in listed if s["kind"] != "dump"}
    assert stored == {"@demo": "snapshot", "@undo": "undo"}
    assert call("--undo", "-q").returncode == 0
    assert fingerprint(Path(blog.apps["blog"].database))[1]["authors"]
    assert call("--rename-snapshot", "demo", "@shown").returncode == 0
    gone = call("--delete-snapshot", "demo")
    assert gone.returncode == 2 and "no snapshot named @demo" in gone.stderr
    deleted = call("--delete-snapshot", "shown", "--json")
    assert json.loads(deleted.stdout)["event"] == "snapshot-deleted"
    history = call("--history").stdout
    assert "snapshot" in history and "undo" in history


def test_a_format_1_history_gains_the_job_kind(state_dir):
    state_dir.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(state_dir / "history.sqlite3") as db:
        db.executescript(
            """CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, app TEXT NOT NULL,
            source TEXT NOT NULL, target TEXT NOT NULL, state TEXT NOT NULL,
            created REAL NOT NULL, started REAL, finished REAL,
            bytes_read INTEGER NOT NULL DEFAULT 0, bytes_total INTEGER NOT NULL DEFAULT 0,
            statements INTEGER NOT NULL DEFAULT 0, error TEXT, error_code TEXT,
            pid INTEGER NOT NULL, host TEXT NOT NULL);
            INSERT INTO jobs (app, source, target, state, created, pid, host)
            VALUES ('blog', 'seed.sql', 't', 'succeeded', 1.0, 1, 'h');
            PRAGMA user_version = 1;"""
        )
    db.close()
    store = HistoryStore(state_dir)
    try:
        new = store.create({"app": "blog", "source": "@x", "target": "t", "created": 2.0,
                            "bytes_total": 0, "kind": "snapshot"})  # fmt: skip
        kinds = {r.id: r.kind for r in store.records()}
        assert kinds == {1: "rewind", new: "snapshot"}
    finally:
        store.close()


def test_hooks_run_around_an_undo_but_not_around_a_snapshot(blog, history):
    config = with_keys(blog, 'before_rewind = "echo HOOK-RAN"\n')
    rewind(config, history)
    taken = run(history, plan_snapshot(config, "blog", "quiet"))
    assert "HOOK-RAN" not in messages(taken)  # a snapshot only reads the database
    rewind(config, history, "other.sql")
    undo = rewind(config, history, "@undo")
    assert "HOOK-RAN" in messages(undo)
