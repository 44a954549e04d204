"""The headless face: exit codes, JSON events, signals, guards, history commands."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import REEL, SHARED_DATA, big_dump, file_hash, fingerprint, wait_until
from reel_tui.cli import main
from reel_tui.config import Config
from reel_tui.jobs import Job, JobEvent, JobState, LogLine
from reel_tui.reporters import RichReporter


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*REEL, *args], capture_output=True, text=True, timeout=120, env=env or os.environ.copy()
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_rewind_default_app_exit_0(blog: Config, capsys):
    assert main(["-c", str(blog.path), "--rewind"]) == 0
    out = capsys.readouterr().out
    assert "succeeded in" in out
    assert fingerprint(Path(blog.apps["blog"].database))[1]["authors"][0] == (1, "Ada")


def test_rewind_failure_exit_1_and_database_unchanged(blog: Config, capsys):
    app = blog.apps["blog"]
    assert main(["-c", str(blog.path), "--rewind", "blog", "--source", "other.sql"]) == 0
    before = file_hash(Path(app.database))
    (app.sources_dir / "bad.sql").write_text("CREATE TABLE x (a);\nINSERT INTO y VALUES (1);\n")
    assert main(["-c", str(blog.path), "--rewind", "--source", "bad.sql"]) == 1
    out = capsys.readouterr().out
    assert "bad.sql:2:" in out and "no such table: y" in out
    assert file_hash(Path(app.database)) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rewind", "nope"], "no app named 'nope'"),
        (["--rewind", "blg"], "did you mean 'blog'"),
        (["--rewind", "--source", "missing.sql"], "no source named 'missing.sql'"),
        (["--rewind", "--source", "../reel.toml"], "outside the app's sources"),
        (["--rewind", "--source", "/etc/passwd"], "outside the app's sources"),
        ([], "the TUI needs a terminal"),
        (["--log", "999"], "no job #999"),
    ],
)
def test_refusals_exit_2_with_one_line(blog: Config, args, message):
    result = run("-c", str(blog.path), *args)
    assert result.returncode == 2
    assert message in one_line_error(result)
    assert not Path(blog.apps["blog"].database).exists()


def test_protected_app_is_refused(write_config, tmp_path):
    (tmp_path / "d.sql").write_text("CREATE TABLE t (x);\n")
    path = write_config(
        """
        [prod]
        database = "prod.db"
        dbsource = "d.sql"
        protected = true
        """
    )
    result = run("-c", str(path), "--rewind", "prod")
    assert result.returncode == 2
    line = one_line_error(result)
    assert "protected" in line and "reel.toml:2" in line
    assert not (tmp_path / "prod.db").exists()


def test_wrong_engine_dump_is_refused_before_anything(write_config, tmp_path):
    pagila = SHARED_DATA / "pagila/pagila-schema.sql"
    (tmp_path / "pagila.sql").write_bytes(pagila.read_bytes())
    path = write_config('[app]\ndatabase = "app.db"\ndbsource = "pagila.sql"\n')
    result = run("-c", str(path), "--rewind")
    assert result.returncode == 2
    assert "PostgreSQL SQL dump" in one_line_error(result)


def test_broken_config_is_one_line_exit_2(write_config):
    path = write_config('[app]\ndatabase = "x.db"\ndbport = \n')
    result = run("-c", str(path), "--list")
    assert result.returncode == 2
    assert f"{path}:3:" in one_line_error(result)


def test_disabled_app_other_apps_still_work(write_config, tmp_path):
    (tmp_path / "d.sql").write_text("CREATE TABLE t (x);\nINSERT INTO t VALUES (1);\n")
    path = write_config(
        """
        [good]
        database = "good.db"
        dbsource = "d.sql"
        [bad]
        dbdriver = "oracle"
        database = "bad"
        dbsource = "d.sql"
        """
    )
    bad = run("-c", str(path), "--rewind", "bad")
    assert bad.returncode == 2 and "disabled" in bad.stderr and "oracle" in bad.stderr
    good = run("-c", str(path), "--rewind", "good")
    assert good.returncode == 0, good.stderr
    assert good.stderr == "", "a rewind does not report other apps' problems (cron mail)"
    assert "unknown driver 'oracle'" in run("-c", str(path), "--list").stderr
    listing = json.loads(run("-c", str(path), "--list", "--json").stdout)
    by_name = {app["name"]: app for app in listing["apps"]}
    assert by_name["good"]["enabled"] and not by_name["bad"]["enabled"]


def test_json_events_are_versioned_and_complete(blog: Config):
    result = run("-c", str(blog.path), "--rewind", "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(e["v"] == 1 and isinstance(e["job"], int) for e in events)
    kinds = [e["event"] for e in events]
    assert kinds[:2] == ["queued", "started"] and kinds[-1] == "finished"
    assert events[0]["app"] == "blog" and events[0]["source"] == "seed.sql"
    assert events[-1]["state"] == "succeeded" and events[-1]["error"] is None
    progress = [e for e in events if e["event"] == "progress"]
    assert progress[-1]["bytes_read"] == progress[-1]["bytes_total"] > 0
    assert any(e["event"] == "log" and "schema: table posts" in e["message"] for e in events)


def test_json_refusal_is_an_event_too(blog: Config):
    result = run("-c", str(blog.path), "--rewind", "ghost", "--json")
    assert result.returncode == 2
    event = json.loads(result.stdout)
    assert event["event"] == "refused" and "ghost" in event["error"]


def test_plain_output_when_not_a_terminal_is_timestamped_lines(blog: Config):
    result = run("-c", str(blog.path), "--rewind")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines and all(line[:2].isdigit() and line[2] == ":" for line in lines)
    assert "\x1b[" not in result.stdout


def test_quiet_prints_nothing_on_success(blog: Config):
    result = run("-c", str(blog.path), "--rewind", "-q")
    assert result.returncode == 0 and result.stdout == ""


def test_dry_run_changes_nothing(blog: Config):
    result = run("-c", str(blog.path), "--rewind", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "would replace blog" in result.stdout
    assert "does not exist yet" in result.stdout
    assert not Path(blog.apps["blog"].database).exists()
    history = json.loads(run("-c", str(blog.path), "--history", "--json").stdout)
    assert history["jobs"] == []


def test_list_json(blog: Config):
    result = run("-c", str(blog.path), "--list", "--json")
    data = json.loads(result.stdout)
    app = data["apps"][0]
    assert data["default_app"] == "blog"
    assert app["driver"] == "sqlite" and app["target"].endswith("blog.sqlite3")
    names = [(s["name"], s["default"], s["format"]) for s in app["sources"]]
    assert names == [("seed.sql", True, "plain"), ("other.sql", False, "plain")]


def test_installed_command_delivers_all_its_output_before_leaving(blog: Config):
    """The console script leaves with os._exit (no module teardown): what it printed into a
    pipe, its exit code and the job's history must all be complete by then."""
    script = Path(sys.executable).with_name("reel-tui")
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}

    def reel(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([script, "-c", str(blog.path), *args], env=buffered,
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    for _ in range(3):
        done = reel("--rewind", "--json")
        events = [json.loads(line)["event"] for line in done.stdout.splitlines()]
        assert done.returncode == 0 and events[0] == "queued" and events[-1] == "finished"
    bad = reel("--rewind", "ghost")
    assert bad.returncode == 2 and "ghost" in one_line_error(bad)
    listed = reel("--history", "--json")  # one print, block-buffered into the pipe
    assert listed.returncode == 0
    assert [job["state"] for job in json.loads(listed.stdout)["jobs"]] == ["succeeded"] * 3


def test_history_and_log(blog: Config):
    assert run("-c", str(blog.path), "--rewind").returncode == 0
    (blog.apps["blog"].sources_dir / "bad.sql").write_text("CREATE TABLE t (x);\nSELEC 1;\n")
    assert run("-c", str(blog.path), "--rewind", "--source", "bad.sql").returncode == 1
    jobs = json.loads(run("-c", str(blog.path), "--history", "--json").stdout)["jobs"]
    assert [j["state"] for j in jobs] == ["failed", "succeeded"]
    assert "syntax error" in jobs[0]["error"]
    log = run("-c", str(blog.path), "--log", str(jobs[1]["id"]))
    assert log.returncode == 0 and "schema: table authors" in log.stdout
    table = run("-c", str(blog.path), "--history")
    assert f"#{jobs[0]['id']}" in table.stdout and "failed" in table.stdout
    metrics = json.loads(run("-c", str(blog.path), "--metrics", "--json").stdout)
    assert metrics["apps"][0]["runs"] == 2


HOLD_LOCK = textwrap.dedent(
    """
    import sys, threading, time
    from pathlib import Path
    from reel_tui.locks import TargetLock
    lock = TargetLock(Path(sys.argv[1]), sys.argv[2])
    assert lock.try_acquire()
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
    """
)


def test_wait_bounds_the_wait_for_another_process(blog: Config, state_dir: Path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(state_dir / "locks"),
         blog.apps["blog"].target_key, "30"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        result = run("-c", str(blog.path), "--rewind", "--wait", "0.5")
        assert result.returncode == 2
        assert time.monotonic() - started < 10
        assert f"pid {holder.pid}" in result.stdout
    finally:
        holder.kill()
        holder.wait()
    assert not Path(blog.apps["blog"].database).exists()


def start_slow_rewind(
    blog: Config, rows: int = 400_000, phase: str = "loading"
) -> tuple[subprocess.Popen[str], Path]:
    """A headless rewind of a big dump, returned once it is in ``phase`` (past 1 MB)."""
    app = blog.apps["blog"]
    big_dump(app.sources_dir / "big.sql", rows)
    proc = subprocess.Popen(
        [*REEL, "-c", str(blog.path), "--rewind", "--source", "big.sql", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    for line in proc.stdout:
        event = json.loads(line)
        if event.get("phase") == phase and event["bytes_read"] > 1_000_000:
            break
    return proc, Path(app.database)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_cancels_and_leaves_database_unchanged(blog: Config, sig, code):
    assert main(["-c", str(blog.path), "--rewind", "--source", "other.sql", "-q"]) == 0
    target = Path(blog.apps["blog"].database)
    before = file_hash(target)
    proc, _ = start_slow_rewind(blog)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    final = json.loads(out.splitlines()[-1])
    assert final["event"] == "finished" and final["state"] == "cancelled"
    assert file_hash(target) == before
    assert not list(target.parent.glob(".blog.sqlite3.reel-*.tmp*"))


def test_kill_9_then_next_run_cleans_up_and_history_says_so(blog: Config):
    assert main(["-c", str(blog.path), "--rewind", "--source", "other.sql", "-q"]) == 0
    target = Path(blog.apps["blog"].database)
    before = file_hash(target)
    proc, _ = start_slow_rewind(blog)
    proc.kill()
    proc.communicate(timeout=10)
    assert file_hash(target) == before
    assert list(target.parent.glob(".blog.sqlite3.reel-*.tmp*")), "the kill left a temp file"
    result = run("-c", str(blog.path), "--rewind")
    assert result.returncode == 0
    assert "left by an interrupted earlier run" in result.stdout
    assert not list(target.parent.glob(".blog.sqlite3.reel-*.tmp*"))
    jobs = json.loads(run("-c", str(blog.path), "--history", "--json").stdout)["jobs"]
    assert [j["state"] for j in jobs] == ["succeeded", "failed", "succeeded"]
    assert jobs[1]["error_code"] == "interrupted"


def test_version():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("reel-tui ")


def test_no_config_anywhere_is_one_line(tmp_path, monkeypatch):
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "HOME": str(tmp_path)}
    env.pop("REEL_CONFIG", None)
    result = subprocess.run([*REEL, "--list"], capture_output=True, text=True, cwd=tmp_path,
                            env=env, timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert "no config found" in one_line_error(result)


def test_kill_9_during_the_swap_leaves_old_or_new_state_never_a_mix(blog: Config):
    app = blog.apps["blog"]
    assert main(["-c", str(blog.path), "--rewind", "--source", "other.sql", "-q"]) == 0
    target = Path(app.database)
    old = fingerprint(target)
    proc, _ = start_slow_rewind(blog, rows=300_000, phase="swapping")
    proc.kill()
    proc.communicate(timeout=30)
    with sqlite3.connect(target) as db:  # the first open rolls a torn swap back
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    after = fingerprint(target)
    if after != old:
        assert list(after[1]) == ["events"] and len(after[1]["events"]) == 300_000


def test_list_prints_names_with_brackets_literally(write_config, tmp_path):
    (tmp_path / "d.sql").write_text("CREATE TABLE t (x);\n")
    path = write_config('["[/]weird[bold]"]\ndatabase = "w.db"\ndbsource = "d.sql"\n')
    result = run("-c", str(path), "--list")
    assert result.returncode == 0, result.stderr
    assert "[/]weird[bold]" in result.stdout


def test_failed_rewind_reports_on_stderr_too(blog: Config):
    (blog.apps["blog"].sources_dir / "bad.sql").write_text("CREATE TABLE t (x);\nSELEC 1;\n")
    for extra in ([], ["-q"], ["--json"]):
        result = run("-c", str(blog.path), "--rewind", "--source", "bad.sql", *extra)
        assert result.returncode == 1
        assert "bad.sql:2:" in one_line_error(result)


def test_dry_run_json(blog: Config):
    result = run("-c", str(blog.path), "--rewind", "--dry-run", "--json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert data["event"] == "dry-run" and data["ok"] and data["app"] == "blog"
    assert data["would"].startswith("replace blog")


def test_history_shows_this_configs_apps_unless_all(blog: Config, write_config, tmp_path):
    """Configs share the state folder by default: --history lists the jobs of the config's
    apps, as the TUI does, says how many it left out, and --all lists every job."""
    (tmp_path / "notes.sql").write_text("CREATE TABLE note (x);\n")
    other = write_config('[notes]\ndatabase = "notes.db"\ndbsource = "notes.sql"\n',
                         name="other.toml")  # fmt: skip
    assert run("-c", str(blog.path), "--rewind", "-q").returncode == 0
    assert run("-c", str(other), "--rewind", "-q").returncode == 0
    mine = json.loads(run("-c", str(blog.path), "--history", "--json").stdout)
    assert [job["app"] for job in mine["jobs"]] == ["blog"] and mine["other_apps_jobs"] == 1
    every = json.loads(run("-c", str(blog.path), "--history", "--all", "--json").stdout)
    assert [job["app"] for job in every["jobs"]] == ["notes", "blog"]
    table = run("-c", str(other), "--history").stdout
    assert "notes" in table and "1 jobs of apps not in other.toml are not shown" in table


def test_history_of_an_unknown_app_is_refused(blog: Config):
    result = run("-c", str(blog.path), "--history", "nope")
    assert result.returncode == 2 and "'nope'" in one_line_error(result)


def test_settings_errors_stop_every_command(write_config, tmp_path):
    (tmp_path / "d.sql").write_text("CREATE TABLE t (x);\n")
    path = write_config('[reel]\nworkers = "two"\n[app]\ndatabase = "a.db"\ndbsource = "d.sql"\n')
    result = run("-c", str(path), "--rewind")
    assert result.returncode == 2
    assert "[reel]: workers:" in one_line_error(result)
    assert not (tmp_path / "a.db").exists()


def test_the_only_app_is_the_default_even_when_disabled(write_config, tmp_path):
    path = write_config('[app]\ndatabase = "a.db"\ndbsource = "missing.sql"\n')
    result = run("-c", str(path), "--rewind")
    assert result.returncode == 2
    line = one_line_error(result)
    assert "app 'app' is disabled" in line and "dump not found" in line


def test_history_and_log_need_no_config(blog: Config, tmp_path):
    assert run("-c", str(blog.path), "--rewind", "-q").returncode == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "no-config")}
    result = subprocess.run([*REEL, "--log", "1"], capture_output=True, text=True,
                            cwd=elsewhere, env=env, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "done: blog now holds seed.sql" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--log", "abc"], "invalid int value"),
        (["--frobnicate"], "unrecognized arguments"),
        (["--rewind", "--wait", "-1"], "not a number of seconds"),
        (["--list", "blgo"], "did you mean 'blog'"),
        (["--metrics", "nope"], "no jobs of an app named 'nope'"),
    ],
)
def test_usage_mistakes_are_one_line_exit_2(blog: Config, args, message):
    result = run("-c", str(blog.path), *args)
    assert result.returncode == 2
    assert message in one_line_error(result)


def test_list_one_app(write_config, tmp_path):
    (tmp_path / "d.sql").write_text("CREATE TABLE t (x);\n")
    path = write_config(
        '[a]\ndatabase = "a.db"\ndbsource = "d.sql"\n[b]\ndatabase = "b.db"\ndbsource = "d.sql"\n'
    )
    data = json.loads(run("-c", str(path), "--list", "b", "--json").stdout)
    assert [app["name"] for app in data["apps"]] == ["b"]


def test_unusable_state_dir_is_one_line_exit_2(blog: Config, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {**os.environ, "REEL_STATE_DIR": str(blocker / "state")}
    for args in (["--history"], ["--rewind"]):
        result = run("-c", str(blog.path), *args, env=env)
        assert result.returncode == 2
        assert "cannot use as state directory" in one_line_error(result)


@pytest.mark.parametrize(
    ("colour", "styled"),
    [({}, False), ({"FORCE_COLOR": "1"}, True), ({"TTY_COMPATIBLE": "0"}, False)],
)
def test_errors_are_plain_off_a_terminal_and_coloured_when_forced(blog: Config, colour, styled):
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    result = run("-c", str(blog.path), "--rewind", "gh:smile:ost", env={**env, **colour})
    assert result.returncode == 2
    assert ("\x1b[" in result.stderr) is styled
    assert "no app named 'gh:smile:ost'" in result.stderr  # literal: no emoji codes either way
    if not styled:
        assert result.stderr == f"reel-tui: {blog.path}: no app named 'gh:smile:ost'\n"


def run_in_terminal(*args: str) -> tuple[str, set[str]]:
    """Run reel-tui with its stdout on a pseudo-terminal, as a user at a shell would; return
    what it printed there and the top-level packages it imported (``-X importtime``)."""
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100"}
    proc = subprocess.Popen([sys.executable, "-X", "importtime", *REEL[1:], *args],
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE,
                            env=env, text=True)  # fmt: skip
    os.close(slave)
    printed = []
    with contextlib.suppress(OSError):  # EIO once the process has closed the terminal
        while chunk := os.read(master, 65536):
            printed.append(chunk)
    os.close(master)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 0, stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0]
                for line in stderr.splitlines() if line.startswith("import time:")}  # fmt: skip
    return b"".join(printed).decode(), imported


def test_a_terminal_shows_a_progress_bar_for_a_load_and_none_for_a_warm_rewind(blog: Config):
    """The bar is rich's, and importing rich takes longer than a whole warm rewind's job: a
    terminal gets it (and rich) for a load, and plain lines for a rewind that loads nothing."""
    cold, imported = run_in_terminal("-c", str(blog.path), "--rewind")
    assert "━" in cold and "rich" in imported
    assert "loaded" in cold and "succeeded" in cold
    warm, imported = run_in_terminal("-c", str(blog.path), "--rewind")
    assert "cached copy of this dump found" in warm and "succeeded" in warm
    took = re.search(r"succeeded in ([0-9.]+) s", warm)
    assert took is not None, warm
    if float(took.group(1)) < RichReporter.BAR_AFTER - 0.05:  # else a bar is due: see below
        assert "━" not in warm and "rich" not in imported
        assert all(line[:2].isdigit() for line in warm.splitlines())


def test_a_terminal_bar_comes_for_a_job_that_runs_a_while_without_progress(monkeypatch):
    """A lock wait or a clone reports no progress for seconds: the bar (with its phase)
    shows anyway once the job has run RichReporter.BAR_AFTER. Names print literally."""
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich draws its live bar into the StringIO
    out = io.StringIO()
    reporter = RichReporter(out=out)
    job = Job(1, "blog", "gh:smile:.sql", "blog.sqlite3", "blog", 100, phase="waiting",
              state=JobState.RUNNING)  # fmt: skip
    reporter(JobEvent("started", job))
    line = LogLine(time.time(), "waiting for gh:smile:.sql's lock", "warning")
    reporter(JobEvent("log", job, line=line))
    wait_until(lambda: "━" in out.getvalue() and "waiting" in out.getvalue(), "the bar", 5)
    job.state = JobState.SUCCEEDED
    reporter.close()
    assert "gh:smile:.sql's lock" in out.getvalue() and "😄" not in out.getvalue()


APP = 'dbsource = "d.sql"\n'
BAD_CONFIGS = {
    "empty file": (b"", "reel.toml: no apps configured"),
    "only comments": (b"# nothing\n\n", "reel.toml: no apps configured"),
    "binary garbage": (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "reel.toml:1: not a text file"),
    "toml syntax": (b'[a]\ndatabase = "a.db\n', "reel.toml:2: invalid TOML"),
    "duplicate apps": (
        f'[a]\ndatabase = "a.db"\n{APP}[a]\ndatabase = "b.db"\n'.encode(),
        "reel.toml:4: invalid TOML: [a] is declared twice",
    ),
    "database of wrong type": (
        f"[a]\ndatabase = 3\n{APP}".encode(),
        "reel.toml:2: app 'a': database: expected a string",
    ),
    "bool of wrong type": (
        f'[a]\ndatabase = "a.db"\n{APP}protected = "yes"\n'.encode(),
        "reel.toml:4: app 'a': protected: expected true or false",
    ),
    "port of wrong type": (
        f'[a]\ndbdriver = "postgres"\ndatabase = "x"\ndbport = 1.5\n{APP}'.encode(),
        "reel.toml:4: app 'a': dbport: expected a port number",
    ),
    "settings of wrong type": (
        f'[reel]\nworkers = "2"\n[a]\ndatabase = "a.db"\n{APP}'.encode(),
        "reel.toml:2: [reel]: workers: expected a whole number",
    ),
    "reel not a table": (f'reel = 5\n[a]\ndatabase = "a.db"\n{APP}'.encode(), "[reel] must be"),
    "no tables": (b'database = "a.db"\n', "no apps configured: add a table such as [myapp]"),
    "array of tables": (b'[[a]]\ndatabase = "a.db"\n', "top-level 'a' not a table"),
    "missing database": (f"[a]\n{APP}".encode(), "reel.toml:1: app 'a': database: missing"),
    "sub-table only": (b'[a.b]\ndatabase = "x"\n', "reel.toml:1: app 'a': database: missing"),
    "missing dumps": (b'[a]\ndatabase = "a.db"\n', "reel.toml:1: app 'a': dbsource: no dumps"),
    "empty database": (
        f'[a]\ndbdriver = "postgres"\ndatabase = ""\n{APP}'.encode(),
        "reel.toml:3: app 'a': database: must not be empty",
    ),
    "postgres system database": (
        f'[a]\ndbdriver = "postgres"\ndatabase = "template0"\n{APP}'.encode(),
        "reel.toml:3: app 'a': database: 'template0' is a system database",
    ),
    "mysql system database": (
        f'[a]\ndbdriver = "mariadb"\ndatabase = "Performance_Schema"\n{APP}'.encode(),
        "reel.toml:3: app 'a': database: 'Performance_Schema' is a system database",
    ),
}


@pytest.mark.parametrize(("text", "fragment"), BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_bad_configs_are_one_line_exit_2_and_nothing_changed(tmp_path, capsys, text, fragment):
    """Each broken config refuses a rewind with exactly one line naming file and line, on
    stderr; no traceback (in process it would fail the test), no database file created."""
    (tmp_path / "d.sql").write_text("CREATE TABLE t (x);\n")
    path = tmp_path / "reel.toml"
    path.write_bytes(text)
    path.chmod(0o600)
    assert main(["-c", str(path), "--rewind"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("reel-tui: ") and fragment in lines[0]
    assert {p.name for p in tmp_path.iterdir()} - {"state"} == {"d.sql", "reel.toml"}


def test_a_system_database_disables_only_its_app(write_config, tmp_path):
    (tmp_path / "d.sql").write_text("CREATE TABLE t (x);\nINSERT INTO t VALUES (1);\n")
    path = write_config(
        """
        [sys]
        dbdriver = "postgres"
        database = "postgres"
        dbsource = "d.sql"
        [good]
        database = "good.db"
        dbsource = "d.sql"
        """
    )
    bad = run("-c", str(path), "--rewind", "sys")
    assert bad.returncode == 2
    assert "reel.toml:4: app 'sys': database: 'postgres' is a system database" in (
        one_line_error(bad)
    )
    good = run("-c", str(path), "--rewind", "good")
    assert good.returncode == 0, good.stderr
    assert sqlite3.connect(tmp_path / "good.db").execute("SELECT x FROM t").fetchall() == [(1,)]


@pytest.mark.parametrize("driver", ["postgres", "mariadb"])
@pytest.mark.parametrize("protected", [False, True])
def test_server_guards_hold_headless_before_any_connection(write_config, tmp_path, capsys,
                                                           driver, protected):  # fmt: skip
    """A target on another machine needs --allow-remote; a protected one is refused even
    with it. Both before anything connects (the host does not even resolve)."""
    (tmp_path / "d.sql").write_text("CREATE TABLE t (x int);\n")
    path = write_config(
        f"""
        [prod]
        dbdriver = "{driver}"
        dbserver = "db.example.invalid"
        database = "prod"
        dbsource = "d.sql"
        protected = {str(protected).lower()}
        """
    )
    assert main(["-c", str(path), "--rewind", "prod"]) == 2
    line = capsys.readouterr().err.strip()
    if protected:
        assert "reel.toml:2: app 'prod' is protected" in line
        assert main(["-c", str(path), "--rewind", "prod", "--allow-remote"]) == 2
        assert "is protected" in capsys.readouterr().err
    else:
        assert "prod@db.example.invalid" in line and "pass --allow-remote" in line
    assert "\n" not in line
