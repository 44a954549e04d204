"""Hooks: per-app commands before and after a rewind, as real processes in real jobs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import BLOG_SCRIPT, REEL, file_hash, fingerprint, make_dump
from reel_tui import hooks
from reel_tui.config import load_config
from reel_tui.history import HistoryStore
from reel_tui.hooks import group_alive
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import Job, JobEvent, JobState
from reel_tui.plan import plan_rewind

OTHER_SCRIPT = "CREATE TABLE other (x INTEGER); INSERT INTO other VALUES (42);"


@pytest.fixture
def hooked(tmp_path: Path, write_config: Callable[[str], Path]) -> Callable[[str], Path]:
    """Write a config with one SQLite app "blog" and these extra lines (its hooks)."""
    make_dump(tmp_path / "dumps", "seed.sql", BLOG_SCRIPT)
    make_dump(tmp_path / "dumps", "other.sql", OTHER_SCRIPT)

    def write(extra: str) -> Path:
        return write_config(
            '[blog]\ndbdriver = "sqlite"\ndatabase = "blog.sqlite3"\ndbsource = "dumps/seed.sql"\n'
            f'dbsources = "dumps"\n{extra}\n'
        )

    return write


def rewind(config: Path, history: HistoryStore, source: str | None = None,
           app: str = "blog", on_event: Callable[[JobEvent], None] | None = None,
           cancel_when: Callable[[JobEvent], bool] | None = None) -> Job:  # fmt: skip
    """One rewind through the real queue; ``cancel_when`` an event matches, cancel it."""
    queue = JobQueue(history, workers=1)
    cancelled = threading.Event()

    def watch(event: JobEvent) -> None:
        if cancel_when is not None and not cancelled.is_set() and cancel_when(event):
            cancelled.set()
            threading.Thread(target=queue.cancel, args=(event.job.id,)).start()

    queue.subscribe(watch)
    try:
        job = queue.submit(plan_rewind(load_config(config), app, source))
        assert queue.wait(job, timeout=60)
        return job
    finally:
        queue.shutdown()


def messages(job: Job) -> list[str]:
    return [line.message for line in job.log]


def position(lines: list[str], text: str) -> int:
    """Index of the first line containing ``text``; fails the test when there is none."""
    for index, line in enumerate(lines):
        if text in line:
            return index
    raise AssertionError(f"{text!r} not in the log:\n" + "\n".join(lines))


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REEL, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def pgid_from(path: Path, timeout: float = 60) -> int:
    """The process group a hook wrote into ``path`` (``echo $$``), once it is there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if text.endswith("\n"):
            return int(text)
        time.sleep(0.02)
    raise AssertionError(f"the hook never wrote {path}")


# --- headless: order, output in the log, --log and --json ---------------------------


def test_hooks_run_in_order_with_their_output_in_json_events_and_the_log(hooked, tmp_path):
    config = hooked(
        'before_rewind = ["echo one", "echo two >&2; pwd"]\n'
        "after_rewind = \"printf 'three\\\\033[31m red\\\\033[0m'\""
    )
    result = run("-c", str(config), "--rewind", "--json", cwd=Path("/"))
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    lines = [e["message"] for e in events if e["event"] == "log"]
    order = [position(lines, text) for text in (
        "before-rewind hook 1/2: echo one", "before 1 | one", "before-rewind hook 1/2 done in",
        "before 2 | two", f"before 2 | {tmp_path}", "checked target", "done: blog now holds",
        "after-rewind hook: printf", "after | three red", "after-rewind hook done in",
        "succeeded in")]  # fmt: skip
    assert order == sorted(order)
    assert fingerprint(tmp_path / "blog.sqlite3")[1]["authors"][0] == (1, "Ada")
    full_log = run("--log", str(events[0]["job"])).stdout
    assert full_log.index("before 1 | one") < full_log.index("after | three red")
    assert "\x1b" not in full_log  # colour codes are not kept


