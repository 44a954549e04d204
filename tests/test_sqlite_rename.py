"""SQLite's fast warm swap: a ready spare renamed over the target, and every fallback.

Real files, real SQLite, real processes: the "application" is a ``python -c`` child
holding the database open; kills are real ``kill -9`` delivered by strace at the exact
syscall (``-e inject=rename:…:signal=KILL``), with no hook in reel's code.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_cache import messages, rewind

from conftest import BLOG_SCRIPT, REEL, fingerprint, job_report, make_dump
from reel_tui.config import Config, load_config
from reel_tui.history import HistoryStore
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import JobState
from reel_tui.plan import plan_rewind, plan_snapshot

ROOT = os.geteuid() == 0
FAST = "took its ready spare"
BACKUP = "copying with the backup API instead of renaming"
SPARE_READY = "spare ready"


def folder_of(config: Config) -> Path:
    target = Path(config.apps["blog"].database)
    return target.parent / f".{target.name}.reel-cache"


def spares(config: Config) -> list[Path]:
    return sorted(folder_of(config).glob("*.spare.sqlite3"))


def emptied(target: Path) -> tuple[object, ...]:
    """Change the target so a rewind shows; its fingerprint after the change."""
    with sqlite3.connect(target) as db:
        db.execute("DELETE FROM posts")
    db.close()
    return fingerprint(target)


def integrity(path: Path) -> str:
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
        result = db.execute("PRAGMA integrity_check").fetchone()[0]
    db.close()
    return str(result)


@pytest.fixture
def warm(blog: Config, history: HistoryStore) -> tuple[Path, object]:
    """The blog target after a cold rewind whose background work made the spare; the
    dump's fingerprint."""
    cold = rewind(blog, history)
    assert SPARE_READY in messages(cold)  # the thread's lines join the job's log
    assert len(spares(blog)) == 1
    target = Path(blog.apps["blog"].database)
    return target, fingerprint(target)


# --- the fast path ----------------------------------------------------------------------


def test_warm_rewind_renames_the_spare_in_and_undo_swaps_the_files_back(blog, history, warm):
    target, expected = warm
    os.chmod(target, 0o640)
    owner = (4321, 4322) if ROOT else (os.getuid(), os.getgid())
    os.chown(target, *owner)  # an application running as another user (root may give it)
    before = emptied(target)
    old_inode = target.stat().st_ino

    job = rewind(blog, history)
    log = messages(job)
    assert FAST in log and BACKUP not in log
    assert "processes checked in" in log
    assert fingerprint(target) == expected
    info = target.stat()
    assert info.st_ino != old_inode
    assert (info.st_mode & 0o7777, info.st_uid, info.st_gid) == (0o640, *owner)
    undo = folder_of(blog) / "undo.sqlite3"
    assert undo.stat().st_ino == old_inode  # the old file itself, not a copy
    assert fingerprint(undo) == before
    assert SPARE_READY in log and len(spares(blog)) == 1  # made again on the thread

    undone = rewind(blog, history, "@undo")
    assert "renamed the new content into" in messages(undone)
    assert target.stat().st_ino == old_inode
    assert fingerprint(target) == before
    redone = rewind(blog, history, "@undo")  # undo after undo redoes, by rename too
    assert "renamed the new content into" in messages(redone)
    assert target.stat().st_ino == info.st_ino
    assert fingerprint(target) == expected
    assert integrity(target) == "ok"
    # a rewind that replaces an undo copy sets it aside; the background work deletes it
    again = rewind(blog, history)
    assert FAST in messages(again)
    assert "deleted the replaced files set aside" in messages(again)
    assert not list(folder_of(blog).glob("trash-*"))


def test_snapshot_rewind_renames_a_file_copy_in_and_the_snapshot_stays(blog, history, warm):
    target, expected = warm
    queue = JobQueue(history, workers=1)
    try:
        taken = queue.submit(plan_snapshot(blog, "blog", "demo"))
        assert queue.wait(taken, timeout=30) and taken.state is JobState.SUCCEEDED
    finally:
        queue.shutdown()
    [snap] = folder_of(blog).glob("snap-*.sqlite3")
    kept = snap.read_bytes()
    before = emptied(target)
    old_inode = target.stat().st_ino
    job = rewind(blog, history, "@demo")
    assert "renamed the new content into" in messages(job)
    assert fingerprint(target) == expected
    assert snap.read_bytes() == kept and snap.stat().st_ino != target.stat().st_ino
    undo = folder_of(blog) / "undo.sqlite3"
    assert undo.stat().st_ino == old_inode and fingerprint(undo) == before
    assert not list(folder_of(blog).glob("incoming-*"))


