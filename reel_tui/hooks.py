"""Per-app hooks: shell commands run before and after a rewind, inside its job.

A hook is one command of an app's ``before_rewind`` or ``after_rewind`` list, run
by the job's worker under the target's lock, so two rewinds of one database
never interleave their hooks. Each hook:

* runs as ``/bin/sh -c COMMAND`` in the config file's folder with stdin on
  ``/dev/null`` (nobody is there to answer a prompt) in a session of its own: a
  Ctrl-C on the terminal reaches reel, which stops the hook itself, and stopping
  its process group stops whatever it started too;
* gets the user's environment plus ``REEL_*`` variables describing the rewind,
  never the database password (:func:`hook_environment`);
* has its output (stdout and stderr as one stream) logged line by line as it
  comes, each line cut at :data:`MAX_LINE_CHARS` and at most :data:`MAX_LINES` /
  :data:`MAX_OUTPUT_BYTES` per hook, so a chatty migration cannot flood the log;
* is stopped after the app's ``hook_timeout`` or on a cancel: SIGTERM to its
  process group, SIGKILL after :data:`KILL_GRACE` seconds if anything is left.

What a failure means for the rewind is the job's business (:mod:`reel_tui.jobqueue`).
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reel_tui.config import DEFAULT_PORTS, AppConfig
from reel_tui.engines.base import LogLevel

HookPhase = Literal["before", "after", "failed"]
_LABELS: dict[HookPhase, str] = {"before": "before-rewind hook", "after": "after-rewind hook",
                                 "failed": "after-failed-rewind hook"}  # fmt: skip
Log = Callable[[str, LogLevel], None]

KILL_GRACE = 3.0
"""Seconds a stopped hook's process group gets between SIGTERM and SIGKILL."""
POLL = 0.05
"""How often a running hook is checked for its timeout and a cancel, in seconds."""
DRAIN_AFTER_EXIT = 0.5
"""Output still read after the hook's shell exited: a process it left running in the
background may hold the pipe open for ever, and must not hold the job too."""
MAX_LINE_CHARS = 1000
MAX_LINES = 2000
MAX_OUTPUT_BYTES = 1024 * 1024
_READ = 64 * 1024
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)?|\x1b.")
"""ANSI colour and cursor sequences, as coloured migration tools print them."""


@dataclass(frozen=True)
class Hook:
    """One command of an app's hook list."""

    phase: HookPhase
    number: int
    count: int
    command: str

    @property
    def label(self) -> str:
        """``after-rewind hook 2/3``: how logs and errors name it."""
        numbering = f" {self.number}/{self.count}" if self.count > 1 else ""
        return f"{_LABELS[self.phase]}{numbering}"

    @property
    def tag(self) -> str:
        """The short prefix of the hook's output lines."""
        return f"{self.phase} {self.number}" if self.count > 1 else self.phase

    @property
    def short_command(self) -> str:
        """The command on one line and at most 80 characters, for error messages."""
        flat = " ".join(self.command.split())
        return flat if len(flat) <= 80 else flat[:79] + "…"


def hooks_of(app: AppConfig, phase: HookPhase) -> list[Hook]:
    commands = {"before": app.before_rewind, "after": app.after_rewind,
                "failed": app.after_failed_rewind}[phase]  # fmt: skip
    return [Hook(phase, n, len(commands), c) for n, c in enumerate(commands, start=1)]


