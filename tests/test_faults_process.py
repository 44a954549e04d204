"""Issue 7's fault matrix, part B: process and server faults, each engine, caused for real.

Every test seeds its target (the "old" state, fingerprinted: schema and every row), causes
the fault, and checks: the target is exactly the old or exactly the new state, never a
mix; nothing of reel's is left (staging databases, temp files, held locks, server
sessions), or the next run cleans it and says so; the exit code and the one-line message.

Where a fault must land is found from outside, as an operator would see it: a slow
statement in the dump (seen running on the server, or read by the loader) is "mid-load";
an application's lock that the swap must wait for (seen waiting on the server, or in the
job's log) holds the swap open, so a signal or a kill lands inside it, not before or after.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import mysql_server as mysql_server_module
import pg_server as pg_server_module
import psycopg2
import pymysql
import pytest
from fault_kit import ENGINES, MariadbTarget, PostgresTarget, Target, make_target, run_rewind
from mysql_server import MysqlServer
from pg_server import PgServer

from conftest import REEL, job_report, wait_until
from reel_tui.config import load_config
from reel_tui.engines import pg_swap
from reel_tui.history import HistoryStore
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import Job, JobState
from reel_tui.plan import plan_rewind
from reel_tui.tui.app import ReelApp
from reel_tui.tui.screens import ConfirmRewind
from test_tui import choose_source, finished, settle

SLOW = {
    "sqlite": "SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
    "FROM c LIMIT {n}) SELECT x FROM c);\n",
    "postgres": "SELECT pg_sleep({s});\n",
    "mariadb": "SELECT SLEEP({s});\n",
}
"""A statement that takes a while and changes nothing, in each engine's dialect."""
SQLITE_ROWS_PER_SECOND = 2_500_000
"""About how many rows SQLite's recursive CTE counts per second here (for ``{n}``)."""
EVENT_WAIT = 30.0


@pytest.fixture(autouse=True)
def _no_run_outlives_its_test() -> Iterator[None]:
    yield
    while Headless.started:
        proc = Headless.started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


@pytest.fixture(params=ENGINES)
def target(request: pytest.FixtureRequest) -> Target:
    """The engine's target, without cached copies: every rewind loads, where the faults
    land (the soak test and the cache tests cover warm rewinds)."""
    return make_target(request, request.param, extra="cache_copies = 0")


def slow_statement(engine: str, seconds: float) -> str:
    n = int(seconds * SQLITE_ROWS_PER_SECOND)
    return SLOW[engine].format(s=seconds, n=n)


def write_slow_dump(target: Target, name: str, seconds: float, tag: str = "new") -> None:
    """The kit's dump with a slow statement after its data and indexes."""
    path = target.write_dump(name, rows=2000, tag=tag)
    text = path.read_text(encoding="utf-8")
    marker = "CREATE TABLE slow_marker (x INTEGER);\n" if target.engine == "sqlite" else ""
    path.write_text(text + marker + slow_statement(target.engine, seconds), encoding="utf-8")


# --- seeing where a rewind is, from outside ---------------------------------------------------


def server_shows(target: Target, sql_like: str, waiting_on_lock: bool = False) -> bool:
    """Whether a session other than the asking one runs a statement LIKE ``sql_like``."""
    if isinstance(target, PostgresTarget):
        lock = " AND wait_event_type = 'Lock'" if waiting_on_lock else ""
        rows = target.server.execute(
            "SELECT 1 FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            f"AND query LIKE '{sql_like}'{lock}"
        )
        return bool(rows)
    if isinstance(target, MariadbTarget):
        lock = " AND STATE LIKE 'Waiting for table metadata lock'" if waiting_on_lock else ""
        rows = target.server.execute(
            "SELECT 1 FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() "
            f"AND INFO LIKE '{sql_like}'{lock}"
        )
        return bool(rows)
    return True  # SQLite: no server; the job's own events say it


