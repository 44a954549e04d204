"""Helpers for the MySQL engine tests: rewinds through the real queue, fingerprints, and the
reference every load is compared with (``mysql --comments --default-character-set=utf8mb4``)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from mysql_server import MysqlServer

from conftest import job_report
from reel_tui.config import load_config
from reel_tui.history import HistoryStore
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import Job, JobEvent
from reel_tui.plan import plan_rewind

Fingerprint = dict[str, object]


def rewind(config: Path, history: HistoryStore, source: str | None = None) -> Job:
    """One rewind of app "crm" through the job queue, as the faces run it."""
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan_rewind(load_config(config), "crm", source))
        assert queue.wait(job, timeout=120)
        return job
    finally:
        queue.shutdown()


def rewind_cancelled_at_swap(config: Path, history: HistoryStore, source: str) -> Job:
    """A rewind of app "crm" cancelled as soon as it reports the swapping phase."""
    queue = JobQueue(history, workers=1)

    def cancel_at_swap(event: JobEvent) -> None:
        if event.kind == "progress" and event.job.phase == "swapping":
            queue.cancel(event.job.id)

    try:
        queue.subscribe(cancel_at_swap)
        job = queue.submit(plan_rewind(load_config(config), "crm", source))
        assert queue.wait(job, timeout=60)
        return job
    finally:
        queue.shutdown()


def rewind_in_an_open_transaction(
    server: MysqlServer, database: str, config: Path, history: HistoryStore, source: str
) -> Job:
    """A rewind of app "crm" while the application's open transaction has read ``child``
    (a metadata lock held until it ends, after the rewind)."""
    app = server.connect(database, autocommit=False)
    try:
        with app.cursor() as cur:
            cur.execute("SELECT * FROM child")
        return rewind(config, history, source)
    finally:
        app.rollback()
        app.close()


def why_not_done(job: Job, server: MysqlServer) -> str:
    """:func:`conftest.job_report` and what the server was running."""
    rows = server.execute("SELECT ID, DB, COMMAND, TIME, STATE, LEFT(INFO, 80) "
                          "FROM information_schema.PROCESSLIST ORDER BY ID")  # fmt: skip
    return "\n".join([job_report(job), "server processlist:", *(f"  {row}" for row in rows)])


def messages(job: Job) -> list[str]:
    return [line.message for line in job.log]


def mysql_reference(server: MysqlServer, dump: Path, database: str) -> None:
    """Load ``dump`` with the mysql client into ``database`` (created when missing)."""
    server.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    with open(dump, "rb") as stdin:
        subprocess.run(
            ["mysql", *server.client_args(), "--comments", "--default-character-set=utf8mb4",
             database],
            stdin=stdin, env=server.client_env(), check=True, capture_output=True,
        )  # fmt: skip


def fingerprint(server: MysqlServer, database: str) -> Fingerprint:
    """SHOW CREATE of every table, view, trigger, routine and event (the database's own name
    replaced by ``DB``), and CHECKSUM TABLE of every table."""
    conn = server.connect(database)
    found: Fingerprint = {}
    try:
        with conn.cursor() as cur:

            def rows(sql: str) -> list[tuple[object, ...]]:
                cur.execute(sql)
                return list(cur.fetchall())

            def q(name: object) -> str:
                return "`" + str(name).replace("`", "``") + "`"

            def same(value: object) -> object:
                if isinstance(value, str):
                    return value.replace(f"`{database}`.", "`DB`.").replace(f"{database}.", "DB.")
                return value

            for name, kind in rows("SHOW FULL TABLES"):
                if kind == "VIEW":
                    found[f"view {name}"] = [
                        same(v) for v in rows(f"SHOW CREATE VIEW {q(name)}")[0]
                    ]
                else:
                    found[f"table {name}"] = same(rows(f"SHOW CREATE TABLE {q(name)}")[0][1])
                    found[f"rows {name}"] = rows(f"CHECKSUM TABLE {q(name)}")[0][1]
            schema = conn.escape(database)  # a quoted literal, whatever the name holds
            for (name,) in rows(f"SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
                                f"WHERE TRIGGER_SCHEMA = {schema}"):  # fmt: skip
                found[f"trigger {name}"] = [
                    same(v) for v in rows(f"SHOW CREATE TRIGGER {q(name)}")[0][:6]
                ]
            routines = rows("SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES "
                            f"WHERE ROUTINE_SCHEMA = {schema}")  # fmt: skip
            for name, kind in routines:
                found[f"{kind} {name}"] = [
                    same(v) for v in rows(f"SHOW CREATE {kind} {q(name)}")[0]
                ]
            for (name,) in rows(f"SELECT EVENT_NAME FROM information_schema.EVENTS "
                                f"WHERE EVENT_SCHEMA = {schema}"):  # fmt: skip
                found[f"event {name}"] = [same(v) for v in rows(f"SHOW CREATE EVENT {q(name)}")[0]]
    finally:
        conn.close()
    return found


KEPT = ("__reel_cache_", "__reel_spare_", "__reel_snap_", "__reel_undo")
"""Cached copies are kept on purpose, named as such: not leftovers."""
BACKGROUND = ("__reel_trash_", "__reel_load_", "__reel_prep_")
"""What the background work drops or turns into cached copies, maybe in a detached process."""


def leftovers(server: MysqlServer, target: str, wait: float = 60.0) -> set[str]:
    """reel's leftovers for the target, once the background work is over (waited for)."""
    deadline = time.monotonic() + wait
    while True:
        ours = [db for db in server.databases() if db.startswith(target + "__reel")]
        found = {db for db in ours if not any(kept in db for kept in KEPT)}
        busy = any(part in db for db in found for part in BACKGROUND)
        if not busy or time.monotonic() > deadline:
            return found
        time.sleep(0.1)
