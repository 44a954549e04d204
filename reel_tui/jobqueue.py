"""The job queue both faces share: submit returns at once, worker threads rewind.

* At most one job per target database runs at a time (in this process by the
  queue itself, across processes by :class:`~reel_tui.locks.TargetLock`);
  later jobs for the same database wait their turn, in order. Jobs for
  different databases run in parallel, up to ``workers`` at once.
* Events reach subscribers on the worker's thread; progress events are
  throttled per job so a fast load cannot flood a UI.
* Cancel (as in rq): a queued job never starts; a running one is stopped at
  its next check, its engine is interrupted, and its target stays as it was.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from reel_tui import maintain
from reel_tui.cache import CacheIndex
from reel_tui.engines.base import Engine, LogLevel, Phase, RewindCancelled, RewindError
from reel_tui.history import HistoryStore, LogWriter
from reel_tui.hooks import Hook, HookOutcome, hook_environment, hooks_of, run_hook
from reel_tui.jobs import Job, JobEvent, JobState, LogLine, printable
from reel_tui.locks import TargetLock
from reel_tui.plan import RewindPlan

if TYPE_CHECKING:
    import logging

Subscriber = Callable[[JobEvent], None]
PROGRESS_INTERVAL = 0.1
"""Least time between two progress events of one job, in seconds."""
HISTORY_PROGRESS_INTERVAL = 1.0
"""How often a running job's progress is written to the shared history."""


def _logger() -> logging.Logger:
    """This module's logger; logging is imported only when there is something to log."""
    import logging

    return logging.getLogger(__name__)


KEEP_FINISHED = 200
"""Finished jobs a queue keeps in memory; older ones are read from the history (the TUI's
job list and the API do), so a ``--serve`` running for months does not grow."""


