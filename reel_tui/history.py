"""Finished and running jobs on disk, shared by every reel process of a user.

The job table is a SQLite database in WAL mode: a killed writer cannot corrupt
it (SQLite rolls back the torn transaction), and a cron run writing beside the
TUI just waits its turn for the lock. ``PRAGMA user_version`` carries the
format version. Each job's full log is a plain text file next to it, appended
line by line as the job runs, so ``less`` can open it and another process can
follow it live.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reel_tui.jobs import Job, JobState, LogLine
from reel_tui.locks import process_alive

FORMAT_VERSION = 3
"""2: jobs have a kind (rewind, undo, snapshot); format 1 files gain the column.
3: jobs have an origin (``api 127.0.0.1`` for a job the HTTP API started; NULL: this
machine's TUI or command line); older files gain the column, their jobs NULL."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    bytes_read INTEGER NOT NULL DEFAULT 0,
    bytes_total INTEGER NOT NULL DEFAULT 0,
    statements INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    error_code TEXT,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'rewind',
    origin TEXT
);
CREATE INDEX IF NOT EXISTS jobs_app ON jobs (app, id);
"""


def default_state_dir() -> Path:
    """Where history, logs and locks live: ``$REEL_STATE_DIR``, else the XDG state dir."""
    override = os.environ.get("REEL_STATE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_state_path  # with tempfile and random: only when used

    return user_state_path("reel-tui")


class HistoryError(Exception):
    """The history cannot be opened (written by a newer version, unreadable, …)."""


@dataclass(frozen=True)
class JobRecord:
    """A job as stored: what ``--history`` lists and the TUI shows for past jobs."""

    id: int
    app: str
    source: str
    target: str
    state: str
    created: float
    started: float | None
    finished: float | None
    bytes_read: int
    bytes_total: int
    statements: int
    error: str | None
    error_code: str | None
    pid: int
    kind: str = "rewind"
    origin: str | None = None
    """Who asked for the job when not this machine's TUI or command line: ``api ADDRESS``."""

    @property
    def duration(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "duration": self.duration}


