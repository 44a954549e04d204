"""PostgreSQL engine fidelity on a database built to be hard to load: every pg_dump form
of it must rewind to what ``psql -v ON_ERROR_STOP=1 -f`` makes of the same dump."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pg_server import PgServer
from pg_tools import fingerprint, messages, psql_reference, rewind

from reel_tui.jobs import JobState

HARD = r"""
CREATE EXTENSION citext;
CREATE SCHEMA "odd schema & co";
CREATE TYPE "odd schema & co".mood AS ENUM ('ok;', 'it''s', 'fine');
CREATE DOMAIN public.posint AS integer CHECK (VALUE > 0);
CREATE TABLE "odd schema & co"."my table" (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "the name" text,
    m "odd schema & co".mood,
    data bytea,
    tags text[],
    doc jsonb,
    j json,
    n public.posint,
    ci citext,
    doubled integer GENERATED ALWAYS AS (n * 2) STORED
);
COMMENT ON TABLE "odd schema & co"."my table" IS 'a comment; with ''quotes''';
CREATE FUNCTION public.weird() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  -- a ; and a $ and a \. in the body
  RETURN 'semi;colon $ and
\.
done';
END $$;
CREATE FUNCTION public.atomic_add(a integer, b integer) RETURNS integer LANGUAGE sql
BEGIN ATOMIC
  SELECT CASE WHEN a > 0 THEN a + b ELSE b END;
END;
CREATE TABLE public.log (msg text);
CREATE FUNCTION public.trg() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN INSERT INTO public.log VALUES ('ins;' || NEW.id); RETURN NEW; END $body$;
CREATE TRIGGER t AFTER INSERT ON "odd schema & co"."my table"
    FOR EACH ROW EXECUTE FUNCTION public.trg();
CREATE VIEW public.v AS SELECT "the name" FROM "odd schema & co"."my table";
CREATE TABLE public.parted (id integer, k text) PARTITION BY LIST (k);
CREATE TABLE public.parted_a PARTITION OF public.parted FOR VALUES IN ('a');
CREATE TABLE public.parted_b PARTITION OF public.parted FOR VALUES IN ('b');
CREATE SEQUENCE public.seq START 100;
SELECT nextval('public.seq');
ALTER TABLE public.log ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON public.log USING (msg <> 'hidden');
INSERT INTO "odd schema & co"."my table" ("the name", m, data, tags, doc, j, n, ci) VALUES
    ('O''Brien; -- not a comment', 'ok;', '\x00ff5c2e0a', ARRAY['a,b', 'c"d', NULL],
     '{"k": "v;\\."}', '[1, 2]', 3, 'MiXeD'),
    ('😀 unicode /* x */ $$', 'it''s', '', '{}', 'null', '{}', 1, 'x'),
    (E'line1\n\\.\nline3\ttab', 'fine', NULL, NULL, NULL, NULL, 2, NULL),
    (repeat('big text; ', 300000), 'fine', NULL, NULL, NULL, NULL, 4, NULL);
INSERT INTO public.parted VALUES (1, 'a'), (2, 'b');
CREATE MATERIALIZED VIEW public.mv AS SELECT count(*) AS c FROM "odd schema & co"."my table";
"""
FORMS = {
    "hard.sql": [],
    "hard-inserts.sql": ["--inserts"],
    "hard-column-inserts.sql": ["--column-inserts", "--rows-per-insert=3"],
}


@pytest.fixture(scope="module")
def hard_dumps(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The hard database, built with psql and dumped by pg_dump in each form."""
    folder = tmp_path_factory.mktemp("hard")
    script = folder / "build.sql"
    script.write_text(HARD, encoding="utf-8")
    pg_server.execute("DROP DATABASE IF EXISTS src_hard")
    psql_reference(pg_server, [script], "src_hard")
    dumps = {}
    for name, options in FORMS.items():
        dumps[name] = folder / name
        subprocess.run(["pg_dump", *options, "-f", str(dumps[name]), "-d", "src_hard"],
                       env=pg_server.env(), check=True)  # fmt: skip
    return dumps