def test_a_failing_before_hook_stops_the_rewind_and_leaves_the_database(hooked, tmp_path):
    assert run("-c", str(hooked("")), "--rewind", "--source", "other.sql").returncode == 0
    target = tmp_path / "blog.sqlite3"
    before = file_hash(target)
    config = hooked(
        'before_rewind = ["echo first", "echo about to fail; exit 3", "touch never-ran"]\n'
        'after_rewind = "touch after-ran"\n'
        'after_failed_rewind = "echo $REEL_PHASE: $REEL_ERROR > restarted"'
    )
    result = run("-c", str(config), "--rewind", "-q")
    assert result.returncode == 1
    error = result.stderr.strip()
    assert "before-rewind hook 2/3 exited with status 3 after" in error, error
    assert "echo about to fail; exit 3; the rewind did not start" in error
    assert len(error.splitlines()) == 1
    assert file_hash(target) == before
    assert not (tmp_path / "never-ran").exists() and not (tmp_path / "after-ran").exists()
    restarted = (tmp_path / "restarted").read_text()
    assert restarted.startswith("failed: before-rewind hook 2/3 exited with status 3")


def test_a_failed_load_runs_no_after_hook(hooked, tmp_path):
    (tmp_path / "dumps" / "bad.sql").write_text(
        "CREATE TABLE t (x);\nINSERT INTO nope VALUES (1);\n"
    )
    config = hooked(
        'before_rewind = "touch before-ran"\nafter_rewind = "touch after-ran"\n'
        'after_failed_rewind = "echo $REEL_ERROR > restarted"'
    )
    result = run("-c", str(config), "--rewind", "--source", "bad.sql")
    assert result.returncode == 1
    assert (tmp_path / "before-ran").exists() and not (tmp_path / "after-ran").exists()
    assert "no such table: nope" in (tmp_path / "restarted").read_text()
    assert not (tmp_path / "blog.sqlite3").exists()


@pytest.mark.parametrize("policy", ["fail", "warn"])
def test_a_failing_after_hook_follows_on_hook_failure(hooked, tmp_path, policy):
    config = hooked(
        f'before_rewind = "true"\nafter_rewind = ["exit 4", "touch second"]\n'
        f'on_hook_failure = "{policy}"\nafter_failed_rewind = "touch restarted"'
    )
    result = run("-c", str(config), "--rewind", "--json")
    finished = json.loads(result.stdout.splitlines()[-1])
    assert fingerprint(tmp_path / "blog.sqlite3")[1]["authors"][0] == (1, "Ada")  # rewound
    assert not (tmp_path / "second").exists() and not (tmp_path / "restarted").exists()
    what = "after-rewind hook 1/2 exited with status 4"
    if policy == "fail":
        assert result.returncode == 1
        assert finished["state"] == "failed" and finished["error_code"] == "after-hook"
        assert finished["error"].startswith(f"database rewound, after-hook failed: {what}")
        assert "(1 later hook not run)" in finished["error"]
        assert "database rewound, after-hook failed" in result.stderr
    else:
        assert result.returncode == 0 and finished["state"] == "succeeded"
        assert f"{what}" in result.stdout and 'on_hook_failure = \\"warn\\"' in result.stdout


