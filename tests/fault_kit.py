"""One harness for the fault matrix (issue 7): the same fault, caused for real, against
each engine, and the same checks afterwards.

A :class:`Target` adapts one engine's test fixtures (tests/conftest.py, pg_server.py,
mysql_server.py, pg_tools.py, my_tools.py) to a small API: write a dump in the engine's
own dialect, rewind through the real job queue, fingerprint the target (schema and every
row), list reel's leftovers (staging databases or temp files, held locks, reel's server
sessions) apart from the cached copies kept on purpose, and hold a client transaction
on the target. :class:`ProcessSnapshot` is the test process's threads and open file
descriptors, before and after.

API kept small and stable (other fault tests build on it): add, don't rename.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from reel_tui.config import load_config
from reel_tui.history import HistoryStore
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import Job, JobEvent
from reel_tui.plan import plan_rewind

ENGINES = ("sqlite", "postgres", "mariadb")
"""The engines every row of the matrix runs against (pytest ids)."""

ErrorAt = Literal["first", "middle", "last"]
KEPT = ("__reel_cache_", "__reel_spare_", "__reel_undo", "__reel_snap_")
"""Server copies kept on purpose (cached, spare, undo, snapshots), named as such: not leftovers."""
SETTLE = 15.0
"""Seconds to wait for what finishes a moment after the job (sessions closing, background
work dropping what a swap set aside) before calling it a leftover."""


# --- dumps, in each engine's own dialect ------------------------------------------------


def _sqlite_dump(rows: int, tag: str, error_at: ErrorAt | None) -> Iterator[str]:
    """What ``sqlite3 .dump`` prints: single-row INSERTs inside one transaction."""
    yield "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n"
    if error_at == "first":
        yield "CREATE TABLE items (id INTEGER PRIMARY KEY, tag TEXT, payload TEXT,);\n"
    yield "CREATE TABLE items (id INTEGER PRIMARY KEY, tag TEXT, payload TEXT);\n"
    for n in range(rows):
        yield f"INSERT INTO items VALUES({n},'{tag}-{n % 7}','payload; {n:>40}');\n"
    if error_at == "middle":
        yield "INSERT INTO no_such_table VALUES(1);\n"
    yield "CREATE TABLE notes (id INTEGER PRIMARY KEY, item INTEGER, body TEXT);\n"
    for n in range(rows // 4):
        yield f"INSERT INTO notes VALUES({n},{n},'note {tag} {n}');\n"
    yield "CREATE INDEX items_tag ON items(tag);\n"
    yield "CREATE INDEX notes_item ON notes(item);\n"
    if error_at == "last":
        yield "CREATE INDEX items_bad ON items(no_such_column);\n"
    yield "COMMIT;\n"


def _copy_block(table: str, columns: str, lines: Iterator[str]) -> Iterator[str]:
    yield f"COPY public.{table} ({columns}) FROM stdin;\n"
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == 500:
            yield "".join(chunk)
            chunk = []
    yield "".join(chunk) + "\\.\n\n"


def _postgres_dump(rows: int, tag: str, error_at: ErrorAt | None) -> Iterator[str]:
    """What ``pg_dump`` prints (plain): tables, COPY blocks, then keys and indexes."""
    yield "SET statement_timeout = 0;\nSET client_encoding = 'UTF8';\n\n"
    if error_at == "first":
        yield "CREATE TABLE public.items (id integr NOT NULL);\n"
    yield "CREATE TABLE public.items (\n    id integer NOT NULL,\n    tag text,\n"
    yield "    payload text\n);\n\n"
    yield "CREATE TABLE public.notes (\n    id integer NOT NULL,\n    item integer,\n"
    yield "    body text\n);\n\n"
    items = (f"{n}\t{tag}-{n % 7}\tpayload; {n:>40}\n" for n in range(rows))
    yield from _copy_block("items", "id, tag, payload", items)
    if error_at == "middle":
        yield "INSERT INTO public.no_such_table VALUES (1);\n\n"
    yield from _copy_block("notes", "id, item, body",
                           (f"{n}\t{n}\tnote {tag} {n}\n" for n in range(rows // 4)))  # fmt: skip
    yield "ALTER TABLE ONLY public.items\n    ADD CONSTRAINT items_pkey PRIMARY KEY (id);\n\n"
    yield "ALTER TABLE ONLY public.notes\n    ADD CONSTRAINT notes_pkey PRIMARY KEY (id);\n\n"
    yield "CREATE INDEX items_tag ON public.items USING btree (tag);\n\n"
    yield "CREATE INDEX notes_item ON public.notes USING btree (item);\n\n"
    if error_at == "last":
        yield "CREATE INDEX items_bad ON public.items USING btree (no_such_column);\n"


def _insert_rows(table: str, values: Iterator[str]) -> Iterator[str]:
    """mysqldump's extended INSERTs: many rows per statement."""
    chunk: list[str] = []
    for value in values:
        chunk.append(value)
        if len(chunk) == 400:
            yield f"INSERT INTO `{table}` VALUES " + ",".join(chunk) + ";\n"
            chunk = []
    if chunk:
        yield f"INSERT INTO `{table}` VALUES " + ",".join(chunk) + ";\n"


