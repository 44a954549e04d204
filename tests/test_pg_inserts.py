"""Single-row INSERTs folded into multi-row ones (``pg_dump --inserts`` dumps): what is
folded and what is not, and, against a real server, that a folded load equals what
``psql -f`` makes of the same file, errors still naming their exact line."""

from __future__ import annotations

from pathlib import Path

import pytest
from pg_server import PgServer
from pg_tools import fingerprint, messages, psql_reference, rewind

from reel_tui.engines.pg_inserts import Batch, RowSplitter
from reel_tui.engines.pg_script import Statement
from reel_tui.jobs import JobState

HEAD = "INSERT INTO public.t VALUES "


@pytest.mark.parametrize(
    "text",
    [
        "INSERT INTO public.t VALUES (1, 'a');",
        "INSERT INTO public.t VALUES (2, 'it''s (not) a paren; nor a semicolon');",
        "insert into t values (3, NULL);",
        'INSERT INTO "my ""t""" (id, "na me") VALUES (4, \'x\');',
        "INSERT INTO public.t OVERRIDING SYSTEM VALUE VALUES (5, 'y');",
        "INSERT INTO t VALUES (6, 'a''); INSERT INTO t VALUES (2, ''b');",  # one string
    ],
)
def test_a_plain_single_row_insert_is_split_into_head_and_row(text):
    parts = RowSplitter().split(text)
    assert parts is not None
    head, row = parts
    assert text == head + row + ";"
    assert row.startswith("(") and row.endswith(")")


@pytest.mark.parametrize(
    "text",
    [
        "INSERT INTO t VALUES (1, 'a') ON CONFLICT (id) DO NOTHING;",
        "INSERT INTO t VALUES (1, 'a') RETURNING (id);",
        "INSERT INTO t VALUES (1, now());",  # a parenthesis of its own: not provably one row
        "INSERT INTO t VALUES (1, E'a\\'b');",  # a backslash escape
        "INSERT INTO t VALUES (1, $$a'b$$);",
        "INSERT INTO t VALUES (1, 'a'); -- (c)",
        "INSERT INTO t VALUES (1, /* (c) */ 'a');",
        "INSERT INTO t VALUES (1; 2);",
        "INSERT INTO t SELECT 1, 'a';",
        "INSERT INTO t (id) SELECT id FROM u WHERE x IN (SELECT 1) AND y = ' VALUES (';",
        "UPDATE t SET a = 1;",
    ],
)
def test_anything_not_provably_one_row_is_left_as_it_is(text):
    assert RowSplitter().split(text) is None


def test_a_batch_folds_runs_of_rows_with_the_same_head():
    texts = [
        "INSERT INTO public.t VALUES (1, 'a');",
        "INSERT INTO public.t VALUES (2, 'b');",
        "INSERT INTO public.u (id) VALUES (3);",
        "SELECT pg_catalog.setval('s', 3);",
        "INSERT INTO public.t VALUES (4, 'd');",
        "INSERT INTO public.t VALUES (5, now());",
    ]
    batch = Batch()
    for n, text in enumerate(texts, 1):
        batch.add(Statement(text, n))
    statements, sql = batch.take()
    assert [s.line for s in statements] == [1, 2, 3, 4, 5, 6]
    assert sql.splitlines() == [
        "INSERT INTO public.t VALUES (1, 'a'),",
        "(2, 'b');",
        "INSERT INTO public.u (id) VALUES (3);",
        "SELECT pg_catalog.setval('s', 3);",
        "INSERT INTO public.t VALUES (4, 'd');",
        "INSERT INTO public.t VALUES (5, now());",
    ]
    assert len(batch) == 0 and batch.size == 0 and batch.head is None


