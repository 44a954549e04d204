"""A table's data over several connections into the staging schema.

The dump is still read as one sequential stream; only runs of plain
multi-row INSERTs into one InnoDB table with a primary key (and no
triggers yet) are handed out, in batches, to ``jobs`` worker connections.
Everything else runs on the loader's own connection in dump order, after
the workers have finished what came before (a barrier), so DDL, ``ENABLE
KEYS``, triggers and post-data see the table complete, as with ``mysql <``.
Row order within such a table does not matter: InnoDB keeps it by the
primary key.

The workers' session follows the loader's: every ``SET`` the dump runs
(character set, time zone, sql_mode, unique / foreign key checks, user
variables) is replayed on each worker before its next batch. The queue
holds at most ``jobs`` batches, so memory stays flat. The first error of
any worker stops all of them; the loader raises it (naming the dump's line)
at its next hand-out or barrier.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import pymysql

from reel_tui.engines.base import RewindError
from reel_tui.engines.mysql_conn import Connection, message

Batch = list["Sent"]


class Sent:
    """One statement of a batch: its bytes and the dump line it starts on."""

    __slots__ = ("line", "sql")

    def __init__(self, sql: bytes, line: int) -> None:
        self.sql = sql
        self.line = line


class Workers:
    """Worker threads, one per connection, taking batches from a bounded queue."""

    def __init__(self, connections: list[Connection], describe: Callable[[Sent, str], str]) -> None:
        """``describe(statement, server_message)`` words an error for the user."""
        self._connections = connections
        self._describe = describe
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=len(connections))
        self._session: list[bytes] = []
        self._lock = threading.Condition()
        self._busy = 0
        self._error: RewindError | None = None
        self._stopping = False
        self.statements = 0
        self.rows = 0
        self._threads = [
            threading.Thread(target=self._work, args=(conn,), name=f"reel-mysql-{n}", daemon=True)
            for n, conn in enumerate(connections)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def size(self) -> int:
        return len(self._connections)

    def session(self, sql: bytes) -> None:
        """A statement that sets session state, run on each worker before its next batch.

        Only called between runs (after :meth:`wait`), when no worker is busy."""
        self._session.append(sql)

    def submit(self, batch: Batch) -> None:
        """Queue ``batch``; raise a worker's error instead once there is one."""
        with self._lock:
            self._busy += 1
        while True:
            self.raise_error()
            try:
                self._queue.put(batch, timeout=0.1)
                return
            except queue.Full:
                continue

    def wait(self) -> tuple[int, int]:
        """Block until every queued batch ran; (statements, rows) since the last wait.
        Raises the first worker error."""
        with self._lock:
            while self._busy and self._error is None:
                self._lock.wait(0.1)
        self.raise_error()
        counts = (self.statements, self.rows)
        self.statements = self.rows = 0
        return counts

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def close(self, interrupt: Callable[[], None] | None = None) -> None:
        """Stop the threads and join them; the connections are the caller's to close.

        Each finishes its current batch, unless ``interrupt`` (kill the loading
        connections' statements) is given, after a failure or a cancel: it is called
        until every thread is gone. A single kill can miss a worker that was between two
        batches at that moment and then started its next one, which could run for a
        long time."""
        self._stopping = True
        for _ in self._threads:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                break
        for thread in self._threads:
            if interrupt is None:
                thread.join()
                continue
            while thread.is_alive():
                interrupt()
                thread.join(0.5)

    def _work(self, conn: Connection) -> None:
        applied = 0
        while not self._stopping:
            try:
                batch = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if batch is None:
                return
            try:
                if self._error is None and not self._stopping:
                    if applied < len(self._session):
                        _execute(conn, b";\n".join(self._session[applied:]))
                        applied = len(self._session)
                    statements, rows = self._run(conn, batch)
                    with self._lock:
                        self.statements += statements
                        self.rows += rows
            except RewindError as exc:
                with self._lock:
                    self._error = self._error or exc
            except BaseException as exc:  # a bug or a lost socket: still stop everyone
                with self._lock:
                    self._error = self._error or RewindError(f"loading worker failed: {exc}")
            finally:
                with self._lock:
                    self._busy -= 1
                    self._lock.notify_all()

    def _run(self, conn: Connection, batch: Batch) -> tuple[int, int]:
        """Run ``batch`` as one multi-statement query, then COMMIT (a no-op unless the dump
        turned autocommit off); RewindError naming the failed statement."""
        done = rows = 0
        cur = conn.cursor()
        try:
            cur.execute(b";\n".join([*(s.sql for s in batch), b"COMMIT"]))
            while True:
                rows += max(cur.rowcount, 0)
                done += 1
                if not cur.nextset():
                    break
        except pymysql.Error as exc:
            failed = batch[min(done, len(batch) - 1)]
            raise RewindError(self._describe(failed, message(exc))) from None
        finally:
            cur.close()
        return done - 1, rows  # not counting the COMMIT


def _execute(conn: Connection, sql: bytes) -> None:
    with conn.cursor() as cur:
        cur.execute(sql)
        while cur.nextset():
            pass
