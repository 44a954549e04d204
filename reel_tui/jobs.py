"""Jobs and the events they emit: the vocabulary shared by the queue, history and faces.

Modelled on rq's job: a string-enum state, an id, created/started/finished
times and an error string. A cancelled job is not a failed one.
"""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from reel_tui.engines.base import LogLevel, Phase

LOG_LINES_KEPT = 5000
"""Log lines a job keeps in memory; the full log is on disk."""
EVENT_FORMAT_VERSION = 1
"""Version of the JSON event shape printed by ``--json``; bumped on incompatible change."""

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` for a log line, control characters but tab and line feed shown as ``\x1b``:
    a dump's file or table name, or a server message quoting one, must not move a
    terminal's cursor, clear its screen or send it escape codes."""
    if _CONTROL.search(text):
        return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)
    return text


class JobState(str, Enum):
    """Where a job is in its life. Every job ends in exactly one final state."""

    QUEUED = "queued"
    """Waiting for a worker, or for an earlier job on the same database."""
    RUNNING = "running"
    """A worker is rewinding (or waiting for another process's lock)."""
    SUCCEEDED = "succeeded"
    """The target now holds the dump's content."""
    FAILED = "failed"
    """The rewind failed; the target is as it was before. Except ``error_code``
    ``after-hook``: the target was rewound, then one of the app's after-hooks failed."""
    CANCELLED = "cancelled"
    """Cancelled before its swap; the target is as it was before."""

    @property
    def is_final(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class LogLine:
    """One timestamped line of a job's log."""

    time: float
    message: str
    level: LogLevel = "info"

    def format(self) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.time))
        marker = "" if self.level == "info" else f"{self.level.upper()}: "
        return f"{stamp}  {marker}{self.message}"


@dataclass
class Job:
    """A rewind of one app from one source.

    Written by its queue (the worker thread, and ``cancel`` from the caller's
    thread under the queue's lock); faces read it from events and must not write it.
    """

    id: int
    app: str
    source: str
    target: str
    """The target as shown to users (``db@host:port`` or a file path)."""
    target_key: str
    """Identity of the target database, for one-job-per-database."""
    bytes_total: int
    state: JobState = JobState.QUEUED
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    phase: Phase = "queued"
    bytes_read: int = 0
    statements: int = 0
    detail: str = ""
    """What is happening now, in words ("data: orders")."""
    loading_since: float | None = None
    """When the dump started being read: rates leave out the wait for a lock."""
    error: str | None = None
    error_code: str | None = None
    kind: str = "rewind"
    """``rewind``, ``undo`` (a rewind to the undo copy) or ``snapshot`` (takes one)."""
    origin: str | None = None
    """Who asked for the job when not this machine's TUI or command line: ``api ADDRESS``."""
    wait: float | None = None
    """Longest wait for another process's rewind of the same database; None: no limit."""
    log: deque[LogLine] = field(default_factory=lambda: deque(maxlen=LOG_LINES_KEPT))

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started

    @property
    def fraction(self) -> float:
        """Share of the dump read, 0.0-1.0."""
        if self.state is JobState.SUCCEEDED:
            return 1.0
        return min(self.bytes_read / self.bytes_total, 1.0) if self.bytes_total else 0.0

    @property
    def rate(self) -> float | None:
        """Bytes of the dump read per second since reading began."""
        if self.loading_since is None or not self.bytes_read:
            return None
        elapsed = (self.finished or time.time()) - self.loading_since
        return self.bytes_read / elapsed if elapsed > 0 else None

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate, while running."""
        rate = self.rate
        if self.state is not JobState.RUNNING or not rate:
            return None
        return max(self.bytes_total - self.bytes_read, 0) / rate

    def summary(self) -> dict[str, Any]:
        """The job's fields as JSON-ready values (no log)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "app": self.app,
            "source": self.source,
            "target": self.target,
            "state": self.state.value,
            "phase": self.phase,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "duration": self.duration,
            "bytes_read": self.bytes_read,
            "bytes_total": self.bytes_total,
            "statements": self.statements,
            "detail": self.detail,
            "error": self.error,
            "error_code": self.error_code,
            "origin": self.origin,
        }


EventKind = Literal["queued", "started", "progress", "log", "finished", "maintained"]
"""``maintained``: the work a finished job left for afterwards (done on a thread of this
process) is over; the cache it changed can be read again."""


@dataclass(frozen=True)
class JobEvent:
    """Something happened to a job. ``job`` is the live job; read it, don't change it."""

    kind: EventKind
    job: Job
    time: float = field(default_factory=time.time)
    line: LogLine | None = None
    """The new line, for ``log`` events."""

    def to_json(self) -> dict[str, Any]:
        """The versioned ``--json`` shape documented in the README."""
        job = self.job
        data: dict[str, Any] = {
            "v": EVENT_FORMAT_VERSION,
            "event": self.kind,
            "time": round(self.time, 3),
            "job": job.id,
        }
        if self.kind in ("queued", "started"):
            data.update(kind=job.kind, app=job.app, source=job.source, target=job.target,
                        bytes_total=job.bytes_total)  # fmt: skip
        elif self.kind == "progress":
            data.update(phase=job.phase, bytes_read=job.bytes_read, bytes_total=job.bytes_total,
                        statements=job.statements, detail=job.detail)  # fmt: skip
        elif self.kind == "log" and self.line is not None:
            data.update(level=self.line.level, message=self.line.message)
        elif self.kind == "finished":
            data.update(state=job.state.value, duration=job.duration, error=job.error,
                        error_code=job.error_code, bytes_read=job.bytes_read,
                        statements=job.statements)  # fmt: skip
        return data
