"""Synthetic dumps in each engine's native format, made by the engine's own dump tool.

The rows from :mod:`datagen` are loaded into a scratch database (a SQLite file,
or ``bench_src`` on the benchmark's throwaway server), then dumped with
``sqlite3 .dump``, ``pg_dump`` (plain, ``--inserts`` and custom format) or
``mysqldump``. Dumps are cached under ``<cache>/<engine>/`` by generator
version and size, and written under a temporary name then renamed, so an
interrupted run never leaves half a dump behind.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import datagen

if TYPE_CHECKING:
    from mysql_server import MysqlServer
    from pg_server import PgServer

SRC_DB = "bench_src"


def size_tag(size_mb: float) -> str:
    return f"{size_mb:g}mb"


def _atomic(path: Path, make: Callable[[Path], None]) -> Path:
    """Run ``make(tmp)`` and rename tmp to ``path``; skip when ``path`` exists (cached)."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"  making {path}", file=sys.stderr, flush=True)
    tmp = path.with_name(".tmp-" + path.name)
    tmp.unlink(missing_ok=True)
    try:
        make(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _dump_to(command: list[str], out: Path, env: dict[str, str] | None = None) -> None:
    with open(out, "wb") as stdout:
        done = subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed: {done.stderr.decode()[-2000:]}")


def expected_counts(size_mb: float) -> dict[str, int]:
    p = datagen.plan(size_mb)
    return {"customers": p.customers, "orders": p.orders}


def sqlite_dumps(cache: Path, size_mb: float) -> dict[str, Path]:
    """``{"sqlite3 .dump": path}``."""
    folder = cache / "sqlite"
    name = f"sqlite-{size_tag(size_mb)}.sql"

    def make(tmp: Path) -> None:
        db = tmp.with_suffix(".db")
        db.unlink(missing_ok=True)
        conn = sqlite3.connect(db)
        try:
            p = datagen.plan(size_mb)
            with conn:
                for statement in datagen.SCHEMA["sqlite"]:
                    conn.execute(statement)
                for chunk in datagen.customers(p):
                    conn.executemany("INSERT INTO customers VALUES (?,?,?,?,?)", chunk)
                for rows in datagen.orders(p):
                    conn.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?)", rows)
                for statement in datagen.INDEXES["sqlite"]:
                    conn.execute(statement)
        finally:
            conn.close()
        try:
            _dump_to(["sqlite3", str(db), ".dump"], tmp)
        finally:
            db.unlink(missing_ok=True)

    return {"sqlite3 .dump": _atomic(folder / name, make)}


def _pg_load(server: PgServer, size_mb: float) -> None:
    server.execute(f"DROP DATABASE IF EXISTS {SRC_DB}")
    server.execute(f"CREATE DATABASE {SRC_DB} TEMPLATE template0")
    p = datagen.plan(size_mb)
    conn = server.connect(SRC_DB)
    try:
        with conn.cursor() as cur:
            for statement in datagen.SCHEMA["postgres"]:
                cur.execute(statement)
            for table, chunks in (
                ("customers", datagen.customers(p)),
                ("orders", datagen.orders(p)),
            ):
                for chunk in chunks:
                    text = "".join("\t".join(str(v) for v in row) + "\n" for row in chunk)
                    cur.copy_expert(f"COPY {table} FROM STDIN", _Reader(text))
            for statement in datagen.INDEXES["postgres"]:
                cur.execute(statement)
            cur.execute("ANALYZE")
    finally:
        conn.close()


class _Reader:
    """A file-like object over one string, for ``copy_expert``."""

    def __init__(self, text: str) -> None:
        self._data = text.encode()
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._pos + size
        chunk = self._data[self._pos : end]
        self._pos += len(chunk)
        return chunk

    def readline(self, size: int = -1) -> bytes:
        end = self._data.find(b"\n", self._pos)
        end = len(self._data) if end < 0 else end + 1
        chunk = self._data[self._pos : end]
        self._pos += len(chunk)
        return chunk


def pg_dumps(cache: Path, size_mb: float, server: PgServer) -> dict[str, Path]:
    """``{"pg_dump": plain, "pg_dump --inserts": inserts, "pg_dump -Fc": custom}``."""
    folder = cache / f"postgres{server.version // 10000}"
    tag = size_tag(size_mb)
    wanted = {
        "pg_dump": (folder / f"pg-{tag}.sql", []),
        "pg_dump --inserts": (folder / f"pg-{tag}-inserts.sql", ["--inserts"]),
        "pg_dump -Fc": (folder / f"pg-{tag}.dump", ["-Fc"]),
    }
    loaded = False
    result: dict[str, Path] = {}
    for label, (path, options) in wanted.items():
        if not path.exists() and not loaded:
            _pg_load(server, size_mb)
            loaded = True

        def make(tmp: Path, options: list[str] = options) -> None:
            _dump_to(["pg_dump", "-d", SRC_DB, *options], tmp, env=server.env())

        result[label] = _atomic(path, make)
    if loaded:
        server.execute(f"DROP DATABASE IF EXISTS {SRC_DB}")
    return result


def mysql_dumps(cache: Path, size_mb: float, server: MysqlServer) -> dict[str, Path]:
    """``{"mysqldump": path}``."""
    folder = cache / "mysql"
    name = f"mysql-{size_tag(size_mb)}.sql"

    def make(tmp: Path) -> None:
        server.execute(f"DROP DATABASE IF EXISTS {SRC_DB}")
        server.execute(f"CREATE DATABASE {SRC_DB} CHARACTER SET utf8mb4")
        p = datagen.plan(size_mb)
        conn = server.connect(SRC_DB, autocommit=False)
        try:
            with conn.cursor() as cur:
                for statement in datagen.SCHEMA["mysql"]:
                    cur.execute(statement)
                for chunk in datagen.customers(p):
                    cur.executemany("INSERT INTO customers VALUES (%s,%s,%s,%s,%s)", chunk)
                for rows in datagen.orders(p):
                    cur.executemany("INSERT INTO orders VALUES (%s,%s,%s,%s,%s,%s,%s)", rows)
                conn.commit()
                for statement in datagen.INDEXES["mysql"]:
                    cur.execute(statement)
        finally:
            conn.close()
        _dump_to(
            [
                "mysqldump",
                *server.client_args(),
                "--default-character-set=utf8mb4",
                "--single-transaction",
                SRC_DB,
            ],
            tmp,
            env=server.client_env(),
        )
        server.execute(f"DROP DATABASE IF EXISTS {SRC_DB}")

    return {"mysqldump": _atomic(folder / name, make)}
