"""The job queue: order, one job per database, parallelism, cancel, events, locks.

Order and parallelism are about the queue, not about loading, so those tests
use a gated engine whose rewind waits for the test to open its gate; cancel
and locking run the real SQLite engine.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest

from conftest import big_dump, file_hash
from reel_tui.config import AppConfig, Config
from reel_tui.engines.base import Engine, RewindContext
from reel_tui.history import HistoryStore
from reel_tui.jobqueue import PROGRESS_INTERVAL, JobQueue
from reel_tui.jobs import JobEvent, JobState
from reel_tui.locks import TargetLock
from reel_tui.plan import RewindPlan, plan_rewind
from reel_tui.sources import Source


class GatedEngine(Engine):
    """Records when each rewind runs; each waits until the test opens its gate."""

    driver = "sqlite"
    accepts = frozenset({"sqlite", "sql"})
    runs: ClassVar[list[tuple[str, str, float]]] = []
    lock = threading.Lock()

    def __init__(self, app: AppConfig, gate: threading.Event) -> None:
        super().__init__(app)
        self.gate = gate

    def is_local(self) -> bool:
        return True

    def check(self) -> str:
        return "gated"

    def rewind(self, source: Source, ctx: RewindContext) -> None:
        with self.lock:
            self.runs.append(("start", self.app.name, time.monotonic()))
        while not self.gate.wait(0.01):
            ctx.check_cancelled()
        with self.lock:
            self.runs.append(("end", self.app.name, time.monotonic()))


@pytest.fixture
def gated(blog: Config, tmp_path: Path):
    """Plans for apps a, b (same database) and c (another database), each with a gate."""
    GatedEngine.runs = []
    base = blog.apps["blog"]
    source = Source("seed.sql", base.source, 10, 0.0, _format(base))

    def plan(name: str, database: str) -> tuple[RewindPlan, threading.Event]:
        app = AppConfig(name=name, driver="sqlite", database=str(tmp_path / database))
        gate = threading.Event()
        return RewindPlan(app, source, GatedEngine(app, gate)), gate

    return plan


def _format(app: AppConfig):
    from reel_tui.dumpfile import detect_format

    return detect_format(app.source)


def starts(name: str) -> float:
    return next(t for kind, n, t in GatedEngine.runs if kind == "start" and n == name)


def ends(name: str) -> float:
    return next(t for kind, n, t in GatedEngine.runs if kind == "end" and n == name)


def test_submit_returns_at_once_with_a_queued_job(gated, history):
    queue = JobQueue(history, workers=1)
    plan, gate = gated("a", "one.db")
    try:
        before = time.monotonic()
        job = queue.submit(plan)
        # a submit that ran the job would never return (its gate is shut); the bound is
        # loose because submit writes the job to the history (a commit: slow on a busy disk)
        assert time.monotonic() - before < 2.0
        assert job.id >= 1 and job.app == "a"
        assert job.state in (JobState.QUEUED, JobState.RUNNING)
        gate.set()
        assert queue.wait(job, 30)
        assert job.state is JobState.SUCCEEDED
        assert job.started is not None and job.finished >= job.started >= job.created
    finally:
        queue.shutdown()


def test_one_job_per_database_in_order_others_in_parallel(gated, history):
    queue = JobQueue(history, workers=3)
    (a, gate_a), (b, gate_b), (c, gate_c) = (
        gated("a", "shared.db"),
        gated("b", "shared.db"),
        gated("c", "other.db"),
    )
    try:
        job_a, job_b, job_c = queue.submit(a), queue.submit(b), queue.submit(c)
        deadline = time.monotonic() + 30  # polled: a loaded machine starts threads late
        while len(GatedEngine.runs) < 2:
            assert time.monotonic() < deadline, GatedEngine.runs
            time.sleep(0.01)
        time.sleep(0.2)  # give a wrongly scheduled b every chance to start
        assert job_a.state is JobState.RUNNING
        assert job_c.state is JobState.RUNNING, "another database runs in parallel"
        assert job_b.state is JobState.QUEUED, "same database waits its turn"
        gate_b.set()
        gate_c.set()
        time.sleep(0.1)
        assert job_b.state is JobState.QUEUED
        gate_a.set()
        for job in (job_a, job_b, job_c):
            assert queue.wait(job, 30)
    finally:
        queue.shutdown()
    assert starts("b") >= ends("a")
    assert starts("c") < ends("a")


def test_jobs_for_one_database_run_in_submission_order(gated, history):
    queue = JobQueue(history, workers=4)
    plans = [gated(name, "same.db") for name in "pqrst"]
    try:
        jobs = [queue.submit(plan) for plan, _ in plans]
        for _, gate in plans:
            gate.set()
        for job in jobs:
            assert queue.wait(job, 30)
    finally:
        queue.shutdown()
    order = [name for kind, name, _ in GatedEngine.runs if kind == "start"]
    assert order == list("pqrst")


def test_worker_count_bounds_parallelism(gated, history):
    queue = JobQueue(history, workers=2)
    plans = [gated(name, f"{name}.db") for name in "xyz"]
    try:
        jobs = [queue.submit(plan) for plan, _ in plans]
        deadline = time.monotonic() + 10  # polled: a loaded machine starts threads late
        while [j.state for j in jobs].count(JobState.RUNNING) < 2:
            assert time.monotonic() < deadline, [j.state for j in jobs]
            time.sleep(0.02)
        time.sleep(0.2)  # a third worker, if there were one, would have started it by now
        assert [j.state for j in jobs].count(JobState.RUNNING) == 2
        assert [j.state for j in jobs].count(JobState.QUEUED) == 1
        for _, gate in plans:
            gate.set()
        for job in jobs:
            assert queue.wait(job, 30)
    finally:
        queue.shutdown()


def test_cancel_queued_job_never_starts(gated, history):
    queue = JobQueue(history, workers=1)
    (first, gate1), (second, _gate2) = gated("a", "db1"), gated("b", "db2")
    try:
        running = queue.submit(first)
        waiting = queue.submit(second)
        assert queue.cancel(waiting.id)
        assert waiting.state is JobState.CANCELLED
        gate1.set()
        assert queue.wait(running, 30)
        time.sleep(0.2)
    finally:
        queue.shutdown()
    assert [name for _, name, _ in GatedEngine.runs] == ["a", "a"]
    assert history.get(waiting.id).state == "cancelled"
    assert not queue.cancel(waiting.id), "a finished job cannot be cancelled again"


def test_cancel_running_sqlite_rewind(blog: Config, blog_app: AppConfig, history):
    big_dump(blog_app.sources_dir / "big.sql", 300_000)
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan_rewind(blog, "blog", "big.sql"))
        while job.bytes_read == 0 and not job.state.is_final:
            time.sleep(0.01)
        queue.cancel(job.id)
        # within about a second when idle; 5 s leaves room for a loaded machine and is
        # still far less than the rest of the load would take
        assert queue.wait(job, 5), "a running job stops within seconds"
    finally:
        queue.shutdown()
    assert job.state is JobState.CANCELLED
    assert not Path(blog_app.database).exists()
    assert "cancel requested" in history.read_log(job.id)


def test_events_reach_subscribers_in_order_and_progress_is_throttled(blog, blog_app, history):
    big_dump(blog_app.sources_dir / "big.sql", 60_000)
    events: list[JobEvent] = []
    queue = JobQueue(history, workers=1)
    queue.subscribe(events.append)
    broken_calls = []

    def broken(event: JobEvent) -> None:
        broken_calls.append(event)
        raise RuntimeError("a buggy subscriber must not break the job")

    queue.subscribe(broken)
    try:
        job = queue.submit(plan_rewind(blog, "blog", "big.sql"))
        assert queue.wait(job, 30)
    finally:
        queue.shutdown()
    assert job.state is JobState.SUCCEEDED, job.error
    kinds = [e.kind for e in events]
    finished = kinds.index("finished")
    assert kinds[0] == "queued" and kinds[1] == "started"
    assert kinds.count("finished") == 1
    # after it, only the background work's lines (the cached copy's spare), then its end
    assert kinds[-1] == "maintained" and kinds.count("maintained") == 1
    assert set(kinds[finished + 1 : -1]) <= {"log"}
    assert all("background" in e.line.message or "spare" in e.line.message
               for e in events[finished + 1 :] if e.line is not None)  # fmt: skip
    assert "log" in kinds and "progress" in kinds
    # dropped after its first failure (a call already under way in another thread may land)
    assert len(broken_calls) <= 2 < len(events)
    progress = [e for e in events if e.kind == "progress"]
    phases = {e.job.phase for e in progress}
    duration = job.duration or 0
    assert len(progress) <= duration / PROGRESS_INTERVAL + 12, "progress is throttled"
    assert any(line.message == "data: events 60,000 rows" for line in job.log)
    assert phases, "progress events carry a phase"


def test_waits_for_another_process_holding_the_database(blog, blog_app, history):
    holder = TargetLock(history.lock_dir, blog_app.target_key)
    assert holder.try_acquire()
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan_rewind(blog, "blog"))
        # released once the job waits for it (a fixed 0.5 s timer could fire before a
        # loaded machine got the job that far: then it never waited)
        deadline = time.monotonic() + 30
        while job.phase != "waiting":
            assert time.monotonic() < deadline and not job.state.is_final, job.state
            time.sleep(0.01)
        holder.release()
        assert queue.wait(job, 60)
    finally:
        holder.release()
        queue.shutdown()
    assert job.state is JobState.SUCCEEDED, job.error
    assert any("waiting for another rewind" in line.message for line in job.log)


def test_wait_limit_gives_up_without_touching_the_target(blog, blog_app, history):
    target = Path(blog_app.database)
    target.write_bytes(b"")
    before = file_hash(target)
    holder = TargetLock(history.lock_dir, blog_app.target_key)
    assert holder.try_acquire()
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan_rewind(blog, "blog"), wait=0.3)
        assert queue.wait(job, 30)
    finally:
        holder.release()
        queue.shutdown()
    assert job.state is JobState.FAILED and job.error_code == "lock-timeout"
    assert f"pid {__import__('os').getpid()}" in job.error
    assert file_hash(target) == before


def test_cancel_while_waiting_for_the_lock(blog, blog_app, history):
    holder = TargetLock(history.lock_dir, blog_app.target_key)
    assert holder.try_acquire()
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan_rewind(blog, "blog"))
        while job.phase != "waiting":
            time.sleep(0.01)
        queue.cancel(job.id)
        assert queue.wait(job, 10)  # about at once; room for a loaded machine
    finally:
        holder.release()
        queue.shutdown()
    assert job.state is JobState.CANCELLED


def test_history_records_every_job_with_its_log(blog, history: HistoryStore):
    queue = JobQueue(history, workers=1)
    try:
        ok = queue.submit(plan_rewind(blog, "blog"))
        assert queue.wait(ok, 60)
    finally:
        queue.shutdown()
    record = history.get(ok.id)
    assert record is not None and record.state == "succeeded"
    assert record.bytes_read == record.bytes_total > 0
    log = history.read_log(ok.id)
    assert "succeeded in" in log and "schema: table authors" in log


def test_a_log_file_that_cannot_be_written_does_not_stop_the_rewind(blog, history):
    (history.logs_dir / "1.log").mkdir()  # job #1's log path is taken by a folder
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan_rewind(blog, "blog"))
        assert job.id == 1
        assert queue.wait(job, 60)
    finally:
        queue.shutdown()
    assert job.state is JobState.SUCCEEDED, job.error
    assert any("cannot write this job's log file" in line.message for line in job.log)
    assert history.get(job.id).state == "succeeded"


def test_shutdown_leaves_no_file_open(blog, history):
    """A queue opens the cache index; shutdown closes it (the soak found one per queue
    left open: a TUI reloading, or any long-lived process making queues, piles them up)."""
    import os

    def open_files() -> set[str]:
        return {os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                if os.path.exists(f"/proc/self/fd/{fd}")}  # fmt: skip

    before = open_files()
    queue = JobQueue(history, workers=1)
    job = queue.submit(plan_rewind(blog, "blog", "other.sql"))
    assert queue.wait(job, timeout=30) and job.state is JobState.SUCCEEDED, job.error
    queue.shutdown()
    assert {f for f in open_files() - before if "cache" in f} == set()


def test_a_cancel_that_arrives_as_the_job_finishes_is_a_no_op(blog, history):
    """``cancel`` reads the job as running, then the job finishes (its log file closed)
    before the request reaches it: the soak test hit this as "ValueError: write to closed
    file" raised into the caller. Here the request is made to arrive late on purpose."""
    queue = JobQueue(history, workers=1)
    contexts = []
    queue.subscribe(lambda e: e.kind == "started" and contexts.append(queue._contexts[e.job.id]))
    try:
        job = queue.submit(plan_rewind(blog, "blog", "other.sql"))
        assert queue.wait(job, timeout=30) and job.state is JobState.SUCCEEDED, job.error
        deadline = time.monotonic() + 10  # its background work (the spare) logs too
        while not any(line.message.startswith("background work") for line in job.log):
            assert time.monotonic() < deadline, list(job.log)
            time.sleep(0.02)
        lines = len(job.log)
        contexts[0].request_cancel()  # what cancel() does once it has found the context
    finally:
        queue.shutdown()
    assert job.state is JobState.SUCCEEDED
    assert len(job.log) == lines
    assert "cancel requested" not in history.read_log(job.id)


def test_only_the_newest_finished_jobs_stay_in_memory(gated, history):
    """A long-running queue (``--serve``) forgets old finished jobs; the history keeps them."""
    queue = JobQueue(history, workers=1, keep_finished=2)
    try:
        jobs = []
        for name in "pqrst":
            plan, gate = gated(name, f"{name}.db")
            gate.set()
            jobs.append(queue.submit(plan))
            assert queue.wait(jobs[-1], 30)
        plan, gate = gated("u", "u.db")
        running = queue.submit(plan)
        deadline = time.monotonic() + 30  # polled: a loaded machine starts threads late
        while running.state is not JobState.RUNNING:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert [job.id for job in queue.jobs()] == [jobs[3].id, jobs[4].id, running.id]
        assert queue.get(jobs[0].id) is None
        assert history.get(jobs[0].id).state == JobState.SUCCEEDED.value
        gate.set()
        assert queue.wait(running, 30)
    finally:
        queue.shutdown()
