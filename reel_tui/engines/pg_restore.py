"""Custom, directory and tar pg_dump archives, loaded by ``pg_restore`` into staging.

Only pg_restore reads those formats, so reel runs it as a child process: the
password goes through the child's environment (``PGPASSWORD``), never its
command line, where any user of the machine could read it. Its verbose output
becomes the job's log (phases and tables); a cancel terminates it.
:class:`ArchiveScript` instead turns an archive into plain SQL for reel's own
loader, when the load must run in reel's transaction (in place).
"""

from __future__ import annotations

import glob
import io
import os
import queue
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from reel_tui.config import AppConfig
from reel_tui.dumpfile import DumpError
from reel_tui.engines.base import RewindContext, RewindError
from reel_tui.engines.pg_conn import APPLICATION_NAME, connect_params, scrub
from reel_tui.sources import Source

_PROCESSING = re.compile(r'processing data for table "(.+)"')
_CREATING = re.compile(r"creating (INDEX|CONSTRAINT|FK CONSTRAINT|TRIGGER|TABLE|SCHEMA) ")
_ERROR = re.compile(r"pg_restore: error: (.*)")


def find_pg_restore() -> str | None:
    """pg_restore on PATH, else the newest in Debian's /usr/lib/postgresql/*/bin."""
    found = shutil.which("pg_restore")
    if found:
        return found
    candidates = glob.glob("/usr/lib/postgresql/*/bin/pg_restore")
    candidates.sort(key=lambda p: int(Path(p).parent.parent.name), reverse=True)
    return candidates[0] if candidates else None


def conninfo(app: AppConfig, dbname: str) -> str:
    """A libpq connection string without the password."""
    params = connect_params(app, dbname)
    params.pop("password", None)
    params["application_name"] = APPLICATION_NAME
    return " ".join(f"{key}='{_escape(str(value))}'" for key, value in params.items())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


