"""Timing one child process: wall-clock seconds and its peak RSS.

The peak RSS comes from GNU ``/usr/bin/time -f %M`` wrapped around the
command: the largest resident set of the command or of any child it waited
for (the largest single process, not a sum). ``ru_maxrss`` of a child the
harness forks itself is useless here: Linux carries the forking process's
peak over an ``exec``, so every child would report the harness's own ~50 MB.
Without /usr/bin/time, that is the fallback, and the figure is then only an
upper bound (marked by ``rss_exact = False``). Output goes to temporary files,
so a chatty child never blocks on a full pipe.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

GNU_TIME = "/usr/bin/time"


@dataclass(frozen=True)
class Sample:
    seconds: float
    max_rss_kb: int
    rss_exact: bool = True


class ChildFailed(RuntimeError):
    """The timed command exited non-zero; the message has the end of its output."""


def timed(argv: list[str], env: dict[str, str], stdin: Path | None = None) -> Sample:
    """Run ``argv`` (stdin from a file, or none) and measure it; raise ChildFailed on error."""
    exact = os.access(GNU_TIME, os.X_OK)
    with (
        tempfile.TemporaryFile() as out,
        tempfile.NamedTemporaryFile("r") as rss,
        open(stdin, "rb") if stdin else open(os.devnull, "rb") as source,
    ):
        command = [GNU_TIME, "-f", "%M", "-o", rss.name, *argv] if exact else argv
        start = time.perf_counter()
        proc = subprocess.Popen(
            command, stdin=source, stdout=out, stderr=subprocess.STDOUT, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        if proc.returncode != 0:
            out.seek(0)
            tail = out.read().decode(errors="replace")[-3000:]
            raise ChildFailed(f"`{' '.join(argv)}` exited with {proc.returncode}:\n{tail}")
        peak = int(rss.read().strip().splitlines()[-1]) if exact else int(usage.ru_maxrss)
    return Sample(seconds, peak, exact)
