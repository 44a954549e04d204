"""What the API does, without HTTP: look-ups, guards, coalescing, job views.

Core (no aiohttp): the handlers in :mod:`reel_tui.api.routes` only translate
requests to these calls (on a thread: most of them touch the disk or the history)
and :class:`ApiError` to a JSON error response.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from reel_tui import __version__
from reel_tui.config import AppConfig, Config, _one_line
from reel_tui.engines import RewindError
from reel_tui.engines.base import needs_password
from reel_tui.history import JobRecord, parse_log
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import EVENT_FORMAT_VERSION, Job, JobState
from reel_tui.listing import source_entries
from reel_tui.plan import Refused, RewindPlan, only_app, plan_rewind
from reel_tui.prometheus import render
from reel_tui.sources import source_names

API_PREFIX = "/reel/api/v1"
MAX_QUEUED_PER_APP = 20
"""Queued jobs one app may have before a rewind request is answered 429."""
MAX_LIST_LIMIT = 500
DEFAULT_LIST_LIMIT = 50
STATES = tuple(state.value for state in JobState)


class ApiError(Exception):
    """A request that cannot be served: its HTTP status and one line saying why."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = _one_line(message)
        self.headers = headers or {}


@dataclass(frozen=True)
class Submitted:
    """The job a rewind request got: a new one, or an identical queued one (coalesced)."""

    job: Job
    coalesced: bool


def status_url(job_id: int) -> str:
    return f"{API_PREFIX}/jobs/{job_id}"


def job_view(job: Job) -> dict[str, Any]:
    """A live job (of this process) as the API shows it: its summary and progress."""
    summary = job.summary()
    if job.state.is_final and job.finished is None:  # its after-hooks are still running
        summary["state"] = JobState.RUNNING.value
    return {
        **summary,
        "fraction": job.fraction,
        "rate": job.rate,
        "eta": job.eta,
        "live": True,
        "status_url": status_url(job.id),
    }


def record_view(record: JobRecord) -> dict[str, Any]:
    """A job from the history (past, or another process's) in the shape of :func:`job_view`."""
    final = JobState(record.state).is_final
    duration = record.duration
    if record.state == JobState.SUCCEEDED.value:
        fraction = 1.0
    else:
        fraction = min(record.bytes_read / record.bytes_total, 1.0) if record.bytes_total else 0.0
    return {
        "id": record.id,
        "kind": record.kind,
        "app": record.app,
        "source": record.source,
        "target": record.target,
        "state": record.state,
        "phase": "done" if final else record.state,
        "created": record.created,
        "started": record.started,
        "finished": record.finished,
        "duration": duration,
        "bytes_read": record.bytes_read,
        "bytes_total": record.bytes_total,
        "statements": record.statements,
        "detail": "",
        "error": record.error,
        "error_code": record.error_code,
        "origin": record.origin,
        "fraction": fraction,
        "rate": record.bytes_read / duration if duration and record.bytes_read else None,
        "eta": None,
        "live": False,
        "status_url": status_url(record.id),
    }


