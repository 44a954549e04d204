"""The TUI serving the HTTP API: requests over real HTTP on loopback, the jobs they start
shown in the TUI's Jobs table and Log as they run, cancelled from either side; the
refusals of ``reel-tui --listen`` through the real command, before the TUI draws."""

from __future__ import annotations

import asyncio
import os
import pty
import select
import socket
import subprocess
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path

import pytest
from pg_server import PASSWORD_ENV, PgServer
from pg_tools import fingerprint as pg_fingerprint
from test_api_load import leftovers, pg_dump_text
from textual.pilot import Pilot

from api_tools import V1, call
from conftest import REEL, fingerprint
from reel_tui.api.serve import ApiSocket, bind_listen
from reel_tui.config import load_config
from reel_tui.jobs import JobState
from reel_tui.tui.app import ReelApp
from reel_tui.tui.screens import ConfirmRewind
from reel_tui.tui.widgets import AppList, JobLog, JobTable
from test_sqlite_engine import reference
from test_tui import choose_source, log_text, settle
from tui_demo import build_demo

TOKEN_ENV = "REEL_TEST_API_TOKEN"
TOKEN = "tok-3f9c1e-never-shown"
ALT_SCREEN = "\x1b[?1049h"
"""What a terminal app sends to take the screen: a refusal must come before it."""


def serving_app(config: Path, listen: str = "127.0.0.1:0") -> ReelApp:
    """The TUI as ``reel-tui --listen`` starts it: the port bound before the app runs."""
    return ReelApp(config, poll_history=False,
                   api=ApiSocket(listen, bind_listen(load_config(config), listen)))  # fmt: skip


async def served(app: ReelApp, pilot: Pilot) -> str:
    """Wait until the app serves the API; its URL."""
    deadline = time.monotonic() + 60  # polled: a loaded machine starts it late
    while app.api is None:
        assert time.monotonic() < deadline, f"the API never started: {app.api_problem}"
        await pilot.pause(0.02)
    return app.api.url


async def http(url: str, method: str, path: str, token: str | None = TOKEN) -> tuple[int, dict]:
    """One request from a thread (the TUI's loop must go on serving meanwhile)."""
    reply = await asyncio.to_thread(call, url, method, path, token=token)
    return reply.status, reply.json


