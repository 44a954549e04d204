"""PostgreSQL engine, what gets loaded: real pg_dump files against a real server,
compared with what ``psql -v ON_ERROR_STOP=1 -f`` makes of the same files."""

from __future__ import annotations

import gzip
import subprocess
import time
from pathlib import Path

import pytest
from pg_server import PgServer
from pg_tools import PAGILA_FILES, fingerprint, messages, psql_reference, rewind

from conftest import SHARED_DATA
from reel_tui.engines.pg_filter import StatementFilter, TransactionControl
from reel_tui.jobs import JobState

PAGILA = SHARED_DATA / "pagila"


@pytest.fixture(scope="module")
def pagila_reference(pg_server: PgServer) -> tuple[str, tuple]:
    """pagila loaded by psql, once for the module: (database, fingerprint)."""
    name = "ref_pagila"
    pg_server.execute(f"DROP DATABASE IF EXISTS {name}")
    started = time.monotonic()
    psql_reference(pg_server, [PAGILA / f for f in PAGILA_FILES], name)
    print(f"psql -f pagila: {time.monotonic() - started:.2f} s")
    return name, fingerprint(pg_server, name)


def concatenated(folder: Path, name: str = "pagila.sql") -> Path:
    dump = folder / name
    with open(dump, "wb") as out:
        for part in PAGILA_FILES:
            out.write((PAGILA / part).read_bytes())
    return dump


def test_pagila_equals_psql(pg_server, pg_config, pg_dbname, history, tmp_path, pagila_reference):
    config = pg_config()
    concatenated(tmp_path / "dumps")
    started = time.monotonic()
    job = rewind(config, history, "pagila.sql")
    print(f"reel-tui pagila: {time.monotonic() - started:.2f} s")
    assert job.state is JobState.SUCCEEDED, job.error
    schema, rows = fingerprint(pg_server, pg_dbname)
    ref_schema, ref_rows = pagila_reference[1]
    assert rows == ref_rows
    assert rows["public.rental"][0] == 16044
    assert rows["public.payment_p2007_02"][0] > 0
    assert schema == ref_schema
    log = messages(job)
    assert "phase: schema" in log and "phase: data" in log
    assert "data: public.actor 200 rows" in log
    assert any(m.startswith("ANALYZE took") for m in log)
    assert job.bytes_read == job.bytes_total
    [(analyzed,)] = pg_server.execute(
        "SELECT count(*) FROM pg_stats WHERE tablename = 'rental'", pg_dbname
    )
    assert analyzed > 0


def test_gzip_dump_loads_like_plain(pg_server, pg_config, pg_dbname, history, tmp_path,
                                    pagila_reference):  # fmt: skip
    config = pg_config("analyze = false")
    plain = concatenated(tmp_path)
    (tmp_path / "dumps" / "pagila.sql.gz").write_bytes(gzip.compress(plain.read_bytes()))
    job = rewind(config, history, "pagila.sql.gz")
    assert job.state is JobState.SUCCEEDED, job.error
    assert fingerprint(pg_server, pg_dbname)[1] == pagila_reference[1][1]
    assert not any(m.startswith("ANALYZE") for m in messages(job))


def test_custom_format_goes_through_pg_restore(pg_server, pg_config, pg_dbname, history,
                                               tmp_path, pagila_reference):  # fmt: skip
    config = pg_config()
    archive = tmp_path / "dumps" / "pagila.dump"
    subprocess.run(["pg_dump", "-Fc", "-f", str(archive), "-d", pagila_reference[0]],
                   env=pg_server.env(), check=True)  # fmt: skip
    job = rewind(config, history, "pagila.dump")
    assert job.state is JobState.SUCCEEDED, job.error
    assert fingerprint(pg_server, pg_dbname) == pagila_reference[1]
    assert any("with " in m and "pg_restore" in m for m in messages(job))


def test_a_dumps_begin_with_options_cannot_leave_the_staging_load_uncommitted(
    pg_server, pg_config, pg_dbname, history, tmp_path
):
    """``BEGIN ISOLATION LEVEL …`` sent with its plain ``COMMIT`` skipped would keep the
    rest of the load in a transaction never committed, and swap in an empty database."""
    config = pg_config("analyze = false")
    pg_server.execute(f'CREATE DATABASE "{pg_dbname}"')
    pg_server.execute("CREATE TABLE keep (a int); INSERT INTO keep VALUES (1)", pg_dbname)
    before = fingerprint(pg_server, pg_dbname)
    dump = tmp_path / "dumps" / "tx.sql"
    dump.write_text(
        "BEGIN ISOLATION LEVEL SERIALIZABLE;\nCREATE TABLE public.t (a int);\n"
        "INSERT INTO public.t VALUES (1);\nCOMMIT;\n"
    )
    job = rewind(config, history, "tx.sql")
    assert job.state is JobState.FAILED
    refused = "the dump's own transaction control is not supported: BEGIN ISOLATION LEVEL"
    assert job.error.startswith(f"{dump}:1: {refused} SERIALIZABLE;"), job.error
    assert fingerprint(pg_server, pg_dbname) == before
    assert pg_dbname + "__reel_staging" not in pg_server.databases()


def test_a_transaction_left_open_the_filter_misses_fails_the_load(
    pg_server, pg_config, pg_dbname, history, tmp_path, monkeypatch
):
    """The backstop: a batch that leaves a transaction open stops the load."""
    monkeypatch.setattr(StatementFilter, "skip", lambda self, text: None)
    config = pg_config("analyze = false")
    pg_server.execute(f'CREATE DATABASE "{pg_dbname}"')
    before = fingerprint(pg_server, pg_dbname)
    dump = tmp_path / "dumps" / "tx.sql"
    dump.write_text("BEGIN;\nCREATE TABLE public.t (a int);\n")
    job = rewind(config, history, "tx.sql")
    assert job.state is JobState.FAILED
    assert job.error.startswith(f"{dump}:1: a statement of the dump near here left a "
                                "transaction open"), job.error  # fmt: skip
    assert fingerprint(pg_server, pg_dbname) == before


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("BEGIN;", "transaction"),
        ("begin work;", "transaction"),
        ("START TRANSACTION;", "transaction"),
        ("COMMIT /* x */;", "transaction"),
        ("END\n-- why\n;", "transaction"),
        ("ABORT TRANSACTION;", "transaction"),
        ("COMMIT AND CHAIN;", None),
        ("ROLLBACK AND CHAIN;", None),
        ("ROLLBACK TO SAVEPOINT a;", None),
        ("BEGIN ISOLATION LEVEL REPEATABLE READ;", None),
        ("START TRANSACTION READ ONLY;", None),
        ("SAVEPOINT a;", None),
        ("RELEASE a;", None),
        ("PREPARE /* x */ TRANSACTION 'a';", None),
        ("COMMIT PREPARED 'a';", None),
        ("commit/*x*/and chain;", None),
    ],
)
def test_filter_skips_plain_transaction_control_and_refuses_the_rest(statement, expected):
    if expected is None:
        with pytest.raises(TransactionControl):
            StatementFilter().skip(statement)
    else:
        assert StatementFilter().skip(statement) == expected


@pytest.mark.parametrize(
    "statement",
    ["PREPARE q AS SELECT 1;", "ENDPOINT;", "begin_x();", "CREATE TABLE begin (a int);"],
)
def test_filter_lets_look_alikes_through(statement):
    assert StatementFilter().skip(statement) is None
