"""What a timed reel-tui run did, and waiting for the work it left for afterwards.

A headless rewind hands its background work (dropping the replaced content,
making the next spare copy) to a detached process that appends to the job's
log file and exits. The benchmark must not time anything while that runs: it
would slow the next run down (it copies a whole database), and a warm rewind
timed before the spare is ready measures the "no spare" path instead. So
after every reel-tui run the harness reads the job's log (what path the run
took) and, before the next timed command of any tool, waits for the background
work of every earlier job to log its last line.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

WARM_HIT = "cached copy of this dump found"
TOOK_SPARE = "took its ready spare"
NO_SPARE = "no spare was ready"
BACKGROUND_LINE = "[background pid"
BACKGROUND_END = re.compile(r"background work (done|stopped|failed)")
BACKGROUND_HINTS = ("in the background", "kept a cached copy", BACKGROUND_LINE)
"""Lines after which a detached process may follow (SQLite logs "kept" but starts none)."""
FIRST_LINE_GRACE = 5.0
"""How long a hinted background process may take to log its first line."""


class BackgroundTimeout(RuntimeError):
    """reel-tui's background work did not finish in time."""


JOB_SECONDS = re.compile(r"succeeded in ([0-9.]+) s")


def job_seconds(log: str) -> float | None:
    """The job's own duration as it logged it: the rewind without Python start-up and imports."""
    found = JOB_SECONDS.search(log)
    return float(found.group(1)) if found else None


def classify(log: str) -> str:
    """How a rewind went, from its job log: the note the results carry per run."""
    if WARM_HIT not in log:
        return "cold"
    if TOOK_SPARE in log:
        return "warm: took the ready spare"
    if NO_SPARE in log:
        return "warm: no spare, cloned the cached copy"
    return "warm"


class ReelJobs:
    """The job logs of one state directory, and the background work they announce."""

    def __init__(self, state_dir: Path, timeout: float = 3600.0) -> None:
        self.logs = state_dir / "logs"
        self.timeout = timeout
        self.pending: list[Path] = []
        self.last_job_seconds: float | None = None

    def latest(self) -> Path | None:
        """The newest job's log (job ids grow), or None before any job ran."""
        if not self.logs.is_dir():
            return None
        found = [p for p in self.logs.glob("*.log") if p.stem.isdigit()]
        return max(found, key=lambda p: int(p.stem), default=None)

    def after_run(self) -> str:
        """Note the job that just ran (its background work is waited for later); how it went."""
        path = self.latest()
        self.last_job_seconds = None
        if path is None:
            return "no job log"
        self.pending.append(path)
        text = path.read_text(encoding="utf-8", errors="replace")
        self.last_job_seconds = job_seconds(text)
        return classify(text)

    def quiesce(self) -> float:
        """Wait until no background work of a noted job is running; the seconds waited."""
        started = time.monotonic()
        while self.pending:
            self._wait(self.pending[0])
            self.pending.pop(0)
        return time.monotonic() - started

    def _wait(self, path: Path) -> None:
        started = time.monotonic()
        while True:
            text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
            hinted = any(hint in text for hint in BACKGROUND_HINTS)
            if not hinted or BACKGROUND_END.search(text):
                return
            waited = time.monotonic() - started
            if BACKGROUND_LINE not in text and waited > FIRST_LINE_GRACE:
                return  # a hint, but no detached process (an engine that does it inline)
            if waited > self.timeout:
                raise BackgroundTimeout(f"reel-tui's background work for {path} did not end "
                                        f"in {self.timeout:.0f} s")  # fmt: skip
            time.sleep(0.1)
