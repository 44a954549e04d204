"""Loading a plain pg_dump script into a connection, streaming, without psql.

Statements go to the server in batches of about :data:`BATCH_BYTES` (one
round trip and one implicit transaction each), single-row INSERTs folded into
multi-row ones (:mod:`reel_tui.engines.pg_inserts`), which makes ``--inserts``
dumps fast. A batch that fails is rolled back by the server as a whole and
replayed statement by statement, so the error names the exact line, and so
``on_error = "continue"`` can log each failing statement and go on, as psql
does. ``COPY … FROM stdin`` data is streamed to ``copy_expert`` from the
dump, chunk by chunk, checking for a cancel between chunks; from a plain file
it is read as bytes and never decoded (:class:`~reel_tui.dumpfile.ByteTail`).
"""

from __future__ import annotations

import contextlib
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import psycopg2

from reel_tui.dumpfile import DumpError, DumpReader
from reel_tui.engines.base import RewindCancelled, RewindContext, RewindError
from reel_tui.engines.pg_conn import Connection
from reel_tui.engines.pg_filter import (
    REASONS,
    StatementFilter,
    TransactionControl,
    UnsupportedEncoding,
)
from reel_tui.engines.pg_inserts import Batch
from reel_tui.engines.pg_script import MetaCommand, ScriptError, ScriptSplitter, Statement

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from reel_tui.config import AppConfig
    from reel_tui.sources import Source

BATCH_BYTES = 256 * 1024
COPY_CHUNK = 256 * 1024
"""Bytes of COPY data handed to the server per read; a cancel is checked between chunks."""
SKIPPED_META = frozenset({"connect", "c", "restrict", "unrestrict"})
_TABLE = r'((?:"(?:[^"]|"")*"|[^\s("])+)'
_COPY = re.compile(rf"COPY\s+{_TABLE}", re.I)
_INSERT = re.compile(rf"INSERT\s+INTO\s+{_TABLE}", re.I)
_POST_DATA = re.compile(
    r"(?:CREATE\s+(?:UNIQUE\s+)?INDEX|CREATE\s+(?:CONSTRAINT\s+)?TRIGGER|CREATE\s+RULE|"
    r"ALTER\s+TABLE\b.*\bADD\s+CONSTRAINT|REFRESH\s+MATERIALIZED)\b",
    re.I | re.S,
)
_DUMPED_FROM = re.compile(r"-- Dumped from database version (\d+)[.\d]*")
_COPY_LINE = re.compile(r"COPY [^,]+, line (\d+)")


def _outcome(run: Callable[[], None]) -> BaseException | None:
    """What ``run`` raised, or None."""
    try:
        run()
    except BaseException as exc:  # handed to the loader's thread, which decides
        return exc
    return None


class _InFlight:
    """A batch running on a thread of its own while the loader reads on."""

    def __init__(self, batch: list[Statement], run: Callable[[], None]) -> None:
        self.batch = batch
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(run,), name="reel-pg-batch",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def _run(self, run: Callable[[], None]) -> None:
        self._error = _outcome(run)

    def wait(self) -> BaseException | None:
        """Wait for the batch; what it raised, or None."""
        self._thread.join()
        return self._error


class LineSource(Protocol):
    """Lines of a SQL script with where they are: a :class:`DumpReader`, or pg_restore's output."""

    line_number: int

    @property
    def bytes_read(self) -> int: ...

    def __iter__(self) -> Iterator[str]: ...

    def __enter__(self) -> LineSource: ...

    def __exit__(self, *exc_info: object) -> None: ...


@dataclass
class LoadResult:
    """What a load did: for the log and for tests."""

    statements: int = 0
    errors: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    dump_server: str | None = None
    """The server version the dump was made from, from its header."""


