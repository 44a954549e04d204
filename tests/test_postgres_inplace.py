"""PostgreSQL engine in place: a role without CREATEDB rewinds its own database in one
transaction; a failure or a cancel rolls everything back."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from pg_server import PASSWORD_ENV, PgServer
from pg_tools import (
    PAGILA_FILES,
    fingerprint,
    messages,
    psql_reference,
    rewind,
    table_rows,
    why_not_done,
)

from conftest import SHARED_DATA, job_report, wait_until
from reel_tui.config import load_config
from reel_tui.engines.pg_filter import StatementFilter
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import JobState
from reel_tui.plan import plan_rewind


@pytest.fixture
def plain_role(pg_server: PgServer, pg_dbname: str, pg_config, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:  # fmt: skip
    """A role without CREATEDB owning the target, which holds a schema pagila also has;
    returns a config that connects as that role."""
    role = "plain_" + os.urandom(3).hex()
    pg_server.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'")
    pg_server.execute(f'CREATE DATABASE "{pg_dbname}" OWNER {role}')
    conn = pg_server.connect(pg_dbname, user=role, password=f"pw-{role}")
    with conn.cursor() as cur:
        cur.execute("CREATE SCHEMA legacy; CREATE TABLE legacy.junk (x int);"
                    "CREATE TABLE public.junk (x int); INSERT INTO public.junk VALUES (1);"
                    "CREATE TYPE public.mood AS ENUM ('sad'); CREATE FUNCTION public.f() "
                    "RETURNS int LANGUAGE sql AS 'SELECT 1'")  # fmt: skip
    conn.close()
    text = pg_config("skip_owner = true\nskip_privileges = true").read_text()
    config = tmp_path / "reel.toml"
    config.write_text(text.replace(f'dbuser = "{pg_server.user}"', f'dbuser = "{role}"'))
    monkeypatch.setenv(PASSWORD_ENV, f"pw-{role}")
    yield config
    pg_server.execute(f'DROP DATABASE IF EXISTS "{pg_dbname}" WITH (FORCE)')
    pg_server.execute(f"DROP ROLE {role}")


@pytest.mark.parametrize("dump_format", ["p", "c"], ids=["plain", "custom-archive"])
def test_role_without_createdb_rewinds_pagila_in_place(pg_server, pg_dbname, history, tmp_path,
                                                        plain_role, dump_format):  # fmt: skip
    """pagila-data.sql disables triggers, which only a superuser may: a role like this one
    loads a pg_dump of the whole database instead, as it would get from production.
    An archive goes through ``pg_restore -f -`` into the same one transaction."""
    reference = pg_dbname + "_ref"
    psql_reference(pg_server, [SHARED_DATA / "pagila" / f for f in PAGILA_FILES], reference)
    try:
        dump = tmp_path / "dumps" / "pagila.dump"
        subprocess.run(["pg_dump", f"-F{dump_format}", "-f", str(dump), "-d", reference],
                       env=pg_server.env(), check=True)  # fmt: skip
        job = rewind(plain_role, history, "pagila.dump")
        assert job.state is JobState.SUCCEEDED, job.error
        assert table_rows(pg_server, pg_dbname) == table_rows(pg_server, reference)
    finally:
        pg_server.execute(f'DROP DATABASE "{reference}"')
    log = messages(job)
    assert any(m.startswith("mode: in place, in one transaction (user plain_") and
               "may not create databases (no CREATEDB)" in m for m in log)  # fmt: skip
    assert any(m.startswith("cleared in place: 1 schemas and 3 other objects") for m in log), log
    phases = [m for m in log if m.startswith("phase: ")]
    assert phases == ["phase: schema", "phase: data", "phase: indexes and constraints"]
    assert not pg_server.execute("SELECT 1 FROM pg_class WHERE relname = 'junk'", pg_dbname)
    assert pg_dbname + "__reel_staging" not in pg_server.databases()


def test_in_place_failure_at_the_last_statement_rolls_everything_back(
    pg_server, pg_dbname, history, tmp_path, plain_role
):
    before = fingerprint(pg_server, pg_dbname)
    dump = tmp_path / "dumps" / "broken.sql"
    dump.write_text(
        "CREATE SCHEMA legacy;\nCREATE TABLE legacy.t (x int);\n"
        "INSERT INTO legacy.t VALUES (1);\nINSERT INTO legacy.t VALUES ('x');\n"
    )
    job = rewind(plain_role, history, "broken.sql")
    assert job.state is JobState.FAILED
    assert job.error.startswith(f"{dump}:4: invalid input syntax for type integer")
    assert fingerprint(pg_server, pg_dbname) == before


def test_in_place_cancel_mid_copy_rolls_back(pg_server, pg_dbname, history, tmp_path, plain_role):
    before = fingerprint(pg_server, pg_dbname)
    with open(tmp_path / "dumps" / "big.sql", "w") as out:
        out.write(
            "CREATE TABLE public.big (id int, v text);\nCOPY public.big (id, v) FROM stdin;\n"
        )
        for start in range(0, 1_500_000, 100_000):
            out.write("".join(f"{n}\tvalue {n:>40}\n" for n in range(start, start + 100_000)))
        out.write("\\.\n")
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan_rewind(load_config(plain_role), "shop", "big.sql"))
        deadline = time.monotonic() + 30
        while job.bytes_read < 10_000_000 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert job.detail == "data: public.big"
        asked = time.monotonic()
        queue.cancel(job.id)
        assert queue.wait(job, timeout=30), why_not_done(job, pg_server)
        # well under a second when idle; the bound leaves room for a loaded machine and is
        # still far less than the rest of the 1.5 million rows would take
        assert time.monotonic() - asked < 3.0
    finally:
        queue.shutdown()
    assert job.state is JobState.CANCELLED
    assert fingerprint(pg_server, pg_dbname) == before


def test_in_place_unreadable_archive_changes_nothing(pg_server, pg_dbname, history, tmp_path,
                                                     plain_role):  # fmt: skip
    before = fingerprint(pg_server, pg_dbname)
    (tmp_path / "dumps" / "bad.dump").write_bytes(b"PGDMP\x01\x0e\x00" + b"\xff" * 64)
    job = rewind(plain_role, history, "bad.dump")
    assert job.state is JobState.FAILED
    assert "bad.dump: pg_restore could not read it: sanity check" in job.error, job.error
    assert fingerprint(pg_server, pg_dbname) == before


@pytest.mark.parametrize(
    ("control", "refused"),
    [
        ("COMMIT AND CHAIN;", True),
        ("ROLLBACK AND CHAIN;", True),
        ("COMMIT /* x */;", False),
        ("END -- done\n;", False),
        ("BEGIN ISOLATION LEVEL SERIALIZABLE;", True),
        ("SAVEPOINT mine;", True),
        ("RELEASE SAVEPOINT reel_batch;", True),
        ("PREPARE TRANSACTION 'x';", True),
        ("commit;", False),
    ],
)
def test_in_place_the_dumps_transaction_control_never_commits_a_half_rewind(
    pg_server, pg_dbname, history, tmp_path, plain_role, control, refused
):
    """A stray COMMIT AND CHAIN (or any other form) in hand-written SQL would commit the
    clear and the statements before it: plain forms are skipped, others refused."""
    before = fingerprint(pg_server, pg_dbname)
    dump = tmp_path / "dumps" / "stray.sql"
    dump.write_text(
        "CREATE TABLE public.t1 (a int);\nINSERT INTO public.t1 VALUES (1);\n"
        f"{control}\nCREATE TABLE public.t2 (a int);\nSELECT 1/0;\n"
    )
    job = rewind(plain_role, history, "stray.sql")
    assert job.state is JobState.FAILED
    assert fingerprint(pg_server, pg_dbname) == before, job.error
    if refused:
        assert job.error.startswith(f"{dump}:3: the dump's own transaction control is not "
                                    "supported"), job.error  # fmt: skip
    else:
        assert job.error.startswith(f"{dump}:"), job.error
        assert "division by zero" in job.error


def test_in_place_a_transaction_end_the_filter_misses_fails_the_rewind(
    pg_server, pg_dbname, history, tmp_path, plain_role, monkeypatch
):
    """The backstop: should a statement end reel's transaction anyway, the load stops
    there and says so, instead of going on in a transaction of its own."""
    monkeypatch.setattr(StatementFilter, "skip", lambda self, text: None)
    dump = tmp_path / "dumps" / "stray.sql"
    dump.write_text("CREATE TABLE public.t1 (a int);\nCOMMIT;\nCREATE TABLE public.t2 (a int);\n")
    job = rewind(plain_role, history, "stray.sql")
    assert job.state is JobState.FAILED
    assert job.error.startswith(f"{dump}:1: a statement of the dump near here ended reel-tui's "
                                "transaction"), job.error  # fmt: skip


def test_in_place_a_cancel_during_analyze_after_the_commit_is_not_a_cancelled_rewind(
    pg_server, pg_dbname, history, tmp_path, plain_role
):
    """The new content is committed before ANALYZE: a cancel then stops the ANALYZE only,
    and the rewind is reported as done, never as "left as it was"."""
    (tmp_path / "dumps" / "new.sql").write_text(
        "CREATE TABLE public.newt (a int);\nINSERT INTO public.newt VALUES (1);\n"
    )
    # ANALYZE (of the whole database, catalogs included) must wait for a lock: one taken
    # on a catalog the rewind never vacuums, before the rewind starts. (Locking the new
    # table as soon as it appeared raced ANALYZE, which could be over first.)
    blocker = pg_server.connect(pg_dbname)
    blocker.autocommit = False
    with blocker.cursor() as cur:
        cur.execute("LOCK TABLE pg_catalog.pg_seclabel IN SHARE UPDATE EXCLUSIVE MODE")
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan_rewind(load_config(plain_role), "shop", "new.sql"))
        wait_until(lambda: job.detail == "ANALYZE" or job.state.is_final, "the ANALYZE phase")
        assert job.detail == "ANALYZE", job_report(job)
        # ANALYZE waits for the lock (seen on the server: a fixed 0.2 s was a guess)
        wait_until(lambda: bool(pg_server.execute(
            "SELECT 1 FROM pg_stat_activity WHERE query = 'ANALYZE' AND wait_event_type = 'Lock'"
        )), "ANALYZE waiting for the lock")  # fmt: skip
        queue.cancel(job.id)
        assert queue.wait(job, timeout=30), why_not_done(job, pg_server)
    finally:
        queue.shutdown()
        blocker.close()
    assert job.state is JobState.SUCCEEDED, job.error
    log = messages(job)
    assert "committed the new content" in log
    assert any(m.startswith("ANALYZE did not finish (canceling statement due to user request)")
               for m in log), log  # fmt: skip
    assert pg_server.execute("SELECT a FROM public.newt", pg_dbname) == [(1,)]


@pytest.mark.parametrize("outcome", ["committed", "rolled-back"])
def test_in_place_a_lost_commit_reply_is_settled_by_asking_the_server(
    pg_server, pg_dbname, history, tmp_path, plain_role, monkeypatch, outcome
):
    """The connection is lost as COMMIT is sent: the server knows whether the transaction
    committed (txid_status), so the rewind is reported as done or as unchanged, truly."""
    before = fingerprint(pg_server, pg_dbname)
    (tmp_path / "dumps" / "new.sql").write_text("CREATE TABLE public.newt (a int);\n")

    class LosesCommit(psycopg2.extensions.connection):
        def commit(self) -> None:
            if self.info.dbname != pg_dbname or self.autocommit:
                return super().commit()
            if outcome == "committed":  # the server commits, the reply never arrives
                super().commit()
                super().close()
                raise psycopg2.OperationalError("server closed the connection unexpectedly")
            pg_server.execute(f"SELECT pg_terminate_backend({self.get_backend_pid()})")
            return super().commit()

    real = psycopg2.connect
    factory = LosesCommit
    monkeypatch.setattr(
        psycopg2, "connect", lambda *a, **kw: real(*a, connection_factory=factory, **kw)
    )
    job = rewind(plain_role, history, "new.sql")
    log = messages(job)
    assert any(m.startswith("lost the connection during the commit (") for m in log), log
    if outcome == "committed":
        assert job.state is JobState.SUCCEEDED, job.error
        assert "the server committed it before the connection was lost" in log
        assert pg_server.execute("SELECT count(*) FROM public.newt", pg_dbname) == [(0,)]
    else:
        assert job.state is JobState.FAILED
        assert job.error.endswith(f"which the server rolled back; {job.target} is unchanged")
        assert fingerprint(pg_server, pg_dbname) == before
