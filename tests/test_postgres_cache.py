"""PostgreSQL warm rewinds on a real server: templates, spares, deferred drops, eviction."""

from __future__ import annotations

import os
import subprocess

import psycopg2
from pg_server import PgServer
from pg_tools import fingerprint, messages, rewind

from conftest import REEL, wait_until
from reel_tui.history import HistoryStore
from reel_tui.jobs import JobState

SEED = """\
CREATE TABLE public.items (id integer PRIMARY KEY, name text NOT NULL);
COPY public.items (id, name) FROM stdin;
1\tone
2\ttwo
\\.
CREATE INDEX items_name ON public.items (name);
"""


def reel_objects(server: PgServer, dbname: str) -> dict[str, list[str]]:
    """reel's databases for the target, by kind (cache, spare, trash, staging, …)."""
    kinds: dict[str, list[str]] = {}
    for db in server.databases():
        if db.startswith(dbname + "__reel_"):
            kind = db[len(dbname) + 7 :].split("_")[0]
            kinds.setdefault(kind, []).append(db)
    return kinds


def connect(server: PgServer, dbname: str):  # type: ignore[no-untyped-def]
    return psycopg2.connect(host=server.host, port=server.port, user=server.user,
                            password=server.password, dbname=dbname)  # fmt: skip


def ok(job):  # type: ignore[no-untyped-def]
    assert job.state is JobState.SUCCEEDED, job.error
    return "\n".join(messages(job))


def test_second_rewind_takes_the_ready_spare_and_equals_a_cold_load(
    pg_server, pg_config, pg_dbname, history: HistoryStore, tmp_path
):
    (tmp_path / "dumps" / "seed.sql").write_text(SEED)
    config = pg_config()
    cold = ok(rewind(config, history, "seed.sql"))
    assert "kept a cached copy" in cold
    assert "spare copy of seed.sql ready" in cold  # the background work reports in the job log
    expected = fingerprint(pg_server, pg_dbname)
    objects = reel_objects(pg_server, pg_dbname)
    assert len(objects["cache"]) == 1 and len(objects["spare"]) == 1
    assert "trash" not in objects and "staging" not in objects and "old" not in objects

    conn = connect(pg_server, pg_dbname)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DELETE FROM items")
        cur.execute("CREATE TABLE scratch (x int)")
    warm = ok(rewind(config, history, "seed.sql"))  # the app's session is ended by the swap
    conn.close()
    assert "cached copy of this dump found" in warm
    assert "took its ready spare" in warm
    assert "loading into staging" not in warm
    assert fingerprint(pg_server, pg_dbname) == expected
    objects = reel_objects(pg_server, pg_dbname)
    assert len(objects["spare"]) == 1, "the background made the next spare"
    assert "trash" not in objects


def test_warm_rewind_without_a_spare_copies_the_template(
    pg_server, pg_config, pg_dbname, history, tmp_path
):
    (tmp_path / "dumps" / "seed.sql").write_text(SEED)
    config = pg_config()
    ok(rewind(config, history, "seed.sql"))
    expected = fingerprint(pg_server, pg_dbname)
    for spare in reel_objects(pg_server, pg_dbname)["spare"]:
        pg_server.execute(f'DROP DATABASE "{spare}"')
    warm = ok(rewind(config, history, "seed.sql"))
    assert "no spare was ready: copied" in warm
    assert fingerprint(pg_server, pg_dbname) == expected


def test_changed_dump_loads_cold_and_its_outdated_copy_is_dropped(
    pg_server, pg_config, pg_dbname, history, tmp_path
):
    dump = tmp_path / "dumps" / "seed.sql"
    dump.write_text(SEED)
    config = pg_config()
    ok(rewind(config, history, "seed.sql"))
    before = reel_objects(pg_server, pg_dbname)["cache"]
    dump.write_text(SEED + "INSERT INTO public.items VALUES (3, 'three');\n")
    second = ok(rewind(config, history, "seed.sql"))
    assert "loading into staging" in second
    assert "dropped the cached copy of an earlier version of seed.sql" in second
    assert fingerprint(pg_server, pg_dbname)[1]["public.items"][0] == 3
    objects = reel_objects(pg_server, pg_dbname)
    assert len(objects["cache"]) == 1 and objects["cache"] != before
    assert len(objects["spare"]) == 1


