"""Snapshots and undo on a real PostgreSQL server: template databases, undo by rename."""

from __future__ import annotations

import psycopg2
import pytest
from pg_server import PgServer
from pg_tools import fingerprint, messages, rewind

from reel_tui.config import load_config
from reel_tui.engines import engine_for, pg_swap
from reel_tui.engines.base import RewindError
from reel_tui.history import HistoryStore
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import Job, JobEvent, JobState
from reel_tui.plan import Refused, plan_rewind, plan_snapshot

SEED = """\
CREATE TABLE public.items (id integer PRIMARY KEY, name text NOT NULL);
COPY public.items (id, name) FROM stdin;
1\tone
2\ttwo
\\.
CREATE INDEX items_name ON public.items (name);
"""
OTHER = "CREATE TABLE public.other (x int);\nINSERT INTO public.other VALUES (42);\n"


@pytest.fixture
def seeded(pg_config, tmp_path, history):  # type: ignore[no-untyped-def]
    (tmp_path / "dumps" / "seed.sql").write_text(SEED)
    (tmp_path / "dumps" / "other.sql").write_text(OTHER)
    config = pg_config()
    ok(rewind(config, history, "seed.sql"))
    return config


def ok(job: Job) -> str:
    assert job.state is JobState.SUCCEEDED, job.error
    return "\n".join(messages(job))


def snapshot(config, history: HistoryStore, name: str) -> Job:  # type: ignore[no-untyped-def]
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan_snapshot(load_config(config), "shop", name))
        assert queue.wait(job, timeout=60)
        return job
    finally:
        queue.shutdown()


def execute(server: PgServer, dbname: str, sql: str) -> None:
    conn = psycopg2.connect(host=server.host, port=server.port, user=server.user,
                            password=server.password, dbname=dbname)  # fmt: skip
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def reel_dbs(server: PgServer, dbname: str, kind: str) -> list[str]:
    return [db for db in server.databases() if db.startswith(f"{dbname}__reel_{kind}")]


def test_snapshot_rewind_rename_delete(pg_server, pg_dbname, seeded, history):
    execute(pg_server, pg_dbname, "INSERT INTO items VALUES (3, 'hand-made')")
    taken = fingerprint(pg_server, pg_dbname)
    assert "snapshot @demo taken" in ok(snapshot(seeded, history, "demo"))
    [database] = reel_dbs(pg_server, pg_dbname, "snap_")
    [(allowed,)] = pg_server.execute(
        f"SELECT datallowconn FROM pg_database WHERE datname = '{database}'"
    )
    assert allowed is False
    ok(rewind(seeded, history, "other.sql"))
    assert fingerprint(pg_server, pg_dbname) != taken
    back = ok(rewind(seeded, history, "@demo"))
    assert "swapping in @demo" in back and "loading into staging" not in back
    assert fingerprint(pg_server, pg_dbname) == taken
    engine = engine_for(load_config(seeded).apps["shop"])
    said: list[str] = []
    engine.rename_snapshot("demo", "shown", said.append)
    assert said == ["renamed snapshot @demo to @shown"]
    with pytest.raises(Refused, match="no snapshot named @demo"):
        plan_rewind(load_config(seeded), "shop", "@demo")
    ok(rewind(seeded, history, "@shown"))
    assert fingerprint(pg_server, pg_dbname) == taken
    engine.delete_snapshot("shown", said.append)
    assert reel_dbs(pg_server, pg_dbname, "snap_") == []
    with pytest.raises(RewindError, match="it has none"):
        engine.delete_snapshot("shown", said.append)


def test_snapshot_ends_the_sessions_on_the_target_and_lets_them_back(
    pg_server, pg_dbname, seeded, history
):
    app = psycopg2.connect(host=pg_server.host, port=pg_server.port, user=pg_server.user,
                           password=pg_server.password, dbname=pg_dbname)  # fmt: skip
    try:
        log = ok(snapshot(seeded, history, "busy"))
    finally:
        app.close()
    assert "has sessions" in log and "ending session pid" in log
    [(allowed,)] = pg_server.execute(
        f"SELECT datallowconn FROM pg_database WHERE datname = '{pg_dbname}'"
    )
    assert allowed is True
    assert reel_dbs(pg_server, pg_dbname, "staging") == []
    assert len(reel_dbs(pg_server, pg_dbname, "snap_")) == 1


def test_cancelled_snapshot_leaves_nothing_behind(pg_server, pg_dbname, seeded, history):
    queue = JobQueue(history, workers=1)

    def cancel_when_copying(event: JobEvent) -> None:
        if event.kind == "progress" and event.job.phase == "loading":
            queue.cancel(event.job.id)

    queue.subscribe(cancel_when_copying)
    try:
        job = queue.submit(plan_snapshot(load_config(seeded), "shop", "never"))
        assert queue.wait(job, timeout=60)
    finally:
        queue.shutdown()
    assert job.state is JobState.CANCELLED, job.error
    assert reel_dbs(pg_server, pg_dbname, "snap_") == []
    assert reel_dbs(pg_server, pg_dbname, "staging") == []


def test_undo_restores_the_replaced_state_and_undo_again_redoes(
    pg_server, pg_dbname, seeded, history
):
    execute(pg_server, pg_dbname, "INSERT INTO items VALUES (9, 'unsaved work')")
    before = fingerprint(pg_server, pg_dbname)
    ok(rewind(seeded, history, "other.sql"))
    after = fingerprint(pg_server, pg_dbname)
    assert reel_dbs(pg_server, pg_dbname, "undo") == [f"{pg_dbname}__reel_undo"]
    undo = ok(rewind(seeded, history, "@undo"))
    assert "took the undo copy" in undo
    assert fingerprint(pg_server, pg_dbname) == before
    ok(rewind(seeded, history, "@undo"))
    assert fingerprint(pg_server, pg_dbname) == after
    ok(rewind(seeded, history, "@undo"))
    assert fingerprint(pg_server, pg_dbname) == before