class ArchiveRestore:
    """One pg_restore run into ``dbname``; ``terminate()`` may be called from any thread."""

    def __init__(self, app: AppConfig, source: Source, dbname: str, ctx: RewindContext) -> None:
        self.app = app
        self.source = source
        self.dbname = dbname
        self.ctx = ctx
        self.process: subprocess.Popen[str] | None = None

    def command(self, tool: str) -> list[str]:
        command = [
            tool,
            "--verbose",
            "--no-password",
            f"--dbname={conninfo(self.app, self.dbname)}",
        ]
        if self.app.on_error == "stop":
            command.append("--exit-on-error")
        if self.app.skip_owner:
            command.append("--no-owner")
        if self.app.skip_privileges:
            command.append("--no-privileges")
        return [*command, str(self.source.path)]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        password = self.app.resolve_password()
        if password:
            env["PGPASSWORD"] = password
        return env

    def run(self) -> None:
        tool = find_pg_restore()
        if tool is None:
            raise RewindError(_missing_tool(self.source))
        self.ctx.log(f"loading {self.source.path} ({self.source.format.describe()}) with {tool}")
        self.process = subprocess.Popen(
            self.command(tool), env=self.environment(), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace",
        )  # fmt: skip
        errors = self.follow(self.process)
        code = self.process.wait()
        self.ctx.check_cancelled()
        if code != 0 and self.app.on_error == "stop":
            detail = errors[0] if errors else f"pg_restore exited with code {code}"
            raise RewindError(f"{self.source.path}: {scrub(self.app, detail)}")
        if errors:
            self.ctx.log(f"{len(errors)} errors ignored by pg_restore (on_error = \"continue\")",
                         "warning")  # fmt: skip
        self.ctx.progress(bytes_read=self.source.size)

    def follow(self, process: subprocess.Popen[str]) -> list[str]:
        """Log pg_restore's output as it comes, checking for a cancel in between."""
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(process, lines.put), daemon=True)
        reader.start()
        errors: list[str] = []
        while True:
            try:
                line = lines.get(timeout=0.1)
            except queue.Empty:
                self.cancel_if_asked()
                continue
            if line is None:
                return errors
            self.cancel_if_asked()
            self.note(line.rstrip(), errors)

    def cancel_if_asked(self) -> None:
        try:
            self.ctx.check_cancelled()
        except BaseException:
            self.terminate()
            raise

    def note(self, line: str, errors: list[str]) -> None:
        error = _ERROR.match(line)
        if error:
            errors.append(error.group(1))
            level = "error" if self.app.on_error == "stop" else "warning"
            self.ctx.log(scrub(self.app, line), level)
            return
        table = _PROCESSING.search(line)
        if table:
            self.ctx.log(f"data: {table.group(1)}")
            self.ctx.progress(detail=f"data: {table.group(1)}")
            return
        creating = _CREATING.search(line)
        if creating:
            kind = creating.group(1)
            phase = "schema" if kind in ("TABLE", "SCHEMA") else "indexes and constraints"
            self.ctx.progress(detail=phase)

    def terminate(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()


def _pump(process: subprocess.Popen[str], put: Callable[[str | None], None]) -> None:
    assert process.stderr is not None
    for line in process.stderr:
        put(line)
    put(None)


class ArchiveScript:
    """The plain SQL of an archive, streamed from ``pg_restore -f -`` (no connection, no
    password): how an in-place rewind, which must load in its own transaction, reads archives.

    A :class:`~reel_tui.engines.pg_loader.LineSource`: ``bytes_read`` is how much of the
    archive pg_restore has read (from ``/proc``), so progress is measured in the file's bytes.
    """

    def __init__(self, source: Source) -> None:
        self.source = source
        self.line_number = 0
        self.process: subprocess.Popen[str] | None = None
        self._errors: list[str] = []
        self._lines: io.TextIOWrapper | None = None
        self._stderr: threading.Thread | None = None

    def __enter__(self) -> ArchiveScript:
        tool = find_pg_restore()
        if tool is None:
            raise RewindError(_missing_tool(self.source))
        self.process = subprocess.Popen(
            [tool, "--file=-", str(self.source.path)], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
        )  # fmt: skip
        assert self.process.stdout is not None
        # the SQL as written: no newline translation (a \r inside a string stays a \r)
        self._lines = io.TextIOWrapper(self.process.stdout.buffer, encoding="utf-8", newline="")
        self._stderr = threading.Thread(
            target=_pump, args=(self.process, self._note_error), daemon=True
        )
        self._stderr.start()
        return self

    def _note_error(self, line: str | None) -> None:
        if line:
            self._errors.append(line.strip())

    @property
    def bytes_read(self) -> int:
        process = self.process
        if process is None:
            return 0
        try:
            io = Path(f"/proc/{process.pid}/io").read_text()
            read = int(io.split("rchar:", 1)[1].split()[0])
        except (OSError, IndexError, ValueError):
            return 0
        return min(read, max(self.source.size - 1, 0))

    def __iter__(self) -> Iterator[str]:
        assert self.process is not None and self._lines is not None
        for line in self._lines:
            self.line_number += 1
            yield line
        if self.process.wait() != 0:
            if self._stderr is not None:
                self._stderr.join(5)  # its message may still be on the way
            detail = self._errors[0] if self._errors else f"exit code {self.process.returncode}"
            raise DumpError(f"{self.source.path}: pg_restore could not read it: {detail}")

    def __exit__(self, *exc_info: object) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        if self._lines is not None:
            self._lines.close()


LIST_TIMEOUT = 120
"""Seconds ``pg_restore --list`` may take: it reads only the archive's table of contents."""


def check_archive(source: Source) -> int:
    """The number of objects in the archive's table of contents, checked before anything
    is dropped: pg_restore restores an archive whose TOC is empty (a zeroed or cut-short
    file, "TOC Entries: 0") without an error, which would swap in an empty database.

    Raises:
        RewindError: pg_restore is missing, cannot read the archive, or it holds nothing.
    """
    if source.format.compression != "none":
        raise RewindError(f"{source.path} is a {source.format.describe()}: pg_restore cannot "
                          "read a compressed archive; decompress it first")  # fmt: skip
    tool = find_pg_restore()
    if tool is None:
        raise RewindError(_missing_tool(source))
    try:
        listed = subprocess.run(
            [tool, "--list", str(source.path)], stdin=subprocess.DEVNULL, capture_output=True,
            text=True, errors="replace", timeout=LIST_TIMEOUT,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise RewindError(
            f"{source.path}: pg_restore --list did not finish in "
            f"{LIST_TIMEOUT} s; is the archive on a stalled file system?"
        ) from None
    if listed.returncode != 0:
        errors = [m.group(1) for m in map(_ERROR.match, listed.stderr.splitlines()) if m]
        detail = errors[0] if errors else f"exit code {listed.returncode}"
        raise RewindError(f"{source.path}: pg_restore could not read it: {detail}")
    entries = sum(1 for line in listed.stdout.splitlines() if line.strip()
                  and not line.startswith(";"))  # fmt: skip
    if entries == 0:
        raise RewindError(f"{source.path}: the archive lists no objects (TOC Entries: 0): "
                          "not a complete pg_dump archive; nothing was changed")  # fmt: skip
    return entries


def _missing_tool(source: Source) -> str:
    return (
        f"{source.path} is a {source.format.describe()}: loading it needs pg_restore, "
        "which is not installed (apt-get install postgresql-client)"
    )
