"""Loading a plain dump over several connections at once, as ``pg_restore -j`` does.

Only into a staging database: every statement commits on its own there, and
a failure drops the whole database, so running statements out of dump order
is safe as long as the end result is the one psql gives. The reader stays one
sequential stream on the engine thread; it hands work to a :class:`WorkerPool`
whose threads each hold a connection to the staging database.

What runs where, in dump order:

* the schema (everything before the first data) runs serially on the main
  connection, as :class:`~reel_tui.engines.pg_loader.ScriptLoader` does;
* ``COPY … FROM stdin`` data is cut into pieces of about :data:`COPY_PIECE`
  bytes at line ends; each piece is one ``COPY`` on some worker. A table with
  enabled triggers or rules, or a partitioned one, is loaded serially instead:
  its rows could depend on other tables' rows being in first;
* ``CREATE INDEX`` and ``ADD CONSTRAINT … PRIMARY KEY / UNIQUE / EXCLUDE`` run
  in parallel as soon as their table's data is in (while other tables' data
  may still load); ``ADD CONSTRAINT … FOREIGN KEY`` once both tables' data and
  indexes are in (it needs the referenced key), never two at once on a common
  table (their locks could deadlock; a deadlock the server breaks anyway, on
  locks reel cannot see, is retried);
* anything else waits until everything sent before it has finished and runs
  serially on the main connection, so statements whose order we cannot prove
  irrelevant (triggers, rules, ``ATTACH PARTITION``, comments, …) keep it.
  ``SET`` statements also run on every worker before its next piece of work.

Memory stays flat: the reader waits while :data:`QUEUED_BYTES` of data are
queued. The first error stops all workers (each running statement is
cancelled) and is reported with the dump's file and line.
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import psycopg2

from reel_tui.engines.base import RewindError
from reel_tui.engines.pg_loader import (
    _COPY,
    _TABLE,
    ScriptLoader,
    _copy_line,
    _message,
    first_line,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from reel_tui.config import AppConfig
    from reel_tui.engines.base import RewindContext
    from reel_tui.engines.pg_conn import Connection
    from reel_tui.engines.pg_script import ScriptSplitter, Statement
    from reel_tui.sources import Source

COPY_PIECE = 1024 * 1024
"""Bytes of one table's COPY data sent as one ``COPY`` by one worker."""
QUEUED_BYTES = 4 * 1024 * 1024
"""The reader waits while this much COPY data waits for a worker: with the pieces the
workers send, at most ``QUEUED_BYTES + jobs * COPY_PIECE`` of data is in memory."""
DEADLOCK_RETRIES = 3
WAKE_SECONDS = 0.2
"""How often a waiting reader looks for a cancel."""

Kind = Literal["data", "index", "foreign key", "analyze"]

_NAME = r'(?:"(?:[^"]|"")*"|[^\s("])+'
_INDEX = re.compile(rf"CREATE\s+(?:UNIQUE\s+)?INDEX\s+{_NAME}\s+ON\s+(?:ONLY\s+)?{_TABLE}", re.I)
_CONSTRAINT = re.compile(
    rf"ALTER\s+TABLE\s+(?:ONLY\s+)?{_TABLE}\s+ADD\s+CONSTRAINT\s+{_NAME}\s+"
    r"(PRIMARY\s+KEY|UNIQUE|EXCLUDE|FOREIGN\s+KEY)\b",
    re.I,
)
_REFERENCES = re.compile(rf"\)\s*REFERENCES\s+{_TABLE}", re.I)
_SESSION = re.compile(r"(?:SET|RESET)\b|SELECT\s+pg_catalog\.set_config\s*\(", re.I)
_SETVAL = re.compile(r"SELECT\s+pg_catalog\.setval\s*\([^;]*\)\s*;\Z", re.I | re.S)
_SERIAL_COPY_QUERY = """
    SELECT c.relkind = 'p'
        OR EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgenabled <> 'D')
        OR EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.ev_class = c.oid AND r.rulename <> '_RETURN')
    FROM pg_class c WHERE c.oid = %s::regclass"""
"""Whether loading a table's rows could have effects beyond them (so: serially)."""
TABLES_TO_ANALYZE = """
    SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE (c.relkind IN ('r', 'p') OR (c.relkind = 'm' AND c.relispopulated))
      AND NOT c.relispartition
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
    ORDER BY pg_total_relation_size(c.oid) DESC"""
"""What the serial load's plain ``ANALYZE`` covers, but the catalogs (the new database
has template0's statistics for them); a partitioned table's partitions with it."""


@dataclass(eq=False)
class Task:
    """One statement for a worker. It waits for every earlier task of another kind on a
    common table (an index for its table's data, a foreign key for the key it
    references); ``shared``: tasks with a common table run at once only if both are
    (their locks do not conflict), so two foreign keys never deadlock."""

    kind: Kind
    sql: str
    line: int
    tables: frozenset[str]
    shared: bool
    data: bytes | None = None
    session: int = 0
    """How many of the pool's session statements the worker runs before this task."""
    number: int = 0
    rows: int = 0
    conn: Connection | None = field(default=None, repr=False)


