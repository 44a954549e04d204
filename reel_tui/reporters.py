"""How a headless rewind shows its job events: a progress bar, plain lines, or JSON.

All three consume the same :class:`~reel_tui.jobs.JobEvent` stream, called on
the worker's thread; each is safe for that (rich's Progress has its own lock,
the others write whole lines under one). Only the progress bar and coloured
warnings need rich, so only :class:`RichReporter` imports it, and only when a job
shows one: ``-q``, ``--json``, piped runs and a terminal's warm rewind start
without it.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import IO, TYPE_CHECKING, Any

from reel_tui.jobs import Job, JobEvent, JobState

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

_STYLES = {"warning": "yellow", "error": "bold red"}


class Reporter:
    """Base: receives events; ``close`` is called once the job is final."""

    def __call__(self, event: JobEvent) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Finish the display (stop a live progress bar)."""


class JsonReporter(Reporter):
    """One JSON object per line on stdout, the versioned shape in the README."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self._lock = threading.Lock()

    def __call__(self, event: JobEvent) -> None:
        self.emit(event.to_json())

    def emit(self, data: dict[str, Any]) -> None:
        with self._lock:
            self.out.write(json.dumps(data, ensure_ascii=False) + "\n")
            self.out.flush()


class PlainReporter(Reporter):
    """Timestamped lines, for cron and pipes; progress every 10 % of the dump."""

    def __init__(self, out: IO[str] | None = None, quiet: bool = False) -> None:
        self.out = out or sys.stdout
        self.quiet = quiet
        self._lock = threading.Lock()
        self._next_step = 0.1

    def __call__(self, event: JobEvent) -> None:
        job = event.job
        if event.kind == "log" and event.line is not None:
            if self.quiet and event.line.level != "error":
                return
            self.write(event.line.format())
        elif (
            event.kind == "progress"
            and not self.quiet
            and job.state is JobState.RUNNING
            and job.fraction >= self._next_step
        ):
            self._next_step = (int(job.fraction * 10) + 1) / 10
            stamp = time.strftime("%H:%M:%S")
            statements = f", {job.statements:,} statements" if job.statements else ""
            self.write(
                f"{stamp}  {job.fraction:4.0%} {human_size(job.bytes_read)} of "
                f"{human_size(job.bytes_total)}{statements}"
            )

    def write(self, text: str) -> None:
        with self._lock:
            self.out.write(text + "\n")
            self.out.flush()


class RichReporter(Reporter):
    """For a terminal: log lines as they come, and rich's live progress bar (bytes, rate,
    ETA, phase) once the job reads a dump or has run for a moment.

    rich is imported only then, or for a warning's colour: importing it takes about
    0.05 s, longer than a whole warm rewind's job, which shows no bar anyway.
    """

    BAR_AFTER = 0.3
    """Seconds a job runs before it gets a bar even if it reads no dump (a clone, a swap)."""

    def __init__(self, quiet: bool = False, out: IO[str] | None = None) -> None:
        self.quiet = quiet
        self.out = out or sys.stdout
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._console: Console | None = None
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._timer: threading.Timer | None = None

    def __call__(self, event: JobEvent) -> None:
        job = event.job
        if event.kind == "started":
            self._started = time.monotonic()
            if not self.quiet:  # a wait or a clone sends no progress for a while
                self._timer = threading.Timer(self.BAR_AFTER, self._show_progress, (job,))
                self._timer.daemon = True
                self._timer.start()
        elif event.kind == "progress" and not self.quiet and job.state is JobState.RUNNING:
            self._show_progress(job)
        elif event.kind == "log" and event.line is not None:
            line = event.line
            if self.quiet and line.level != "error":
                return
            style = _STYLES.get(line.level)
            with self._lock:
                if style is None and self._progress is None:
                    self.out.write(line.format() + "\n")
                    self.out.flush()
                    return
                console = self._rich_console()
            console.print(line.format(), style=style, highlight=False, markup=False)

    def _show_progress(self, job: Job) -> None:
        with self._lock:
            if job.state is not JobState.RUNNING:
                return
            if self._progress is None:
                if not job.bytes_read and time.monotonic() - self._started < self.BAR_AFTER:
                    return
                self._start_bar(job)
            progress, task = self._progress, self._task
        assert progress is not None and task is not None
        progress.update(task, completed=job.bytes_read, phase=job.phase, detail=job.detail)

    def _rich_console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.out, emoji=False)  # ":smile:" in a name stays
        return self._console

    def _start_bar(self, job: Job) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.fields[phase]:<10}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[detail]}"),
            console=self._rich_console(),
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            job.source, total=job.bytes_total or None, phase=job.phase, detail=job.detail
        )

    def close(self) -> None:
        with self._lock:
            progress, timer = self._progress, self._timer
        if timer is not None:
            timer.cancel()
        if progress is not None:
            progress.stop()


def human_size(count: int) -> str:
    """``12.3 MB``: sizes as users read them."""
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