def test_dry_run_lists_the_hooks_without_running_them(hooked, tmp_path):
    config = hooked('before_rewind = ["touch ran-1", "touch ran-2"]\nafter_rewind = "touch ran-3"')
    result = run("-c", str(config), "--rewind", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "would run before-rewind hook 1/2: touch ran-1" in result.stdout
    assert "would run after-rewind hook: touch ran-3" in result.stdout
    as_json = json.loads(run("-c", str(config), "--rewind", "--dry-run", "--json").stdout)
    assert as_json["hooks"] == {
        "before": ["touch ran-1", "touch ran-2"],
        "after": ["touch ran-3"],
        "failed": [],
    }
    assert not list(tmp_path.glob("ran-*"))


# --- environment, output bounds, password ----------------------------------------------


def test_hook_environment_has_the_rewind_and_no_password(hooked, tmp_path, history):
    password = "hunter2-" + os.urandom(6).hex()
    config = hooked(
        f'dbpassword = "{password}"\n'
        'before_rewind = "env > before.env; readlink /proc/self/fd/0 > stdin.txt"\n'
        'after_rewind = "env > after.env; echo the password is ' + password + '"'
    )
    job = rewind(config, history)
    assert job.state is JobState.SUCCEEDED, job.error
    for phase in ("before", "after"):
        text = (tmp_path / f"{phase}.env").read_text()
        env = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        assert env["REEL_PHASE"] == phase and env["REEL_APP"] == "blog"
        assert env["REEL_DRIVER"] == "sqlite"
        assert env["REEL_DATABASE"] == str(tmp_path / "blog.sqlite3")
        assert env["REEL_SOURCE"] == str(tmp_path / "dumps" / "seed.sql")
        assert env["REEL_SOURCE_NAME"] == "seed.sql" and env["REEL_JOB_ID"] == str(job.id)
        assert env["REEL_JOB_KIND"] == "rewind"
        assert password not in text
    assert (tmp_path / "stdin.txt").read_text().strip() == "/dev/null"
    assert "after | the password is ***" in messages(job)
    assert password not in history.read_log(job.id) and password not in "".join(messages(job))


def test_output_is_bounded_per_line_and_per_hook(hooked, history, tmp_path):
    config = hooked(
        "before_rewind = \"head -c 20000 /dev/zero | tr '\\\\0' x; echo; echo short; seq 1 5000\""
    )
    job = rewind(config, history)
    assert job.state is JobState.SUCCEEDED, job.error
    lines = [m for m in messages(job) if m.startswith("before | ")]
    assert lines[0] == f"before | {'x' * hooks.MAX_LINE_CHARS}… (line cut at 1000 characters)"
    assert lines[1] == "before | short"
    assert len(lines) == hooks.MAX_LINES + 1  # and the note saying what was left out
    assert lines[-1] == "before | … 3,002 more lines (12,008 bytes) of output not logged"


# --- timeout and cancel ---------------------------------------------------------------


def test_a_hanging_hook_is_stopped_by_its_timeout_with_its_children(hooked, history, tmp_path):
    config = hooked('hook_timeout = 0.5\nbefore_rewind = "echo $$ > pgid; sleep 60 & sleep 60"')
    started = time.monotonic()
    job = rewind(config, history)
    # about a second when idle; room for a loaded machine, and still far from the 60 s
    assert time.monotonic() - started < 20
    assert job.state is JobState.FAILED and job.error_code == "hook"
    assert "before-rewind hook timed out after 0.5" in job.error
    assert "(stopped with SIGTERM): echo $$ > pgid; sleep 60 & sleep 60" in job.error
    assert not group_alive(pgid_from(tmp_path / "pgid"))
    assert not (tmp_path / "blog.sqlite3").exists()


def test_a_hook_ignoring_sigterm_gets_sigkill(hooked, history, tmp_path, monkeypatch):
    monkeypatch.setattr(hooks, "KILL_GRACE", 0.3)
    config = hooked(
        "hook_timeout = 0.3\nbefore_rewind = \"trap '' TERM; echo $$ > pgid; sleep 60\""
    )
    job = rewind(config, history)
    assert job.state is JobState.FAILED
    assert "timed out after 0.3" in job.error and "(stopped with SIGKILL)" in job.error
    assert not group_alive(pgid_from(tmp_path / "pgid"))


def test_cancel_during_a_hook_stops_it_and_leaves_the_database(hooked, history, tmp_path):
    assert rewind(hooked(""), history, "other.sql").state is JobState.SUCCEEDED
    before = file_hash(tmp_path / "blog.sqlite3")
    config = hooked(
        'before_rewind = "echo $$ > pgid; echo waiting; sleep 60"\n'
        'after_failed_rewind = "echo $REEL_ERROR > restarted"'
    )

    def hook_waits(event: JobEvent) -> bool:
        return event.line is not None and event.line.message == "before | waiting"

    started = time.monotonic()
    job = rewind(config, history, cancel_when=hook_waits)
    assert time.monotonic() - started < 20  # as above: far from the hook's 60 s
    assert job.state is JobState.CANCELLED, job.error
    assert not group_alive(pgid_from(tmp_path / "pgid"))
    assert file_hash(tmp_path / "blog.sqlite3") == before
    assert any("cancelled after" in m and "SIGTERM" in m for m in messages(job))
    assert (tmp_path / "restarted").read_text().startswith("cancelled;")


def test_a_process_a_hook_leaves_running_keeps_running_and_does_not_hold_the_job(
    hooked, history, tmp_path
):
    config = hooked('after_rewind = """echo starting\nsleep 30 &\necho $! > app.pid"""')
    started = time.monotonic()
    job = rewind(config, history)
    assert time.monotonic() - started < 15  # room for a loaded machine; far from its 30 s
    assert job.state is JobState.SUCCEEDED, job.error
    assert "after-rewind hook: echo starting ↵ sleep 30 & ↵ echo $! > app.pid" in messages(job)
    app_pid = pgid_from(tmp_path / "app.pid")
    try:  # the "app" the hook started still runs (a zombie would say it was killed)
        stat = Path(f"/proc/{app_pid}/stat").read_text()
        assert stat[stat.rfind(")") + 2] not in "ZX"
    finally:
        os.kill(app_pid, signal.SIGKILL)


def test_ctrl_c_on_a_headless_run_stops_its_running_hook(hooked, tmp_path):
    config = hooked('before_rewind = "echo $$ > pgid; sleep 60"\nafter_rewind = "touch after"')
    process = subprocess.Popen([*REEL, "-c", str(config), "--rewind"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        group = pgid_from(tmp_path / "pgid")
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 130
    assert "before-rewind hook cancelled after" in out
    assert not group_alive(group)
    assert not (tmp_path / "blog.sqlite3").exists() and not (tmp_path / "after").exists()


# --- config ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("before_rewind = 42", "before_rewind: expected a command string or a list of them, "
                               "got int 42"),
        ('after_rewind = ["echo ok", 3]', "after_rewind: expected a command string or a list"),
        ('before_rewind = ""', "before_rewind: empty command (leave the key out instead)"),
        ('after_rewind = ["echo ok", "  "]', "after_rewind: command 2: empty command"),
        ("hook_timeout = 0", "hook_timeout: expected seconds, more than 0 and at most 86400"),
        ('hook_timeout = "5"', "hook_timeout: expected seconds"),
        ('on_hook_failure = "ignore"', "on_hook_failure: expected one of fail, warn"),
    ],
)  # fmt: skip
def test_bad_hook_keys_disable_the_app_with_one_line(hooked, line, message):
    path = hooked(f'after_rewind = "true"\n{line}' if "hook_timeout" in line else line)
    config = load_config(path)
    assert "blog" in config.disabled
    problem = str(config.disabled["blog"][0])
    number = path.read_text().splitlines().index(line) + 1
    assert problem.startswith(f"{path}:{number}: app 'blog': ")
    assert message in problem