class JobQueue:
    """Runs rewind plans on worker threads, one job per target database at a time."""

    def __init__(
        self,
        history: HistoryStore,
        workers: int = 2,
        *,
        detach_maintenance: bool = False,
        keep_finished: int = KEEP_FINISHED,
    ) -> None:
        """``detach_maintenance``: the work a rewind leaves for afterwards (see
        :mod:`reel_tui.maintain`) goes to a detached process, for a process that exits
        when its jobs are done; else to a thread of this one, reporting in the job's log.
        ``keep_finished``: see :data:`KEEP_FINISHED`."""
        self.history = history
        self.keep_finished = keep_finished
        self.cache_index = CacheIndex(history.state_dir)
        self._detach_maintenance = detach_maintenance
        self._maintainers: list[threading.Thread] = []
        self._cond = threading.Condition()
        self._jobs: dict[int, Job] = {}
        self._plans: dict[int, RewindPlan] = {}
        self._pending: list[int] = []
        self._busy_targets: set[str] = set()
        self._contexts: dict[int, _JobContext] = {}
        self._subscribers: list[Subscriber] = []
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, name=f"reel-worker-{n}", daemon=True)
            for n in range(max(1, workers))
        ]
        for thread in self._threads:
            thread.start()

    # --- for the faces --------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` for every event from now on; returns an unsubscribe function."""
        with self._cond:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._cond:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def submit(
        self, plan: RewindPlan, *, wait: float | None = None, origin: str | None = None
    ) -> Job:
        """Queue a rewind and return its job at once; ``origin`` says who asked (the API)."""
        fields = {
            "app": plan.app.name,
            "source": plan.source.name,
            "target": plan.app.target,
            "created": time.time(),
            "bytes_total": plan.source.size,
            "kind": plan.kind,
            "origin": origin,
        }
        job_id = self.history.create(fields)
        job = Job(id=job_id, target_key=plan.app.target_key, wait=wait, **fields)
        with self._cond:
            if self._stopping:
                raise RuntimeError("the job queue is shut down")
            self._jobs[job_id] = job
            self._plans[job_id] = plan
            self._pending.append(job_id)
            self._cond.notify_all()
        self._emit(JobEvent("queued", job))
        return job

    def cancel(self, job_id: int) -> bool:
        """Cancel a queued or running job; False if it is unknown or already over."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None or job.state.is_final:
                return False
            if job.state is JobState.QUEUED and job_id in self._pending:
                self._pending.remove(job_id)
                self._plans.pop(job_id, None)
                job.state = JobState.CANCELLED
                job.finished = time.time()
                job.error = "cancelled before it started; nothing was changed"
                job.error_code = "cancelled"
                context = None
            else:
                context = self._contexts.get(job_id)
        if context is None:
            self.history.update(job)
            self._emit(JobEvent("finished", job))
        else:
            context.request_cancel()
        return True

    def jobs(self) -> list[Job]:
        """Jobs of this process, oldest first."""
        with self._cond:
            return list(self._jobs.values())

    def get(self, job_id: int) -> Job | None:
        with self._cond:
            return self._jobs.get(job_id)

    def wait(self, job: Job, timeout: float | None = None) -> bool:
        """Block until the job is final; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not job.state.is_final:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def shutdown(self, cancel: bool = True, timeout: float | None = 30) -> None:
        """Stop the workers, cancelling what is queued or running when ``cancel``."""
        if cancel:
            for job in self.jobs():
                self.cancel(job.id)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        for thread in list(self._maintainers):  # complete now: the workers have stopped
            thread.join(timeout)
        # Its file stays open otherwise: one per queue a long-lived process makes. Whatever
        # still reads it (a thread that outlived the timeout) gets a missed hit, not an error.
        self.cache_index.close()

    def _maintain(self, job: Job, engine: Engine) -> None:
        """After a successful job: the engine's work for afterwards, where it blocks nobody."""
        if self._detach_maintenance:
            try:
                maintain.spawn(engine.app, self.history.log_path(job.id), self.history.state_dir)
            except OSError as exc:
                _logger().warning("job #%s: could not start the background work: %s", job.id, exc)
            return
        thread = threading.Thread(
            target=self._maintain_here, args=(job, engine), name="reel-maintain", daemon=True
        )
        thread.start()  # before it is listed: shutdown() may join the list at any time
        self._maintainers = [t for t in self._maintainers if t.is_alive()] + [thread]

    def _maintain_here(self, job: Job, engine: Engine) -> None:
        writer: LogWriter | None = None
        with contextlib.suppress(OSError):
            writer = self.history.open_log(job.id)

        def log(message: str) -> None:
            line = LogLine(time.time(), message, "info")
            if writer is not None:
                with contextlib.suppress(OSError):
                    writer.write(line)
            job.log.append(line)
            self._emit(JobEvent("log", job, line=line))

        try:
            maintain.run(engine, log)
        finally:
            if writer is not None:
                writer.close()
            self._emit(JobEvent("maintained", job))

    # --- the workers ------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                job_id = self._next_job()
                while job_id is None:
                    if self._stopping:
                        return
                    self._cond.wait(0.5)
                    job_id = self._next_job()
                job = self._jobs[job_id]
                plan = self._plans.pop(job_id)
                self._busy_targets.add(job.target_key)
                context = _JobContext(self, job, plan)
                self._contexts[job_id] = context
            try:
                context.run()
            except Exception:  # run() reports everything it can; a worker must not die
                _logger().exception("job #%s: unexpected error", job_id)
            finally:
                with self._cond:
                    self._busy_targets.discard(job.target_key)
                    self._contexts.pop(job_id, None)
                    self._forget_old_jobs()
                    self._cond.notify_all()

    def _forget_old_jobs(self) -> None:
        """Drop all but the newest ``keep_finished`` finished jobs (caller holds the lock);
        the history has them. A job whose finish is not stamped yet is kept."""
        done = [i for i, job in self._jobs.items() if job.state.is_final and job.finished]
        for job_id in done[: max(0, len(done) - self.keep_finished)]:
            del self._jobs[job_id]

    def _next_job(self) -> int | None:
        """The oldest pending job whose database is free (caller holds the lock)."""
        for job_id in self._pending:
            if self._jobs[job_id].target_key not in self._busy_targets:
                self._pending.remove(job_id)
                return job_id
        return None

    def _emit(self, event: JobEvent) -> None:
        with self._cond:
            subscribers = list(self._subscribers)
            if event.kind == "finished":
                self._cond.notify_all()
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:
                # once, then never again: a broken pipe would otherwise log every event
                _logger().exception("job event subscriber failed; it gets no more events")
                with self._cond:
                    if subscriber in self._subscribers:
                        self._subscribers.remove(subscriber)


def origin_text(origin: str) -> str:
    """``api 10.0.2.2`` as ``the HTTP API (client 10.0.2.2)``; any other origin as it is."""
    kind, _, client = origin.partition(" ")
    return f"the HTTP API (client {client})" if kind == "api" and client else origin