class TaskFailed(Exception):
    """A worker's task raised ``error``."""

    def __init__(self, task: Task, error: BaseException) -> None:
        super().__init__(str(error))
        self.task = task
        self.error = error


class WorkerPool:
    """Threads, each with its own connection, running :class:`Task` s as they become ready."""

    def __init__(self, conns: list[Connection], check_cancelled: Callable[[], None]) -> None:
        self.conns = conns
        self.check_cancelled = check_cancelled
        self.session: list[str] = []
        """SET statements of the dump, in order: every worker runs them before its tasks."""
        self.rows: dict[str, int] = {}
        self.queued_limit = QUEUED_BYTES
        self._cond = threading.Condition()
        self._pending: list[Task] = []
        self._running: list[Task] = []
        self._unfinished: dict[str, list[Task]] = {}
        """Per table, the tasks on it not finished yet, in the order they were submitted."""
        self._count = 0
        self._queued_bytes = 0
        self._failure: TaskFailed | None = None
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, args=(conn,), name=f"reel-pg-job-{i}", daemon=True)
            for i, conn in enumerate(conns, 1)
        ]
        for thread in self._threads:
            thread.start()

    # --- the reader's side --------------------------------------------------------------

    def submit(self, task: Task) -> None:
        """Queue ``task``; waits while too much data is queued. Raises a worker's failure."""
        size = len(task.data or b"")
        with self._cond:
            while self._queued_bytes and self._queued_bytes + size > self.queued_limit:
                self._wait()
            self._raise_failure()
            task.number = self._count
            task.session = len(self.session)
            self._count += 1
            self._pending.append(task)
            for table in task.tables:
                self._unfinished.setdefault(table, []).append(task)
            self._queued_bytes += size
            self._cond.notify_all()

    def wait_all(self) -> None:
        """Return once every task submitted has finished; raise the first failure."""
        with self._cond:
            while self._pending or self._running:
                self._wait()
            self._raise_failure()

    def _wait(self) -> None:
        self._raise_failure()
        self._cond.wait(WAKE_SECONDS)
        self.check_cancelled()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def close(self) -> None:
        """Stop the workers (a running statement is cancelled) and wait for them."""
        with self._cond:
            self._stopping = True
            self._cancel_running()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()

    # --- the workers' side --------------------------------------------------------------

    def _work(self, conn: Connection) -> None:
        applied = 0
        while True:
            task = self._take(conn)
            if task is None:
                return
            try:
                with conn.cursor() as cur:
                    for statement in self.session[applied : task.session]:
                        cur.execute(statement)
                    applied = task.session
                    _run(cur, task)
                if conn.info.transaction_status != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
                    raise RewindError("a statement of the dump near here left a transaction "
                                      "open; remove the dump's transaction control")  # fmt: skip
            except BaseException as exc:  # handed to the reader thread
                self._fail(task, exc)
                return
            self._finish(task)

    def _take(self, conn: Connection) -> Task | None:
        with self._cond:
            while not self._stopping:
                task = self._ready()
                if task is not None:
                    self._pending.remove(task)
                    self._queued_bytes -= len(task.data or b"")
                    task.conn = conn
                    self._running.append(task)
                    self._cond.notify_all()
                    return task
                self._cond.wait()
            return None

    def _ready(self) -> Task | None:
        """The first pending task (in dump order) whose turn it is and whose locks are free."""
        for task in self._pending:
            if not self._waits(task) and not any(_conflict(task, o) for o in self._running):
                return task
        return None

    def _waits(self, task: Task) -> bool:
        """Whether an earlier task of another kind on one of its tables is not finished."""
        for table in task.tables:
            for earlier in self._unfinished[table]:
                if earlier is task:
                    break
                if earlier.kind != task.kind:
                    return True
        return False

    def _finish(self, task: Task) -> None:
        with self._cond:
            self._running.remove(task)
            if task.kind == "data" and task.data is not None:
                table = next(iter(task.tables))
                self.rows[table] = self.rows.get(table, 0) + max(task.rows, 0)
            for table in task.tables:
                self._unfinished[table].remove(task)
            self._cond.notify_all()

    def _fail(self, task: Task, error: BaseException) -> None:
        with self._cond:
            self._running.remove(task)
            if self._failure is None and not self._stopping:
                self._failure = TaskFailed(task, error)
            self._stopping = True
            self._cancel_running()
            self._cond.notify_all()

    def _cancel_running(self) -> None:
        for task in self._running:
            if task.conn is not None and not task.conn.closed:
                with contextlib.suppress(psycopg2.Error):  # lost: its worker fails anyway
                    task.conn.cancel()


def _run(cur: psycopg2.extensions.cursor, task: Task) -> None:
    """Run the task's statement; again if the server broke a deadlock by failing it
    (locks reel cannot see, e.g. of partitions, met another task's): it was undone."""
    for attempt in range(1, DEADLOCK_RETRIES + 1):
        try:
            if task.data is not None:
                cur.copy_expert(task.sql, io.BytesIO(task.data), size=len(task.data))
            else:
                cur.execute(task.sql)
        except psycopg2.errors.DeadlockDetected:
            if attempt == DEADLOCK_RETRIES:
                raise
            continue
        task.rows = cur.rowcount
        return


