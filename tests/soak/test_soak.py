"""The soak (issue 7): several hundred rewinds across the three engines in one process,
through one :class:`~reel_tui.jobqueue.JobQueue`, with cancels at random moments.

Not in the default run (marker ``soak``); ``scripts/test`` runs it after the suite, so CI
does. Sources alternate between dumps the cache holds (warm rewinds) and dumps it does
not (cold loads: more sources than ``cache_copies``, and a dump edited now and then).
A seeded RNG picks sources, cancels and their moments; the seed is printed, and
``REEL_SOAK_SEED`` replays a run's choices (not its timing).

Afterwards the process and the servers must be back where they started: RSS within
:data:`RSS_TOLERANCE`, the same threads and file descriptors, no reel session on either
server, no staging object or temp file; and the job history must hold every submitted job
in a final state, with the same count per state as the jobs this test watched.
"""

from __future__ import annotations

import gc
import os
import random
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from fault_kit import (
    ENGINES,
    ProcessSnapshot,
    Target,
    assert_process_settled,
    make_target,
    run_rewind,
)

from reel_tui.config import load_config
from reel_tui.history import HistoryStore
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import Job, JobState
from reel_tui.plan import plan_rewind

pytestmark = pytest.mark.soak

REWINDS_PER_ENGINE = 120
TIME_BUDGET = 150.0
"""Seconds of rewinding at most; the engines stop submitting when it is spent."""
CANCEL_SHARE = 0.3
"""About this share of the jobs is cancelled: queued, or after a random moment running."""
SOURCES = ("a.sql", "b.sql", "c.sql")
"""One more than the cache keeps (``cache_copies = 2``): some rewinds are warm, some cold."""
RSS_TOLERANCE = 40 * 1024 * 1024
"""RSS may end this much above where it started (allocator arenas, caches of the sqlite3
and driver modules warm up over the first few hundred jobs, then stay)."""


def rss() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def server_connections(target: Target) -> int:
    """reel's sessions on the target's server (none for SQLite)."""
    return len(target.sessions())


class Driver:
    """Rewinds one engine's target again and again through the shared queue."""

    def __init__(self, target: Target, queue: JobQueue, rng: random.Random, deadline: float):
        self.target = target
        self.queue = queue
        self.rng = rng
        self.deadline = deadline
        self.jobs: list[Job] = []
        self.cancels = 0
        self.edits = 0
        self.error: str | None = None

    def run(self) -> None:
        try:
            config = load_config(self.target.config)
            for n in range(REWINDS_PER_ENGINE):
                if time.monotonic() > self.deadline:
                    return
                self._one(config, n)
        except BaseException:  # reported by the test, not lost in a thread
            self.error = traceback.format_exc()

    def _one(self, config: object, n: int) -> None:
        rng = self.rng
        source = rng.choice(SOURCES)
        if rng.random() < 0.05:  # an edited dump: its cached copy is stale, the load cold
            self.edits += 1
            self.target.write_dump(source, rows=rng.randint(20, 80), tag=f"edit{n}")
        job = self.queue.submit(plan_rewind(config, self.target.app, source))  # type: ignore[arg-type]
        self.jobs.append(job)
        if rng.random() < CANCEL_SHARE:
            time.sleep(rng.choice((0.0, rng.uniform(0.0, 0.4))))
            if self.queue.cancel(job.id):
                self.cancels += 1
        assert self.queue.wait(job, timeout=120), f"job #{job.id} still {job.state}"


@pytest.fixture
def targets(request: pytest.FixtureRequest, tmp_path: Path) -> list[Target]:
    """The three engines' targets, side by side: the kit writes each one's config and
    dumps at the same place, so each is moved to its own before the next is made."""
    made = []
    for engine in ENGINES:
        target = make_target(request, engine, extra="cache_copies = 2")
        config = tmp_path / f"reel-{engine}.toml"
        text = target.config.read_text(encoding="utf-8")
        config.write_text(text.replace('dbsources = "dumps"', f'dbsources = "dumps-{engine}"'),
                          encoding="utf-8")  # fmt: skip
        config.chmod(0o600)
        target.config, target.dumps = config, tmp_path / f"dumps-{engine}"
        target.dumps.mkdir()
        made.append(target)
    return made