def test_hook_settings_without_hooks_are_warned_about(hooked):
    config = load_config(
        hooked('on_hook_failure = "warn"\nhook_timeout = 5\nafter_failed_rewind = "x"')
    )
    assert "blog" in config.apps
    warnings = [str(p) for p in config.warnings]
    assert any("on_hook_failure: ignored: it applies to after_rewind hooks" in w for w in warnings)
    assert any("after_failed_rewind: never runs: it follows before_rewind" in w for w in warnings)
    alone = [str(p) for p in load_config(hooked("hook_timeout = 5")).warnings]
    assert any("hook_timeout: ignored: no before_rewind or after_rewind" in w for w in alone)
    app = load_config(hooked('before_rewind = "a"\nafter_rewind = ["b", "c"]')).apps["blog"]
    assert app.before_rewind == ("a",) and app.after_rewind == ("b", "c")
    assert app.hook_timeout == 60.0 and app.on_hook_failure == "fail"


# --- the server engines: one rewind each ---------------------------------------------------

SERVER_CONFIG = """[app]
dbdriver = "{driver}"
dbserver = "{host}"
dbport = {port}
database = "{database}"
dbuser = "{user}"
dbpassword = "{password}"
dbsources = "dumps"
before_rewind = ["env > before.env; echo stopping the app", "echo clearing its cache"]
after_rewind = "env > after.env; echo migrating on top of $REEL_SOURCE_NAME"
"""