def _mariadb_dump(rows: int, tag: str, error_at: ErrorAt | None) -> Iterator[str]:
    """What ``mariadb-dump`` prints: tables, LOCK/extended INSERT/UNLOCK, then indexes."""
    yield "-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)\n--\n"
    yield "/*!40101 SET NAMES utf8mb4 */;\n/*!40014 SET FOREIGN_KEY_CHECKS=0 */;\n"
    if error_at == "first":
        yield "CREATE TABLE `items` (`id` int NOT NUL) ENGINE=InnoDB;\n"
    yield ("DROP TABLE IF EXISTS `items`;\nCREATE TABLE `items` (\n  `id` int(11) NOT NULL,\n"
           "  `tag` varchar(40) DEFAULT NULL,\n  `payload` varchar(80) DEFAULT NULL,\n"
           "  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n")  # fmt: skip
    yield "LOCK TABLES `items` WRITE;\n"
    items = (f"({n},'{tag}-{n % 7}','payload; {n:>40}')" for n in range(rows))
    yield from _insert_rows("items", items)
    yield "UNLOCK TABLES;\n"
    if error_at == "middle":
        yield "INSERT INTO `no_such_table` VALUES (1);\n"
    yield ("DROP TABLE IF EXISTS `notes`;\nCREATE TABLE `notes` (\n  `id` int(11) NOT NULL,\n"
           "  `item` int(11) DEFAULT NULL,\n  `body` varchar(80) DEFAULT NULL,\n"
           "  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n")  # fmt: skip
    yield "LOCK TABLES `notes` WRITE;\n"
    yield from _insert_rows("notes", (f"({n},{n},'note {tag} {n}')" for n in range(rows // 4)))
    yield "UNLOCK TABLES;\n"
    yield "CREATE INDEX `items_tag` ON `items` (`tag`);\n"
    yield "CREATE INDEX `notes_item` ON `notes` (`item`);\n"
    if error_at == "last":
        yield "CREATE INDEX `items_bad` ON `items` (`no_such_column`);\n"
    yield "/*!40014 SET FOREIGN_KEY_CHECKS=1 */;\n\n-- Dump completed on 2026-11-28 15:00:00\n"


_DIALECTS: dict[str, Callable[[int, str, ErrorAt | None], Iterator[str]]] = {
    "sqlite": _sqlite_dump,
    "postgres": _postgres_dump,
    "mariadb": _mariadb_dump,
}


def dump_text(
    engine: str, rows: int = 3000, tag: str = "new", error_at: ErrorAt | None = None
) -> str:
    """A dump of two tables (``rows`` and ``rows // 4`` rows) and their indexes, in the
    engine's dialect; ``error_at`` adds a failing statement first, midway or last."""
    return "".join(_DIALECTS[engine](rows, tag, error_at))


# --- the process: threads and file descriptors ------------------------------------------


@dataclass(frozen=True)
class ProcessSnapshot:
    """The test process's live threads and open file descriptors (with their targets)."""

    threads: frozenset[str]
    fds: dict[int, str] = field(hash=False)

    @classmethod
    def take(cls) -> ProcessSnapshot:
        fds: dict[int, str] = {}
        for name in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):  # the listing's own fd is gone by now
                fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        threads = frozenset(f"{t.name}#{t.ident}" for t in threading.enumerate())
        return cls(threads, fds)

    def grown_since(self, before: ProcessSnapshot) -> list[str]:
        """What is open now and was not before: new threads, new or re-pointed fds."""
        grown = [f"thread {t}" for t in sorted(self.threads - before.threads)]
        grown += [f"fd {fd} -> {path}" for fd, path in sorted(self.fds.items())
                  if before.fds.get(fd) != path]  # fmt: skip
        return grown


def assert_process_settled(before: ProcessSnapshot, wait: float = SETTLE) -> None:
    """Threads and fds back to ``before`` (waited for: a closing socket takes a moment)."""
    deadline = time.monotonic() + wait
    while True:
        grown = ProcessSnapshot.take().grown_since(before)
        if not grown or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not grown, f"left open in the test process: {grown}"


# --- rewinds through the real queue -------------------------------------------------------


def run_rewind(
    target: Target,
    history: HistoryStore,
    source: str,
    on_event: Callable[[JobQueue, JobEvent], None] | None = None,
    timeout: float = 120,
) -> Job:
    """One rewind of ``target``'s app through a fresh job queue, as the faces run it.

    ``on_event`` is called for every event on the worker's thread, before the engine goes
    on: a cancel requested there lands exactly at that point of the rewind. The queue is
    shut down (workers and background work joined) before this returns."""
    queue = JobQueue(history, workers=1)
    try:
        if on_event is not None:
            queue.subscribe(lambda event: on_event(queue, event))
        job = queue.submit(plan_rewind(load_config(target.config), target.app, source))
        assert queue.wait(job, timeout=timeout), f"job still {job.state} after {timeout} s"
        _report(target, source, job)
        return job
    finally:
        queue.shutdown()


REPORT_ENV = "REEL_FAULT_REPORT"
"""A file to append one JSON line per rewind to (test, engine, source, state, error): the
outcomes behind the matrix's table. Unset: nothing is written."""


def _report(target: Target, source: str, job: Job) -> None:
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    line = {"test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
            "engine": target.engine, "source": source, "state": job.state.value,
            "error": job.error}  # fmt: skip
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


def held_locks(folder: Path) -> list[str]:
    """Lock files in ``folder`` that someone still holds (flock; a held one cannot be taken)."""
    held = []
    for path in sorted(folder.glob("*.lock")) if folder.is_dir() else []:
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            held.append(str(path))
        finally:
            os.close(fd)
    return held


# --- one adapter per engine ---------------------------------------------------------------


class Target(ABC):
    """One engine's target app in a test: its config, dumps, state and checks."""

    engine: str
    app: str
    config: Path
    dumps: Path
    state_dir: Path

    def write_dump(
        self, name: str, rows: int = 3000, tag: str = "new", error_at: ErrorAt | None = None
    ) -> Path:
        """Write :func:`dump_text` as ``name`` among the app's sources; return its path."""
        path = self.dumps / name
        path.write_text(dump_text(self.engine, rows, tag, error_at), encoding="utf-8")
        return path

    def seed(self, history: HistoryStore, rows: int = 300) -> object:
        """Rewind the target to a small known state ("old"); return its fingerprint."""
        self.write_dump("seed.sql", rows=rows, tag="old")
        job = run_rewind(self, history, "seed.sql")
        assert job.state.value == "succeeded", job.error
        return self.fingerprint()

    @abstractmethod
    def fingerprint(self) -> object:
        """Schema and every row of the target, comparable with ``==``."""

    @abstractmethod
    def leftovers(self) -> set[str]:
        """reel's staging objects and temp files for this target (cached copies excepted),
        after the background work is over (waited for)."""

    @abstractmethod
    def kept(self) -> set[str]:
        """The cached copies reel keeps on purpose for this target."""

    @abstractmethod
    def sessions(self) -> set[str]:
        """Server sessions now open that a later call should not see more of (reel's)."""

    @abstractmethod
    @contextlib.contextmanager
    def open_transaction(self) -> Iterator[object]:
        """A client connection on the target with an open transaction that has written a
        row (``items``, id -1); rolled back and closed on exit, whatever happened."""

    def lock_files_held(self) -> list[str]:
        return held_locks(self.state_dir / "locks")

    def assert_clean(self, sessions_before: set[str]) -> None:
        """No leftovers, no held lock, no server session beyond ``sessions_before``."""
        left = self.leftovers()
        assert left == set(), f"{self.engine}: leftovers {left}"
        held = self.lock_files_held()
        assert held == [], f"{self.engine}: locks still held: {held}"
        deadline = time.monotonic() + SETTLE
        while (extra := self.sessions() - sessions_before) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert extra == set(), f"{self.engine}: server sessions left open: {extra}"


class SqliteTarget(Target):
    engine = "sqlite"

    def __init__(self, tmp_path: Path, state_dir: Path, write_config: Callable[..., Path]) -> None:
        self.app = "blog"
        self.dumps = tmp_path / "dumps"
        self.dumps.mkdir(exist_ok=True)
        self.state_dir = state_dir
        self.config = write_config(
            """
            [reel]
            default_app = "blog"
            [blog]
            dbdriver = "sqlite"
            database = "blog.sqlite3"
            dbsources = "dumps"
            """
        )
        self.path = Path(load_config(self.config).apps["blog"].database)

    @property
    def cache_dir(self) -> Path:
        return self.path.parent / f".{self.path.name}.reel-cache"

    def fingerprint(self) -> object:
        from conftest import fingerprint

        return fingerprint(self.path)

    def leftovers(self) -> set[str]:
        folder = self.path.parent
        found = {p.name for p in folder.glob(f".{self.path.name}.reel-*.tmp*")}
        found |= {p.name for p in folder.glob(f"{self.path.name}-journal")}
        if self.cache_dir.is_dir():
            found |= {f"{self.cache_dir.name}/{p.name}" for p in self.cache_dir.iterdir()
                      if p.name.endswith((".tmp", "-journal"))}  # fmt: skip
        return found

    def kept(self) -> set[str]:
        if not self.cache_dir.is_dir():
            return set()
        return {p.name for p in self.cache_dir.iterdir()} - self.leftovers()

    def sessions(self) -> set[str]:
        return set()

    def lock_files_held(self) -> list[str]:
        """The state directory's locks and the lock beside the file (``.NAME.reel.lock``)."""
        return super().lock_files_held() + held_locks(self.path.parent)

    @contextlib.contextmanager
    def open_transaction(self) -> Iterator[object]:
        import sqlite3

        db = sqlite3.connect(self.path, isolation_level=None, timeout=0, check_same_thread=False)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO items VALUES(-1, 'client', 'uncommitted')")
            yield db
        finally:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            db.close()


class PostgresTarget(Target):
    engine = "postgres"

    def __init__(self, server, dbname: str, config: Path, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
        self.server, self.database, self.config = server, dbname, config
        self.app = "shop"
        self.dumps = config.parent / "dumps"
        self.state_dir = state_dir

    def fingerprint(self) -> object:
        from pg_tools import fingerprint

        return fingerprint(self.server, self.database)

    def _ours(self) -> list[str]:
        return [db for db in self.server.databases() if db.startswith(self.database + "__reel")]

    def leftovers(self) -> set[str]:
        deadline = time.monotonic() + SETTLE
        while True:
            found = {db for db in self._ours() if not any(kept in db for kept in KEPT)}
            if not any("__reel_trash_" in db for db in found) or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def kept(self) -> set[str]:
        return {db for db in self._ours() if any(kept in db for kept in KEPT)}

    def sessions(self) -> set[str]:
        rows = self.server.execute(
            "SELECT pid, datname FROM pg_stat_activity WHERE application_name = 'reel-tui'"
        )
        return {f"pid {pid} on {db}" for pid, db in rows}

    @contextlib.contextmanager
    def open_transaction(self) -> Iterator[object]:
        conn = self.server.connect(self.database, application_name="fault-client")
        try:
            conn.autocommit = False
            with conn.cursor() as cur:
                cur.execute("INSERT INTO public.items VALUES (-1, 'client', 'uncommitted')")
            yield conn
        finally:
            with contextlib.suppress(Exception):
                conn.rollback()
            conn.close()


class MariadbTarget(Target):
    engine = "mariadb"

    def __init__(self, server, dbname: str, config: Path, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
        self.server, self.database, self.config = server, dbname, config
        self.app = "crm"
        self.dumps = config.parent / "dumps"
        self.state_dir = state_dir

    def fingerprint(self) -> object:
        from my_tools import fingerprint

        return fingerprint(self.server, self.database)

    def leftovers(self) -> set[str]:
        from my_tools import leftovers

        return leftovers(self.server, self.database, wait=SETTLE)

    def kept(self) -> set[str]:
        ours = [db for db in self.server.databases() if db.startswith(self.database + "__reel")]
        return {db for db in ours if any(kept in db for kept in KEPT)}

    def sessions(self) -> set[str]:
        """Every other session of the test user (reel's among them): no program names
        without performance_schema, so callers compare with a set taken before."""
        rows = self.server.execute(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() "
            "AND COMMAND <> 'Daemon'"
        )
        return {f"id {row[0]}" for row in rows}

    @contextlib.contextmanager
    def open_transaction(self) -> Iterator[object]:
        conn = self.server.connect(self.database, autocommit=False)
        try:
            with conn.cursor() as cur:
                cur.execute("START TRANSACTION")
                cur.execute("INSERT INTO `items` VALUES (-1, 'client', 'uncommitted')")
            yield conn
        finally:
            with contextlib.suppress(Exception):
                conn.rollback()
            with contextlib.suppress(Exception):
                conn.close()


def make_target(request: pytest.FixtureRequest, engine: str, extra: str = "") -> Target:
    """The engine's target app for this test; servers start only for the engines used.
    ``extra``: more lines for the app's config table (``cache_copies = 0``, …)."""
    state_dir = request.getfixturevalue("state_dir")
    if engine == "sqlite":
        write_config = request.getfixturevalue("write_config")
        target = SqliteTarget(request.getfixturevalue("tmp_path"), state_dir, write_config)
        if extra:
            with open(target.config, "a", encoding="utf-8") as config:
                config.write(extra + "\n")
        return target
    if engine == "postgres":
        config = request.getfixturevalue("pg_config")(extra)
        return PostgresTarget(request.getfixturevalue("pg_server"),
                              request.getfixturevalue("pg_dbname"), config, state_dir)  # fmt: skip
    if engine == "mariadb":
        config = request.getfixturevalue("my_config")(extra)
        return MariadbTarget(request.getfixturevalue("mysql_server"),
                             request.getfixturevalue("my_dbname"), config, state_dir)  # fmt: skip
    raise ValueError(f"unknown engine {engine!r}")


@pytest.fixture(params=ENGINES)
def fault_target(request: pytest.FixtureRequest) -> Target:
    """The matrix's engine axis: one test per engine, each with its own target app."""
    return make_target(request, request.param)


# --- where a rewind is: its phases, from its own events -------------------------------------

_INDEX_LANDMARKS = ("phase: index", "schema: index", "data: notes ", "data: public.notes ")
LoadPhase = Literal["before", "schema", "data", "indexes", "after", "swap", "done"]
LOAD_PHASES: tuple[LoadPhase, ...] = ("schema", "data", "indexes", "swap")
"""The phases a cancel is aimed at (the matrix's columns)."""


@dataclass
class PhaseTracker:
    """Follows a rewind's events to say which phase it is in, for dumps from
    :func:`dump_text` (tables ``items`` then ``notes``, then indexes), per engine:

    * schema: the load began (``loading … dump``, PostgreSQL's ``phase: schema``, SQLite's
      ``schema: table``), no row sent yet;
    * data: a table's rows (a ``data: T`` detail, ``phase: data``);
    * indexes: the last table's rows are in (``data: notes N rows``), or the index
      statements were seen (``phase: indexes…``, ``schema: index``);
    * after: the load is over (``loaded N statements``), ANALYZE, keeping a copy;
    * swap: the job's phase is ``swapping``.

    Only landmarks count: log lines and progress events whose phase or detail changed,
    the same in every run of the same dump (progress by time is not)."""

    phase: LoadPhase = "before"
    landmarks: list[tuple[LoadPhase, str]] = field(default_factory=list)
    _last: tuple[str, str] = ("", "")

    def feed(self, event: JobEvent) -> bool:
        """Note ``event``; True when it is a landmark (then :attr:`phase` is where it is)."""
        job = event.job
        if event.kind == "log" and event.line is not None:
            what = event.line.message
        elif event.kind == "progress" and (job.phase, job.detail) != self._last:
            self._last = (job.phase, job.detail)
            what = f"progress {job.phase} {job.detail}"
        else:
            return False
        self.phase = self._next(job.phase, what)
        self.landmarks.append((self.phase, what))
        return True

    def _next(self, job_phase: str, what: str) -> LoadPhase:
        if job_phase == "swapping":
            return "swap"
        if job_phase == "done":
            return "done"
        if job_phase == "finishing" or what.startswith("loaded "):
            return "after"
        if job_phase != "loading" or self.phase in ("after", "swap", "done"):
            return self.phase
        if what.startswith(_INDEX_LANDMARKS):
            return "indexes"
        if self.phase == "indexes":
            return "indexes"
        if what.startswith("phase: data") or "data: " in what:
            return "data"
        if self.phase == "before" and what.startswith(("loading ", "phase: schema", "schema: ")):
            return "schema"
        return self.phase

    def count(self, phase: LoadPhase) -> int:
        return sum(1 for seen, _ in self.landmarks if seen == phase)