def test_retention_evicts_the_least_recently_used_copy(
    pg_server, pg_config, pg_dbname, history, tmp_path
):
    dumps = tmp_path / "dumps"
    for n in range(3):
        (dumps / f"s{n}.sql").write_text(
            f"CREATE TABLE public.t (x int);\nINSERT INTO t VALUES ({n});\n"
        )
    config = pg_config("cache_copies = 2\nundo = false")  # dumps only: the undo copy counts too
    for name in ("s0.sql", "s1.sql", "s0.sql"):
        ok(rewind(config, history, name))
    log = ok(rewind(config, history, "s2.sql"))
    assert "evicted the cached copy of s1.sql" in log
    with connect(pg_server, "postgres") as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname LIKE %s",
            (pg_dbname + "__reel_cache_%",),
        )
        sources = sorted(row[0].split('"source": "')[1].split('"')[0] for row in cur.fetchall())
    conn.close()
    assert sources == ["s0.sql", "s2.sql"]


def test_templates_are_closed_to_connections(pg_server, pg_config, pg_dbname, history, tmp_path):
    (tmp_path / "dumps" / "seed.sql").write_text(SEED)
    ok(rewind(pg_config(), history, "seed.sql"))
    names = reel_objects(pg_server, pg_dbname)
    with connect(pg_server, "postgres") as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT datname, datallowconn FROM pg_database WHERE datname = ANY(%s)",
            (names["cache"] + names["spare"],),
        )
        assert {allow for _, allow in cur.fetchall()} == {False}
    conn.close()


def test_headless_warm_rewind_leaves_the_background_work_to_a_detached_process(
    pg_server, pg_config, pg_dbname, tmp_path
):
    (tmp_path / "dumps" / "seed.sql").write_text(SEED)
    config = pg_config()
    env = {**os.environ, "REEL_STATE_DIR": str(tmp_path / "state")}
    args = [*REEL, "-c", str(config), "--rewind", "--source", "seed.sql"]
    subprocess.run([*args, "-q"], check=True, env=env)
    expected = fingerprint(pg_server, pg_dbname)
    wait_until(lambda: "spare" in reel_objects(pg_server, pg_dbname), "the spare")
    warm = subprocess.run(args, capture_output=True, text=True, env=env)
    assert warm.returncode == 0, warm.stderr
    assert "took its ready spare" in warm.stdout
    assert fingerprint(pg_server, pg_dbname) == expected
    # the detached process drops what the swap set aside and makes the next spare; the
    # replaced content is the undo copy
    wait_until(lambda: set(reel_objects(pg_server, pg_dbname)) == {"cache", "spare", "undo"},
               "only the cached copy, its spare and the undo copy")  # fmt: skip
    listing = subprocess.run([*REEL, "-c", str(config), "--list"], capture_output=True,
                             text=True, env=env)  # fmt: skip
    assert "✓" in listing.stdout
    cleared = subprocess.run([*REEL, "-c", str(config), "--clear-cache"], capture_output=True,
                             text=True, env=env)  # fmt: skip
    assert cleared.returncode == 0, cleared.stderr
    assert reel_objects(pg_server, pg_dbname) == {}


def test_cache_off_keeps_nothing(pg_server, pg_config, pg_dbname, history, tmp_path):
    (tmp_path / "dumps" / "seed.sql").write_text(SEED)
    config = pg_config("cache_copies = 0")
    ok(rewind(config, history, "seed.sql"))
    log = ok(rewind(config, history, "seed.sql"))
    assert "loading into staging" in log
    assert reel_objects(pg_server, pg_dbname) == {}