@dataclass(frozen=True)
class AppMetrics:
    """Per-app figures over the jobs kept in history."""

    app: str
    runs: int
    succeeded: int
    failed: int
    cancelled: int
    last_duration: float | None
    mean_duration: float | None
    p95_duration: float | None
    throughput: float | None
    """Mean bytes of dump per second over successful runs."""
    median_duration: float | None = None
    """Median duration of the successful runs (last: added for the API's metrics)."""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class HistoryStore:
    """Jobs and their logs under one state directory."""

    def __init__(self, state_dir: Path, limit: int = 500) -> None:
        self.state_dir = state_dir
        self.limit = limit
        self.logs_dir = state_dir / "logs"
        self.lock_dir = state_dir / "locks"
        try:
            for folder in (state_dir, self.logs_dir, self.lock_dir):
                folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise HistoryError(f"{state_dir}: cannot use as state directory: {exc}") from None
        self.path = state_dir / "history.sqlite3"
        self._lock = threading.Lock()
        self._host = os.uname().nodename  # gethostname(), without importing socket
        try:
            # created user-only before SQLite opens it: SQLite would create it with the
            # umask's mode (often 0644), readable by others until the chmod below
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(
                self.path, timeout=15, isolation_level=None, check_same_thread=False
            )
            os.chmod(self.path, 0o600)
            self._open()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise HistoryError(f"{self.path}: cannot open job history: {exc}") from None

    def _open(self) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > FORMAT_VERSION:
            raise HistoryError(
                f"{self.path}: job history format {version} was written by a newer "
                f"reel-tui (this one reads format {FORMAT_VERSION})"
            )
        if version == FORMAT_VERSION:
            return  # the schema is in place; a write here would cost every process a sync
        with self._transaction():  # another process may have upgraded it meanwhile
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == FORMAT_VERSION:
                return
            if version == 1:
                db.execute("ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'rewind'")
            if version in (1, 2):
                db.execute("ALTER TABLE jobs ADD COLUMN origin TEXT")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)  # idempotent
            db.execute(f"PRAGMA user_version = {FORMAT_VERSION}")

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- writing -------------------------------------------------------------

    def create(self, job_fields: dict[str, Any]) -> int:
        """Record a new queued job and return its id (unique across processes)."""
        with self._lock, self._transaction():
            cursor = self._db.execute(
                "INSERT INTO jobs (app, source, target, state, created, bytes_total, pid, host,"
                " kind, origin) VALUES (:app, :source, :target, 'queued', :created, :bytes_total,"
                " :pid, :host, :kind, :origin)",
                {
                    "kind": "rewind",
                    "origin": None,
                    **job_fields,
                    "pid": os.getpid(),
                    "host": self._host,
                },
            )
            return int(cursor.lastrowid or 0)

    def update(self, job: Job) -> None:
        """Store the job's state, times, progress and error."""
        with self._lock, self._transaction():
            self._db.execute(
                "UPDATE jobs SET state = ?, started = ?, finished = ?, bytes_read = ?,"
                " statements = ?, error = ?, error_code = ? WHERE id = ?",
                (job.state.value, job.started, job.finished, job.bytes_read, job.statements,
                 job.error, job.error_code, job.id),
            )  # fmt: skip
        if job.state.is_final:
            self.prune()

    def open_log(self, job_id: int) -> LogWriter:
        return LogWriter(self.log_path(job_id))

    def log_path(self, job_id: int) -> Path:
        return self.logs_dir / f"{job_id}.log"

    def prune(self) -> None:
        """Forget the oldest finished jobs beyond the limit, with their logs."""
        with self._lock, self._transaction():
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled')"
                " ORDER BY id DESC LIMIT -1 OFFSET ?",
                (self.limit,),
            ).fetchall()
            self._db.executemany("DELETE FROM jobs WHERE id = ?", rows)
        for (job_id,) in rows:
            self.log_path(job_id).unlink(missing_ok=True)

    # --- reading -------------------------------------------------------------

    def records(
        self,
        limit: int = 50,
        app: str | None = None,
        state: str | None = None,
        apps: Collection[str] | None = None,
    ) -> list[JobRecord]:
        """Newest first, of ``app`` / of ``apps`` if given. Jobs whose process died
        mid-run are reported as failed."""
        self._settle_orphans()
        query = "SELECT * FROM jobs"
        where = [f"{column} = ?" for column, value in (("app", app), ("state", state)) if value]
        params: list[Any] = [value for value in (app, state) if value]
        if apps is not None:
            where.append(f"app IN ({', '.join('?' * len(apps))})")
            params.extend(apps)
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self._db.execute(query, params).fetchall()
        return [_record(row) for row in rows]

    def count_others(self, apps: Collection[str]) -> int:
        """Jobs of apps not in ``apps`` (another config's, sharing this state folder)."""
        with self._lock:
            row = self._db.execute(
                f"SELECT COUNT(*) FROM jobs WHERE app NOT IN ({', '.join('?' * len(apps))})",
                tuple(apps),
            ).fetchone()
        return int(row[0])

    def get(self, job_id: int) -> JobRecord | None:
        if not 0 <= job_id < 2**63:  # no such job; SQLite would raise OverflowError
            return None
        self._settle_orphans()
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _record(row) if row else None

    def read_log(self, job_id: int) -> str:
        try:
            return self.log_path(job_id).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def metrics(self) -> dict[str, AppMetrics]:
        self._settle_orphans()
        with self._lock:
            rows = self._db.execute(
                "SELECT app, state, started, finished, bytes_read FROM jobs"
                " WHERE finished IS NOT NULL ORDER BY id"
            ).fetchall()
        by_app: dict[str, list[tuple[str, float | None, int]]] = {}
        for app, state, started, finished, bytes_read in rows:
            duration = finished - started if started is not None else None
            by_app.setdefault(app, []).append((state, duration, bytes_read))
        return {app: _metrics(app, runs) for app, runs in sorted(by_app.items())}

    def _settle_orphans(self) -> None:
        """Mark unfinished jobs of dead reel processes on this host as failed."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, pid FROM jobs WHERE state IN ('queued', 'running') AND host = ?",
                (self._host,),
            ).fetchall()
            dead = [(job_id, pid) for job_id, pid in rows if not process_alive(pid)]
            if not dead:
                return
            with self._transaction():
                for job_id, pid in dead:
                    self._db.execute(
                        "UPDATE jobs SET state = 'failed', finished = coalesce(finished, ?),"
                        " error = ?, error_code = 'interrupted' WHERE id = ?",
                        (time.time(), f"reel process {pid} ended before the job finished "
                         "(killed?); the target was left as it was", job_id),
                    )  # fmt: skip


def parse_log(text: str) -> list[LogLine]:
    """Lines of a log file as :class:`LogWriter` wrote them; others are kept as info."""
    lines = []
    for raw in text.splitlines():
        parts = raw.split(None, 3)
        try:
            stamp = time.mktime(time.strptime(f"{parts[0]} {parts[1]}", "%Y-%m-%d %H:%M:%S"))
            level = parts[2] if parts[2] in ("info", "warning", "error", "debug") else ""
        except (IndexError, ValueError):
            stamp, level = 0.0, ""
        if not level:  # a continuation line, e.g. of a traceback
            lines.append(LogLine(lines[-1].time if lines else 0.0, raw, "debug"))
        else:
            lines.append(LogLine(stamp, parts[3] if len(parts) > 3 else "", level))  # type: ignore[arg-type]
    return lines


class LogWriter:
    """Appends a job's log lines to its file as they happen (mode 0600)."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8", buffering=1)

    def write(self, line: LogLine) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(line.time))
        self._file.write(f"{stamp} {line.level:<7} {line.message}\n")

    def close(self) -> None:
        self._file.close()


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on error; re-entrant per connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.outer = False

    def __enter__(self) -> None:
        if not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")
            self.outer = True

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if self.outer:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def _record(row: tuple[Any, ...]) -> JobRecord:
    return JobRecord(*row[:14], kind=row[15], origin=row[16])  # row[14] is the host


def _metrics(app: str, runs: list[tuple[str, float | None, int]]) -> AppMetrics:
    import statistics  # only --metrics needs it (with fractions, decimal, random)

    succeeded = [(d, b) for state, d, b in runs if state == JobState.SUCCEEDED.value]
    good = [(d, b) for d, b in succeeded if d]
    durations = [d for d, _ in good]
    p95 = None
    if len(durations) >= 2:
        p95 = statistics.quantiles(durations, n=20, method="inclusive")[-1]
    elif durations:
        p95 = durations[0]
    total_time = sum(durations)
    return AppMetrics(
        app=app,
        runs=len(runs),
        succeeded=len(succeeded),
        failed=sum(1 for state, _, _ in runs if state == JobState.FAILED.value),
        cancelled=sum(1 for state, _, _ in runs if state == JobState.CANCELLED.value),
        last_duration=runs[-1][1],
        mean_duration=statistics.fmean(durations) if durations else None,
        p95_duration=p95,
        throughput=sum(b for _, b in good) / total_time if total_time else None,
        median_duration=statistics.median(durations) if durations else None,
    )