@dataclass(frozen=True)
class HookOutcome:
    """How one hook ended."""

    hook: Hook
    seconds: float
    status: int | None = None
    """Exit status, or None when it did not exit by itself."""
    stopped: Literal["timeout", "cancel"] | None = None
    killed_by: str | None = None
    """The signal that ended it (its own crash, or ours when ``stopped``)."""
    start_error: str | None = None
    """Why it could not even start (no such folder, no /bin/sh)."""

    @property
    def ok(self) -> bool:
        return self.status == 0 and self.stopped is None and self.start_error is None

    def describe(self) -> str:
        """What happened, for the log and the job's error: ``exited with status 3 after
        0.05 s``, ``timed out after 5 s (stopped with SIGTERM)``, …"""
        took = f"{self.seconds:.2f} s"
        if self.start_error is not None:
            return f"could not start: {self.start_error}"
        if self.stopped == "timeout":
            return f"timed out after {took} (stopped with {self.killed_by})"
        if self.stopped == "cancel":
            return f"cancelled after {took} (stopped with {self.killed_by})"
        if self.killed_by is not None:
            return f"killed by {self.killed_by} after {took}"
        return f"exited with status {self.status} after {took}"


def hook_environment(
    app: AppConfig,
    source: Path,
    source_name: str,
    job_id: int,
    phase: HookPhase,
    error: str | None = None,
    job_kind: str = "rewind",
) -> dict[str, str]:
    """The user's environment plus what a hook needs to know about the rewind.

    Never the password: reel adds none (a hook that needs one reads it where the
    application does: its own variable, ~/.pgpass, ~/.my.cnf). A password the user
    keeps in an environment variable is inherited like every other variable.
    """
    env = dict(os.environ)
    env.update(
        REEL_APP=app.name,
        REEL_DRIVER=app.driver,
        REEL_DATABASE=app.database,
        REEL_TARGET=app.target,
        REEL_SOURCE=str(source),
        REEL_SOURCE_NAME=source_name,
        REEL_JOB_ID=str(job_id),
        REEL_JOB_KIND=job_kind,
        REEL_PHASE=phase,
    )
    if app.driver != "sqlite":
        env["REEL_SERVER"] = app.server or "localhost"
        env["REEL_PORT"] = str(app.port or DEFAULT_PORTS[app.driver])
    if app.user:
        env["REEL_USER"] = app.user
    if error is not None:
        env["REEL_ERROR"] = error
    return env


def run_hook(
    hook: Hook,
    *,
    env: dict[str, str],
    cwd: Path | None,
    timeout: float,
    log: Log,
    cancel: threading.Event,
) -> HookOutcome:
    """Run one hook to its end, its timeout or a cancel; log its output as it comes."""
    log(f"{hook.label}: {printable(hook.command.replace(chr(10), ' ↵ '))}", "info")
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            ["/bin/sh", "-c", hook.command],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return HookOutcome(hook, 0.0, start_error=f"{exc.strerror}: {exc.filename or '/bin/sh'}")
    output = _OutputLog(hook, log)
    stopped: Literal["timeout", "cancel"] | None = None
    by: str | None = None
    assert process.stdout is not None
    try:
        stopped = _follow(process, output, started + timeout, cancel)
    finally:  # the time it ran, not counting how long it took to stop
        seconds = time.monotonic() - started
        if process.poll() is None or stopped is not None:
            by = stop_group(process)
        _drain(process.stdout.fileno(), output)
        process.stdout.close()
        output.close()
    status = process.returncode
    if stopped is not None:
        return HookOutcome(hook, seconds, stopped=stopped, killed_by=by)
    if status < 0:
        return HookOutcome(hook, seconds, killed_by=_signal_name(-status))
    return HookOutcome(hook, seconds, status=status)