@pytest.mark.parametrize("form", list(FORMS))
def test_hard_database_equals_psql(pg_server, pg_config, pg_dbname, history, tmp_path,
                                   hard_dumps, form):  # fmt: skip
    dump = hard_dumps[form]
    reference = pg_dbname + "_ref"
    psql_reference(pg_server, [dump], reference)
    try:
        expected = fingerprint(pg_server, reference)
    finally:
        pg_server.execute(f'DROP DATABASE "{reference}"')
    (tmp_path / "dumps" / form).write_bytes(dump.read_bytes())
    job = rewind(pg_config(), history, form)
    assert job.state is JobState.SUCCEEDED, job.error
    assert fingerprint(pg_server, pg_dbname) == expected
    [(weird, added)] = pg_server.execute("SELECT public.weird(), public.atomic_add(2, 3)",
                                         pg_dbname)  # fmt: skip
    assert weird == "semi;colon $ and\n\\.\ndone" and added == 5
    rows = pg_server.execute(
        'SELECT "the name", length("the name") FROM "odd schema & co"."my table" ORDER BY id',
        pg_dbname,
    )
    assert rows[0][0] == "O'Brien; -- not a comment"
    assert rows[2][0] == "line1\n\\.\nline3\ttab"
    assert rows[3][1] == 3_000_000
    assert any(m.startswith('data: "odd schema & co"."my table" 4 rows') for m in messages(job))
    if form == "hard.sql":  # pg_dump 15.14+ writes \restrict / \unrestrict around the script
        assert dump.read_text().startswith("--\n-- PostgreSQL database dump\n--\n\n\\restrict ")


def test_error_in_a_big_insert_batch_names_its_line(pg_server, pg_config, pg_dbname, history,
                                                    tmp_path):  # fmt: skip
    lines = ["CREATE TABLE public.t (id integer PRIMARY KEY, v text);"]
    lines += [f"INSERT INTO public.t VALUES ({n}, 'value; {n}');" for n in range(20_000)]
    lines.insert(12_345, "INSERT INTO public.t VALUES (7, 'duplicate');")
    dump = tmp_path / "dumps" / "dup.sql"
    dump.write_text("\n".join(lines) + "\n")
    job = rewind(pg_config(), history, "dup.sql")
    assert job.state is JobState.FAILED
    assert f"{dump}:12346: duplicate key value violates unique constraint" in job.error
    assert job.error.endswith("in: INSERT INTO public.t VALUES (7, 'duplicate');")
    assert pg_dbname not in pg_server.databases()


BEGINS = [
    "CREATE FUNCTION public.begin() RETURNS integer LANGUAGE sql AS $$SELECT 1$$",
    'CREATE FUNCTION public."ébegin"() RETURNS integer LANGUAGE sql AS $é$SELECT 2$é$',
    "CREATE FUNCTION public.begin(x integer) RETURNS integer LANGUAGE sql\n"
    "BEGIN ATOMIC\n  SELECT CASE WHEN x > 0 THEN x END;\nEND",
    'CREATE PROCEDURE public."end"() LANGUAGE sql BEGIN ATOMIC SELECT 1 AS "begin"; END',
    "CREATE TABLE public.after_them (id integer, v text)",
    "INSERT INTO public.after_them SELECT n, 'row; ' || n FROM generate_series(1, 50) n",
]


def test_functions_named_begin_in_a_real_pg_dump(pg_server, pg_config, pg_dbname, history,
                                                 tmp_path):  # fmt: skip
    """pg_dump writes ``CREATE FUNCTION public.begin()`` unquoted: no BEGIN ATOMIC block
    opens there, so the statement ends at its ``;`` and the COPY data after it loads.
    (psql 15's own heuristic swallows everything after it into one statement.)"""
    source = pg_dbname + "_src"
    pg_server.execute(f'CREATE DATABASE "{source}"')
    try:
        for statement in BEGINS:
            pg_server.execute(statement, source)
        dump = tmp_path / "dumps" / "begins.sql"
        subprocess.run(["pg_dump", "-f", str(dump), "-d", source], env=pg_server.env(),
                       check=True)  # fmt: skip
        assert "CREATE FUNCTION public.begin() RETURNS integer" in dump.read_text()
        expected = fingerprint(pg_server, source)
    finally:
        pg_server.execute(f'DROP DATABASE "{source}"')
    job = rewind(pg_config(), history, "begins.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    assert fingerprint(pg_server, pg_dbname) == expected
    begins = 'SELECT public.begin(), public."ébegin"(), public.begin(7)'
    assert pg_server.execute(begins, pg_dbname) == [(1, 2, 7)]
    assert "data: public.after_them 50 rows" in messages(job)