def server_rewind(tmp_path: Path, history: HistoryStore, driver: str, server: object,
                  database: str) -> Job:  # fmt: skip
    """Rewind a server app from a small plain dump with hooks; the password in the file."""
    dumps = tmp_path / "dumps"
    dumps.mkdir(exist_ok=True)
    (dumps / "seed.sql").write_text("CREATE TABLE t (x integer);\nINSERT INTO t VALUES (7);\n")
    config = tmp_path / "reel.toml"
    config.write_text(SERVER_CONFIG.format(driver=driver, database=database, **vars(server)))
    os.chmod(config, 0o600)
    return rewind(config, history, "seed.sql", app="app")


def assert_server_hooks(job: Job, tmp_path: Path, password: str, driver: str) -> None:
    assert job.state is JobState.SUCCEEDED, job.error
    lines = messages(job)
    order = [position(lines, text) for text in (
        "before 1 | stopping the app", "before 2 | clearing its cache", "done: app now holds",
        "after | migrating on top of seed.sql")]  # fmt: skip
    assert order == sorted(order)
    for phase in ("before", "after"):
        text = (tmp_path / f"{phase}.env").read_text()
        env = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        assert env["REEL_DRIVER"] == driver and env["REEL_PHASE"] == phase
        assert env["REEL_SERVER"] and env["REEL_PORT"].isdigit() and env["REEL_USER"]
        assert password not in text


def test_postgres_rewind_runs_its_hooks(pg_server, pg_dbname, tmp_path, history, monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    job = server_rewind(tmp_path, history, "postgres", pg_server, pg_dbname)
    assert_server_hooks(job, tmp_path, pg_server.password, "postgres")
    assert pg_server.execute("SELECT x FROM t", pg_dbname) == [(7,)]


def test_mariadb_rewind_runs_its_hooks(mysql_server, my_dbname, tmp_path, history, monkeypatch):
    monkeypatch.delenv("MYSQL_PWD", raising=False)
    job = server_rewind(tmp_path, history, "mariadb", mysql_server, my_dbname)
    assert_server_hooks(job, tmp_path, mysql_server.password, "mysql")
    assert mysql_server.execute("SELECT x FROM t", my_dbname) == [(7,)]


# --- the TUI ---------------------------------------------------------------------------------


async def test_the_tui_log_panel_shows_a_hooks_output(tmp_path):
    from reel_tui.tui.app import ReelApp
    from test_tui import choose_source, finished, log_text, settle
    from tui_demo import build_demo

    config = build_demo(tmp_path / "demo")
    config.write_text(config.read_text().replace(
        "[blog]\n", '[blog]\nbefore_rewind = "echo stopping $REEL_APP"\n'
        'after_rewind = ["echo migrated", "exit 5"]\non_hook_failure = "warn"\n', 1))  # fmt: skip
    app = ReelApp(config, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await choose_source(pilot, app, "blog", "seed.sql")
        body = str(app.screen.query_one("#dialog-body").render())
        assert "Hooks run too: 1 before, 2 after (see the log)." in body
        await pilot.press("enter")
        job = await finished(app, pilot)
        assert job.state is JobState.SUCCEEDED, job.error
        shown = log_text(app)
        assert "before | stopping blog" in shown and "after 1 | migrated" in shown
        assert "after-rewind hook 2/2 exited with status 5" in shown
        assert shown.index("stopping blog") < shown.index("done: blog") < shown.index("migrated")


def test_an_undo_runs_the_hooks_and_tells_them_it_is_one(hooked, tmp_path, history):
    config = hooked('after_rewind = "echo $REEL_JOB_KIND $REEL_SOURCE_NAME >> kinds.txt"')
    make_dump(tmp_path / "dumps", "other.sql", BLOG_SCRIPT + "DELETE FROM posts;")
    for source in ("seed.sql", "other.sql", "@undo"):
        job = rewind(config, history, source)
        assert job.state is JobState.SUCCEEDED, job.error
    kinds = (tmp_path / "kinds.txt").read_text().splitlines()
    assert kinds == ["rewind seed.sql", "rewind other.sql", "undo @undo"]
