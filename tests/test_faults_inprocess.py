"""The fault matrix of issue 7, part A: faults inside the reel process, for each engine.

Every test rewinds the target to a known "old" state, causes one fault for real during a
rewind to a "new" dump, and then checks the same things (tests/fault_kit.py): the target
is exactly the old or exactly the new state (which one is expected is said per test), no
staging database, temp file, held lock or reel server session is left (the cached copies
reel keeps on purpose excepted), the test process's threads and file descriptors are back
where they were, and the job's final state and its one-line error.

The disk-full rows (a SQLite target, the state directory) are tests/test_disk_full.py.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from fault_kit import (
    ENGINES,
    LOAD_PHASES,
    ErrorAt,
    PhaseTracker,
    ProcessSnapshot,
    Target,
    assert_process_settled,
    dump_text,
    make_target,
    run_rewind,
)

from reel_tui import jobqueue
from reel_tui.engines import mysql_swap
from reel_tui.engines import sqlite as sqlite_engine
from reel_tui.history import HistoryStore
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import Job, JobEvent, JobState

NO_CACHE = "cache_copies = 0"
"""For tests that run the same dump twice: a second run must load, not swap a copy in."""


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def one_line(job: Job) -> str:
    assert job.error is not None and "\n" not in job.error, job.error
    return job.error


def settled(target: Target, before: ProcessSnapshot, sessions: set[str]) -> None:
    """Nothing of the faulted rewind is left: objects, locks, sessions, threads, fds."""
    target.assert_clean(sessions)
    assert_process_settled(before)


# --- a SQL error at the first, a middle and the last statement ------------------------------

ERROR_LINE = {"first": 1, "middle": 2, "last": 3}


@pytest.mark.parametrize("error_at", ["first", "middle", "last"])
def test_sql_error_leaves_the_old_state(
    request: pytest.FixtureRequest, engine: str, history: HistoryStore, error_at: ErrorAt
) -> None:
    target = make_target(request, engine)
    old = target.seed(history)
    sessions, before = target.sessions(), ProcessSnapshot.take()
    dump = target.write_dump("broken.sql", error_at=error_at)
    job = run_rewind(target, history, "broken.sql")
    assert job.state is JobState.FAILED
    error = one_line(job)
    bad = {"first": ("integr", "NOT NUL", ",)"), "middle": ("no_such_table",),
           "last": ("no_such_column",)}[error_at]  # fmt: skip
    assert str(dump) in error and job.error_code == "failed", error
    line = _line_of(dump, bad)
    assert f"{dump}:{line}" in error or f"line {line}" in error, (line, error)
    assert target.fingerprint() == old
    settled(target, before, sessions)


def _line_of(dump: Path, marks: tuple[str, ...]) -> int:
    """The line of the dump's failing statement (its first line holding a mark)."""
    with open(dump, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if any(mark in line for mark in marks):
                return number
    raise AssertionError(f"no {marks} in {dump}")


# --- cancel at a random point of each phase ----------------------------------------------


def _dry_run(target: Target, history: HistoryStore) -> tuple[PhaseTracker, object]:
    """Rewind to new.sql once, untouched: its landmarks per phase, and the new state."""
    tracker = PhaseTracker()
    job = run_rewind(target, history, "new.sql", lambda _q, event: tracker.feed(event))
    assert job.state is JobState.SUCCEEDED, job.error
    return tracker, target.fingerprint()


def _cancel_at(phase: str, nth: int, seen: list[str]) -> Callable[[JobQueue, JobEvent], None]:
    """An event hook that cancels at the ``nth`` landmark of ``phase`` (on the worker's
    thread, before the engine goes on) and notes where it landed in ``seen``."""
    tracker, count = PhaseTracker(), [0]

    def hook(queue: JobQueue, event: JobEvent) -> None:
        if seen or not tracker.feed(event) or tracker.phase != phase:
            return
        if count[0] == nth:
            seen.append(f"{tracker.phase}: {tracker.landmarks[-1][1]}")
            assert queue.cancel(event.job.id)
        count[0] += 1

    return hook


@pytest.mark.parametrize("phase", LOAD_PHASES[:3])
def test_cancel_during_the_load_leaves_the_old_state(
    request: pytest.FixtureRequest, engine: str, history: HistoryStore, phase: str
) -> None:
    target = make_target(request, engine, NO_CACHE)
    target.write_dump("new.sql", rows=3000)
    tracker, _new = _dry_run(target, history)
    old = target.seed(history)
    seed = int(os.environ.get("REEL_FAULT_SEED") or random.randrange(1 << 30))  # to replay
    nth = random.Random(seed).randrange(tracker.count(phase))  # type: ignore[arg-type]
    sessions, before = target.sessions(), ProcessSnapshot.take()
    seen: list[str] = []
    job = run_rewind(target, history, "new.sql", _cancel_at(phase, nth, seen))
    where = f"seed {seed}: landmark {nth} of {tracker.count(phase)} in {phase}: {seen}"  # type: ignore[arg-type]
    assert seen and seen[0].startswith(f"{phase}: "), where
    assert job.state is JobState.CANCELLED, (where, job.error)
    assert one_line(job) == f"cancelled; {job.target} was left as it was"
    assert target.fingerprint() == old, where
    settled(target, before, sessions)


def test_cancel_as_the_swap_begins_leaves_the_old_state(
    request: pytest.FixtureRequest, engine: str, history: HistoryStore
) -> None:
    """The first landmark of the swap phase (phase ``swapping`` reported) comes before the
    swap itself: a cancel there still cancels."""
    target = make_target(request, engine, NO_CACHE)
    target.write_dump("new.sql")
    old = target.seed(history)
    sessions, before = target.sessions(), ProcessSnapshot.take()
    seen: list[str] = []
    job = run_rewind(target, history, "new.sql", _cancel_at("swap", 0, seen))
    assert seen and seen[0].startswith("swap: progress swapping"), seen
    assert job.state is JobState.CANCELLED, job.error
    assert target.fingerprint() == old
    settled(target, before, sessions)


def test_cancel_inside_the_swap_is_deferred_and_ends_with_the_new_state(
    request: pytest.FixtureRequest,
    engine: str,
    history: HistoryStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside ``with ctx.swap():`` a cancel waits for the swap: the job succeeds, the
    target holds the new state, and the log says the cancel was deferred. No event comes
    from inside the swap, so the cancel is sent from the swap's entry (the job's own
    context manager, wrapped)."""
    target = make_target(request, engine, NO_CACHE)
    target.write_dump("new.sql")
    _tracker, new = _dry_run(target, history)
    old = target.seed(history)
    assert old != new
    sessions, before = target.sessions(), ProcessSnapshot.take()
    real_swap = jobqueue._JobContext.swap

    def swap_then_cancel(context: jobqueue._JobContext):  # type: ignore[no-untyped-def]
        with real_swap(context):
            context.queue.cancel(context.job.id)
            yield

    monkeypatch.setattr(jobqueue._JobContext, "swap", contextlib.contextmanager(swap_then_cancel))
    job = run_rewind(target, history, "new.sql")
    log = [line.message for line in job.log]
    assert "cancel requested during the swap: letting the swap finish" in log
    assert job.state is JobState.SUCCEEDED, job.error
    assert target.fingerprint() == new
    settled(target, before, sessions)


# --- a client with an open, written-to transaction on the target during the swap ----------


def test_client_transaction_during_the_swap(
    request: pytest.FixtureRequest,
    engine: str,
    history: HistoryStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a client's open, written-to transaction meets at the swap, per engine:

    * SQLite: the swap waits for the client's write lock (said in the log); the client
      rolls back a second later and the swap goes through: new state;
    * PostgreSQL: the client's session is ended (its transaction rolled back) and the
      swap goes through: new state;
    * MariaDB: the RENAME waits for the client's metadata lock up to lock_wait_timeout,
      then gives up cleanly (code busy, the blocking session named): old state; the next
      rewind, once the client is gone, goes through.
    Either way exactly old or exactly new, and the client's uncommitted row in neither."""
    monkeypatch.setattr(mysql_swap, "LOCK_WAIT", 2)
    target = make_target(request, engine, NO_CACHE)
    target.write_dump("new.sql")
    _tracker, new = _dry_run(target, history)
    old = target.seed(history)
    sessions, before = target.sessions(), ProcessSnapshot.take()
    released = threading.Event()
    with target.open_transaction() as client:

        def release_later(_queue: JobQueue, event: JobEvent) -> None:
            line = event.line.message if event.kind == "log" and event.line else ""
            if line.startswith("waiting: another connection holds a lock"):
                released.set()
                threading.Timer(1.0, _rollback, (client,)).start()

        job = run_rewind(target, history, "new.sql", release_later)
    log = [line.message for line in job.log]
    if engine == "mariadb":
        assert job.state is JobState.FAILED and job.error_code == "busy", job.error
        error = one_line(job)
        assert error.startswith(f"swap into {target.database} failed, nothing was changed: "
                                "Lock wait timeout exceeded"), error  # fmt: skip
        assert "(open transactions: session " in error, error
        assert target.fingerprint() == old
        settled(target, before, sessions)
        assert run_rewind(target, history, "new.sql").state is JobState.SUCCEEDED
        assert target.fingerprint() == new
    else:
        assert job.state is JobState.SUCCEEDED, (job.error, log)
        assert target.fingerprint() == new
        assert released.is_set() == (engine == "sqlite"), log
        if engine == "postgres":
            assert any(line.startswith("ending session pid ") for line in log), log
    settled(target, before, sessions)


def _rollback(client: object) -> None:
    client.execute("ROLLBACK")  # type: ignore[attr-defined]


# --- the dump truncated, or replaced while it is read ---------------------------------------

CUTS = {
    "inside a COPY block": ("postgres",),
    "inside a statement": ENGINES,
    "inside a multi-row INSERT": ("mariadb",),
    "at a row's end in a multi-row INSERT": ("mariadb",),
    "at a statement's end inside the dump's transaction": ("sqlite",),
}


def _cut(engine: str, text: str, where: str) -> str:
    """``text`` cut short ``where``."""
    if where == "inside a COPY block":
        start = text.index("COPY public.items")
        return text[: text.index("\n1500\t", start) + 4]
    if where == "inside a statement":
        index = text.index("CREATE INDEX")
        return text[: index + 20]
    if where == "at a statement's end inside the dump's transaction":
        return text[: text.index("INSERT INTO notes") - 1]
    first = text.index("INSERT INTO `items` VALUES ")
    second = text.index("INSERT INTO `items` VALUES ", first + 1)
    row = text.index("),(", second + 2000)
    return text[: row + 3] if where == "inside a multi-row INSERT" else text[: row + 1]


@pytest.mark.parametrize(
    ("truncated", "cut_where"),
    [(engine, where) for where, engines in CUTS.items() for engine in engines],
)
def test_truncated_dump_is_an_error_not_a_shorter_load(
    request: pytest.FixtureRequest, history: HistoryStore, truncated: str, cut_where: str
) -> None:
    target = make_target(request, truncated)
    old = target.seed(history)
    sessions, before = target.sessions(), ProcessSnapshot.take()
    dump = target.dumps / "cut.sql"
    dump.write_text(_cut(truncated, dump_text(truncated), cut_where), encoding="utf-8")
    job = run_rewind(target, history, "cut.sql")
    assert job.state is JobState.FAILED, f"{cut_where}: loaded a cut dump"
    error = one_line(job)
    assert str(dump) in error and "truncated file?" in error, error
    assert target.fingerprint() == old
    settled(target, before, sessions)


def _replace_at_data(how: str, dump: Path, other: str) -> Callable[[JobQueue, JobEvent], None]:
    """A hook that replaces ``dump`` once the load reads its data: rewritten in place, or
    a new file renamed over it."""
    done: list[bool] = []

    def hook(_queue: JobQueue, event: JobEvent) -> None:
        if done or event.kind != "progress" or not event.job.detail.startswith("data: "):
            return
        done.append(True)
        if how == "rewritten":
            with open(dump, "w", encoding="utf-8") as out:
                out.write(other)
        else:
            fresh = dump.with_name(".fresh.sql")
            fresh.write_text(other, encoding="utf-8")
            os.replace(fresh, dump)

    return hook


def test_dump_rewritten_while_read_is_an_error(
    request: pytest.FixtureRequest, engine: str, history: HistoryStore
) -> None:
    """Rewritten in place, the rest of the file is another dump's: neither may be loaded
    in part. reel says the dump changed while it was read; the target stays old."""
    target = make_target(request, engine)
    old = target.seed(history)
    sessions, before = target.sessions(), ProcessSnapshot.take()
    dump = target.write_dump("moving.sql", rows=5000)
    other = dump_text(engine, rows=5000, tag="other")
    kept = target.kept()
    job = run_rewind(target, history, "moving.sql", _replace_at_data("rewritten", dump, other))
    assert job.state is JobState.FAILED, "loaded a dump that changed while it was read"
    error = one_line(job)
    assert "changed while it was read" in error, error
    assert target.fingerprint() == old
    assert target.kept() == kept
    settled(target, before, sessions)


def test_dump_renamed_over_while_read_loads_the_file_opened(
    request: pytest.FixtureRequest, engine: str, history: HistoryStore
) -> None:
    """Renamed over, the file reel opened is still whole (its inode lives on): reel loads
    it, exactly, and keeps no cached copy under the new file's name."""
    target = make_target(request, engine)
    first = target.write_dump("first.sql", rows=5000)
    with open(first, "a", encoding="utf-8") as out:  # the same load, not the same file:
        out.write("-- not moving.sql\n")  # moving.sql must not be a warm hit of this copy
    _tracker, opened = _dry_run_named(target, history, "first.sql")
    old = target.seed(history)
    sessions, before = target.sessions(), ProcessSnapshot.take()
    dump = target.write_dump("moving.sql", rows=5000)
    other = dump_text(engine, rows=5000, tag="other")
    kept = target.kept()
    job = run_rewind(target, history, "moving.sql", _replace_at_data("renamed", dump, other))
    assert job.state is JobState.SUCCEEDED, job.error
    assert target.fingerprint() == opened != old
    log = [line.message for line in job.log]
    assert "the dump changed while it was loaded: no cached copy kept" in log or (
        engine == "mariadb"
    ), log
    assert target.kept() == kept, "a cached copy under the new file's name"
    settled(target, before, sessions)


def _dry_run_named(target: Target, history: HistoryStore, name: str) -> tuple[None, object]:
    job = run_rewind(target, history, name)
    assert job.state is JobState.SUCCEEDED, job.error
    return None, target.fingerprint()


def test_sqlite_client_transaction_held_past_the_swap_timeout_gives_up_cleanly(
    request: pytest.FixtureRequest, history: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite cannot end another process's transaction: when the client keeps its write
    lock past the swap's wait (30 s; 1 s here), the rewind gives up, code busy, old state."""
    monkeypatch.setattr(sqlite_engine, "SWAP_TIMEOUT", 1.0)
    target = make_target(request, "sqlite", NO_CACHE)
    target.write_dump("new.sql")
    old = target.seed(history)
    sessions, before = target.sessions(), ProcessSnapshot.take()
    with target.open_transaction():
        job = run_rewind(target, history, "new.sql")
    assert job.state is JobState.FAILED and job.error_code == "busy", job.error
    assert one_line(job).endswith(
        "stayed locked by another connection for 1 s; nothing was changed"
    )
    assert target.fingerprint() == old
    settled(target, before, sessions)