def test_headless_spare_is_remade_by_the_detached_worker_and_used_next(blog, tmp_path):
    env = {**os.environ, "REEL_STATE_DIR": str(tmp_path / "state")}
    args = [*REEL, "-c", str(blog.path), "--rewind", "-q"]
    target = Path(blog.apps["blog"].database)
    for run in range(3):
        subprocess.run(args, check=True, env=env, timeout=60)
        log = wait_for_background(tmp_path / "state", run + 1)
        assert SPARE_READY in log
        assert len(spares(blog)) == 1
        if run:
            assert FAST in log
        assert not list(folder_of(blog).glob("trash-*"))
    assert integrity(target) == "ok"


def wait_for_background(state: Path, job_id: int, timeout: float = 30.0) -> str:
    """The job's log once its detached background work has logged its last line."""
    path = state / "logs" / f"{job_id}.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if "background work done" in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"no background work ended in {path}:\n{text}")


def test_symlinked_target_renames_onto_the_real_file(blog, history, warm, tmp_path):
    target, expected = warm
    real = tmp_path / "real" / "blog.sqlite3"
    real.parent.mkdir()
    target.rename(real)
    target.symlink_to(real)
    emptied(target)
    job = rewind(blog, history)
    assert FAST in messages(job)
    assert target.is_symlink() and target.resolve() == real
    assert fingerprint(real) == expected


def test_wal_target_gets_a_wal_file_and_undo_by_backup_leaves_no_journal(
    blog, history, warm
):  # fmt: skip
    """The spare is made WAL like the target; the undo copy is the old WAL file, and a
    backup-API undo (the app connected) reads it without a -wal or -shm beside it."""
    target, expected = warm
    with sqlite3.connect(target) as db:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("DELETE FROM posts")
    db.close()
    before = fingerprint(target)
    assert FAST in messages(rewind(blog, history))
    with sqlite3.connect(target) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    with application(target, "open") as app:
        undone = rewind(blog, history, "@undo")
        assert "held open by pid" in messages(undone)
        assert app.ask("count") == str(len(before[1]["posts"]))
    assert fingerprint(target) == before
    assert not [p for p in folder_of(blog).iterdir() if p.name.endswith(("-wal", "-shm"))]
    assert fingerprint(folder_of(blog) / "undo.sqlite3") == expected


# --- fallbacks: each taken for real -------------------------------------------------------

APPLICATION = r"""
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2] == "wal":
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("INSERT INTO authors VALUES (99, 'live writer')")
if sys.argv[2] == "transaction":
    db.execute("BEGIN")
    db.execute("SELECT count(*) FROM posts").fetchone()
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "end":
        db.execute("COMMIT")
        print("ended", flush=True)
    else:
        print(db.execute("SELECT count(*) FROM posts").fetchone()[0], flush=True)
"""


class Application:
    """A child process with the database open, answering one line per line asked."""

    def __init__(self, child: subprocess.Popen[str]) -> None:
        self.child = child
        self.pid = child.pid

    def ask(self, line: str) -> str:
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.write(line + "\n")
        self.child.stdin.flush()
        return self.child.stdout.readline().strip()


