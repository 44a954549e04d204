"""The core must run headless: importing it loads neither Textual nor rich, and
neither does a headless rewind off a terminal, which also leaves out what only
some runs need (decompressors, name suggestions, the HTTP stack): start-up time
is part of every warm rewind's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from reel_tui.config import Config

CORE = [
    "reel_tui.config",
    "reel_tui.sources",
    "reel_tui.dumpfile",
    "reel_tui.jobs",
    "reel_tui.jobqueue",
    "reel_tui.history",
    "reel_tui.locks",
    "reel_tui.plan",
    "reel_tui.engines",
    "reel_tui.engines.sqlite",
    "reel_tui.listing",
    "reel_tui.prometheus",
    "reel_tui.api.service",
    "reel_tui.api.serve",  # with auth and routes: the HTTP API is core too
]


def test_core_imports_no_ui_library():
    code = (
        "import sys\n"
        + "".join(f"import {module}\n" for module in CORE)
        + "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


HEADLESS_RUN = """\
import sys
from reel_tui.cli import main
code = main(sys.argv[1:])
ui = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))
lazy = sorted(m for m in ('gzip', 'difflib', 'aiohttp') if m in sys.modules)
sys.stderr.write(f"lazy modules: {lazy}\\n")
sys.stderr.write(f"ui modules: {ui}\\n")
raise SystemExit(code)
"""


@pytest.mark.parametrize(
    ("args", "exit_code"),
    [
        (["--rewind", "-q"], 0),
        (["--rewind", "--json"], 0),
        (["--rewind"], 0),  # plain lines: stdout is a pipe here, not a terminal
        (["--rewind", "ghost"], 2),  # the refusal on stderr is a plain line too
    ],
)
def test_headless_rewind_imports_no_ui_library(blog: Config, args, exit_code):
    """cron, scripts and ``--json`` start without rich's import time (nor Textual's)."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    result = subprocess.run(
        [sys.executable, "-c", HEADLESS_RUN, "-c", str(blog.path), *args],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert result.returncode == exit_code, result.stderr
    assert result.stderr.splitlines()[-1] == "ui modules: []"
    if exit_code == 0:  # a plain dump needs no decompressor, nor a name suggested, nor HTTP
        assert result.stderr.splitlines()[-2] == "lazy modules: []"
    if "--json" in args:
        assert json.loads(result.stdout.splitlines()[-1])["state"] == "succeeded"


def test_server_engines_start_without_what_only_some_runs_need():
    """What a warm PostgreSQL or MySQL rewind imports before its job: not shutil (argparse
    would, for its help's width, and shutil loads bz2 and lzma), decompressors, difflib,
    the HTTP stack, nor secrets (with random: a name's six random bytes need only
    os.urandom). (The SQLite engine copies files with shutil.)"""
    code = (
        "import sys\n"
        "import reel_tui.cli, reel_tui.engines.postgres, reel_tui.engines.mysql\n"
        "reel_tui.cli.build_parser().parse_args(['--rewind'])\n"
        "print(sorted(m for m in ('shutil', 'bz2', 'lzma', 'gzip', 'difflib', 'aiohttp',"
        " 'secrets') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_sqlite_engine_compiles_its_row_pattern_only_when_a_load_needs_it():
    """The pattern that vets rows for a multi-row INSERT takes about 11 ms to compile:
    not on every start (a warm rewind is 0.15 s in all)."""
    code = ("import reel_tui.engines.sqlite as engine\n"
            "print(engine._one_row_pattern.cache_info().currsize)")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"