class Headless:
    """``reel-tui --rewind --json`` in a subprocess, as cron runs it, read event by event."""

    started: ClassVar[list[subprocess.Popen[str]]] = []
    """Every run a test started, killed at its end if still running (a failed test)."""

    def __init__(self, target: Target, source: str, *more: str) -> None:
        self.proc = subprocess.Popen(
            [*REEL, "-c", str(target.config), "--rewind", "--source", source, "--json", *more],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        Headless.started.append(self.proc)
        self.events: list[dict[str, object]] = []

    def read_until(self, wanted: Callable[[dict[str, object]], bool], what: str) -> None:
        """Read events until one is ``wanted``; fail if the run ends first."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            self.events.append(event)
            if wanted(event):
                return
        raise AssertionError(f"the run ended before {what}: {self.events[-3:]}")

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        """Wait for the exit; the exit code and stderr (the rest of stdout is read too)."""
        out, err = self.proc.communicate(timeout=timeout)
        self.events += [json.loads(line) for line in out.splitlines() if line.strip()]
        return self.proc.returncode, err

    def messages(self) -> list[str]:
        return [str(e["message"]) for e in self.events if e["event"] == "log"]

    def final(self) -> dict[str, object]:
        [final] = [e for e in self.events if e["event"] == "finished"]
        return final


def mid_load(target: Target, run: Headless) -> None:
    """Return once the run is inside the dump's slow statement."""
    if target.engine == "sqlite":  # the loader logs the table as it reads it, then runs both
        run.read_until(lambda e: e.get("message") == "schema: table slow_marker",
                       "the loader reading the slow statement")  # fmt: skip
        time.sleep(0.3)
        return
    like = "SELECT pg_sleep(%" if target.engine == "postgres" else "SELECT SLEEP(%"
    wait_until(lambda: server_shows(target, like), "the slow statement running")


@contextlib.contextmanager
def swap_held_open(target: Target) -> Iterator[Callable[[], None]]:
    """An application holds what the swap must wait for; yields ``release``.

    SQLite: a write transaction on the target (the swap waits, cancellably). PostgreSQL:
    an uncommitted ``COMMENT ON DATABASE`` from another database (RENAME DATABASE waits
    for its lock, with the target already closed to connections). MariaDB: an open
    transaction that wrote a row (RENAME TABLE waits for its metadata lock)."""
    if isinstance(target, PostgresTarget):
        conn = target.server.connect("postgres", application_name="fault-holder")
        conn.autocommit = False
        with conn.cursor() as cur:
            cur.execute(f'COMMENT ON DATABASE "{target.database}" IS NULL')
        try:
            yield conn.rollback
        finally:
            with contextlib.suppress(psycopg2.Error):
                conn.rollback()
            conn.close()
        return
    with target.open_transaction() as conn:
        yield conn.rollback  # type: ignore[attr-defined]


def in_swap(target: Target, run: Headless) -> None:
    """Return once the run's swap waits for the application's lock."""
    if target.engine == "sqlite":
        run.read_until(lambda e: e["event"] == "log" and "another connection holds a lock"
                       in str(e["message"]), "the swap waiting for the lock")  # fmt: skip
        return
    run.read_until(lambda e: e.get("phase") == "swapping", "the swapping phase")
    like = "ALTER DATABASE % RENAME TO %" if target.engine == "postgres" else "RENAME TABLE %"
    wait_until(lambda: server_shows(target, like, waiting_on_lock=True), "the swap waiting")


_REFERENCES: dict[tuple[str, str], object] = {}


def reference(target: Target, history: HistoryStore, source: str) -> object:
    """The fingerprint ``source`` gives when rewound without a fault (once per engine and
    dump: fingerprints do not depend on the target's name)."""
    key = (target.engine, (target.dumps / source).read_text(encoding="utf-8"))
    if key not in _REFERENCES:
        job = run_rewind(target, history, source)
        assert job.state is JobState.SUCCEEDED, job.error
        _REFERENCES[key] = target.fingerprint()
    return _REFERENCES[key]


def messages(job: Job) -> list[str]:
    return [line.message for line in job.log]


RECOVERY = {
    "sqlite": "left by an interrupted earlier run",
    "postgres": "left by an interrupted run",
    "mariadb": "left by an interrupted run",
}
"""What the next run says when it cleans up after a killed one."""


# --- SIGINT / SIGTERM -------------------------------------------------------------------------


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])  # fmt: skip
def test_signal_mid_load_cancels_and_leaves_the_old_state(target, history, sig, code):
    old = target.seed(history)
    sessions = target.sessions()
    write_slow_dump(target, "slow.sql", 60)
    run = Headless(target, "slow.sql")
    mid_load(target, run)
    asked = time.monotonic()
    run.proc.send_signal(sig)
    exit_code, err = run.finish()
    # a second or two when idle; the bound leaves room for a loaded machine (dropping the
    # staging database, the process's exit) and still says the 60 s statement was stopped
    assert time.monotonic() - asked < 20
    assert exit_code == code, err
    assert "Traceback" not in err
    final = run.final()
    assert final["state"] == "cancelled"
    assert final["error"] == f"cancelled; {final_target(run)} was left as it was"
    assert target.fingerprint() == old
    target.assert_clean(sessions)