def test_without_a_cached_copy_analyze_and_the_drop_of_the_old_content_come_after(
    pg_server, pg_config, pg_dbname, tmp_path
):
    """With nothing cloned from staging there is no one to need the statistics before the
    swap, and the replaced database can go afterwards: a headless cold rewind leaves both to
    its detached process. With a cached copy kept, ANALYZE runs in staging, so the copy
    (and every warm rewind from it) has the statistics."""
    (tmp_path / "dumps" / "seed.sql").write_text(SEED)
    env = {**os.environ, "REEL_STATE_DIR": str(tmp_path / "state")}
    analyzed = "SELECT count(*) FROM pg_stats WHERE schemaname = 'public'"

    def cold(options: str) -> str:
        args = [*REEL, "-c", str(pg_config(options)), "--rewind", "--source", "seed.sql"]
        run = subprocess.run(args, capture_output=True, text=True, env=env)
        assert run.returncode == 0, run.stderr
        return run.stdout

    cold("cache_copies = 0\njobs = 2")  # creates the target
    second = cold("cache_copies = 0\nundo = false\njobs = 2")
    assert "ANALYZE runs in the background" in second
    assert "is dropped in the background" in second
    wait_until(lambda: pg_server.execute(analyzed, pg_dbname)[0][0] > 0, "statistics")
    wait_until(lambda: reel_objects(pg_server, pg_dbname) == {}, "no copies left")
    log = (tmp_path / "state" / "logs" / "2.log").read_text()
    assert "ANALYZE of 1 tables took" in log
    started, done = log.index("] background work started"), log.index("] background work done")
    assert started < log.index("ANALYZE of 1 tables took") < done

    pg_server.execute(f'DROP DATABASE "{pg_dbname}"')
    first = cold("jobs = 2")
    assert "ANALYZE took" in first
    assert pg_server.execute(analyzed, pg_dbname)[0][0] > 0


def test_a_user_database_with_a_cache_name_is_never_dropped(
    pg_server, pg_config, pg_dbname, history, tmp_path
):
    from reel_tui.cache import CacheIndex, cache_key, file_digest
    from reel_tui.config import load_config
    from reel_tui.engines.pg_cache import cache_name

    dump = tmp_path / "dumps" / "seed.sql"
    dump.write_text(SEED)
    config = pg_config()
    app = load_config(config).apps["shop"]
    squatter = cache_name(pg_dbname, cache_key(app, file_digest(dump)))
    pg_server.execute(f'CREATE DATABASE "{squatter}"')
    CacheIndex(history.state_dir)  # the index exists; the digest is not known yet
    log = ok(rewind(config, history, "seed.sql"))
    assert "no cached copy kept: database" in log and "was not made by reel-tui" in log
    assert squatter in pg_server.databases()
    assert "loading into staging" in ok(rewind(config, history, "seed.sql"))
    assert squatter in pg_server.databases()


def test_listing_is_one_query_that_keeps_to_the_target_and_to_our_comments(pg_server, pg_dbname):
    """Copies are listed in one query, filtered on the server by the target named in the
    comment (exactly, in Python): another target whose name starts the same, a comment
    that starts like ours but is not JSON, and a user's database are not listed."""
    from reel_tui.engines import pg_cache

    other, odd, plain = f"{pg_dbname}x_c", f"{pg_dbname}_odd", f"{pg_dbname}_plain"
    ours, spare = f"{pg_dbname}_c1", f"{pg_dbname}_s1"
    entry = '"target": "{}", "key": "k1", "source": "seed.sql", "created": 1, "used": 2'
    comments = {
        ours: "reel-tui cache: {" + entry.format(pg_dbname) + "}",
        spare: f'reel-tui spare: {{"target": "{pg_dbname}", "key": "k1"}}',
        other: "reel-tui cache: {" + entry.format(pg_dbname + "x") + "}",
        odd: f'reel-tui cache: not json "target": "{pg_dbname}"',
        plain: f'my notes on "target": "{pg_dbname}"',
    }
    for name, comment in comments.items():
        pg_server.execute(f'CREATE DATABASE "{name}"')
        pg_server.execute(f"COMMENT ON DATABASE \"{name}\" IS '{comment}'")
    statements: list[str] = []

    class Counting(psycopg2.extensions.cursor):
        def execute(self, query, vars=None):  # type: ignore[no-untyped-def]
            statements.append(query)
            return super().execute(query, vars)

    conn = pg_server.connect("postgres", cursor_factory=Counting)
    try:
        copies = pg_cache.copies(conn, pg_dbname)
        assert len(statements) == 1
        [copy] = copies
        assert (copy.name, copy.key, copy.source, copy.used, copy.spare_ready) == (
            ours, "k1", "seed.sql", 2.0, True)  # fmt: skip
        assert copy.bytes > 2 * 1_000_000  # the template's and the spare's bytes, added
        [template] = pg_cache.templates(conn, pg_dbname, sizes=False)
        assert (template.name, template.bytes, template.encoding) == (ours, 0, "UTF8")
    finally:
        conn.close()
        for name in comments:
            pg_server.execute(f'DROP DATABASE "{name}"')