class ScriptLoader:
    """Runs one plain SQL dump into ``conn`` (autocommit, UTF-8)."""

    def __init__(
        self,
        app: AppConfig,
        source: Source,
        conn: Connection,
        ctx: RewindContext,
        script: LineSource | None = None,
    ) -> None:
        """``script`` defaults to the source file itself, read by :class:`DumpReader`."""
        self.app = app
        self.script = script
        self.source = source
        self.conn = conn
        self.ctx = ctx
        self.filter = StatementFilter.for_app(app)
        self.keep_going = app.on_error == "continue"
        self.transactional = not conn.autocommit
        """In place, the whole load is one transaction: a failed batch is undone to a savepoint."""
        self.result = LoadResult()
        self.batch = Batch()
        self.in_flight: _InFlight | None = None
        self.phase = ""
        self.table: str | None = None
        self.rows = 0
        self.reader: LineSource | None = None

    def run(self) -> LoadResult:
        ctx = self.ctx
        ctx.log(f"loading {self.source.path} ({self.source.format.describe()})")
        self.enter_phase("schema")
        try:
            script = self.script or DumpReader(self.source.path, self.source.format)
            with script as reader, contextlib.ExitStack() as stack:
                stack.callback(self.abandon)
                self.reader = reader
                # a DumpReader, not pg_restore's output
                bulk = getattr(reader, "read_lines", None)
                tail = getattr(reader, "byte_tail", None)
                splitter = ScriptSplitter(self.watch_header(reader), bulk, tail)
                for item in splitter:
                    if isinstance(item, MetaCommand):
                        self.meta(item)
                    elif item.copy_from_stdin:
                        self.copy(item, splitter)
                    else:
                        self.add(item)
                        if self.batch.head is not None:
                            self.add_rows(splitter)
                self.finish()
        except (DumpError, ScriptError) as exc:
            prefix = f"{self.where(exc.line)}: " if isinstance(exc, ScriptError) else ""
            raise RewindError(prefix + str(exc)) from None
        self.note_table(None)
        if self.result.statements == 0:
            raise RewindError(f"{self.source.path}: the dump holds no SQL statements")
        for reason, count in self.result.skipped.items():
            ctx.log(f"skipped {count:,} {REASONS[reason]}")
        if self.result.errors:
            ctx.log(f"{self.result.errors:,} statements failed and were skipped "
                    "(on_error = \"continue\")", "warning")  # fmt: skip
        ctx.log(f"loaded {self.result.statements:,} statements")
        return self.result

    def where(self, line: int) -> str:
        """``file:line`` for messages; for an archive, the line of the SQL pg_restore wrote."""
        if self.script is not None:
            return f"{self.source.path} (SQL line {line})"
        return f"{self.source.path}:{line}"

    def watch_header(self, reader: LineSource) -> Iterator[str]:
        """The reader's lines; the first ones are searched for the server that made the dump."""
        for line in reader:
            if reader.line_number <= 20 and line.startswith("-- Dumped from"):
                match = _DUMPED_FROM.match(line)
                if match:
                    self.result.dump_server = line.split("version", 1)[1].strip()
            yield line

    # --- statements -----------------------------------------------------------------

    def meta(self, command: MetaCommand) -> None:
        if command.name not in SKIPPED_META:
            raise RewindError(
                f"{self.where(command.line)}: psql meta-command \\{command.name} is not "
                "supported (only \\connect, \\restrict and \\unrestrict, which are skipped)"
            )
        if command.name in ("connect", "c"):
            self.ctx.log(f"skipped \\connect {command.argument}: loading into the app's database")

    def add(self, statement: Statement) -> None:
        text = statement.text
        try:
            reason = self.filter.skip(text)
        except UnsupportedEncoding as exc:
            raise RewindError(
                f"{self.where(statement.line)}: the dump's client_encoding is {exc}; "
                "reel-tui loads UTF-8 dumps only (re-dump with pg_dump -E UTF8)"
            ) from None
        except TransactionControl:
            raise RewindError(
                f"{self.where(statement.line)}: the dump's own transaction control is not "
                f"supported: {first_line(text)} (reel-tui loads the dump in a transaction of "
                "its own; remove the statement from the dump)"
            ) from None
        if reason is not None:
            self.result.skipped[reason] = self.result.skipped.get(reason, 0) + 1
            return
        insert = _INSERT.match(text) if text[:6].upper() == "INSERT" else None
        if insert:
            self.enter_phase("data")
            self.note_table(insert.group(1))
            self.rows += text.count("\n\t(") or 1  # pg_dump --rows-per-insert: a row per line
        elif self.phase == "data" and _POST_DATA.match(text):
            self.note_table(None)
            self.enter_phase("indexes and constraints")
        self.send(statement)

    def add_rows(self, splitter: ScriptSplitter) -> None:
        """The single-row INSERTs right after one, into the same table and columns,
        straight into the batch: what :meth:`add` would do with each, without the
        scanner, filter and dispatch work of a statement (``--inserts`` dumps)."""
        batch = self.batch
        head = batch.head
        assert head is not None
        for line, text, row in splitter.rows_after(head, batch.rows):
            batch.add_row(Statement(text, line), head, row)
            self.rows += 1
            if batch.size >= BATCH_BYTES:
                self.flush(wait=False)

    def send(self, statement: Statement) -> None:
        """Queue a statement the filter let through: it runs with the next batch."""
        self.batch.add(statement)
        if self.batch.size >= BATCH_BYTES:
            self.flush(wait=False)

    def enter_phase(self, phase: str) -> None:
        if phase != self.phase:
            self.phase = phase
            self.ctx.log(f"phase: {phase}")
            self.ctx.progress(detail=phase)

    def note_table(self, table: str | None) -> None:
        """Log a table's row count when the dump moves on from it."""
        if table == self.table:
            return
        if self.table is not None:
            self.ctx.log(f"data: {self.table} {self.rows:,} rows")
        self.table, self.rows = table, 0
        if table is not None:
            self.ctx.progress(detail=f"data: {table}")

    def finish(self) -> None:
        """At the end of the script: everything sent has run."""
        self.flush()

    def flush(self, wait: bool = True) -> None:
        """Send the batch. ``wait=False``: on a thread, while the next batch is read (the
        server and reel's parsing overlap); the batch before is always waited for first,
        so statements run in dump order, one batch at a time, and with ``wait=True``
        everything sent has run when it returns."""
        self.ctx.check_cancelled()
        self.settle()
        if not self.batch:
            return
        batch, sql = self.batch.take()

        def run() -> None:
            self.execute(self.guarded(sql), batch[0].line)

        if wait:
            self.completed(batch, _outcome(run))
        else:
            self.in_flight = _InFlight(batch, run)

    def settle(self) -> None:
        """Wait for the batch on its way, and deal with its outcome."""
        if self.in_flight is not None:
            in_flight, self.in_flight = self.in_flight, None
            self.completed(in_flight.batch, in_flight.wait())

    def abandon(self) -> None:
        """The load stops with a batch still running: cancel it on the server and wait for
        its thread, so nothing else uses the connection at the same time."""
        if self.in_flight is not None:
            in_flight, self.in_flight = self.in_flight, None
            with contextlib.suppress(psycopg2.Error):
                self.conn.cancel()
            in_flight.wait()

    def completed(self, batch: list[Statement], error: BaseException | None) -> None:
        if error is None:
            self.result.statements += len(batch)
        elif isinstance(error, psycopg2.Error):
            self.after_error(error, batch[0].line)
            self.undo()
            self.replay(batch)
        else:
            raise error
        self.report()

    def replay(self, batch: list[Statement]) -> None:
        """Rerun a failed batch one statement at a time, to name (or skip) the failing one."""
        for statement in batch:
            self.ctx.check_cancelled()
            try:
                self.execute(self.guarded(statement.text), statement.line)
            except psycopg2.Error as exc:
                self.after_error(exc, statement.line)
                self.undo()
                self.failed(statement.line, statement.text, exc)
            else:
                self.result.statements += 1

    def execute(self, sql: str, line: int = 0) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql)
        self.check_transaction(line)

    def check_transaction(self, line: int, failed: bool = False) -> None:
        """A backstop behind the filter: the dump must not have ended or opened a transaction.

        In place the whole load is one transaction, which must still be open (aborted,
        after a ``failed`` statement); into a staging database every batch commits on
        its own, so none may be left open (it would never be committed, and what it
        holds would be lost).
        """
        status = self.conn.info.transaction_status
        extensions = psycopg2.extensions
        if self.transactional:
            expected = (
                extensions.TRANSACTION_STATUS_INERROR if failed
                else extensions.TRANSACTION_STATUS_INTRANS
            )  # fmt: skip
            if status != expected:
                raise RewindError(
                    f"{self.where(line)}: a statement of the dump near here ended reel-tui's "
                    "transaction; what was loaded up to it may be committed in the target: "
                    "remove the dump's transaction control and rewind again"
                )
        elif status != extensions.TRANSACTION_STATUS_IDLE:
            raise RewindError(
                f"{self.where(line)}: a statement of the dump near here left a transaction "
                "open; remove the dump's transaction control"
            )

    def guarded(self, sql: str) -> str:
        """``sql`` inside a savepoint when the load is one transaction, else as it is."""
        if self.transactional:
            return f"SAVEPOINT reel_batch;\n{sql}\nRELEASE SAVEPOINT reel_batch;"
        return sql

    def undo(self) -> None:
        """Back to before the failed batch, so the transaction can go on (in place only)."""
        if self.transactional:
            self.execute("ROLLBACK TO SAVEPOINT reel_batch; RELEASE SAVEPOINT reel_batch")

    def after_error(self, exc: psycopg2.Error, line: int) -> None:
        """A cancel, a lost connection or a transaction the dump ended (or left open) ends
        the load whatever ``on_error`` says."""
        self.ctx.check_cancelled()
        if self.conn.closed:
            raise RewindError(
                f"{self.source.path}: lost the connection to the server: {_message(exc)}"
            ) from None
        self.check_transaction(line, failed=True)

    def failed(self, line: int, text: str, exc: psycopg2.Error) -> None:
        """Stop with a one-line error, or log it and go on when on_error = "continue"."""
        message = f"{self.where(line)}: {_message(exc)} in: {first_line(text)}"
        if self.keep_going:
            self.result.errors += 1
            self.ctx.log(message, "warning")
            return
        raise RewindError(message + self.version_hint()) from None

    def version_hint(self) -> str:
        """Which server made the dump and which runs here, when their major versions differ."""
        dumped = self.result.dump_server
        version = self.conn.server_version
        here = f"{version // 10000}.{version % 10000}"
        if (
            dumped
            and dumped.split(".")[0].isdigit()
            and int(dumped.split(".")[0]) != version // 10000
        ):
            return f" (the dump was made by PostgreSQL {dumped}; this server runs {here})"
        return ""

    def report(self) -> None:
        assert self.reader is not None
        self.ctx.progress(bytes_read=self.reader.bytes_read, statements=self.result.statements)

    # --- COPY -------------------------------------------------------------------------

    def copy(self, statement: Statement, splitter: ScriptSplitter) -> None:
        self.flush()
        self.enter_phase("data")
        match = _COPY.match(statement.text)
        table = match.group(1) if match else "?"
        self.note_table(None)
        self.ctx.progress(detail=f"data: {table}")
        stream = _CopyStream(splitter.copy_pieces(COPY_CHUNK), self)
        try:
            if self.transactional:
                self.execute("SAVEPOINT reel_batch")
            with self.conn.cursor() as cur:
                cur.copy_expert(statement.text, stream, size=COPY_CHUNK)
                rows = cur.rowcount
            if self.transactional:
                self.execute("RELEASE SAVEPOINT reel_batch", statement.line)
            else:
                self.check_transaction(statement.line)
        except psycopg2.Error as exc:
            if stream.error is not None:
                raise stream.error from None
            self.after_error(exc, statement.line)
            self.undo()
            stream.drain()
            self.failed(statement.line + _copy_line(exc), statement.text, exc)
            return
        self.result.statements += 1
        self.ctx.log(f"data: {table} {rows:,} rows")
        self.report()