def test_soak(targets: list[Target], state_dir, capsys):
    seed = int(os.environ.get("REEL_SOAK_SEED") or random.SystemRandom().randrange(10**6))
    print(f"\nsoak seed: {seed} (REEL_SOAK_SEED={seed} replays the choices)")
    warm_up = HistoryStore(state_dir, limit=100_000)
    for target in targets:  # servers up, modules imported, the three dumps in place
        for source in SOURCES:
            target.write_dump(source, rows=50, tag=source)
        target.seed(warm_up, rows=50)
        assert run_rewind(target, warm_up, "a.sql").state is JobState.SUCCEEDED
    warm_up.close()
    sessions = {t.engine: t.sessions() for t in targets}
    before = ProcessSnapshot.take()
    rss_before = rss()
    history = HistoryStore(state_dir, limit=100_000)
    first_id = max((r.id for r in history.records(limit=1)), default=0)
    started = time.monotonic()
    queue = JobQueue(history, workers=3)
    drivers = [Driver(t, queue, random.Random(f"{seed}-{t.engine}"), started + TIME_BUDGET)
               for t in targets]  # fmt: skip
    threads = [threading.Thread(target=d.run, name=f"soak-{d.target.engine}") for d in drivers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.shutdown()
    elapsed = time.monotonic() - started
    for driver in drivers:
        assert driver.error is None, f"{driver.target.engine}: {driver.error}"

    records = {r.id: r for r in history.records(limit=100_000) if r.id > first_id}
    history.close()
    rows = [_figures(d) for d in drivers]
    watched = {d.target.engine: {j.id: j.state.value for j in d.jobs} for d in drivers}
    failed = [(j.id, j.error) for d in drivers for j in d.jobs if j.state is JobState.FAILED]
    for driver in drivers:  # the test's own hold on the jobs (and their logs) goes
        driver.jobs.clear()
    del queue, drivers
    gc.collect()
    assert_process_settled(before)
    rss_after = rss()
    _print_table(rows, elapsed, rss_before, rss_after, before, capsys)
    for target in targets:
        target.assert_clean(sessions[target.engine])

    total = sum(len(jobs) for jobs in watched.values())
    assert total >= 150, f"only {total} rewinds in {elapsed:.0f} s"
    assert rss_after - rss_before <= RSS_TOLERANCE, (rss_before, rss_after)
    assert failed == []
    for engine, jobs in watched.items():
        assert set(jobs) <= set(records), f"{engine}: jobs missing from the history"
        recorded = Counter(records[i].state for i in jobs)
        assert recorded == Counter(jobs.values()), (engine, recorded)
        assert recorded["succeeded"] > 0 and recorded["cancelled"] > 0, recorded
    assert len(records) == total, "the history holds jobs nobody submitted"


def _figures(driver: Driver) -> dict[str, object]:
    states = Counter(job.state.value for job in driver.jobs)
    durations = sorted(job.duration for job in driver.jobs if job.state is JobState.SUCCEEDED)
    warm = sum(1 for job in driver.jobs if job.state is JobState.SUCCEEDED and any(
        line.message.startswith("cached copy of this dump found") for line in job.log))  # fmt: skip
    return {
        "engine": driver.target.engine,
        "jobs": len(driver.jobs),
        "succeeded": states["succeeded"],
        "cancelled": states["cancelled"],
        "failed": states["failed"],
        "warm": warm,
        "edits": driver.edits,
        "median s": durations[len(durations) // 2] if durations else 0.0,
        "sessions": len(driver.target.sessions()),
    }


def _print_table(
    rows: list[dict[str, object]],
    elapsed: float,
    rss_before: int,
    rss_after: int,
    before: ProcessSnapshot,
    capsys: pytest.CaptureFixture[str],
) -> None:
    after = ProcessSnapshot.take()
    header = list(rows[0])
    lines = ["  ".join(f"{h:>9}" for h in header)]
    for row in rows:
        lines.append("  ".join(f"{_cell(row[h]):>9}" for h in header))
    mib: Callable[[int], str] = lambda n: f"{n / 2**20:.1f} MiB"  # noqa: E731
    lines += [
        f"rewinds: {sum(int(r['jobs']) for r in rows)} in {elapsed:.0f} s",  # type: ignore[call-overload]
        f"RSS: {mib(rss_before)} -> {mib(rss_after)} ({mib(rss_after - rss_before)}, "
        f"tolerance {mib(RSS_TOLERANCE)})",
        f"threads: {len(before.threads)} -> {len(after.threads)}; "
        f"fds: {len(before.fds)} -> {len(after.fds)}",
    ]
    with capsys.disabled():
        print("\n" + "\n".join(lines))


def _cell(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)