def final_target(run: Headless) -> str:
    [started] = [e for e in run.events if e["event"] == "started"]
    return str(started["target"])


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])  # fmt: skip
def test_signal_during_the_swap(target, history, sig, code):
    """SQLite's swap waits for the lock before it starts: cancelled, old state. The servers'
    swap has begun (the target is closed, the renames wait): it is finished, new state."""
    old = target.seed(history)
    target.write_dump("new.sql", tag="new")
    sessions = target.sessions()
    with swap_held_open(target) as release:
        run = Headless(target, "new.sql")
        in_swap(target, run)
        run.proc.send_signal(sig)
        # released only once the run has seen the signal (a fixed sleep lost the race
        # on a loaded CI machine: the swap took the lock first)
        run.read_until(lambda e: str(e.get("message", "")).startswith("cancel requested"),
                       "the cancel being seen")  # fmt: skip
        release()
        exit_code, err = run.finish()
    assert "Traceback" not in err
    after = target.fingerprint()
    if target.engine == "sqlite":
        assert (exit_code, run.final()["state"]) == (code, "cancelled"), run.messages()
        assert after == old
    else:
        assert (exit_code, run.final()["state"]) == (0, "succeeded"), err
        assert "cancel requested during the swap: letting the swap finish" in run.messages()
        assert after == reference(target, history, "new.sql")
    target.assert_clean(sessions)


# --- kill -9, then the next run -------------------------------------------------------------


def next_run_recovers(target: Target, history: HistoryStore) -> tuple[Job, object]:
    """The next run, of a dump that fails at its first statement: what it found and
    cleaned is in its log, and the target is what the recovery left (no new load)."""
    target.write_dump("broken.sql", error_at="first")
    job = run_rewind(target, history, "broken.sql")
    assert job.state is JobState.FAILED
    assert job.error is not None and "\n" not in job.error
    return job, target.fingerprint()


def test_kill_9_mid_load_then_the_next_run_cleans_up(target, history):
    old = target.seed(history)
    sessions = target.sessions()
    write_slow_dump(target, "slow.sql", 60)
    run = Headless(target, "slow.sql")
    mid_load(target, run)
    run.proc.kill()
    run.finish()
    assert target.fingerprint() == old
    assert target.leftovers(), "the kill left reel's staging behind"
    job, after = next_run_recovers(target, history)
    assert any(RECOVERY[target.engine] in m for m in messages(job)), messages(job)
    assert after == old
    target.assert_clean(sessions)
    target.write_dump("new.sql")
    assert run_rewind(target, history, "new.sql").state is JobState.SUCCEEDED


def test_kill_9_during_the_swap_then_the_next_run_completes_or_rolls_back(target, history):
    old = target.seed(history)
    target.write_dump("new.sql", tag="new")
    sessions = target.sessions()
    with swap_held_open(target) as release:
        run = Headless(target, "new.sql")
        in_swap(target, run)
        run.proc.kill()
        run.finish()
        release()  # a server may still finish the statement the dead process sent
    job, after = next_run_recovers(target, history)
    said = " ".join(messages(job))
    assert ("interrupted swap" in said) or (RECOVERY[target.engine] in said), said
    target.assert_clean(sessions)
    new = reference(target, history, "new.sql")
    assert after in (old, new), "a mix of the old and the new state"
    said = [m for m in messages(job) if "interrupted" in m]
    print(f"{target.engine}: after kill -9 in the swap: {'old' if after == old else 'new'}; {said}")


def next_run_works(target: Target, history: HistoryStore, left: set[str]) -> None:
    """The next run succeeds; what the failed one could not drop (``left``) it drops, and
    says so."""
    target.write_dump("new.sql")
    again = run_rewind(target, history, "new.sql")
    assert again.state is JobState.SUCCEEDED, again.error
    if left:
        assert any(RECOVERY[target.engine] in m for m in messages(again)), (left, messages(again))
    assert target.leftovers() == set()


# --- the server restarted mid-load (a server of its own) ----------------------------------


@pytest.fixture(scope="module")
def own_pg() -> Iterator[PgServer]:
    """A PostgreSQL server only this module's restart test uses: restarting the session's
    server would break every other test's connections."""
    server = pg_server_module.start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def own_mariadb() -> Iterator[MysqlServer]:
    server = mysql_server_module.start_server()
    try:
        yield server
    finally:
        server.stop()


