"""MySQL engine, what gets loaded: real dump files against a real server, compared with what
``mysql --comments --default-character-set=utf8mb4 db < dump`` makes of the same files."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import pytest
from my_tools import fingerprint, leftovers, messages, mysql_reference, rewind
from mysql_server import MysqlServer

from conftest import SHARED_DATA
from reel_tui.jobs import JobState

SAKILA = SHARED_DATA / "sakila"
SAKILA_FILES = ("sakila-mv-schema.sql", "sakila-mv-data.sql")


def concatenated(folder: Path, name: str = "sakila.sql") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dump = folder / name
    with open(dump, "wb") as out:
        for part in SAKILA_FILES:
            out.write((SAKILA / part).read_bytes())
    return dump


@pytest.fixture(scope="module")
def sakila_reference(mysql_server: MysqlServer, tmp_path_factory: pytest.TempPathFactory):
    """sakila loaded by the mysql client, once for the module (into `sakila`, as it says)."""
    dump = concatenated(tmp_path_factory.mktemp("ref"))
    started = time.monotonic()
    mysql_reference(mysql_server, dump, "sakila")
    print(f"mysql < sakila: {time.monotonic() - started:.2f} s")
    yield fingerprint(mysql_server, "sakila")
    mysql_server.execute("DROP DATABASE IF EXISTS sakila")


def test_sakila_equals_the_mysql_client(mysql_server, my_config, my_dbname, history, tmp_path,
                                        sakila_reference):  # fmt: skip
    config = my_config()
    concatenated(tmp_path / "dumps")
    started = time.monotonic()
    job = rewind(config, history, "sakila.sql")
    print(f"reel-tui sakila: {time.monotonic() - started:.2f} s")
    assert job.state is JobState.SUCCEEDED, job.error
    found = fingerprint(mysql_server, my_dbname)
    assert sorted(found) == sorted(sakila_reference)
    for key, value in sakila_reference.items():
        assert found[key] == value, key
    assert mysql_server.execute(f"SELECT COUNT(*) FROM `{my_dbname}`.rental") == [(16044,)]
    log = messages(job)
    assert "data: actor 200 rows" in log
    assert job.bytes_read == job.bytes_total
    assert leftovers(mysql_server, my_dbname) == set()  # cached copies are no leftovers


def test_gzip_dump_loads_like_plain(mysql_server, my_config, my_dbname, history, tmp_path,
                                    sakila_reference):  # fmt: skip
    config = my_config()
    plain = concatenated(tmp_path)
    (tmp_path / "dumps" / "sakila.sql.gz").write_bytes(gzip.compress(plain.read_bytes(), 1))
    job = rewind(config, history, "sakila.sql.gz")
    assert job.state is JobState.SUCCEEDED, job.error
    assert fingerprint(mysql_server, my_dbname) == sakila_reference