class _JobContext:
    """Runs one job: the engine's view of it (reporting, cancel) and its bookkeeping."""

    def __init__(self, queue: JobQueue, job: Job, plan: RewindPlan) -> None:
        self.queue = queue
        self.job = job
        self.plan = plan
        self.cancel_event = threading.Event()
        self._swap_lock = threading.Lock()
        self._in_swap = False
        self._last_progress = 0.0
        self._last_recorded = time.monotonic()
        self._writer: LogWriter | None = None
        self._writer_lock = threading.Lock()
        self._warned: set[str] = set()
        self._password = plan.app.resolve_password()
        self._before_hooks_ran = False

    def _scrub(self, text: str) -> str:
        """``text`` with the app's password replaced by ``***`` and control characters
        shown as escapes: the one place every log line, detail and error of the job
        passes, so a server message or a dump statement quoted back (which may hold the
        password as data, or escape codes) never carries them into the screen, the
        ``--json`` events, the log file or the history."""
        if self._password and self._password in text:
            text = text.replace(self._password, "***")
        return printable(text)

    def run(self) -> None:
        """Run the job to a final state; never raises, whatever the engine or the disk do."""
        job, queue = self.job, self.queue
        job.state, job.started = JobState.RUNNING, time.time()
        self._writer = self._open_log()
        self._record()
        queue._emit(JobEvent("started", job))
        plan = self.plan
        self.log(f"job #{job.id}: {plan.describe()}")
        if job.origin:  # who asked, in the log a user reads later too
            self.log(f"asked by {origin_text(job.origin)}")
        lock: TargetLock | None = None
        rewound = False
        try:
            self.check_cancelled()
            lock = TargetLock(queue.history.lock_dir, job.target_key)
            if not lock.try_acquire():
                holder = lock.holder()
                self.progress(phase="waiting", detail=f"waiting for {holder}")
                self.log(f"waiting for another rewind of {job.target} ({holder})")
                lock.acquire(job.wait, self.cancel_event)
                self.progress(phase="preparing", detail="")
            plan.engine.cache_index = queue.cache_index
            hooked = plan.kind != "snapshot"  # a snapshot only reads the database
            if hooked:
                self._before_hooks()
            done = plan.run(self)
            rewound = hooked
            job.state = JobState.SUCCEEDED
            job.bytes_read = job.bytes_total
            self.log(done)
            if hooked:
                self._after_hooks()
        except RewindCancelled:
            job.state = JobState.CANCELLED
            job.error = f"cancelled; {job.target} was left as it was"
            job.error_code = "cancelled"
        except RewindError as exc:
            job.state, job.error, job.error_code = JobState.FAILED, str(exc), exc.code
            if rewound:  # an after-hook failed: the rewind itself stands
                job.bytes_read = job.bytes_total
        except Exception as exc:
            import traceback

            job.state = JobState.FAILED
            job.error = f"internal error: {type(exc).__name__}: {exc}"
            job.error_code = "internal"
            self.log(traceback.format_exc().rstrip(), "debug")
        finally:
            if self._before_hooks_ran and not rewound:
                self._failure_hooks()
            job.finished = time.time()  # before the lock goes: the next job starts after it
            job.phase = "done"
            if lock is not None:
                lock.release()
            if job.error:
                job.error = self._scrub(job.error)
                self.log(job.error, "warning" if job.error_code == "cancelled" else "error")
            self.log(f"{job.state.value} in {job.duration:.2f} s")
            self._record()
            with self._writer_lock:
                writer, self._writer = self._writer, None
            if writer is not None:
                writer.close()
            queue._emit(JobEvent("progress", job))
            queue._emit(JobEvent("finished", job))
        if rewound and plan.engine.maintenance_due:
            queue._maintain(job, plan.engine)

    # --- hooks (see reel_tui.hooks) ----------------------------------------------

    def _before_hooks(self) -> None:
        """The app's before-hooks, once the target is known to be reachable; the first
        that fails stops the job before the engine has touched anything."""
        plan = self.plan
        hooks = hooks_of(plan.app, "before")
        if not hooks:
            return
        self.progress(phase="preparing", detail="checking the target")
        plan.engine.check()  # an unreachable target fails here, before the app is stopped
        self._before_hooks_ran = True
        failed = self._run_hooks(hooks)
        if failed is None:
            return
        if failed.stopped == "cancel":
            raise RewindCancelled
        raise RewindError(f"{failed.hook.label} {failed.describe()}: {failed.hook.short_command}; "
                          "the rewind did not start", code="hook")  # fmt: skip

    def _after_hooks(self) -> None:
        """The app's after-hooks; one that fails (or a cancel) stops the rest, and fails the
        job unless ``on_hook_failure = "warn"``. The database stays rewound either way."""
        hooks = hooks_of(self.plan.app, "after")
        if not hooks:
            return
        failed = self._run_hooks(hooks)
        if failed is None:
            return
        rest = len(hooks) - failed.hook.number
        skipped = f" ({rest} later {'hook' if rest == 1 else 'hooks'} not run)" if rest else ""
        what = f"{failed.hook.label} {failed.describe()}: {failed.hook.short_command}{skipped}"
        if failed.stopped == "cancel" or self.plan.app.on_hook_failure == "fail":
            raise RewindError(f"database rewound, after-hook failed: {what}", code="after-hook")
        self.log(f'{what}; the rewind counts as done (on_hook_failure = "warn")', "warning")

    def _failure_hooks(self) -> None:
        """Before-hooks ran but the database was not rewound: the app's after_failed_rewind
        hooks (start again what a before-hook stopped). They run even after a cancel, so
        only their timeout stops them; their failure is a warning, never the job's error."""
        hooks = hooks_of(self.plan.app, "failed")
        if not hooks:
            return
        error = self._scrub(self.job.error or "failed")
        try:
            failed = self._run_hooks(hooks, threading.Event(), error)
        except Exception as exc:  # the job's own outcome is already decided
            self.log(f"after-failed-rewind hooks: {type(exc).__name__}: {exc}", "warning")
            return
        if failed is not None:
            self.log(f"{failed.hook.label} failed; the database was not rewound either way",
                     "warning")  # fmt: skip

    def _run_hooks(
        self, hooks: list[Hook], cancel: threading.Event | None = None, error: str | None = None
    ) -> HookOutcome | None:
        """Run hooks in order; the first that does not succeed, or None."""
        plan, job = self.plan, self.job
        for hook in hooks:
            self.progress(detail=hook.label)
            env = hook_environment(plan.app, plan.source.path, plan.source.name, job.id,
                                   hook.phase, error, job.kind)  # fmt: skip
            outcome = run_hook(hook, env=env, cwd=plan.app.config_dir,
                               timeout=plan.app.hook_timeout, log=self.log,
                               cancel=self.cancel_event if cancel is None else cancel)  # fmt: skip
            if not outcome.ok:
                self.log(f"{hook.label} {outcome.describe()}", "warning")
                return outcome
            self.log(f"{hook.label} done in {outcome.seconds:.2f} s")
        self.progress(detail="")
        return None

    def _open_log(self) -> LogWriter | None:
        try:
            return self.queue.history.open_log(self.job.id)
        except OSError as exc:
            self._warn_once(f"cannot write this job's log file: {exc.strerror}")
            return None

    def _record(self) -> None:
        """Store the job in the history; a full disk or a locked file is a warning only."""
        try:
            self.queue.history.update(self.job)
        except (sqlite3.Error, OSError) as exc:
            self._warn_once(f"cannot record this job in the history: {exc}")

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self.log(message, "warning")

    # --- RewindContext ----------------------------------------------------------

    def log(self, message: str, level: LogLevel = "info") -> None:
        line = LogLine(time.time(), self._scrub(message), level)
        failed: OSError | None = None
        with self._writer_lock:  # a cancel logs from another thread, maybe as the job ends
            if self._writer is not None:
                try:
                    self._writer.write(line)
                except OSError as exc:
                    self._writer, failed = None, exc
        if failed is not None:
            self._warn_once(f"stopped writing this job's log file: {failed.strerror}")
        if level == "debug":
            return
        self.job.log.append(line)
        self.queue._emit(JobEvent("log", self.job, line=line))

    def progress(
        self,
        *,
        phase: Phase | None = None,
        bytes_read: int | None = None,
        statements: int | None = None,
        detail: str | None = None,
    ) -> None:
        job = self.job
        changed = False
        if phase is not None and phase != job.phase:
            job.phase, changed = phase, True
            if phase == "loading" and job.loading_since is None:
                job.loading_since = time.time()
        if detail is not None:
            detail = self._scrub(detail)
        if detail is not None and detail != job.detail:
            job.detail, changed = detail, True
        if bytes_read is not None:
            job.bytes_read = bytes_read
        if statements is not None:
            job.statements = statements
        now = time.monotonic()
        if changed or now - self._last_progress >= PROGRESS_INTERVAL:
            self._last_progress = now
            self.queue._emit(JobEvent("progress", job))
        if now - self._last_recorded >= HISTORY_PROGRESS_INTERVAL:
            self._last_recorded = now
            self._record()  # so other reel processes (a TUI beside cron) see progress

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise RewindCancelled

    @contextmanager
    def swap(self) -> Iterator[None]:
        with self._swap_lock:
            self.check_cancelled()
            self._in_swap = True
        try:
            yield
        finally:
            with self._swap_lock:
                self._in_swap = False

    def request_cancel(self) -> None:
        """Called from any thread: stop at the next check, interrupting the engine."""
        with self._swap_lock:
            if self.job.state.is_final:  # it finished after cancel() found it running
                return
            self.cancel_event.set()
            in_swap = self._in_swap
        if in_swap:
            self.log("cancel requested during the swap: letting the swap finish", "warning")
            return
        self.log("cancel requested", "warning")
        self.plan.engine.interrupt()