def restart_pg(server: PgServer) -> None:
    """``pg_ctl restart -m fast``: the server ends every session, then starts again (its
    output goes to the log file: a pipe would be held open by the new postmaster)."""
    command = [str(server.bindir / "pg_ctl"), "-D", str(server.data_dir), "-l",
               str(server.log_file), "-m", "fast", "-w", "-t", "60", "restart"]  # fmt: skip
    done = subprocess.run(server._as_server_user(command), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=90)  # fmt: skip
    assert done.returncode == 0, done.stderr


def restart_mariadb(server: MysqlServer) -> None:
    """Stop (SIGTERM: a normal shutdown, which ends every connection) and start again."""
    assert server.process is not None
    args = server.process.args
    server.process.terminate()
    server.process.wait(60)
    server.process = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)  # fmt: skip
    server._wait_ready()


def own_target(request, engine: str, server, monkeypatch) -> Target:  # type: ignore[no-untyped-def]
    """A target app on ``server`` (not the session's), written like pg_config / my_config."""
    tmp_path: Path = request.getfixturevalue("tmp_path")
    state_dir: Path = request.getfixturevalue("state_dir")
    database = "t_" + secrets.token_hex(4)
    env = "REEL_TEST_OWN_PASSWORD"
    monkeypatch.setenv(env, server.password)
    (tmp_path / "dumps").mkdir(exist_ok=True)
    config = tmp_path / "reel.toml"
    config.write_text(
        f'[reel]\ndefault_app = "{"shop" if engine == "postgres" else "crm"}"\n'
        f"[{'shop' if engine == 'postgres' else 'crm'}]\n"
        f'dbdriver = "{engine}"\ndbserver = "{server.host}"\ndbport = {server.port}\n'
        f'database = "{database}"\ndbuser = "{server.user}"\ndbpassword_env = "{env}"\n'
        'dbsources = "dumps"\n',
        encoding="utf-8",
    )
    config.chmod(0o600)
    kind = PostgresTarget if engine == "postgres" else MariadbTarget
    return kind(server, database, config, state_dir)


def running_job(target: Target, history: HistoryStore, source: str) -> tuple[JobQueue, Job]:
    queue = JobQueue(history, workers=1)
    return queue, queue.submit(plan_rewind(load_config(target.config), target.app, source))


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_server_restarted_mid_load_fails_cleanly_and_the_next_run_works(
    request, engine, history, monkeypatch
):
    server = request.getfixturevalue("own_pg" if engine == "postgres" else "own_mariadb")
    target = own_target(request, engine, server, monkeypatch)
    old = target.seed(history)
    write_slow_dump(target, "slow.sql", 60)
    queue, job = running_job(target, history, "slow.sql")
    try:
        like = "SELECT pg_sleep(%" if engine == "postgres" else "SELECT SLEEP(%"
        wait_until(lambda: server_shows(target, like), "the slow statement running")
        (restart_pg if engine == "postgres" else restart_mariadb)(server)
        assert queue.wait(job, timeout=30), job_report(job)
    finally:
        queue.shutdown()
    assert job.state is JobState.FAILED
    assert job.error is not None and "\n" not in job.error
    print(f"{engine}, server restarted mid-load: {job.error}")
    assert target.fingerprint() == old
    next_run_works(target, history, left=target.leftovers())


# --- reel's own connections dropped mid-load ------------------------------------------------