class _CopyStream:
    """A file-like object over COPY data lines, for ``copy_expert``.

    psycopg2 turns an exception raised in ``read`` into a generic "error in
    .read() call"; the original (a cancel, a truncated dump) is kept in
    ``error`` and raised again by the loader.
    """

    def __init__(self, pieces: Iterator[tuple[int, bytes]], loader: ScriptLoader) -> None:
        self.pieces = pieces
        self.loader = loader
        self.error: BaseException | None = None

    def read(self, size: int = COPY_CHUNK) -> bytes:
        """The next piece of data (whole lines, about ``COPY_CHUNK``); b"" at its end."""
        try:
            self.loader.ctx.check_cancelled()
            _, piece = next(self.pieces, (0, b""))
            self.loader.report()
            return piece
        except (RewindCancelled, ScriptError, DumpError) as exc:
            self.error = exc
            if isinstance(exc, ScriptError):
                self.error = RewindError(f"{self.loader.where(exc.line)}: {exc}")
            raise

    def readline(self, size: int = -1) -> bytes:
        return self.read(size if size > 0 else COPY_CHUNK)

    def drain(self) -> None:
        """Skip what the server did not take, so the script goes on after ``\\.``."""
        for _ in self.pieces:
            pass


def _copy_line(exc: psycopg2.Error) -> int:
    """The data line a COPY error is about, counted from the COPY statement's line."""
    context = getattr(exc.diag, "context", None) or ""
    match = _COPY_LINE.search(context)
    return int(match.group(1)) if match else 0


def _message(exc: psycopg2.Error) -> str:
    primary = getattr(exc.diag, "message_primary", None)
    text = primary or str(exc).strip().split("\n", 1)[0]
    return " ".join(text.split())


def first_line(text: str) -> str:
    """A statement's first line, cut to 80 characters, for one-line errors."""
    first = text.strip().split("\n", 1)[0]
    return first if len(first) <= 80 else first[:77] + "..."