async def until(
    pilot: Pilot,
    condition: Callable[[], bool],
    timeout: float = 60,
    state: Callable[[], object] = lambda: None,
) -> None:
    """Poll ``condition``; on a timeout, fail showing ``state()`` (what was there instead)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out: {state()}"
        await pilot.pause(0.02)


def summary(app: ReelApp) -> str:
    return str(app.query_one("#summary").render())


def job_row(app: ReelApp, job_id: int) -> dict[str, str]:
    table = app.query_one(JobTable)
    return {column: str(table.get_cell(str(job_id), column)) for column in table.COLUMNS}


async def test_an_api_rewind_shows_in_the_tui_and_the_api_closes_on_quit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    config = build_demo(tmp_path / "demo")
    config.write_text(
        config.read_text().replace("[reel]\n", f'[reel]\ntoken_env = "{TOKEN_ENV}"\n')
    )
    dump = config.parent / "dumps" / "blog" / "demo" / "prospect-acme.sql"
    target = config.parent / "data" / "blog.sqlite3"
    app = serving_app(config)
    async with app.run_test(size=(120, 36)) as pilot:
        url = await served(app, pilot)
        await settle(app, pilot)
        assert f"API {url} · token" in summary(app)
        assert (await http(url, "POST", f"{V1}/rewind/blog", token=None))[0] == 401

        status, body = await http(url, "POST", f"{V1}/rewind/blog/demo/prospect-acme.sql")
        assert status == 202, body
        job_id = body["id"]
        await until(pilot, lambda: str(job_id) in app.query_one(JobTable)._keys)
        assert job_row(app, job_id)["job"] == f"#{job_id} api"
        job = app.queue.get(job_id)
        assert job is not None and job.origin == "api 127.0.0.1"
        assert await asyncio.to_thread(app.queue.wait, job, 60)
        await settle(app, pilot)

        assert job.state is JobState.SUCCEEDED, job.error
        assert "succeeded" in job_row(app, job_id)["state"]
        shown = log_text(app)
        assert "asked by the HTTP API (client 127.0.0.1)" in shown
        assert "blog now holds demo/prospect-acme.sql" in shown
        assert "from api 127.0.0.1" in app.query_one(JobLog).border_title
        screen = app.export_screenshot()
        history = await asyncio.to_thread(app.history.read_log, job_id)
        records = await asyncio.to_thread(app.history.records)
        await pilot.press("q")  # no job running: quits at once
        await until(pilot, lambda: not app.is_running)
    assert fingerprint(target) == fingerprint(reference(dump, tmp_path))
    for text in (screen, shown, history, repr(records)):
        assert TOKEN not in text
    with pytest.raises(urllib.error.URLError) as refused:
        call(url, "GET", "/healthz", timeout=5)
    assert isinstance(refused.value.reason, ConnectionRefusedError)


async def test_cancel_in_the_tui_or_through_the_api_stops_a_postgres_rewind(
    pg_server: PgServer, pg_dbname: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(PASSWORD_ENV, pg_server.password)
    dumps = tmp_path / "shop"
    dumps.mkdir()
    (dumps / "seed.sql").write_text(pg_dump_text("shop/seed", 100))
    (dumps / "big.sql").write_text(pg_dump_text("shop/big", 400_000))
    config = tmp_path / "reel.toml"
    config.write_text(f'[shop]\ndbdriver = "postgres"\ndbserver = "{pg_server.host}"\n'
                      f'dbport = {pg_server.port}\ndatabase = "{pg_dbname}"\n'
                      f'dbuser = "{pg_server.user}"\ndbpassword_env = "{PASSWORD_ENV}"\n'
                      'dbsources = "shop"\ndbsource = "shop/seed.sql"\n')  # fmt: skip
    app = serving_app(config)
    async with app.run_test(size=(120, 36)) as pilot:
        url = await served(app, pilot)
        await settle(app, pilot)
        assert f"API {url} · no token" in summary(app)
        status, body = await http(url, "POST", f"{V1}/rewind/shop")  # the default: seed.sql
        assert status == 202, body
        seeded = app.queue.get(body["id"])
        assert await asyncio.to_thread(app.queue.wait, seeded, 60)
        assert seeded.state is JobState.SUCCEEDED, seeded.error
        before = await asyncio.to_thread(pg_fingerprint, pg_server, pg_dbname)

        for cancel_from in ("tui", "api"):
            status, body = await http(url, "POST", f"{V1}/rewind/shop/big.sql")
            assert status == 202, body
            job = app.queue.get(body["id"])
            await until(pilot, lambda job=job: job.phase == "loading" and job.bytes_read > 500_000)
            # shown while it runs, marked, with its progress (redrawn on the next tick)
            await until(pilot, lambda job=job: "%" in job_row(app, job.id)["progress"])
            row = job_row(app, job.id)
            assert row["job"] == f"#{job.id} api" and "running" in row["state"], row
            if cancel_from == "tui":
                table = app.query_one(JobTable)
                table.focus()
                table.move_cursor(row=table._keys.index(str(job.id)), animate=False)
                await pilot.press("c")
            else:
                assert (await http(url, "POST", f"{V1}/jobs/{job.id}/cancel"))[0] == 202
            assert await asyncio.to_thread(app.queue.wait, job, 60)
            await settle(app, pilot)
            assert job.state is JobState.CANCELLED, (cancel_from, job.state, job.error)
            assert "cancelled" in job_row(app, job.id)["state"]
            assert "cancel requested" in log_text(app)
            view = (await http(url, "GET", f"{V1}/jobs/{job.id}"))[1]
            assert view["state"] == "cancelled"
            after = await asyncio.to_thread(pg_fingerprint, pg_server, pg_dbname)
            assert after == before, cancel_from

        # one queue: keyboard and API rewinds of the database wait for each other, in order
        app.query_one(AppList).focus()
        await choose_source(pilot, app, "shop", "big.sql")
        assert isinstance(app.screen, ConfirmRewind)
        await pilot.press("enter")
        await until(pilot, lambda: len(app.queue.jobs()) == 4)
        keyboard = app.queue.jobs()[-1]
        # running and reading its dump (a loaded CI-like run once timed out on the phase
        # alone: the job's state and last lines say where it was, should it happen again)
        await until(pilot, lambda: keyboard.bytes_read > 0 or keyboard.state.is_final, 120,
                    lambda: (keyboard.state, keyboard.phase, [str(line.message)
                             for line in list(keyboard.log)[-5:]]))  # fmt: skip
        assert keyboard.state is JobState.RUNNING, (keyboard.state, keyboard.error)
        status, body = await http(url, "POST", f"{V1}/rewind/shop/seed.sql")
        assert status == 202 and body["job"]["state"] == "queued", body
        seed = app.queue.get(body["id"])
        await settle(app, pilot)
        assert app.selected_job == keyboard.id, "a job from the API took the Log from a running one"
        assert job_row(app, keyboard.id)["job"] == f"#{keyboard.id}"
        assert job_row(app, seed.id)["job"] == f"#{seed.id} api"
        for job in (keyboard, seed):
            assert await asyncio.to_thread(app.queue.wait, job, 60)
            assert job.state is JobState.SUCCEEDED, job.error
        assert keyboard.finished <= seed.started, "two rewinds of one database at once"
        assert await asyncio.to_thread(pg_fingerprint, pg_server, pg_dbname) == before
        await pilot.press("q")  # waits for the background ANALYZE, lets the port go
        await until(pilot, lambda: not app.is_running)
    assert not leftovers(pg_server, pg_dbname, wait=20)


# --- starting: the real command, in a pseudo-terminal -----------------------------


def run_in_terminal(*args: str, timeout: float = 30) -> tuple[int, str]:
    """``reel-tui ARGS`` with a pseudo-terminal as stdin/stdout/stderr (the TUI would open):
    its exit code and everything it wrote."""
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"}
    proc = subprocess.Popen([*REEL, *args], stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    output = read_until(master, proc, timeout)
    os.close(master)
    return proc.wait(5), output


def read_until(master: int, proc: subprocess.Popen, timeout: float, stop: str = "") -> str:
    """What the terminal got until the process ends (or ``stop`` shows up)."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not data:
                break
            chunks.append(data)
            if stop and stop in b"".join(chunks).decode(errors="replace"):
                break
        elif proc.poll() is not None and not ready:
            break
    else:
        proc.kill()
        raise AssertionError(f"still running after {timeout} s: {b''.join(chunks)!r}")
    return b"".join(chunks).decode(errors="replace")