def test_undo_copy_is_evicted_by_retention_and_says_so(pg_server, pg_dbname, pg_config,
                                                      tmp_path, history):  # fmt: skip
    (tmp_path / "dumps" / "seed.sql").write_text(SEED)
    (tmp_path / "dumps" / "other.sql").write_text(OTHER)
    config = pg_config("cache_copies = 1")
    ok(rewind(config, history, "seed.sql"))
    log = ok(rewind(config, history, "other.sql"))
    assert "evicted the undo copy (before other.sql)" in log
    assert reel_dbs(pg_server, pg_dbname, "undo") == []
    with pytest.raises(Refused, match="nothing to undo"):
        plan_rewind(load_config(config), "shop", "@undo")


def test_an_undo_that_fails_keeps_the_undo_copy(pg_server, pg_dbname, seeded, history, monkeypatch):
    before = fingerprint(pg_server, pg_dbname)
    ok(rewind(seeded, history, "other.sql"))
    after = fingerprint(pg_server, pg_dbname)

    def lose_the_connection(conn, name, ctx):  # a fault that cannot be caused for real
        conn.close()
        raise psycopg2.OperationalError("server closed the connection unexpectedly")

    end_sessions = pg_swap.end_sessions
    monkeypatch.setattr(pg_swap, "end_sessions", lose_the_connection)
    failed = rewind(seeded, history, "@undo")
    assert failed.state is JobState.FAILED
    assert any("is the undo copy again" in m for m in messages(failed))
    monkeypatch.setattr(pg_swap, "end_sessions", end_sessions)
    assert fingerprint(pg_server, pg_dbname) == after
    ok(rewind(seeded, history, "@undo"))
    assert fingerprint(pg_server, pg_dbname) == before


def test_an_undo_copy_left_as_staging_by_a_killed_run_is_given_back(
    pg_server, pg_dbname, seeded, history
):
    """What a run killed just after taking the undo copy as staging leaves (the same
    rename and journal, by hand: a kill cannot be timed into that instant)."""
    ok(rewind(seeded, history, "other.sql"))
    after = fingerprint(pg_server, pg_dbname)
    config = load_config(seeded)
    engine = engine_for(config.apps["shop"])
    [copy] = [c for c in engine.cached_copies() if c.kind == "undo"]
    names = pg_swap.Names.of(pg_dbname)
    from reel_tui.engines import pg_cache

    extra = {"restore_as": copy.name,
             "restore_comment": pg_cache.undo_comment(pg_dbname, copy.source)}  # fmt: skip
    journal = pg_swap.journal_comment(names, "loading", session=[1, "gone"], **extra)
    conn = psycopg2.connect(host=pg_server.host, port=pg_server.port, user=pg_server.user,
                            password=pg_server.password, dbname="postgres")  # fmt: skip
    conn.autocommit = True
    pg_cache.take_undo(conn, copy, names.staging, journal)
    conn.close()
    job = rewind(seeded, history, "seed.sql")  # any run recovers first
    assert any("held the undo copy" in m for m in messages(job)), messages(job)
    assert reel_dbs(pg_server, pg_dbname, "staging") == []
    ok(rewind(seeded, history, "@undo"))  # what the seed.sql run replaced
    assert fingerprint(pg_server, pg_dbname) == after


def test_a_copy_left_unmarked_by_a_killed_snapshot_or_spare_is_dropped_by_the_next_run(
    pg_server, pg_dbname, seeded, history
):
    """CREATE DATABASE copies, then a comment says what the copy is: a run killed (or its
    connection lost) in between leaves a copy without its comment. The names reel gives
    such copies (a random suffix; a cached dump's key) are found and dropped by the next
    run under the same lock; anything else under a reel-like name is left alone."""
    from reel_tui.engines import pg_cache

    target = pg_dbname
    leftover = pg_swap.derived_name(target, "snap_0123456789ab")
    users = [pg_swap.derived_name(target, "snap_mine"), pg_swap.derived_name(target, "snap_c0ffee")]
    for name in (leftover, *users):
        execute(pg_server, "postgres", f'CREATE DATABASE "{name}" TEMPLATE "{target}"')
    execute(pg_server, "postgres", f"COMMENT ON DATABASE \"{users[1]}\" IS 'my own copy'")
    log = ok(snapshot(seeded, history, "after"))
    assert f"dropped {leftover}, a snapshot whose copy was interrupted" in log
    assert leftover not in pg_server.databases()
    assert set(users) <= pg_server.databases()

    # a spare's copy, in the background work, the same way
    conn = psycopg2.connect(host=pg_server.host, port=pg_server.port, user=pg_server.user,
                            password=pg_server.password, dbname="postgres")  # fmt: skip
    conn.autocommit = True
    try:
        [template] = pg_cache.templates(conn, target)
        spare = pg_cache.spare_name(target, template.key)
        if spare in pg_server.databases():
            pg_cache.drop_ours(conn, spare)
        prep = pg_cache.prep_name(target, template.key)
        execute(pg_server, "postgres", f'CREATE DATABASE "{prep}" TEMPLATE "{template.name}"')
    finally:
        conn.close()
    said: list[str] = []
    engine_for(load_config(seeded).apps["shop"]).maintain(said.append)
    assert f"dropped {prep}, a spare whose copy was interrupted" in said
    assert prep not in pg_server.databases()
    assert spare in pg_server.databases()
