"""Helpers for the PostgreSQL engine tests: rewinds through the real queue, fingerprints,
and the reference every load is compared with (``psql -v ON_ERROR_STOP=1 -f``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from pg_server import PgServer

from conftest import job_report
from reel_tui.config import load_config
from reel_tui.history import HistoryStore
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import Job
from reel_tui.plan import plan_rewind

PAGILA_FILES = ("pagila-schema.sql", "pagila-data.sql")

Fingerprint = tuple[str, dict[str, tuple[int, str]]]


def rewind(config: Path, history: HistoryStore, source: str | None = None) -> Job:
    """One rewind of app "shop" through the job queue, as the faces run it."""
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan_rewind(load_config(config), "shop", source))
        assert queue.wait(job, timeout=120)
        return job
    finally:
        queue.shutdown()


def messages(job: Job) -> list[str]:
    return [line.message for line in job.log]


def schema_dump(server: PgServer, dbname: str) -> str:
    """``pg_dump --schema-only`` without what differs between two loads of one dump."""
    out = subprocess.run(
        ["pg_dump", "--schema-only", "-d", dbname], env=server.env(), check=True,
        capture_output=True, text=True,
    ).stdout  # fmt: skip
    return "\n".join(line for line in out.splitlines() if not re.match(r"\\(un)?restrict ", line))


def table_rows(server: PgServer, dbname: str) -> dict[str, tuple[int, str]]:
    """Per table (and materialized view): row count and an md5 of its sorted rows."""
    tables = server.execute(
        """SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE (c.relkind = 'r' OR (c.relkind = 'm' AND c.relispopulated))
             AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1""",
        dbname,
    )
    result: dict[str, tuple[int, str]] = {}
    for (table,) in tables:
        [(count, digest)] = server.execute(
            f"SELECT count(*), md5(COALESCE(string_agg(t::text, E'\\n' ORDER BY t::text), '')) "
            f"FROM {table} t",
            dbname,
        )
        result[str(table)] = (int(count), str(digest))  # type: ignore[call-overload]
    return result


def fingerprint(server: PgServer, dbname: str) -> Fingerprint:
    return schema_dump(server, dbname), table_rows(server, dbname)


def psql_reference(server: PgServer, files: list[Path], dbname: str) -> None:
    """Load ``files`` into a new database with psql, stopping at the first error."""
    server.execute(f'CREATE DATABASE "{dbname}" TEMPLATE template0')
    command = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dbname]
    for file in files:
        command += ["-f", str(file)]
    subprocess.run(command, env=server.env(), check=True, capture_output=True)


def why_not_done(job: Job, server: PgServer) -> str:
    """:func:`conftest.job_report` and what the server's sessions were doing."""
    rows = server.execute("""SELECT pid, datname, state, wait_event_type, wait_event,
                                    left(query, 80) FROM pg_stat_activity
                             WHERE backend_type = 'client backend' ORDER BY pid""")
    return "\n".join([job_report(job), "server sessions:", *(f"  {row}" for row in rows)])