TRICKY_DUMP = """\
CREATE TABLE public.t (id integer PRIMARY KEY, name text, price numeric(6,2), at timestamptz);
CREATE TABLE public.u (id integer, note text);
INSERT INTO public.t VALUES (1, 'one', 1.50, '2020-01-01 00:00:00+00');
INSERT INTO public.t VALUES (2, 'it''s; (two)', NULL, '2020-01-02 00:00:00+00');
INSERT INTO public.t VALUES (3, 'three', 3, NULL); INSERT INTO public.u VALUES (30, 'same line');
INSERT INTO public.t VALUES (4, 'four', 4.25, '2020-01-04 00:00:00+00');
-- a comment between rows
INSERT INTO public.t VALUES (5, 'five
on two lines', 5, '2020-01-05 00:00:00+00');
INSERT INTO public.t VALUES (6, upper('six'), 6, '2020-01-06 00:00:00+00');
INSERT INTO public.t VALUES (7, E'back\\\\slash', 7, '2020-01-07 00:00:00+00');
INSERT INTO public.t VALUES (8, 'eight', 8, '2020-01-08 00:00:00+00') ON CONFLICT DO NOTHING;
INSERT INTO public.t VALUES (8, 'eight again', 8, '2020-01-08 00:00:00+00') ON CONFLICT DO NOTHING;
INSERT INTO public.u VALUES (90, 'u after t');
INSERT INTO public.u VALUES (91, 'u again');
INSERT INTO public.t (id, name) VALUES (10, 'columns');
INSERT INTO public.t (id, name) VALUES (11, 'columns too');
"""


def test_a_folded_load_equals_psql(pg_server: PgServer, pg_config, pg_dbname, history,
                                   tmp_path: Path):  # fmt: skip
    dump = tmp_path / "dumps" / "tricky.sql"
    rows = "".join(f"INSERT INTO public.u VALUES ({n}, 'row {n}');\n" for n in range(100, 6100))
    dump.write_text(TRICKY_DUMP + rows, encoding="utf-8")
    job = rewind(pg_config(), history, "tricky.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    psql_reference(pg_server, [dump], pg_dbname + "_ref")
    try:
        assert fingerprint(pg_server, pg_dbname) == fingerprint(pg_server, pg_dbname + "_ref")
    finally:
        pg_server.execute(f'DROP DATABASE "{pg_dbname}_ref"')
    assert "data: public.u 6,000 rows" in messages(job)


def test_an_error_in_a_folded_run_names_its_line_and_changes_nothing(
    pg_server: PgServer, pg_config, pg_dbname, history, tmp_path: Path
):
    good = "CREATE TABLE public.v (id integer PRIMARY KEY, n integer NOT NULL);\n" + "".join(
        f"INSERT INTO public.v VALUES ({n}, {n});\n" for n in range(1, 3001)
    )
    (tmp_path / "dumps" / "good.sql").write_text(good)
    config = pg_config()
    assert rewind(config, history, "good.sql").state is JobState.SUCCEEDED
    before = fingerprint(pg_server, pg_dbname)
    lines = good.splitlines(keepends=True)
    lines[2000] = "INSERT INTO public.v VALUES (2000, NULL);\n"  # line 2001 of the file
    (tmp_path / "dumps" / "bad.sql").write_text("".join(lines))
    job = rewind(config, history, "bad.sql")
    assert job.state is JobState.FAILED
    assert "bad.sql:2001" in job.error and "not-null" in job.error, job.error
    assert fingerprint(pg_server, pg_dbname) == before


def test_on_error_continue_skips_only_the_failing_row(pg_server: PgServer, pg_config, pg_dbname,
                                                      history, tmp_path: Path):  # fmt: skip
    rows = [f"INSERT INTO public.w VALUES ({n});\n" for n in range(1, 2001)]
    rows[999] = "INSERT INTO public.w VALUES (1);\n"  # a duplicate key on line 1001
    dump = "CREATE TABLE public.w (id integer PRIMARY KEY);\n" + "".join(rows)
    (tmp_path / "dumps" / "dup.sql").write_text(dump)
    job = rewind(pg_config('on_error = "continue"'), history, "dup.sql")
    assert job.state is JobState.SUCCEEDED, job.error
    assert pg_server.execute("SELECT count(*), sum(id) FROM public.w", pg_dbname) == [
        (1999, sum(range(1, 2001)) - 1000)
    ]
    assert any("dup.sql:1001" in m and "duplicate key" in m for m in messages(job))
