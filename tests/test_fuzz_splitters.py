"""Fuzzing the statement splitters (the structured properties are in test_pg_script.py and
test_mysql_script.py): any text splits or raises ScriptError, within a deadline; memory does
not grow with the script; and generated scripts full of quoting traps load through reel-tui
to exactly what the reference client (psql / mysql) loads."""

from __future__ import annotations

import io
import secrets
import subprocess
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reel_tui.config import load_config
from reel_tui.engines import mysql_script, pg_script
from reel_tui.history import HistoryStore
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import JobState
from reel_tui.plan import plan_rewind

TRAPS = [*"ab ;'\"`$\\/*-#\n\t()é😀\0\r", "--", "/*", "*/", "$$", "$q$", "\\.", "E'",
         "DELIMITER ", "COPY t FROM stdin;\n", "BEGIN ATOMIC", "/*!40101 ",
         "\\connect x\n"]  # fmt: skip
_any_script = st.lists(st.sampled_from(TRAPS), max_size=80).map("".join)


def drain_pg(script: str) -> None:
    splitter = pg_script.ScriptSplitter(io.StringIO(script, newline=""))
    for item in splitter:
        if isinstance(item, pg_script.Statement) and item.copy_from_stdin:
            for _ in splitter.copy_data():
                pass


def drain_mysql(script: str, backslash_escapes: bool) -> None:
    splitter = mysql_script.ScriptSplitter(io.StringIO(script, newline=""))
    splitter.backslash_escapes = backslash_escapes
    for _ in splitter:
        pass


@settings(max_examples=400, deadline=500)
@given(_any_script)
def test_pg_splitter_takes_any_text(script: str):
    try:
        drain_pg(script)
    except pg_script.ScriptError as exc:
        assert exc.args and str(exc).count("\n") == 0


@settings(max_examples=400, deadline=500)
@given(_any_script, st.booleans())
def test_mysql_splitter_takes_any_text(script: str, backslash_escapes: bool):
    try:
        drain_mysql(script, backslash_escapes)
    except mysql_script.ScriptError as exc:
        assert exc.args and str(exc).count("\n") == 0


def many_statements(count: int) -> Iterator[str]:
    """A long script made on the fly, each statement with a string and a comment."""
    for n in range(count):
        yield f"INSERT INTO t VALUES ({n}, 'text; with -- no comment {n}'); -- note\n"


@pytest.mark.parametrize("module", [pg_script, mysql_script], ids=["postgres", "mysql"])
def test_splitters_memory_does_not_grow_with_the_script(module):
    """10,000 statements (750 kB) through each splitter: the peak of Python allocations
    stays under 100 kB, so the splitter keeps a statement, not the script."""
    tracemalloc.start()
    try:
        count = sum(1 for _ in module.ScriptSplitter(many_statements(10_000)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10_000
    assert peak < 100_000, f"peak {peak:,} bytes"


# --- generated scripts: reel-tui loads what the reference client loads ------------------------

_value = st.lists(st.sampled_from([*"ab ;'\"`$\\/*-#\n\té😀", "--", "/*", "*/", "$$"]),
                  max_size=12).map("".join)  # fmt: skip


def pg_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def pg_dollar(value: str) -> str:
    """``value`` dollar-quoted with a tag whose closing ``$tag$`` first occurs at its end."""
    tag = "v"
    while (value + f"${tag}$").find(f"${tag}$") != len(value):
        tag += "v"
    return f"${tag}${value}${tag}$"


def my_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def script_for(values: list[str], engine: str) -> str:
    """CREATE TABLE, then an INSERT per value, quoted in varying ways, between comments."""
    lines = ["-- generated; with a comment\n", "CREATE TABLE t (id int PRIMARY KEY, v text);\n"]
    for n, value in enumerate(values):
        if engine == "postgres":
            quoted = pg_dollar(value) if n % 2 else pg_literal(value)
        else:
            quoted = my_literal(value)
        lines.append(f"/* row {n}; */ INSERT INTO t VALUES ({n}, {quoted});\n")
    return "".join(lines)


def reel_rewind(config: Path, app: str) -> None:
    history = HistoryStore(config.parent / f"state-{secrets.token_hex(3)}")
    queue = JobQueue(history, workers=1)
    try:
        job = queue.submit(plan_rewind(load_config(config), app, "gen.sql"))
        assert queue.wait(job, timeout=60)
        assert job.state is JobState.SUCCEEDED, job.error
    finally:
        queue.shutdown()
        history.close()


@settings(max_examples=3, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(values=st.lists(_value, min_size=1, max_size=6))
def test_generated_scripts_load_as_psql_loads_them(pg_server, pg_config, tmp_path, values):
    dump = tmp_path / "dumps" / "gen.sql"
    dump.write_text(script_for(values, "postgres"), encoding="utf-8")
    target, reference = "g_" + secrets.token_hex(4), "r_" + secrets.token_hex(4)
    try:
        reel_rewind(pg_config(database=target), "shop")
        pg_server.execute(f"CREATE DATABASE {reference}")
        psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", reference, "-f", str(dump)]
        subprocess.run(psql, env=pg_server.env(), check=True, capture_output=True)
        query = "SELECT id, v FROM t ORDER BY id"
        assert pg_server.execute(query, target) == pg_server.execute(query, reference)
        assert [v for _, v in pg_server.execute(query, target)] == values
    finally:  # the target's kept cache and spare copies too
        for name in pg_server.databases():
            if name.startswith((target, reference)):
                pg_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@settings(max_examples=3, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(values=st.lists(_value, min_size=1, max_size=6))
def test_generated_scripts_load_as_the_mysql_client_loads_them(mysql_server, my_config,
                                                               tmp_path, values):  # fmt: skip
    dump = tmp_path / "dumps" / "gen.sql"
    dump.write_text(script_for(values, "mysql"), encoding="utf-8")
    target, reference = "g_" + secrets.token_hex(4), "r_" + secrets.token_hex(4)
    try:
        reel_rewind(my_config(database=target), "crm")
        mysql_server.execute(f"CREATE DATABASE {reference}")
        with open(dump, "rb") as stdin:
            mysql = ["mysql", *mysql_server.client_args(), "--comments",
                     "--default-character-set=utf8mb4", reference]  # fmt: skip
            subprocess.run(mysql, stdin=stdin, env=mysql_server.client_env(), check=True,
                           capture_output=True)  # fmt: skip
        query = "SELECT id, v FROM t ORDER BY id"
        assert mysql_server.execute(query, target) == mysql_server.execute(query, reference)
        assert [v for _, v in mysql_server.execute(query, target)] == values
    finally:
        for name in (target, reference):
            mysql_server.execute(f"DROP DATABASE IF EXISTS {name}")
