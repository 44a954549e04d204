"""PostgreSQL parallel load (``jobs`` > 1): data, indexes and constraints over several
connections must give exactly what ``psql -f`` gives, and a failure or a cancel in
the parallel phase must leave the target, the server and its sessions as they were."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from pg_server import PgServer
from pg_tools import PAGILA_FILES, fingerprint, messages, psql_reference, rewind, why_not_done

from conftest import SHARED_DATA
from reel_tui.config import load_config
from reel_tui.engines import pg_parallel
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import JobState
from reel_tui.plan import plan_rewind

MANY_TABLES = '''
CREATE TABLE public.region (id integer PRIMARY KEY, name text UNIQUE NOT NULL);
CREATE TABLE public.shop (id integer PRIMARY KEY, region_id integer NOT NULL
    REFERENCES public.region, name text NOT NULL);
CREATE TABLE public.product (id integer PRIMARY KEY, sku text NOT NULL UNIQUE,
    price numeric(10,2) CHECK (price >= 0), note text);
CREATE TABLE public.sale (id bigint PRIMARY KEY, shop_id integer NOT NULL REFERENCES public.shop,
    product_id integer NOT NULL REFERENCES public.product, qty integer NOT NULL,
    at timestamp NOT NULL, UNIQUE (shop_id, id));
CREATE TABLE public.refund (sale_id bigint PRIMARY KEY REFERENCES public.sale ON DELETE CASCADE,
    shop_id integer NOT NULL, reason text, FOREIGN KEY (shop_id, sale_id)
    REFERENCES public.sale (shop_id, id));
CREATE TABLE public."Odd ""name""" (k text PRIMARY KEY, v jsonb);
CREATE TABLE public.audit (n serial PRIMARY KEY, what text);
CREATE FUNCTION public.log_refund() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.audit (what) VALUES ('refund ' || NEW.sale_id); RETURN NEW; END $$;
CREATE TRIGGER refund_audit AFTER INSERT ON public.refund
    FOR EACH ROW EXECUTE FUNCTION public.log_refund();
INSERT INTO public.region SELECT n, 'region ' || n FROM generate_series(1, 20) n;
INSERT INTO public.shop SELECT n, 1 + n % 20, 'shop; ' || n FROM generate_series(1, 300) n;
INSERT INTO public.product SELECT n, 'SKU-' || n, n % 97, repeat(E'x\\ty\\n', n % 5)
    FROM generate_series(1, 3000) n;
INSERT INTO public.sale SELECT n, 1 + n % 300, 1 + n % 3000, n % 7,
    timestamp '2024-01-01' + n * interval '1 minute' FROM generate_series(1, 40000) n;
INSERT INTO public.refund SELECT id, shop_id, 'late' FROM public.sale WHERE id % 50 = 0;
INSERT INTO public."Odd ""name""" SELECT 'k' || n, jsonb_build_object('n', n)
    FROM generate_series(1, 500) n;
CREATE INDEX sale_at ON public.sale (at);
CREATE INDEX sale_product ON public.sale (product_id, qty);
CREATE INDEX product_lower_sku ON public.product (lower(sku));
CREATE INDEX refund_reason ON public.refund (reason) WHERE reason IS NOT NULL;
CREATE TABLE public.parted (id integer, k text, PRIMARY KEY (k, id)) PARTITION BY LIST (k);
CREATE TABLE public.parted_a PARTITION OF public.parted FOR VALUES IN ('a');
CREATE TABLE public.parted_b PARTITION OF public.parted FOR VALUES IN ('b');
INSERT INTO public.parted SELECT n, CASE WHEN n % 2 = 0 THEN 'a' ELSE 'b' END
    FROM generate_series(1, 1000) n;
