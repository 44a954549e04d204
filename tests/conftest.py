"""Shared fixtures: SQLite apps, real ``sqlite3 .dump`` style dumps, fingerprints."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reel_tui.config import AppConfig, Config, load_config
from reel_tui.history import HistoryStore
from reel_tui.jobs import Job

pytest_plugins = ["pg_server", "mysql_server"]

REPO = Path(__file__).resolve().parent.parent


def _shared_data() -> Path:
    """The real sample databases (pagila, sakila): beside the clone, as CI lays them."""
    candidates = [os.environ.get("REEL_SHARED_DATA"), REPO.parent / "shared" / "data",
                  "/work/shared/data"]  # fmt: skip
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return REPO.parent / "shared" / "data"


SHARED_DATA = _shared_data()


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own state directory: history, logs and locks."""
    state = tmp_path / "state"
    monkeypatch.setenv("REEL_STATE_DIR", str(state))
    monkeypatch.delenv("REEL_CONFIG", raising=False)
    return state


@pytest.fixture
def state_dir(_isolated_state: Path) -> Path:
    return _isolated_state


@pytest.fixture
def history(state_dir: Path) -> Iterator[HistoryStore]:
    store = HistoryStore(state_dir)
    yield store
    store.close()


def sqlite_dump(db_path: Path) -> str:
    """What ``sqlite3 DB .dump`` prints; Python's iterdump is the same format."""
    with sqlite3.connect(db_path) as db:
        body = "\n".join(db.iterdump())
    db.close()
    return "PRAGMA foreign_keys=OFF;\n" + body + "\n"


def make_dump(folder: Path, name: str, script: str) -> Path:
    """Build a database from ``script`` and write its dump as ``name`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    scratch = folder / f".{name}.build.db"
    scratch.unlink(missing_ok=True)
    with sqlite3.connect(scratch) as db:
        db.executescript(textwrap.dedent(script))
    db.close()
    dump = folder / name
    dump.write_text(sqlite_dump(scratch), encoding="utf-8")
    scratch.unlink()
    return dump


def big_dump(path: Path, rows: int, table: str = "events") -> Path:
    """A plain dump of ``rows`` single-row INSERTs (about 100 bytes each)."""
    with open(path, "w", encoding="utf-8") as out:
        out.write("PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n")
        out.write(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, kind TEXT, payload TEXT);\n")
        for n in range(rows):
            out.write(f"INSERT INTO {table} VALUES({n},'kind-{n % 7}','payload; {n:>40}');\n")
        out.write("COMMIT;\n")
    return path


def fingerprint(db_path: Path) -> tuple[list[str], dict[str, list[tuple[object, ...]]]]:
    """Schema and every row of every table, for exact before/after comparisons."""
    with sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True) as db:
        schema = [
            row[0]
            for row in db.execute(
                "SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY type, name"
            )
        ]
        tables = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name"
            )
        ]
        rows = {t: db.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in tables}
    db.close()
    return schema, rows


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


BLOG_SCRIPT = """
    CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
    CREATE TABLE posts (id INTEGER PRIMARY KEY AUTOINCREMENT,
        author_id INTEGER REFERENCES authors(id), title TEXT, body BLOB);
    CREATE INDEX posts_author ON posts(author_id);
    CREATE VIEW titles AS SELECT title FROM posts;
    CREATE TRIGGER posts_guard BEFORE DELETE ON authors BEGIN SELECT 1; END;
    INSERT INTO authors VALUES (1, 'Ada'), (2, 'O''Brien; -- not a comment');
    INSERT INTO posts (author_id, title, body) VALUES
        (1, 'semi;colons', x'00ff27225c'),
        (2, 'multi
line', NULL),
        (2, '😀 unicode /* not a comment */', x'');
"""


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a config file into tmp_path (mode 0600) and return its path."""

    def write(text: str, name: str = "reel.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        os.chmod(path, 0o600)
        return path

    return write


@pytest.fixture
def blog(tmp_path: Path, write_config: Callable[[str], Path]) -> Config:
    """A config with one SQLite app "blog": a good dump, a second one, and a target path."""
    dumps = tmp_path / "dumps"
    make_dump(dumps, "seed.sql", BLOG_SCRIPT)
    make_dump(dumps, "other.sql", "CREATE TABLE other (x INTEGER); INSERT INTO other VALUES (42);")
    path = write_config(
        """
        [reel]
        default_app = "blog"
        [blog]
        dbdriver = "sqlite"
        database = "blog.sqlite3"
        dbsource = "dumps/seed.sql"
        dbsources = "dumps"
        """
    )
    return load_config(path)


@pytest.fixture
def blog_app(blog: Config) -> AppConfig:
    return blog.apps["blog"]


REEL = [sys.executable, "-m", "reel_tui"]
"""The command that runs reel-tui in a subprocess, as cron would."""


def job_report(job: Job) -> str:
    """For a job that did not end in time: its state, its last lines with times and what
    this process's threads were doing, so that a failure on a CI machine says where."""
    lines = [f"job state {job.state.value}, phase {job.phase}; its last lines:"]
    lines += [f"  {line.time - job.created:8.2f} s  {line.message}" for line in list(job.log)[-12:]]
    frames = sys._current_frames()
    for thread in threading.enumerate():
        frame = frames.get(thread.ident or -1)
        if thread is not threading.current_thread() and frame is not None:
            stack = "".join(traceback.format_stack(frame)[-6:])
            lines.append(f"thread {thread.name}:\n{stack}")
    return "\n".join(lines)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail saying ``what`` was never seen."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never saw: {what}"
        time.sleep(0.02)
