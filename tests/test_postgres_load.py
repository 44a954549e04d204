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