def _follow(
    process: subprocess.Popen[bytes],
    output: _OutputLog,
    deadline: float,
    cancel: threading.Event,
) -> Literal["timeout", "cancel"] | None:
    """Log the hook's output until it exits (None), times out or is cancelled."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    os.set_blocking(fd, False)
    exited_at: float | None = None
    open_pipe = True
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            if process.poll() is not None:
                exited_at = exited_at or now
                if not open_pipe or now - exited_at >= DRAIN_AFTER_EXIT:
                    return None
            elif cancel.is_set():
                return "cancel"
            elif now >= deadline:
                return "timeout"
            if not open_pipe:
                time.sleep(POLL)
                continue
            for _ in selector.select(min(POLL, max(deadline - now, 0.0))):
                chunk = _read(fd)
                if chunk == b"":
                    open_pipe = False
                    selector.unregister(fd)
                elif chunk is not None:
                    output.feed(chunk)


def _read(fd: int) -> bytes | None:
    """A chunk of output; b"" at its end; None when nothing is there yet."""
    try:
        return os.read(fd, _READ)
    except BlockingIOError:
        return None


def _drain(fd: int, output: _OutputLog) -> None:
    """What is already in the pipe, without waiting for more."""
    for _ in range(64):
        chunk = _read(fd)
        if not chunk:
            return
        output.feed(chunk)


def stop_group(process: subprocess.Popen[bytes]) -> str:
    """End the hook's whole process group: SIGTERM, then SIGKILL after the grace time.
    Returns the signal that did it. The shell is reaped; orphans are the system's."""
    group = process.pid  # its own session: the group id is the shell's pid
    _signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE
    while time.monotonic() < deadline:
        if process.poll() is not None and not group_alive(group):
            return "SIGTERM"
        time.sleep(0.02)
    _signal_group(group, signal.SIGKILL)
    process.wait(5)
    deadline = time.monotonic() + 1.0
    while group_alive(group) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "SIGKILL"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _signal_group(group: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signum)


def group_alive(group: int) -> bool:
    """Whether any process of the group still runs. Zombies do not count: an orphan
    waits for whoever adopted it to reap it, which some containers' init never does."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) "
        if len(fields) > 2 and fields[2] == str(group) and fields[0] not in ("Z", "X"):
            return True
    return False


class _OutputLog:
    """Turns the hook's byte stream into bounded, printable log lines."""

    def __init__(self, hook: Hook, log: Log) -> None:
        self.hook = hook
        self.log = log
        self.pending = b""
        self.cut = False
        self.lines = 0
        self.bytes = 0
        self.dropped_lines = 0
        self.dropped_bytes = 0

    def feed(self, chunk: bytes) -> None:
        self.pending += chunk
        *complete, self.pending = self.pending.split(b"\n")
        for line in complete:
            if self.cut:  # the end of a line whose start is logged already
                self.cut = False
                continue
            self.emit(line)
        if len(self.pending) > MAX_LINE_CHARS * 4:  # a long line: log its start, skip the rest
            if not self.cut:
                self.emit(self.pending)
            self.cut = True
            self.pending = b""

    def close(self) -> None:
        if self.pending and not self.cut:
            self.emit(self.pending)
            self.pending = b""
        if self.dropped_lines:
            self.log(f"{self.hook.tag} | … {self.dropped_lines:,} more lines "
                     f"({self.dropped_bytes:,} bytes) of output not logged", "warning")  # fmt: skip

    def emit(self, raw: bytes) -> None:
        if self.lines >= MAX_LINES or self.bytes + len(raw) > MAX_OUTPUT_BYTES:
            self.dropped_lines += 1
            self.dropped_bytes += len(raw)
            return
        self.lines += 1
        self.bytes += len(raw)
        self.log(f"{self.hook.tag} | {printable(raw.decode('utf-8', 'replace'))}", "info")


def printable(text: str) -> str:
    """A line of output as a log line: colour codes and control characters gone, cut at
    :data:`MAX_LINE_CHARS` (a line is also cut when its start has been logged
    without its end, past four times that many bytes)."""
    text = _ESCAPES.sub("", text.rstrip("\r"))
    text = text.replace("\t", "    ").replace("\r", " ")
    if not text.isprintable():
        text = "".join(c if c.isprintable() else "?" for c in text)
    if len(text) > MAX_LINE_CHARS:
        text = f"{text[:MAX_LINE_CHARS]}… (line cut at {MAX_LINE_CHARS} characters)"
    return text