@contextmanager
def application(target: Path, mode: str) -> Iterator[Application]:
    child = subprocess.Popen([sys.executable, "-c", APPLICATION, str(target), mode],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        yield Application(child)
    finally:
        child.kill()
        child.wait()


def test_application_holding_the_file_open_gets_the_backup_copy(blog, history, warm):
    target, expected = warm
    emptied(target)
    inode = target.stat().st_ino
    with application(target, "open") as app:
        job = rewind(blog, history)
        assert f"held open by pid {app.pid} (python" in messages(job)
        assert FAST not in messages(job)
        assert app.ask("count") == str(len(expected[1]["posts"]))  # sees the new data
    assert target.stat().st_ino == inode
    assert fingerprint(target) == expected
    assert len(spares(blog)) == 1  # unused: still ready for next time


def test_application_in_a_read_transaction_is_waited_for_then_sees_the_new_data(
    blog, history, warm
):  # fmt: skip
    target, expected = warm
    emptied(target)
    with application(target, "transaction") as app:
        queue = JobQueue(history, workers=1)
        try:
            job = queue.submit(plan_rewind(blog, "blog", None))
            deadline = time.monotonic() + 20
            while "another connection holds a lock" not in messages(job):
                assert time.monotonic() < deadline, messages(job)
                time.sleep(0.05)
            assert f"held open by pid {app.pid}" in messages(job)
            assert app.ask("end") == "ended"
            assert queue.wait(job, timeout=30), job_report(job)
            assert job.state is JobState.SUCCEEDED, job.error
        finally:
            queue.shutdown()
        assert app.ask("count") == str(len(expected[1]["posts"]))
    assert fingerprint(target) == expected


def test_wal_target_with_a_live_writer_falls_back(blog, history, warm):
    target, expected = warm
    emptied(target)
    with application(target, "wal") as app:
        assert Path(f"{target}-wal").exists()
        job = rewind(blog, history)
        assert "a -wal file is present" in messages(job)
        assert FAST not in messages(job)
        assert app.ask("count") == str(len(expected[1]["posts"]))
    assert fingerprint(target) == expected
    assert integrity(target) == "ok"


def test_hard_linked_target_falls_back_and_both_names_see_the_new_data(
    blog, history, warm, tmp_path
):  # fmt: skip
    target, expected = warm
    emptied(target)
    other = tmp_path / "other-name.sqlite3"
    os.link(target, other)
    job = rewind(blog, history)
    assert "has 2 hard links" in messages(job)
    assert fingerprint(other) == fingerprint(target) == expected


NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             # to reach the Python under /root; reading is all it grants (no chown)
             "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]  # fmt: skip


@pytest.mark.skipif(not ROOT, reason="runs reel as another user: needs root (scripts/test is)")
def test_owner_that_cannot_be_given_falls_back(tmp_path):
    """reel running as a user who cannot chown, the target owned by the application's
    user: a spare owned by reel's user would lock the application out of its database."""
    home = Path(tempfile.mkdtemp(prefix="reel-owner-", dir="/tmp"))  # tmp_path is 0700
    try:
        os.chmod(home, 0o777)
        make_dump(home / "dumps", "seed.sql", BLOG_SCRIPT)
        config = home / "reel.toml"
        config.write_text('[blog]\ndbdriver = "sqlite"\ndatabase = "blog.sqlite3"\n'
                          'dbsource = "dumps/seed.sql"\n')  # fmt: skip
        config.chmod(0o600)
        for path in (home / "dumps", home / "dumps" / "seed.sql", config):
            os.chown(path, NOBODY, NOBODY)
        env = {**os.environ, "REEL_STATE_DIR": str(home / "state")}
        rewind_as_nobody = [*AS_NOBODY, *REEL, "-c", str(config), "--rewind", "-q"]
        subprocess.run(rewind_as_nobody, env=env, check=True, timeout=60)
        assert SPARE_READY in wait_for_background(home / "state", 1)
        target = home / "blog.sqlite3"
        expected = fingerprint(target)
        emptied(target)
        os.chown(target, 4321, 4321)
        target.chmod(0o666)
        subprocess.run(rewind_as_nobody, env=env, check=True, timeout=60)
        log = wait_for_background(home / "state", 2)
        assert "owner differs and cannot be set" in log and FAST not in log
        assert target.stat().st_uid == 4321
        assert fingerprint(target) == expected
    finally:
        shutil.rmtree(home)


# --- kill -9 at the swap -------------------------------------------------------------------

STRACE = shutil.which("strace")


@pytest.mark.parametrize(
    ("rename", "expected_state"),
    [(1, "old"), (2, "new")],
    ids=["between-link-and-replace", "after-replace"],
)
def test_kill_9_at_the_swap_leaves_a_whole_target_and_the_next_run_cleans(
    blog, warm, tmp_path, rename, expected_state
):  # fmt: skip
    """strace kills the rewind at its first rename (the spare over the target: after the
    undo link, before the replace) or its second (the undo link to the undo slot: after
    the replace)."""
    assert STRACE, "the kill tests need strace (scripts/test installs it)"
    target, new = warm
    old = emptied(target)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # the state dir the fixture used
    trace = tmp_path / "strace.txt"
    killed = subprocess.run(
        [STRACE, "-f", "-o", str(trace), "-e", "trace=rename,link",
         "-e", f"inject=rename:error=EIO:signal=KILL:when={rename}",
         *REEL, "-c", str(blog.path), "--rewind", "-q"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert killed.returncode in (-9, 128 + 9), (killed.stdout, killed.stderr)  # strace dies alike
    calls = [line for line in trace.read_text().splitlines() if "rename(" in line]
    assert len(calls) == rename, calls
    assert "spare.sqlite3" in calls[0] and str(target) in calls[0]
    assert "undo.sqlite3.tmp" in calls[-1] if rename == 2 else True
    assert calls[-1].rstrip().endswith("= ?")  # the call strace killed
    partial = folder_of(blog) / "undo.sqlite3.tmp"
    assert partial.exists()
    assert integrity(target) == "ok"
    assert fingerprint(target) == (old if expected_state == "old" else new)
    assert target.stat().st_nlink == (2 if expected_state == "old" else 1)

    after = subprocess.run([*REEL, "-c", str(blog.path), "--rewind"], env=env,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert after.returncode == 0, after.stderr
    assert "removed undo.sqlite3.tmp, left by an interrupted earlier run" in after.stdout
    assert fingerprint(target) == new
    assert target.stat().st_nlink == 1
    assert not partial.exists()


# --- the cache's accounting ------------------------------------------------------------------


def test_spares_count_in_the_size_and_go_with_eviction_and_clear_cache(
    tmp_path, write_config, blog
):  # fmt: skip
    path = blog.path
    path.write_text(path.read_text() + "cache_copies = 1\nundo = false\n")
    config = load_config(path)
    history = HistoryStore(tmp_path / "state")
    index = JobQueue(history, 0).cache_index
    rewind(config, history)  # seed.sql, with its spare
    [copy] = index.copies(config.apps["blog"].target_key)
    assert copy.bytes == Path(copy.name).stat().st_size * 2  # the copy and its spare
    job = rewind(config, history, "other.sql")
    assert "evicted the cached copy of seed.sql" in messages(job)
    [other] = index.copies(config.apps["blog"].target_key)
    assert [s.name for s in spares(config)] == [Path(other.name).stem + ".spare.sqlite3"]
    env = {**os.environ, "REEL_STATE_DIR": str(tmp_path / "state")}
    listing = subprocess.run([*REEL, "-c", str(path), "--list", "--json"], env=env,
                             capture_output=True, text=True, check=True)  # fmt: skip
    listed = {s["name"]: s["cached"] for s in json.loads(listing.stdout)["apps"][0]["sources"]}
    assert listed["other.sql"]["bytes"] == 2 * Path(other.name).stat().st_size
    cleared = subprocess.run([*REEL, "-c", str(path), "--clear-cache"], env=env,
                             capture_output=True, text=True)  # fmt: skip
    assert cleared.returncode == 0, cleared.stderr
    assert not list(folder_of(config).glob("*.sqlite3"))


def test_orphan_spare_is_removed_by_the_next_run(blog, history, warm):
    orphan = folder_of(blog) / "0123456789ab.spare.sqlite3"
    orphan.write_bytes(b"a spare whose copy is gone")
    job = rewind(blog, history)
    assert not orphan.exists()
    assert "removed 0123456789ab.spare.sqlite3" in messages(job)
    assert len(spares(blog)) == 1


# --- speed -------------------------------------------------------------------------------


def test_warm_rewind_of_a_50_mb_database_is_a_rename(tmp_path, write_config, capsys):
    """The job's own duration (its history), with a generous bound: a rename and a /proc
    scan; the backup path for the same file is printed beside it (too noisy to assert
    on a shared machine)."""
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    source = dumps / "big.sqlite3"
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)")
        db.execute("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE "
                   "x < 50000) INSERT INTO blobs SELECT x, randomblob(1000) FROM n")  # fmt: skip
    db.close()
    config = load_config(write_config(
        """
        [blog]
        database = "big.sqlite3"
        dbsource = "dumps/big.sqlite3"
        """
    ))  # fmt: skip
    history = HistoryStore(tmp_path / "state")
    rewind(config, history)
    fast = rewind(config, history)
    assert FAST in messages(fast)
    target = Path(config.apps["blog"].database)
    with application_connection(target):
        slow = rewind(config, history)
    assert BACKUP in messages(slow)
    ids = {fast.id, slow.id}
    durations = {j.id: j.duration for j in history.records() if j.id in ids}
    assert durations[fast.id] < 0.5, durations
    with capsys.disabled():
        print(f"\n  warm rewind of a {target.stat().st_size / 1e6:.0f} MB database: rename "
              f"{durations[fast.id]:.3f} s, backup API {durations[slow.id]:.3f} s")  # fmt: skip


@contextmanager
def application_connection(target: Path) -> Iterator[None]:
    """This process holding the target open, as an application embedding reel would."""
    db = sqlite3.connect(target)
    db.execute("SELECT 1 FROM sqlite_schema").fetchall()
    try:
        yield
    finally:
        db.close()