def end_sessions(target: Target, before: set[str]) -> list[str]:
    """End every server session reel has open now (those not in ``before``)."""
    if isinstance(target, PostgresTarget):
        rows = target.server.execute(
            "SELECT pid, datname, pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'reel-tui' AND pid <> pg_backend_pid()"
        )
        return [f"pid {pid} on {db}" for pid, db, _ in rows]
    assert isinstance(target, MariadbTarget)
    ended = []
    ended = []
    busy = {row[0] for row in target.server.execute(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(%'"
    )}  # fmt: skip
    # the idle ones first: once the busy one is gone, reel closes the others itself
    ids = sorted(
        (int(s.split()[1]) for s in target.sessions() - before), key=lambda i: (i in busy, i)
    )
    for session in ids:
        with contextlib.suppress(pymysql.Error):  # it may have ended by now
            target.server.execute(f"KILL CONNECTION {session}")
            ended.append(f"id {session}")
    return ended


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_all_of_reels_connections_dropped_mid_load(request, engine, history):
    target = make_target(request, engine, extra="jobs = 3")  # workers beside the main load
    old = target.seed(history)
    sessions = target.sessions()
    write_slow_dump(target, "slow.sql", 60)
    queue, job = running_job(target, history, "slow.sql")
    try:
        like = "SELECT pg_sleep(%" if engine == "postgres" else "SELECT SLEEP(%"
        wait_until(lambda: server_shows(target, like), "the slow statement running")
        ended = end_sessions(target, sessions)
        assert queue.wait(job, timeout=30), job_report(job)
    finally:
        queue.shutdown()
    print(f"{engine}: ended {len(ended)} sessions: {ended}; error: {job.error}")
    assert len(ended) >= 5, "the maintenance, loading and 3 worker connections"
    assert job.state is JobState.FAILED
    assert job.error is not None and "\n" not in job.error
    assert target.fingerprint() == old
    next_run_works(target, history, left=target.leftovers())
    target.assert_clean(sessions)


# --- two reels on one target ------------------------------------------------------------------


def test_two_headless_runs_at_once_take_turns(target, history):
    """A second run started while the first is busy waits for it (same machine: the lock in
    the state directory), then rewinds; a third that may not wait (``--wait``) is refused
    with one line, exit 2; the target ends as the last rewind left it. (The first is kept
    busy by an application's lock on its swap, released once the others have been seen.)"""
    target.seed(history)
    sessions = target.sessions()
    target.write_dump("first.sql", tag="first")
    target.write_dump("second.sql", tag="second")
    with swap_held_open(target) as release:
        first = Headless(target, "first.sql")
        in_swap(target, first)
        second = Headless(target, "second.sql")
        second.read_until(lambda e: str(e.get("message", "")).startswith("waiting for another"),
                          "the second run waiting")  # fmt: skip
        third = Headless(target, "second.sql", "--wait", "0.2")
        third_code, third_err = third.finish()
        release()
        first_code, first_err = first.finish()
    second_code, second_err = second.finish()
    assert (first_code, second_code) == (0, 0), first_err + second_err
    assert third_code == 2, third_err
    [line] = third_err.strip().splitlines()
    assert "another" in line and "rewind" in line, line
    states = sorted(record.state for record in history.records())  # all on this machine
    assert states == ["failed", "succeeded", "succeeded", "succeeded"], states
    after = target.fingerprint()
    target.assert_clean(sessions)
    assert after == reference(target, history, "second.sql")


async def test_a_tui_and_a_headless_run_on_one_target(target, history):
    """The TUI (in this process) asks for a rewind while a headless run is busy: its job
    waits for the other process, then rewinds; both succeed, the TUI's content stays."""
    target.seed(history)
    sessions = target.sessions()
    target.write_dump("first.sql", tag="first")
    target.write_dump("second.sql", tag="second")
    with swap_held_open(target) as release:
        first = Headless(target, "first.sql")
        await asyncio.to_thread(in_swap, target, first)
        app = ReelApp(target.config)
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(app, pilot)
            await choose_source(pilot, app, target.app, "second.sql")
            assert isinstance(app.screen, ConfirmRewind)
            await pilot.press("enter")
            while not app.queue.jobs() or app.queue.jobs()[0].phase != "waiting":
                await pilot.pause(0.05)
            release()
            job = await finished(app, pilot)
    code, err = await asyncio.to_thread(first.finish)
    assert code == 0, err
    assert job.state is JobState.SUCCEEDED, job.error
    assert any(m.startswith("waiting for another rewind") for m in messages(job)), messages(job)
    after = target.fingerprint()
    target.assert_clean(sessions)
    assert after == reference(target, history, "second.sql")


def test_postgres_swap_blocked_by_a_lock_gives_up_and_reopens_the_target(
    request, history, monkeypatch
):
    """A lock on the database held by a session elsewhere (here an uncommitted COMMENT ON
    DATABASE) made the swap wait for ever with the target closed to connections, and a
    cancel, deferred in the swap, could not end it: now it gives up after LOCK_WAIT."""
    monkeypatch.setattr(pg_swap, "LOCK_WAIT", 1)
    target = make_target(request, "postgres", extra="cache_copies = 0")
    old = target.seed(history)
    target.write_dump("new.sql")
    with swap_held_open(target):
        job = run_rewind(target, history, "new.sql", timeout=30)
    assert job.state is JobState.FAILED and job.error_code == "busy", job.error
    assert job.error is not None and "nothing was changed" in job.error, job.error
    assert "\n" not in job.error
    [(allowed,)] = target.server.execute(
        f"SELECT datallowconn FROM pg_database WHERE datname = '{target.database}'"
    )
    assert allowed is True
    assert target.fingerprint() == old
    assert target.leftovers() == set()
