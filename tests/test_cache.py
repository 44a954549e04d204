"""Cached copies of loaded dumps: keys, retention, and warm SQLite rewinds."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from conftest import REEL, fingerprint, make_dump
from reel_tui.cache import (
    CachedCopy,
    CacheIndex,
    DigestTask,
    Retention,
    cache_key,
    file_digest,
    to_evict,
)
from reel_tui.config import Config, load_config
from reel_tui.history import HistoryStore
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import Job, JobState
from reel_tui.plan import plan_rewind


def rewind(config: Config, history: HistoryStore, source: str | None = None) -> Job:
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan_rewind(config, "blog", source))
        assert queue.wait(job, timeout=60)
        assert job.state is JobState.SUCCEEDED, job.error
        return job
    finally:
        queue.shutdown()


def messages(job: Job) -> str:
    return "\n".join(line.message for line in job.log)


def copy(key: str, used: float, size: int = 10) -> CachedCopy:
    return CachedCopy(key, f"{key}.sql", f"db_{key}", size, 0.0, used)


# --- keys and retention --------------------------------------------------------


def test_eviction_drops_least_recently_used_over_the_count():
    copies = [copy("a", 1), copy("b", 3), copy("c", 2)]
    assert [c.key for c in to_evict(copies, Retention(2, None), keep=None)] == ["a"]


def test_eviction_never_drops_the_copy_in_use_even_if_oldest():
    copies = [copy("a", 1), copy("b", 3), copy("c", 2)]
    evicted = to_evict(copies, Retention(1, None), keep="a")
    assert sorted(c.key for c in evicted) == ["b", "c"]


def test_eviction_keeps_within_the_disk_limit():
    copies = [copy("a", 3, size=60), copy("b", 2, size=30), copy("c", 1, size=20)]
    # newest first: a (60) fits, b would make 90 > 80, c makes 80: fits
    assert [c.key for c in to_evict(copies, Retention(5, 80), keep=None)] == ["b"]


def test_key_changes_with_the_options_that_shape_the_load(blog):
    app = blog.apps["blog"]
    assert cache_key(app, "d") == cache_key(app, "d")
    assert cache_key(app, "d") != cache_key(app, "e")
    assert cache_key(app, "d") != cache_key(dataclasses.replace(app, skip_owner=True), "d")


def test_digest_is_remembered_until_the_file_changes(tmp_path):
    dump = tmp_path / "a.sql"
    dump.write_text("CREATE TABLE t (x);\n")
    index = CacheIndex(tmp_path)
    assert index.known_digest(dump) is None
    digest, _ = index.digest(dump)
    assert digest == file_digest(dump)
    assert CacheIndex(tmp_path).known_digest(dump) == digest  # kept on disk
    dump.write_text("CREATE TABLE t (y);\n")
    assert index.known_digest(dump) is None


def test_digest_task_gives_nothing_when_the_file_changed_under_it(tmp_path):
    dump = tmp_path / "a.sql"
    dump.write_text("x" * 1000)
    task = DigestTask(CacheIndex(None), dump, background=False)
    dump.write_text("y" * 2000)
    assert task.result() is None


def test_cache_settings_are_validated_with_their_line(write_config):
    path = write_config(
        """
        [blog]
        database = "blog.sqlite3"
        dbsource = "seed.sql"
        cache_copies = -1
        cache_max_size = "lots"
        """
    )
    problems = [str(p) for p in load_config(path).errors]
    assert any(":5: app 'blog': cache_copies: expected a whole number" in p for p in problems)
    assert any(":6: app 'blog': cache_max_size: expected a size" in p for p in problems)


# --- SQLite: warm rewinds --------------------------------------------------------


def test_second_rewind_of_the_same_dump_swaps_the_cached_copy_in(blog, history):
    target = Path(blog.apps["blog"].database)
    cold = rewind(blog, history)
    expected = fingerprint(target)
    assert "kept a cached copy" in messages(cold)
    with sqlite3.connect(target) as db:
        db.execute("DELETE FROM posts")
    db.close()
    warm = rewind(blog, history)
    assert "cached copy of this dump found" in messages(warm)
    assert "loaded" not in messages(warm)
    assert fingerprint(target) == expected


def test_cached_copy_is_not_changed_by_writes_to_the_new_target(blog, history, tmp_path):
    """A new target is linked to the loaded file: the cached copy must be another file."""
    target = Path(blog.apps["blog"].database)
    rewind(blog, history)
    expected = fingerprint(target)
    for _ in range(2):  # cold into a new file, then warm into a new file
        with sqlite3.connect(target) as db:
            db.execute("DELETE FROM posts")
        db.close()
        target.unlink()
        rewind(blog, history)
        assert fingerprint(target) == expected
    folder = tmp_path / ".blog.sqlite3.reel-cache"
    cached = [p for p in folder.glob("*.sqlite3") if not p.name.endswith(".spare.sqlite3")]
    assert len(cached) == 1
    assert target.stat().st_ino not in {p.stat().st_ino for p in folder.glob("*.sqlite3")}


def test_changed_dump_is_loaded_again_and_replaces_its_outdated_copy(blog, history):
    app = blog.apps["blog"]
    rewind(blog, history)
    with open(app.source, "a") as dump:
        dump.write("INSERT INTO authors VALUES (3, 'Grace');\n")
    job = rewind(blog, history)
    assert "cached copy of this dump found" not in messages(job)
    assert "loaded" in messages(job)
    assert "dropped the cached copy of an earlier version of seed.sql" in messages(job)
    rows = fingerprint(Path(app.database))[1]["authors"]
    assert (3, "Grace") in rows
    copies = Path(app.database).parent.glob(".blog.sqlite3.reel-cache/*.sqlite3")
    assert len([c for c in copies if c.name != "undo.sqlite3" and ".spare." not in c.name]) == 1


def test_touched_but_unchanged_dump_still_rewinds_warm(blog, history):
    app = blog.apps["blog"]
    rewind(blog, history)
    os.utime(app.source, (1, 1))
    job = rewind(blog, history)
    assert "cached copy of this dump found" in messages(job)


def test_retention_evicts_least_recently_used_and_says_so(tmp_path, write_config):
    dumps = tmp_path / "dumps"
    for n in range(3):
        make_dump(dumps, f"s{n}.sql", f"CREATE TABLE t (x); INSERT INTO t VALUES ({n});")
    config = load_config(
        write_config(
            """
            [blog]
            database = "blog.sqlite3"
            dbsources = "dumps"
            cache_copies = 2
            undo = false
            """
        )
    )
    history = HistoryStore(tmp_path / "state")
    for name in ("s0.sql", "s1.sql", "s0.sql", "s2.sql"):
        job = rewind(config, history, name)
    assert "evicted the cached copy of s1.sql" in messages(job)
    kept = sorted(c.source for c in JobQueue(history, 0).cache_index.copies(
        config.apps["blog"].target_key))  # fmt: skip
    assert kept == ["s0.sql", "s2.sql"]


def test_cache_copies_zero_keeps_nothing(tmp_path, write_config, blog):
    path = blog.path
    path.write_text(path.read_text() + "cache_copies = 0\n")
    config = load_config(path)
    history = HistoryStore(tmp_path / "state")
    rewind(config, history)
    job = rewind(config, history)
    assert "loaded" in messages(job)
    assert not (tmp_path / ".blog.sqlite3.reel-cache").exists()


def test_unfinished_copy_of_a_killed_run_is_removed(blog, history, tmp_path):
    rewind(blog, history)
    folder = tmp_path / ".blog.sqlite3.reel-cache"
    orphan = folder / "0123456789ab.sqlite3"
    orphan.write_bytes(b"half written")
    job = rewind(blog, history, "other.sql")
    assert not orphan.exists()
    assert "removed 0123456789ab.sqlite3, an unfinished cached copy" in messages(job)


def test_headless_warm_rewind_and_clear_cache(blog, tmp_path):
    env = {**os.environ, "REEL_STATE_DIR": str(tmp_path / "state")}
    args = [*REEL, "-c", str(blog.path)]
    subprocess.run([*args, "--rewind", "-q"], check=True, env=env)
    listing = subprocess.run([*args, "--list"], capture_output=True, text=True, env=env)
    assert "cached" in listing.stdout
    warm = subprocess.run([*args, "--rewind"], capture_output=True, text=True, env=env)
    assert "cached copy of this dump found" in warm.stdout
    cleared = subprocess.run([*args, "--clear-cache"], capture_output=True, text=True, env=env)
    assert cleared.returncode == 0, cleared.stderr
    assert "dropped the cached copy of seed.sql" in cleared.stdout
    assert not list((tmp_path / ".blog.sqlite3.reel-cache").glob("*.sqlite3"))
    again = subprocess.run([*args, "--clear-cache", "blog"], capture_output=True, text=True,
                           env=env)  # fmt: skip
    assert (again.returncode, again.stdout) == (0, "blog: nothing cached\n")


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_warm_swap_with_the_application_connected(blog, history, mode):
    target = Path(blog.apps["blog"].database)
    rewind(blog, history)
    expected = fingerprint(target)
    app_db = sqlite3.connect(target)
    app_db.execute(f"PRAGMA journal_mode = {mode}")
    app_db.execute("DELETE FROM posts")
    app_db.commit()
    job = rewind(blog, history)
    assert "cached copy of this dump found" in messages(job)
    assert app_db.execute("SELECT count(*) FROM posts").fetchone()[0] > 0
    app_db.close()
    assert fingerprint(target) == expected
