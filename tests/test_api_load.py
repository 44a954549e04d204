"""100 concurrent rewind requests over several SQLite apps and a real PostgreSQL app,
through a ``reel-tui --serve`` process: every request accounted for, per-database
order kept, the targets holding what the last job of each asked for, nothing left over;
then a PostgreSQL rewind cancelled through the API mid-load leaves its target as it was."""

from __future__ import annotations

import itertools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pg_server import PASSWORD_ENV, PgServer
from pg_tools import fingerprint as pg_fingerprint
from pg_tools import psql_reference

from api_tools import V1, InProcess, Served, wait_running
from conftest import fingerprint, make_dump
from test_sqlite_engine import reference

REQUESTS = 100
SQLITE_APPS = ("a1", "a2", "a3")
SOURCES = ("s1.sql", "s2.sql")


def pg_dump_text(marker: str, rows: int) -> str:
    """A plain PostgreSQL dump: a marker row saying which dump it is, and ``rows`` items."""
    items = "".join(f"{n}\titem {n} of {marker}\n" for n in range(rows))
    return (
        "CREATE TABLE public.marker (source text NOT NULL);\n"
        f"COPY public.marker (source) FROM stdin;\n{marker}\n\\.\n"
        "CREATE TABLE public.items (id integer PRIMARY KEY, name text NOT NULL);\n"
        f"COPY public.items (id, name) FROM stdin;\n{items}\\.\n"
    )


def write_config(tmp_path: Path, server: PgServer, dbname: str) -> Path:
    tables = ['[reel]\ndefault_app = "a1"\nworkers = 2\n']
    for app in SQLITE_APPS:
        for n, source in enumerate(SOURCES):
            script = (
                f"CREATE TABLE marker (source TEXT); INSERT INTO marker VALUES "
                f"('{app}/{source}'); CREATE TABLE n (x); INSERT INTO n VALUES ({n});"
            )
            make_dump(tmp_path / app, source, script)
        tables.append(f'[{app}]\ndbdriver = "sqlite"\ndatabase = "{app}.sqlite3"\n'
                      f'dbsources = "{app}"\n')  # fmt: skip
    (tmp_path / "shop").mkdir()
    for source in SOURCES:
        (tmp_path / "shop" / source).write_text(pg_dump_text(f"shop/{source}", 500))
    tables.append(f'[shop]\ndbdriver = "postgres"\ndbserver = "{server.host}"\n'
                  f"dbport = {server.port}\ndatabase = \"{dbname}\"\n"
                  f'dbuser = "{server.user}"\ndbpassword_env = "{PASSWORD_ENV}"\n'
                  'dbsources = "shop"\n')  # fmt: skip
    path = tmp_path / "reel.toml"
    path.write_text("\n".join(tables), encoding="utf-8")
    os.chmod(path, 0o600)
    return path


