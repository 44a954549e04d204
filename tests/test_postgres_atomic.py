"""PostgreSQL engine, what a failure leaves: faults caused for real on a real server.

Every test first rewinds the target to a small known state and fingerprints
it (pg_dump --schema-only plus every row), then makes a rewind fail, get
cancelled, killed, or race against clients, and compares again.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import psycopg2
import pytest
from pg_server import PgServer
from pg_tools import fingerprint, messages, rewind, why_not_done

from conftest import REEL, wait_until
from reel_tui.config import load_config
from reel_tui.engines import pg_swap
from reel_tui.engines.pg_swap import Names, journal_comment
from reel_tui.history import HistoryStore
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import JobState
from reel_tui.plan import plan_rewind

SEED = """\
CREATE TABLE public.items (id integer PRIMARY KEY, name text NOT NULL);
INSERT INTO public.items VALUES (1, 'one'), (2, 'two; with a semicolon');
CREATE VIEW public.item_names AS SELECT name FROM public.items;
"""
OTHER = """\
CREATE TABLE public.other (x integer);
COPY public.other (x) FROM stdin;
42
\\.
"""


def big_copy_dump(path: Path, rows: int) -> Path:
    """A plain dump with one table and a COPY of ``rows`` rows (about 56 bytes each)."""
    with open(path, "w", encoding="utf-8") as out:
        out.write("CREATE TABLE public.big (id integer, payload text);\n")
        out.write("COPY public.big (id, payload) FROM stdin;\n")
        step = 100_000
        for start in range(0, rows, step):
            out.write("".join(f"{n}\tpayload {n:>44}\n" for n in range(start, start + step)))
        out.write("\\.\nCREATE INDEX big_id ON public.big (id);\n")
    return path


@pytest.fixture(scope="module")
def big_dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return big_copy_dump(tmp_path_factory.mktemp("big") / "big.sql", 3_000_000)


@pytest.fixture
def seeded(pg_server: PgServer, pg_config, pg_dbname: str, history: HistoryStore, tmp_path):
    """The target rewound to SEED; returns (config path, fingerprint of that state)."""
    dumps = tmp_path / "dumps"
    (dumps / "seed.sql").write_text(SEED)
    (dumps / "other.sql").write_text(OTHER)
    config = pg_config()
    job = rewind(config, history, "seed.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    return config, fingerprint(pg_server, pg_dbname)


KEPT = ("__reel_cache_", "__reel_spare_", "__reel_undo", "__reel_snap_")
"""Cached copies are kept on purpose, named as such: not leftovers."""


def reel_databases(server: PgServer, dbname: str, wait: float = 30.0) -> set[str]:
    """reel's leftovers for the target. What swaps set aside (``__reel_trash_``) is
    dropped by the background work, maybe in a detached process: waited for."""
    deadline = time.monotonic() + wait
    while True:
        ours = [db for db in server.databases() if db.startswith(dbname + "__reel")]
        found = {db for db in ours if not any(kept in db for kept in KEPT)}
        if not any("__reel_trash_" in db for db in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_failing_last_statement_leaves_the_target_as_it_was(
    pg_server, pg_dbname, history, seeded, tmp_path
):
    config, before = seeded
    broken = tmp_path / "dumps" / "broken.sql"
    broken.write_text(OTHER + "SELECT 1;\nINSERT INTO public.other VALUES\n  ('not a number');\n")
    job = rewind(config, history, "broken.sql")
    assert job.state is JobState.FAILED
    assert f"{broken}:6: invalid input syntax for type integer" in job.error
    assert job.error.endswith("in: INSERT INTO public.other VALUES")
    assert "\n" not in job.error
    assert fingerprint(pg_server, pg_dbname) == before
    assert reel_databases(pg_server, pg_dbname) == set()


def test_error_inside_copy_data_names_the_data_line(pg_server, pg_dbname, history, seeded,
                                                    tmp_path):  # fmt: skip
    config, before = seeded
    dump = tmp_path / "dumps" / "badcopy.sql"
    dump.write_text("CREATE TABLE t (x integer);\nCOPY t (x) FROM stdin;\n1\n2\nthree\n\\.\n")
    job = rewind(config, history, "badcopy.sql")
    assert job.state is JobState.FAILED
    assert f"{dump}:5: invalid input syntax for type integer" in job.error
    assert fingerprint(pg_server, pg_dbname) == before


def test_cancel_mid_copy_stops_within_a_second(pg_server, pg_config, pg_dbname, history, seeded,
                                               big_dump):  # fmt: skip
    config, before = seeded
    target = Path(load_config(config).apps["shop"].sources_dir) / "big.sql"
    target.hardlink_to(big_dump)
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan_rewind(load_config(config), "shop", "big.sql"))
        deadline = time.monotonic() + 30
        while job.bytes_read < 20_000_000 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert job.state is JobState.RUNNING and job.detail == "data: public.big", job.detail
        asked = time.monotonic()
        assert queue.cancel(job.id)
        assert queue.wait(job, timeout=30), why_not_done(job, pg_server)
        stopped = time.monotonic() - asked
    finally:
        queue.shutdown()
    assert job.state is JobState.CANCELLED, job.error
    # well under a second when idle; the bound leaves room for a loaded machine (that the
    # copy was cut short is checked below: the bytes read)
    assert stopped < 3.0, stopped
    assert 0 < job.bytes_read < job.bytes_total
    assert fingerprint(pg_server, pg_dbname) == before
    assert reel_databases(pg_server, pg_dbname) == set()


def test_interrupt_cancels_a_long_statement_on_the_server(pg_server, pg_dbname, history, seeded,
                                                          tmp_path):  # fmt: skip
    config, before = seeded
    (tmp_path / "dumps" / "slow.sql").write_text("CREATE TABLE t (x int);\nSELECT pg_sleep(30);\n")
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan_rewind(load_config(config), "shop", "slow.sql"))
        deadline = time.monotonic() + 30
        while not pg_server.execute(
            "SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' "
            "AND pid <> pg_backend_pid()"
        ):
            assert time.monotonic() < deadline, "the statement never started"
            time.sleep(0.02)
        asked = time.monotonic()
        queue.cancel(job.id)
        assert queue.wait(job, timeout=30), why_not_done(job, pg_server)
        # well under a second when idle; 5 s leaves room for a loaded machine and still
        # says the server's statement was cancelled (it sleeps 30 s)
        assert time.monotonic() - asked < 5.0
    finally:
        queue.shutdown()
    assert job.state is JobState.CANCELLED
    assert fingerprint(pg_server, pg_dbname) == before


def test_kill_9_mid_load_then_the_next_run_drops_staging(pg_server, pg_dbname, seeded, big_dump):
    config, before = seeded
    dumps = Path(load_config(config).apps["shop"].sources_dir)
    (dumps / "big.sql").hardlink_to(big_dump)
    proc = subprocess.Popen([*REEL, "-c", str(config), "--rewind", "--source", "big.sql", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        event = json.loads(line)
        if event["event"] == "progress" and event["bytes_read"] > 10_000_000:
            break
    proc.kill()
    proc.communicate(timeout=10)
    names = Names.of(pg_dbname)
    assert names.staging in pg_server.databases(), "the kill left the staging database"
    assert fingerprint(pg_server, pg_dbname) == before
    result = subprocess.run([*REEL, "-c", str(config), "--rewind", "--source", "other.sql"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"dropped staging database {names.staging} left by an interrupted run" in result.stdout
    assert reel_databases(pg_server, pg_dbname) == set()
    assert pg_server.execute("SELECT x FROM public.other", pg_dbname) == [(42,)]


def test_interrupted_swap_is_rolled_back_by_the_next_run(pg_server, pg_dbname, history, seeded):
    """Killed after the target was closed to connections, before the renames."""
    config, _ = seeded
    names = Names.of(pg_dbname)
    pg_server.execute(f'CREATE DATABASE "{names.staging}"')
    journal = journal_comment(names, "swapping", allow_connections=True)
    pg_server.execute(f"COMMENT ON DATABASE \"{names.staging}\" IS '{journal}'")
    pg_server.execute(f'ALTER DATABASE "{pg_dbname}" ALLOW_CONNECTIONS false')
    job = rewind(config, history, "other.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    log = messages(job)
    assert f"rolled back an interrupted swap: {pg_dbname} accepts connections again" in log
    assert pg_server.execute("SELECT x FROM public.other", pg_dbname) == [(42,)]
    [(allowed,)] = pg_server.execute(
        f"SELECT datallowconn FROM pg_database WHERE datname = '{pg_dbname}'"
    )
    assert allowed is True
    assert reel_databases(pg_server, pg_dbname) == set()


@pytest.mark.parametrize(
    ("recorded", "allowed"),
    [({"allow_connections": True}, True), ({"allow_connections": False}, False), ({}, True)],
    ids=["allowed", "not-allowed", "journal-without-it"],
)
def test_an_old_copy_renamed_back_accepts_connections_as_it_did(
    pg_server, pg_dbname, history, seeded, recorded, allowed
):
    """The target went missing after the renames: the old copy is renamed back, and
    opened to connections again as it was before the swap shut it (step 2)."""
    config, _ = seeded
    names = Names.of(pg_dbname)
    pg_server.execute(f'ALTER DATABASE "{pg_dbname}" RENAME TO "{names.old}"')
    journal = journal_comment(names, "old", comment="the app's", **recorded)
    pg_server.execute(f'COMMENT ON DATABASE "{names.old}" IS $j${journal}$j$')
    pg_server.execute(f'ALTER DATABASE "{names.old}" ALLOW_CONNECTIONS false')
    job = rewind(config, history, "other.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    assert f"rolled back an interrupted swap: {names.old} is {pg_dbname} again" in messages(job)
    [(allow, comment)] = pg_server.execute(
        "SELECT datallowconn, shobj_description(oid, 'pg_database') FROM pg_database "
        f"WHERE datname = '{pg_dbname}'"
    )
    assert (allow, comment) == (allowed, "the app's")
    assert reel_databases(pg_server, pg_dbname) == set()
    pg_server.execute(f'ALTER DATABASE "{pg_dbname}" ALLOW_CONNECTIONS true')
    assert pg_server.execute("SELECT x FROM public.other", pg_dbname) == [(42,)]


def test_interrupted_drop_of_the_old_copy_is_completed(pg_server, pg_dbname, history, seeded):
    """Killed after the renames, before the old content was dropped."""
    config, _ = seeded
    names = Names.of(pg_dbname)
    pg_server.execute(f'CREATE DATABASE "{names.old}"')
    journal = journal_comment(names, "old", comment=None)
    pg_server.execute(f"COMMENT ON DATABASE \"{names.old}\" IS '{journal}'")
    job = rewind(config, history, "other.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    assert any(m.startswith(f"completed an interrupted swap: dropped {names.old}")
               for m in messages(job))  # fmt: skip
    assert reel_databases(pg_server, pg_dbname) == set()


def test_a_database_that_only_looks_like_staging_is_never_dropped(pg_server, pg_dbname, history,
                                                                   seeded):  # fmt: skip
    config, before = seeded
    names = Names.of(pg_dbname)
    pg_server.execute(f'CREATE DATABASE "{names.staging}"')
    pg_server.execute(f"COMMENT ON DATABASE \"{names.staging}\" IS 'somebody else''s'")
    job = rewind(config, history, "other.sql")
    assert job.state is JobState.FAILED
    assert "exists but was not made by reel-tui" in job.error
    assert names.staging in pg_server.databases()
    assert fingerprint(pg_server, pg_dbname) == before


def test_staging_left_without_a_journal_by_a_kill_after_create_is_dropped(
    pg_server, pg_dbname, history, seeded
):
    """Killed between CREATE DATABASE staging and writing its journal: the empty staging
    database, owned by the user reel connects as, is reel's own leftover."""
    config, _ = seeded
    names = Names.of(pg_dbname)
    pg_server.execute(f'CREATE DATABASE "{names.staging}" TEMPLATE template0')
    job = rewind(config, history, "other.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    dropped = f"dropped staging database {names.staging} left by a run killed before it wrote"
    assert any(m.startswith(f"{dropped} its journal (empty, owned by ") for m in messages(job))
    assert reel_databases(pg_server, pg_dbname) == set()


@pytest.mark.parametrize("why", ["holds a table", "owned by another role"])
def test_a_journal_less_staging_that_is_not_a_leftover_is_refused_with_the_command(
    pg_server, pg_dbname, history, seeded, why
):
    config, before = seeded
    names = Names.of(pg_dbname)
    owner = ""
    if why == "owned by another role":
        owner = " OWNER someone_" + pg_dbname
        pg_server.execute(f"CREATE ROLE someone_{pg_dbname}")
    try:
        pg_server.execute(f'CREATE DATABASE "{names.staging}" TEMPLATE template0{owner}')
        if why == "holds a table":
            pg_server.execute("CREATE TABLE precious (x int)", names.staging)
        job = rewind(config, history, "other.sql")
        assert job.state is JobState.FAILED
        assert job.error.startswith(
            f"database {names.staging} exists but was not made by reel-tui: rename it, or "
            f'drop it with DROP DATABASE "{names.staging}";'
        ), job.error
        assert names.staging in pg_server.databases()
        assert fingerprint(pg_server, pg_dbname) == before
    finally:
        pg_server.execute(f'DROP DATABASE IF EXISTS "{names.staging}"')
        pg_server.execute(f"DROP ROLE IF EXISTS someone_{pg_dbname}")


def test_client_holding_a_connection_is_ended_and_the_swap_succeeds(
    pg_server, pg_dbname, history, seeded
):
    config, _ = seeded
    client = pg_server.connect(pg_dbname, application_name="the-app")
    client.autocommit = False
    with client.cursor() as cur:
        cur.execute("SELECT count(*) FROM public.items")  # an open transaction, holding locks
    job = rewind(config, history, "other.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    assert any("ending session pid" in m and "application the-app" in m for m in messages(job))
    with pytest.raises(psycopg2.OperationalError), client.cursor() as cur:
        cur.execute("SELECT 1")
    client.close()
    assert pg_server.execute("SELECT x FROM public.other", pg_dbname) == [(42,)]


def test_clients_reconnecting_in_a_loop_do_not_block_the_swap(pg_server, pg_dbname, history,
                                                               seeded):  # fmt: skip
    config, _ = seeded
    stop = threading.Event()
    seen: list[str] = []

    def pester() -> None:
        """A pooled application: it holds its connection, and reconnects at once when ended."""
        while not stop.is_set():
            try:
                conn = pg_server.connect(pg_dbname, connect_timeout=2)
                with conn.cursor() as cur:
                    while not stop.is_set():
                        cur.execute(
                            "SELECT relname FROM pg_class WHERE relname IN ('items', 'other')"
                        )
                        seen.extend(row[0] for row in cur.fetchall())
                        time.sleep(0.01)
                conn.close()
            except psycopg2.Error:
                pass

    clients = [threading.Thread(target=pester) for _ in range(6)]
    for client in clients:
        client.start()
    try:
        # the clients have seen the old state, then after the rewind the new one (waited
        # for: fixed 0.2 s sleeps were not always enough on a loaded machine)
        wait_until(lambda: "items" in seen, "the clients seeing the old state")
        job = rewind(config, history, "other.sql")
        after = len(seen)
        wait_until(lambda: "other" in seen[after:], "the clients seeing the new state")
    finally:
        stop.set()
        for client in clients:
            client.join()
    assert job.state is JobState.SUCCEEDED, job.error
    assert "items" in seen and "other" in seen, "the clients saw the old and then the new state"
    assert seen[-1] == "other"


def test_two_rewinds_of_one_database_at_once_wait_for_each_other(
    pg_server, pg_dbname, seeded, tmp_path, big_dump
):
    """Two "machines" (separate state dirs, so no shared flock): the advisory lock serialises."""
    config, _ = seeded
    dumps = Path(load_config(config).apps["shop"].sources_dir)
    big_copy_dump(dumps / "medium.sql", 300_000)
    results = {}

    def run(name: str, source: str) -> None:
        store = HistoryStore(tmp_path / f"state-{name}")
        try:
            results[name] = rewind(config, store, source)
        finally:
            store.close()

    first = threading.Thread(target=run, args=("first", "medium.sql"))
    first.start()
    deadline = time.monotonic() + 10
    while not pg_server.execute("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    second = threading.Thread(target=run, args=("second", "other.sql"))
    second.start()
    first.join()
    second.join()
    assert results["first"].state is JobState.SUCCEEDED, results["first"].error
    assert results["second"].state is JobState.SUCCEEDED, results["second"].error
    assert any(m.startswith("waiting: another reel-tui is rewinding")
               for m in messages(results["second"]))  # fmt: skip
    assert results["second"].started < results["first"].finished
    assert pg_server.execute("SELECT x FROM public.other", pg_dbname) == [(42,)]
    assert reel_databases(pg_server, pg_dbname) == set()


def test_dropped_connection_mid_load_leaves_the_target_as_it_was(
    pg_server, pg_dbname, history, seeded, big_dump
):
    config, before = seeded
    (Path(load_config(config).apps["shop"].sources_dir) / "big.sql").hardlink_to(big_dump)
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan_rewind(load_config(config), "shop", "big.sql"))
        deadline = time.monotonic() + 30
        while job.bytes_read < 10_000_000 and time.monotonic() < deadline:
            time.sleep(0.005)
        pg_server.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{Names.of(pg_dbname).staging}'"
        )
        assert queue.wait(job, timeout=30), why_not_done(job, pg_server)
    finally:
        queue.shutdown()
    assert job.state is JobState.FAILED
    assert "big.sql: lost the connection to the server" in job.error, job.error
    assert fingerprint(pg_server, pg_dbname) == before
    assert reel_databases(pg_server, pg_dbname) == set()


def test_dump_from_a_newer_server_says_which_made_it(pg_server, pg_dbname, history, seeded,
                                                     tmp_path):  # fmt: skip
    config, before = seeded
    dump = tmp_path / "dumps" / "pg17.sql"
    dump.write_text(
        "--\n-- PostgreSQL database dump\n--\n\n"
        "-- Dumped from database version 17.2\n-- Dumped by pg_dump version 17.2\n\n"
        "SET statement_timeout = 0;\nSET transaction_timeout = 0;\n"
    )
    job = rewind(config, history, "pg17.sql")
    assert job.state is JobState.FAILED
    [(version,)] = pg_server.execute("SHOW server_version_num")
    here = f"{int(version) // 10000}.{int(version) % 10000}"
    assert job.error == (
        f'{dump}:9: unrecognized configuration parameter "transaction_timeout" in: '
        f"SET transaction_timeout = 0; (the dump was made by PostgreSQL 17.2; "
        f"this server runs {here})"
    )
    assert fingerprint(pg_server, pg_dbname) == before


def test_connection_lost_mid_swap_lets_clients_back_in_at_once(
    pg_server, pg_dbname, history, seeded, monkeypatch
):
    config, before = seeded

    def lose_the_connection(conn, name, ctx):
        conn.close()  # as if the server or the network dropped it after ALLOW_CONNECTIONS false
        raise psycopg2.OperationalError("server closed the connection unexpectedly")

    end_sessions = pg_swap.end_sessions
    monkeypatch.setattr(pg_swap, "end_sessions", lose_the_connection)
    job = rewind(config, history, "other.sql")
    assert job.state is JobState.FAILED
    assert "server closed the connection unexpectedly" in job.error
    [(allowed,)] = pg_server.execute(
        f"SELECT datallowconn FROM pg_database WHERE datname = '{pg_dbname}'"
    )
    assert allowed is True
    assert fingerprint(pg_server, pg_dbname) == before
    # without the connection (and its advisory lock) staging is left for the next run
    monkeypatch.setattr(pg_swap, "end_sessions", end_sessions)
    again = rewind(config, history, "other.sql")
    assert again.state is JobState.SUCCEEDED, again.error
    assert any(m.startswith("dropped staging database") for m in messages(again))
    assert reel_databases(pg_server, pg_dbname) == set()


@pytest.mark.parametrize("outcome", ["committed", "rolled-back"])
def test_a_lost_reply_to_the_swaps_commit_is_settled_by_asking_the_server(
    pg_server, pg_dbname, history, seeded, monkeypatch, outcome
):
    """The connection is lost as the renames' COMMIT is sent: txid_status says whether
    the swap happened, so a done swap is reported done (and its old copy dropped)."""
    config, before = seeded
    names = Names.of(pg_dbname)

    class LosesCommit(psycopg2.extensions.cursor):
        def execute(self, query, vars=None):
            conn = self.connection
            if f'RENAME TO "{names.old}"' in str(query):
                conn.armed = True  # type: ignore[attr-defined]
            if query != "COMMIT" or not getattr(conn, "armed", False):
                return super().execute(query, vars)
            if outcome == "committed":  # the server commits, the reply never arrives
                super().execute(query)
                conn.close()
                raise psycopg2.OperationalError("server closed the connection unexpectedly")
            pg_server.execute(f"SELECT pg_terminate_backend({conn.get_backend_pid()})")
            return super().execute(query)

    class Watched(psycopg2.extensions.connection):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.cursor_factory = LosesCommit

    real = psycopg2.connect
    factory = Watched
    monkeypatch.setattr(
        psycopg2, "connect", lambda *a, **kw: real(*a, connection_factory=factory, **kw)
    )
    job = rewind(config, history, "other.sql")
    monkeypatch.undo()
    [(allowed,)] = pg_server.execute(
        f"SELECT datallowconn FROM pg_database WHERE datname = '{pg_dbname}'"
    )
    assert allowed is True
    if outcome == "committed":
        assert job.state is JobState.SUCCEEDED, job.error
        assert ("lost the connection during the swap's commit, which the server had committed"
                in messages(job))  # fmt: skip
        assert pg_server.execute("SELECT x FROM public.other", pg_dbname) == [(42,)]
        assert reel_databases(pg_server, pg_dbname) == set()
    else:
        assert job.state is JobState.FAILED
        assert fingerprint(pg_server, pg_dbname) == before


def test_a_live_run_locked_in_another_maintenance_database_is_left_alone(
    pg_server, pg_dbname, history, seeded
):
    """Advisory locks are per database: a reel whose role may only connect to template1
    holds its lock there. Its staging journal names its server session, which is seen
    from any database, so this run waits for it instead of dropping its load."""
    config, before = seeded
    names = Names.of(pg_dbname)
    other = pg_server.connect("template1")
    other.autocommit = True
    try:
        with other.cursor() as cur:
            cur.execute(
                "SELECT pg_advisory_lock(%s, hashtext(%s))", (pg_swap.LOCK_CLASS, pg_dbname)
            )
            cur.execute(f'CREATE DATABASE "{names.staging}" TEMPLATE template0')
        journal = journal_comment(names, "loading", session=pg_swap.session(other))
        pg_swap.write_journal(other, names.staging, journal)
        job = rewind(config, history, "other.sql")
        assert job.state is JobState.FAILED and job.error_code == "busy", job.error
        assert job.error.startswith(f"another reel-tui is rewinding {pg_dbname} right now ("), (
            job.error
        )
        assert names.staging in pg_server.databases()
        assert fingerprint(pg_server, pg_dbname) == before
    finally:
        other.close()
    job = rewind(config, history, "other.sql")  # that run is over: its staging is a leftover
    assert job.state is JobState.SUCCEEDED, job.error
    assert any(m.startswith(f"dropped staging database {names.staging} left by an interrupted")
               for m in messages(job))  # fmt: skip