def refused_before_drawing(code: int, output: str) -> str:
    """The one line of a refusal, after checking it came before the TUI took the screen."""
    assert code == 2, (code, output)
    assert ALT_SCREEN not in output and "Traceback" not in output, output
    lines = [line for line in output.replace("\r", "").split("\n") if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def demo_config(tmp_path: Path) -> Path:
    return build_demo(tmp_path / "demo")


def test_listen_off_loopback_without_a_token_is_refused_before_the_tui(demo_config: Path):
    line = refused_before_drawing(*run_in_terminal("-c", str(demo_config), "--listen", "0.0.0.0:0"))
    assert "not a loopback address, and no API token is configured" in line


def test_a_port_in_use_is_refused_before_the_tui(demo_config: Path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code, output = run_in_terminal("-c", str(demo_config), "--listen", f"127.0.0.1:{port}")
    line = refused_before_drawing(code, output)
    assert f"cannot listen on 127.0.0.1:{port}" in line and "in use" in line


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ('"7999"', "reel.toml:2: [reel]: api_listen: expected HOST:PORT"),
        ("7999", 'reel.toml:2: [reel]: api_listen: expected "HOST:PORT"'),
        ('"0.0.0.0:0"', "reel.toml:2: [reel] api_listen 0.0.0.0:0: not a loopback address"),
    ],
)
def test_a_bad_api_listen_is_refused_with_its_file_and_line(
    demo_config: Path, value: str, says: str
):
    demo_config.write_text(
        demo_config.read_text().replace("[reel]\n", f"[reel]\napi_listen = {value}\n")
    )
    line = refused_before_drawing(*run_in_terminal("-c", str(demo_config)))
    assert says in line, line


def test_the_real_command_serves_beside_the_tui_until_quit(demo_config: Path):
    """``api_listen`` in the config: the TUI opens, serves, and lets the port go on ctrl+q."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # free a moment ago; the command binds it below
    demo_config.write_text(demo_config.read_text().replace(
        "[reel]\n", f'[reel]\napi_listen = "127.0.0.1:{port}"\n'))  # fmt: skip
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color"}
    proc = subprocess.Popen([*REEL, "-c", str(demo_config)], stdin=slave, stdout=slave,
                            stderr=slave, env=env)  # fmt: skip
    os.close(slave)
    try:
        drawn = read_until(master, proc, 30, stop=f"127.0.0.1:{port}")
        assert ALT_SCREEN in drawn
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while (health := call(url, "GET", "/healthz")).status != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert health.json["status"] == "ok"
        assert call(url, "GET", f"{V1}/sources/blog").json["Sources"]
        os.write(master, b"\x11")  # ctrl+q
        rest = read_until(master, proc, 30)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert "Traceback" not in drawn + rest
    with pytest.raises(urllib.error.URLError):
        call(url, "GET", "/healthz", timeout=5)


def test_serve_listens_on_api_listen_when_no_listen_is_given(demo_config: Path):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    demo_config.write_text(demo_config.read_text().replace(
        "[reel]\n", f'[reel]\napi_listen = "127.0.0.1:{port}"\n'))  # fmt: skip
    proc = subprocess.Popen([*REEL, "--serve", "-q", "-c", str(demo_config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        banner = proc.stdout.readline()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert f"at http://127.0.0.1:{port}/reel/api/v1/" in banner, banner


def test_listen_off_a_terminal_points_to_serve(demo_config: Path):
    done = subprocess.run([*REEL, "-c", str(demo_config), "--listen", "127.0.0.1:0"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == "reel-tui: the TUI needs a terminal: --serve serves the API without it\n"


def test_listen_with_another_action_is_refused(demo_config: Path):
    done = subprocess.run([*REEL, "--history", "-c", str(demo_config), "--listen", "127.0.0.1:0"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2
    assert "--listen goes with --serve, or alone" in done.stderr