def plan(n: int) -> tuple[str, str]:
    """Request ``n``'s app and source: every app, both sources, interleaved."""
    apps = (*SQLITE_APPS, "shop")
    return apps[n % len(apps)], SOURCES[(n // len(apps)) % len(SOURCES)]


def test_hundred_concurrent_rewinds_are_all_accounted_for(
    pg_server: PgServer, pg_dbname: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(PASSWORD_ENV, pg_server.password)
    config = write_config(tmp_path, pg_server, pg_dbname)
    server = Served(config, "-q")
    reference_db = f"{pg_dbname}_reference"
    try:
        with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
            replies = list(pool.map(
                lambda n: server("POST", f"{V1}/rewind/{'/'.join(plan(n))}"), range(REQUESTS)
            ))  # fmt: skip
        statuses = [reply.status for reply in replies]
        assert set(statuses) <= {202, 429}, statuses
        accepted = [(plan(n), reply.json) for n, reply in enumerate(replies) if reply.status == 202]
        assert len(accepted) >= REQUESTS // 2, statuses
        job_ids = {body["id"] for _, body in accepted}
        print(f"{len(accepted)} accepted ({statuses.count(429)} 429), {len(job_ids)} jobs")
        views = {job_id: server.wait_final(job_id, timeout=120) for job_id in job_ids}
        for (app, source), body in accepted:  # every 202 names a job that did that
            view = views[body["id"]]
            assert (view["app"], view["source"], view["state"]) == (app, source, "succeeded")
        listed = server("GET", f"{V1}/jobs?limit=500").json["jobs"]
        assert {job["id"] for job in listed} == job_ids, "no job the requests did not make"

        for app in (*SQLITE_APPS, "shop"):
            jobs = sorted((v for v in views.values() if v["app"] == app), key=lambda v: v["id"])
            assert jobs, app
            for earlier, later in itertools.pairwise(jobs):
                assert earlier["finished"] <= later["started"], (app, earlier, later)
            last = jobs[-1]["source"]
            if app == "shop":
                psql_reference(pg_server, [tmp_path / "shop" / last], reference_db)
                assert pg_fingerprint(pg_server, pg_dbname) == pg_fingerprint(
                    pg_server, reference_db
                )
            else:
                target = tmp_path / f"{app}.sqlite3"
                assert fingerprint(target) == fingerprint(reference(tmp_path / app / last,
                                                                    tmp_path))  # fmt: skip
                assert not list(tmp_path.glob(f".{app}.sqlite3.reel-*.tmp*"))
        assert not leftovers(pg_server, pg_dbname, wait=20)

        # cancel through the API mid-load: the PostgreSQL target stays as it was
        before = pg_fingerprint(pg_server, pg_dbname)
        (tmp_path / "shop" / "big.sql").write_text(pg_dump_text("shop/big", 400_000))
        job_id = server("POST", f"{V1}/rewind/shop/big.sql").json["id"]
        wait_running(server, job_id, past_bytes=500_000)
        assert server("POST", f"{V1}/jobs/{job_id}/cancel").status == 202
        assert server.wait_final(job_id)["state"] == "cancelled"
        assert pg_fingerprint(pg_server, pg_dbname) == before
        assert not leftovers(pg_server, pg_dbname, wait=20)
    finally:
        code, _, err = server.stop()
        pg_server.execute(f'DROP DATABASE IF EXISTS "{reference_db}"')
    assert code == 143 and "Traceback" not in err, err


def leftovers(server: PgServer, dbname: str, wait: float) -> list[str]:
    """reel's databases of a half-done rewind (staging, old, trash) still there after
    ``wait`` seconds (trash is dropped in the background); kept copies do not count."""
    deadline = time.monotonic() + wait
    while True:
        found = [db for db in server.databases()
                 if db.startswith(f"{dbname}__reel_")
                 and db[len(dbname) + 7:].split("_")[0] in ("staging", "old", "trash")]  # fmt: skip
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_a_password_only_a_person_could_type_is_503(
    pg_server: PgServer, pg_dbname: str, tmp_path: Path, state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
):  # fmt: skip
    """The TUI asks for a missing password; a request cannot: 503 with the reason, and
    nothing queued. With the password in the environment the same app rewinds."""
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "s1.sql").write_text(pg_dump_text("shop/s1", 10))
    common = (f'[shop]\ndbdriver = "postgres"\ndbserver = "{pg_server.host}"\n'
              f'dbport = {pg_server.port}\ndatabase = "{pg_dbname}"\n'
              f'dbuser = "{pg_server.user}"\ndbsources = "shop"\n')  # fmt: skip
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    for extra, reason in (("", "the API cannot ask for one"),
                          (f'dbpassword_env = "{PASSWORD_ENV}"\n', PASSWORD_ENV)):  # fmt: skip
        path = tmp_path / "reel.toml"
        path.write_text(common + extra)
        os.chmod(path, 0o600)
        api = InProcess(path, state_dir)
        try:
            reply = api("POST", f"{V1}/rewind/shop/s1.sql")
            assert reply.status == 503, reply.body
            assert reason in reply.json["error"]
            assert api("GET", f"{V1}/jobs").json["jobs"] == []
            if extra:
                monkeypatch.setenv(PASSWORD_ENV, pg_server.password)
                accepted = api("POST", f"{V1}/rewind/shop/s1.sql")
                assert accepted.status == 202
                assert api.wait_final(accepted.json["id"])["state"] == "succeeded"
        finally:
            api.close()