class RewindService:
    """The API's view of one config and one job queue; safe to call from any thread."""

    def __init__(
        self,
        config: Config,
        queue: JobQueue,
        *,
        allow_remote: bool = False,
        max_queued_per_app: int = MAX_QUEUED_PER_APP,
    ) -> None:
        self.config = config
        self.queue = queue
        self.allow_remote = allow_remote
        self.max_queued_per_app = max_queued_per_app
        self._submit_lock = threading.Lock()
        self._credentials_ok: set[str] = set()

    # --- apps and sources -------------------------------------------------------

    def app(self, name: str | None) -> AppConfig:
        """The named app, or the default one; 404 unknown, 503 disabled or no default."""
        config = self.config
        name = name or config.settings.default_app or only_app(config)
        if name is None:
            raise ApiError(503, "no default app: set [reel] default_app, or name the app")
        if name in config.disabled:
            reasons = "; ".join(str(p) for p in config.disabled[name])
            raise ApiError(503, f"app {name!r} is disabled by config errors: {reasons}")
        if name not in config.apps:
            raise ApiError(404, f"no app named {name!r}")
        return config.apps[name]

    def sources(self, name: str | None) -> dict[str, Any]:
        """reel's ``{"Sources": [names]}`` body, with the richer fields beside it."""
        app = self.app(name)
        entries = source_entries(self.queue.cache_index, app)
        default = next((entry["name"] for entry in entries if entry["default"]), None)
        return {
            "Sources": [entry["name"] for entry in entries],
            "app": app.name,
            "engine": app.driver,
            "target": app.target,
            "protected": app.protected,
            "default_source": default,
            "sources": entries,
        }

    # --- rewinds ----------------------------------------------------------------

    def plan(self, app_name: str | None, source_name: str | None) -> RewindPlan:
        """Every guard of a rewind, as ``--rewind`` has them, plus the API's own: the source
        is one of the app's listed names (or ``@snapshot``), never a path; the password
        cannot be typed here. Blocking: it reads the file system, maybe asks the server."""
        app = self.app(app_name)
        if app.protected:
            raise ApiError(403, f"app {app.name!r} is protected (protected = true); refused")
        if source_name and not source_name.startswith("@"):
            names = source_names(app)
            if source_name not in names:
                shown = ", ".join(names[:8]) or "it has none"
                raise ApiError(
                    404, f"app {app.name!r}: no source named {source_name!r} (available: {shown})"
                )
        try:
            plan = plan_rewind(
                self.config, app.name, source_name or None, allow_remote=self.allow_remote
            )
        except Refused as exc:
            message = str(exc)
            missing = "no snapshot named" in message or "nothing to undo" in message
            raise ApiError(404 if missing else 409, message) from None
        self._check_credentials(plan)
        return plan

    def _check_credentials(self, plan: RewindPlan) -> None:
        """503 for a server app whose password only a person could type: the TUI asks for
        it, a request cannot. Asked of the server once per app while it says yes."""
        app = plan.app
        if app.driver == "sqlite" or app.name in self._credentials_ok:
            return
        if app.password_env and os.environ.get(app.password_env) is None:
            raise ApiError(
                503,
                f"app {app.name!r}: dbpassword_env names {app.password_env}, "
                "which is not set for this server; it cannot ask for the password",
            )
        if app.password is None and app.password_env is None:
            try:
                plan.engine.check()
            except RewindError as exc:
                if needs_password(exc):
                    raise ApiError(
                        503,
                        f"app {app.name!r}: the database server wants a "
                        "password and the config gives none (set dbpassword_env); "
                        "the API cannot ask for one",
                    ) from None
                return  # unreachable and the like: the job says so in its own error
        self._credentials_ok.add(app.name)

    def submit(self, plan: RewindPlan, origin: str) -> Submitted:
        """Queue the rewind, or hand back the database's newest queued job when it is the
        same rewind (a burst of one request does the work once); 429 when the app has
        too many queued. Only the newest: joining an earlier one would let a later, other
        rewind run after it, so the database would not end as the last request asked."""
        with self._submit_lock:  # the look and the submit as one step
            jobs = self.queue.jobs()
            queued = [job for job in jobs if job.state is JobState.QUEUED]
            same_db = [job for job in queued if job.target_key == plan.app.target_key]
            newest = max(same_db, key=lambda job: job.id, default=None)
            if newest is not None and (newest.app, newest.source, newest.kind) == (
                plan.app.name,
                plan.source.name,
                plan.kind,
            ):
                return Submitted(newest, coalesced=True)
            waiting = sum(1 for job in queued if job.app == plan.app.name)
            if waiting >= self.max_queued_per_app:
                raise ApiError(
                    429,
                    f"app {plan.app.name!r} has {waiting} queued jobs already; "
                    "try again when some have run",
                    headers={"Retry-After": "5"},
                )
            return Submitted(self.queue.submit(plan, origin=origin), coalesced=False)

    # --- jobs -------------------------------------------------------------------

    def job(self, job_id: int) -> dict[str, Any]:
        live = self.queue.get(job_id)
        if live is not None:
            return job_view(live)
        record = self.queue.history.get(job_id)
        if record is None:
            raise ApiError(404, f"no job #{job_id}")
        return record_view(record)

    def jobs(self, app: str | None, state: str | None, limit: int) -> list[dict[str, Any]]:
        """Newest first: this process's live jobs over the history's records of the rest."""
        if state is not None and state not in STATES:
            raise ApiError(400, f"state must be one of {', '.join(STATES)}")
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise ApiError(400, f"limit must be 1-{MAX_LIST_LIMIT}")
        views = {
            record.id: record_view(record)
            for record in self.queue.history.records(limit=limit, app=app, state=state)
        }
        for job in self.queue.jobs():
            if app is None or job.app == app:
                views[job.id] = job_view(job)  # the history may lag behind
        chosen = [view for view in views.values() if state is None or view["state"] == state]
        chosen.sort(key=lambda view: view["id"], reverse=True)
        return chosen[:limit]

    def cancel(self, job_id: int) -> dict[str, Any]:
        """Ask a queued or running job to stop: 404 unknown, 409 over or not ours."""
        live = self.queue.get(job_id)
        if live is None:
            record = self.queue.history.get(job_id)
            if record is None:
                raise ApiError(404, f"no job #{job_id}")
            if JobState(record.state).is_final:
                raise ApiError(409, f"job #{job_id} is already over ({record.state})")
            raise ApiError(
                409,
                f"job #{job_id} runs in another reel-tui process "
                f"(pid {record.pid}): cancel it there",
            )
        if not self.queue.cancel(job_id):
            raise ApiError(409, f"job #{job_id} is already over ({live.state.value})")
        return job_view(live)

    def log(self, job_id: int) -> list[dict[str, Any]]:
        """The job's log file as lines (the file has them all, the job only the last)."""
        self.job(job_id)  # 404 for an unknown job
        lines = parse_log(self.queue.history.read_log(job_id))
        return [{"time": line.time, "level": line.level, "message": line.message} for line in lines]

    # --- figures ----------------------------------------------------------------

    def live_counts(self) -> dict[str, int]:
        jobs = self.queue.jobs()
        return {
            state.value: sum(1 for job in jobs if job.state is state)
            for state in (JobState.QUEUED, JobState.RUNNING)
        }

    def metrics(self) -> dict[str, Any]:
        """``--metrics --json``'s body, and the jobs of this process not over yet."""
        apps = [m.to_json() for m in self.queue.history.metrics().values()]
        return {"v": EVENT_FORMAT_VERSION, "apps": apps, "live": self.live_counts()}

    def prometheus(self) -> str:
        return render(self.queue.history.metrics(), self.live_counts())

    def health(self) -> dict[str, Any]:
        counts = self.live_counts()
        return {
            "status": "ok",
            "version": __version__,
            "running": counts["running"],
            "queued": counts["queued"],
        }