def _conflict(task: Task, other: Task) -> bool:
    return bool(task.tables & other.tables) and not (task.shared and other.shared)


class ParallelLoader(ScriptLoader):
    """A :class:`ScriptLoader` that hands data, indexes and constraints to a :class:`WorkerPool`.

    ``workers`` are autocommit UTF-8 connections to the same (staging) database
    as ``conn``; the caller closes them, after :meth:`close`.
    """

    def __init__(
        self,
        app: AppConfig,
        source: Source,
        conn: Connection,
        ctx: RewindContext,
        workers: list[Connection],
    ) -> None:
        super().__init__(app, source, conn, ctx)
        self.pool = WorkerPool(workers, ctx.check_cancelled)

    def close(self) -> None:
        self.pool.close()

    # --- sending ----------------------------------------------------------------------

    def send(self, statement: Statement) -> None:
        if _SESSION.match(statement.text):
            self.pool.session.append(statement.text)  # submitted later, tasks run it first
        task = self.task_for(statement) if self.phase != "schema" else None
        if task is None:
            self.sync()
            super().send(statement)
            return
        self.flush()  # what was sent before it has run
        self.submit(task)
        self.result.statements += 1

    def task_for(self, statement: Statement) -> Task | None:
        """The statement as a task workers may run out of order, or None: serially."""
        text, line = statement.text, statement.line
        if _SETVAL.match(text):
            return Task("data", text, line, frozenset(), shared=True)
        index = _INDEX.match(text)
        if index:
            return Task("index", text, line, frozenset({index.group(1)}), shared=True)
        constraint = _CONSTRAINT.match(text)
        if constraint is None:
            return None
        table, how = constraint.group(1), constraint.group(2).upper()
        if not how.startswith("FOREIGN"):
            return Task("index", text, line, frozenset({table}), shared=False)
        references = _REFERENCES.search(text, constraint.end())
        if references is None:
            return None
        return Task("foreign key", text, line, frozenset({table, references.group(1)}), False)

    def submit(self, task: Task) -> None:
        """Queue ``task``; raise a worker's failure as the serial loader would."""
        try:
            self.pool.submit(task)
        except TaskFailed as failed:
            self.failed_task(failed)

    def sync(self) -> None:
        """Wait until every task sent has finished (before a statement that runs serially)."""
        try:
            self.pool.wait_all()
        except TaskFailed as failed:
            self.failed_task(failed)

    def finish(self) -> None:
        self.flush()
        self.sync()
        for table, rows in self.pool.rows.items():
            self.ctx.log(f"data: {table} {rows:,} rows")
        self.pool.rows.clear()

    def failed_task(self, failed: TaskFailed) -> None:
        """Raise a worker's failure as the serial loader would have reported it."""
        self.ctx.check_cancelled()
        task, error = failed.task, failed.error
        if isinstance(error, RewindError):
            raise RewindError(f"{self.where(task.line)}: {error}") from None
        if not isinstance(error, psycopg2.Error):
            raise error
        conn = task.conn
        if conn is not None and conn.closed:
            raise RewindError(
                f"{self.source.path}: lost the connection to the server: {_message(error)}"
            ) from None
        line = task.line
        if task.data is not None:
            line += _copy_line(error)
        sql = task.sql if task.data is None else f"COPY {next(iter(task.tables))} data"
        message = f"{self.where(line)}: {_message(error)} in: {first_line(sql)}"
        raise RewindError(message + self.version_hint()) from None

    # --- COPY -------------------------------------------------------------------------

    def copy(self, statement: Statement, splitter: ScriptSplitter) -> None:
        self.flush()
        self.enter_phase("data")
        match = _COPY.match(statement.text)
        if match is None or self.copies_serially(match.group(1)):
            self.sync()
            super().copy(statement, splitter)
            return
        table = match.group(1)
        self.note_table(None)
        self.ctx.progress(detail=f"data: {table}")
        for first, data in splitter.copy_pieces(COPY_PIECE):
            task = Task("data", statement.text, first - 1, frozenset({table}), True, data)
            self.submit(task)
            self.report()
        self.result.statements += 1

    def copies_serially(self, table: str) -> bool:
        """Whether loading ``table`` may have effects beyond its own rows (triggers, rules,
        partitions): then it loads serially, after all data before it."""
        try:
            with self.conn.cursor() as cur:
                cur.execute(_SERIAL_COPY_QUERY, (table,))
                row = cur.fetchone()
        except psycopg2.Error:
            return True  # the COPY itself then reports the problem, with its line
        return row is None or bool(row[0])

    # --- ANALYZE ----------------------------------------------------------------------

    def analyze(self) -> None:
        """ANALYZE every table, the largest first, on the workers."""
        with self.conn.cursor() as cur:
            cur.execute(TABLES_TO_ANALYZE)
            tables = [str(row[0]) for row in cur.fetchall()]
        for table in tables:
            self.submit(Task("analyze", f"ANALYZE {table}", 0, frozenset({table}), False))
        self.sync()
