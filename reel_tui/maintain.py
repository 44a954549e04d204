"""Work a rewind leaves for afterwards, done where it blocks nobody.

After a warm or cold rewind an engine may have work left that the user
should not wait for: dropping the content the swap replaced, preparing the
next spare copy so the rewind after this one is a rename again, evicting
copies over the app's limits. The TUI does it on a thread (its job log shows
when the spare is ready); a headless run hands it to a detached process, so
``reel-tui --rewind`` exits as soon as the target holds the new state.

The detached process gets the app's settings through a pipe on its standard
input, never on its command line (argv is world-readable; the settings may
hold a password), and appends what it does to the job's log file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reel_tui.config import AppConfig
from reel_tui.engines.base import Engine, RewindError
from reel_tui.jobs import LogLine, printable


def run(engine: Engine, log: Callable[[str], None]) -> None:
    """Run the engine's maintenance, reporting failures in the log instead of raising:
    what is not done now is done by the next rewind or the next maintenance. Every line
    goes through :func:`~reel_tui.jobs.printable`, as a job's own lines do."""

    def say(message: str) -> None:
        log(printable(message))

    started = time.monotonic()
    try:
        engine.maintain(say)
    except RewindError as exc:
        say(f"background work stopped: {exc}; the next rewind picks it up")
    except Exception as exc:  # a detached process has nobody else to tell
        say(f"background work failed: {type(exc).__name__}: {exc}")
    else:
        say(f"background work done in {time.monotonic() - started:.2f} s")


def spawn(app: AppConfig, log_path: Path, state_dir: Path) -> None:
    """Start ``python -m reel_tui.maintain`` for ``app``, detached from this process."""
    fields = {f.name: getattr(app, f.name) for f in dataclasses.fields(app)}
    order = {"app": {k: str(v) if isinstance(v, Path) else v for k, v in fields.items()},
             "log": str(log_path), "state_dir": str(state_dir)}  # fmt: skip
    child = subprocess.Popen(
        [sys.executable, "-m", "reel_tui.maintain"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C or SIGHUP meant for the terminal's job spares it
        close_fds=True,
    )
    assert child.stdin is not None
    with child.stdin:
        child.stdin.write(json.dumps(order).encode())


def _app_from(fields: dict[str, Any]) -> AppConfig:
    for key in ("source", "sources_dir"):
        if fields.get(key) is not None:
            fields[key] = Path(fields[key])
    return AppConfig(**fields)


def main() -> int:
    from reel_tui.cache import CacheIndex
    from reel_tui.engines import engine_for
    from reel_tui.history import LogWriter

    order = json.loads(sys.stdin.read())
    app = _app_from(order["app"])
    writer = LogWriter(Path(order["log"]))

    def log(message: str) -> None:
        writer.write(LogLine(time.time(), f"[background pid {os.getpid()}] {message}", "info"))

    # at once: a MySQL copy of a big dump is a load of seconds before its first result, and
    # who reads the job's log (a person, the benchmark) should know work is under way
    log("background work started")
    engine = engine_for(app)
    engine.cache_index = CacheIndex(Path(order["state_dir"]))
    try:
        run(engine, log)
    finally:
        writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