CREATE TABLE public.parted_ref (k text, id integer, FOREIGN KEY (k, id) REFERENCES public.parted);
INSERT INTO public.parted_ref SELECT 'a', n * 2 FROM generate_series(1, 100) n;
CREATE MATERIALIZED VIEW public.sales_per_shop AS
    SELECT shop_id, count(*) AS n FROM public.sale GROUP BY shop_id;
CREATE UNIQUE INDEX sales_per_shop_id ON public.sales_per_shop (shop_id);
COMMENT ON INDEX public.sale_at IS 'by time';
CREATE MATERIALIZED VIEW public.not_yet AS SELECT 1 AS one WITH NO DATA;
'''


@pytest.fixture(scope="module")
def many_tables(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pg_dump of tables chained by foreign keys (one to a partitioned table), with
    indexes, a trigger, a materialized view: the post-data section has every kind."""
    folder = tmp_path_factory.mktemp("many")
    script = folder / "build.sql"
    script.write_text(MANY_TABLES, encoding="utf-8")
    pg_server.execute("DROP DATABASE IF EXISTS src_many")
    psql_reference(pg_server, [script], "src_many")
    dump = folder / "many.sql"
    subprocess.run(["pg_dump", "-f", str(dump), "-d", "src_many"], env=pg_server.env(),
                   check=True)  # fmt: skip
    return dump


COLD = "cache_copies = 0"  # every rewind here loads the dump: no copy of an earlier load


def psql_fingerprint(server: PgServer, dump: Path, dbname: str):
    reference = dbname + "_ref"
    psql_reference(server, [dump], reference)
    try:
        return fingerprint(server, reference)
    finally:
        server.execute(f'DROP DATABASE "{reference}"')


def reel_databases(server: PgServer, dbname: str) -> set[str]:
    return {db for db in server.databases() if db.startswith(dbname + "__reel")}


def test_many_tables_in_small_pieces_equal_psql(pg_server, pg_config, pg_dbname, history,
                                                tmp_path, many_tables, monkeypatch):  # fmt: skip
    monkeypatch.setattr(pg_parallel, "COPY_PIECE", 16 * 1024)  # sale: about 130 pieces
    expected = psql_fingerprint(pg_server, many_tables, pg_dbname)
    (tmp_path / "dumps" / "many.sql").write_bytes(many_tables.read_bytes())
    job = rewind(pg_config("jobs = 4\n" + COLD), history, "many.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    assert "loading data, indexes and constraints over 4 connections" in messages(job)
    assert "data: public.sale 40,000 rows" in messages(job)
    assert fingerprint(pg_server, pg_dbname) == expected
    # the trigger is created after the data: loading fired it for no row, as with psql
    assert pg_server.execute("SELECT count(*) FROM public.audit", pg_dbname) == [(800,)]
    analyzed = "SELECT count(*) FROM pg_stats WHERE schemaname = 'public' AND tablename = 'sale'"
    assert pg_server.execute(analyzed, pg_dbname)[0][0] > 0


def test_pagila_equals_psql(pg_server, pg_config, pg_dbname, history, tmp_path):
    """The real sample database, dumped whole by pg_dump, and as its two published files
    in one script (schema with triggers and foreign keys, then data between DISABLE /
    ENABLE TRIGGER ALL): those tables load serially, after the data before them."""
    files = [SHARED_DATA / "pagila" / name for name in PAGILA_FILES]
    both = tmp_path / "dumps" / "pagila-both.sql"
    both.write_bytes(b"".join(file.read_bytes() for file in files))
    source = pg_dbname + "_src"
    psql_reference(pg_server, files, source)
    try:
        whole = tmp_path / "dumps" / "pagila-whole.sql"
        subprocess.run(["pg_dump", "-f", str(whole), "-d", source], env=pg_server.env(),
                       check=True)  # fmt: skip
    finally:
        pg_server.execute(f'DROP DATABASE "{source}"')
    config = pg_config("jobs = 3\n" + COLD)
    for dump in (whole, both):
        expected = psql_fingerprint(pg_server, dump, pg_dbname)
        job = rewind(config, history, dump.name)
        assert job.state is JobState.SUCCEEDED, job.error
        assert fingerprint(pg_server, pg_dbname) == expected, dump.name


def test_bad_row_in_one_table_while_others_load(pg_server, pg_config, pg_dbname, history,
                                                tmp_path, many_tables, monkeypatch):  # fmt: skip
    monkeypatch.setattr(pg_parallel, "COPY_PIECE", 16 * 1024)
    config = pg_config("jobs = 3\n" + COLD)
    dumps = tmp_path / "dumps"
    (dumps / "good.sql").write_bytes(many_tables.read_bytes())
    assert rewind(config, history, "good.sql").state is JobState.SUCCEEDED
    before = fingerprint(pg_server, pg_dbname)
    lines = many_tables.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next(n for n, line in enumerate(lines) if line.startswith("COPY public.sale "))
    bad = start + 25_001  # a data line of sale, in a piece far from its first
    lines[bad] = "25000\t1\t1\tseven\t2024-01-18 08:40:00\n"
    broken = dumps / "broken.sql"
    broken.write_text("".join(lines), encoding="utf-8")
    job = rewind(config, history, "broken.sql")
    assert job.state is JobState.FAILED
    assert f"{broken}:{bad + 1}: invalid input syntax for type integer" in job.error, job.error
    assert fingerprint(pg_server, pg_dbname) == before
    assert reel_databases(pg_server, pg_dbname) == set()


def test_duplicate_found_by_a_parallel_unique_index_names_its_line(
    pg_server, pg_config, pg_dbname, history, tmp_path, many_tables
):
    text = many_tables.read_text(encoding="utf-8")
    text = text.replace("1\tSKU-1\t", "1\tSKU-2\t", 1)  # product 1 takes product 2's sku
    broken = tmp_path / "dumps" / "dup.sql"
    broken.write_text(text, encoding="utf-8")
    rows = text.splitlines()
    line = next(n for n, row in enumerate(rows) if "ADD CONSTRAINT product_sku_key" in row)
    assert rows[line - 1] == "ALTER TABLE ONLY public.product"  # where the statement starts
    job = rewind(pg_config("jobs = 3\n" + COLD), history, "dup.sql")
    assert job.state is JobState.FAILED
    assert f"{broken}:{line}: could not create unique index" in job.error, job.error
    assert pg_dbname not in pg_server.databases()
    assert reel_databases(pg_server, pg_dbname) == set()


SLOW = """\
CREATE FUNCTION public.slow(x integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN PERFORM pg_sleep(0.2); RETURN x; END $$;
CREATE TABLE public.t (x integer);
CREATE TABLE public.u (y integer);
CREATE TABLE public.v (z integer CHECK (public.slow(z) IS NOT NULL));
COPY public.t (x) FROM stdin;
{rows}\\.
COPY public.u (y) FROM stdin;
{rows}\\.
COPY public.v (z) FROM stdin;
{rows}\\.
CREATE INDEX t_slow ON public.t (public.slow(x));
CREATE INDEX u_slow ON public.u (public.slow(y));
"""


def test_cancel_while_indexes_build_alongside_data(pg_server, pg_config, pg_dbname, history,
                                                   tmp_path):  # fmt: skip
    """A table's indexes build as soon as its own data is in, while other tables' data
    still loads (as pg_restore -j does); a cancel then stops every connection."""
    config = pg_config("jobs = 3\n" + COLD)
    dumps = tmp_path / "dumps"
    (dumps / "seed.sql").write_text("CREATE TABLE public.kept (a integer);\n")
    assert rewind(config, history, "seed.sql").state is JobState.SUCCEEDED
    before = fingerprint(pg_server, pg_dbname)
    rows = "".join(f"{n}\n" for n in range(200))
    (dumps / "slow.sql").write_text(SLOW.format(rows=rows))
    running = """SELECT count(*) FILTER (WHERE query LIKE 'CREATE INDEX %_slow%'),
                        count(*) FILTER (WHERE query LIKE 'COPY public.v %')
                 FROM pg_stat_activity WHERE state = 'active'"""
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan_rewind(load_config(config), "shop", "slow.sql"))
        deadline = time.monotonic() + 20
        while pg_server.execute(running)[0] != (2, 1):
            assert time.monotonic() < deadline, "indexes never built alongside the data"
            time.sleep(0.02)
        asked = time.monotonic()
        assert queue.cancel(job.id)
        assert queue.wait(job, timeout=30), why_not_done(job, pg_server)
        stopped = time.monotonic() - asked
    finally:
        queue.shutdown()
    assert job.state is JobState.CANCELLED, job.error
    # about a second when idle (three connections to stop); the bound leaves room for a
    # loaded machine and is still far less than the slow index and data would take
    assert stopped < 5.0, stopped
    assert fingerprint(pg_server, pg_dbname) == before
    assert reel_databases(pg_server, pg_dbname) == set()
    sessions = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'reel-tui'"
    deadline = time.monotonic() + 30
    while pg_server.execute(sessions)[0][0] and time.monotonic() < deadline:
        time.sleep(0.05)  # a closed connection's backend exits just after
    assert pg_server.execute(sessions) == [(0,)]


def test_on_error_continue_loads_over_one_connection(pg_server, pg_config, pg_dbname, history,
                                                     tmp_path, many_tables):  # fmt: skip
    (tmp_path / "dumps" / "many.sql").write_bytes(many_tables.read_bytes())
    config = pg_config('jobs = 4\non_error = "continue"\n' + COLD)
    job = rewind(config, history, "many.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    assert not any("over 4 connections" in m for m in messages(job))
    assert any(m.startswith("loading over one connection") for m in messages(job))


def test_tables_with_live_foreign_keys_load_in_dump_order(
    pg_server, pg_config, pg_dbname, history, tmp_path, monkeypatch
):
    """Data for tables whose foreign keys and triggers exist already (a schema file, then
    a data file): the child's rows need all of the parent's in first, as psql loads them.
    The parent's last rows are slow to check, so a child loaded alongside would fail."""
    monkeypatch.setattr(pg_parallel, "COPY_PIECE", 4 * 1024)
    parents = "".join(f"{n}\n" for n in range(1, 20_001))
    children = "".join(f"{n}\n" for n in range(19_900, 20_001))
    dump = tmp_path / "dumps" / "live.sql"
    dump.write_text(
        "CREATE FUNCTION public.slow_ok(x integer) RETURNS boolean LANGUAGE plpgsql\n"
        "IMMUTABLE AS $$ BEGIN IF x > 19990 THEN PERFORM pg_sleep(0.05); END IF;\n"
        "RETURN true; END $$;\n"
        "CREATE TABLE public.parent (id integer PRIMARY KEY CHECK (public.slow_ok(id)));\n"
        "CREATE TABLE public.child (pid integer REFERENCES public.parent);\n"
        "CREATE TABLE public.seen (pid integer);\n"
        "CREATE FUNCTION public.see() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "BEGIN INSERT INTO public.seen VALUES (NEW.pid); RETURN NEW; END $$;\n"
        "CREATE TRIGGER see AFTER INSERT ON public.child\n"
        "    FOR EACH ROW EXECUTE FUNCTION public.see();\n"
        f"COPY public.parent (id) FROM stdin;\n{parents}\\.\n"
        f"COPY public.child (pid) FROM stdin;\n{children}\\.\n"
    )
    expected = psql_fingerprint(pg_server, dump, pg_dbname)
    job = rewind(pg_config("jobs = 4\n" + COLD), history, "live.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    assert fingerprint(pg_server, pg_dbname) == expected
    assert pg_server.execute("SELECT count(*) FROM public.seen", pg_dbname) == [(101,)]
