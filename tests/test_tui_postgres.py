"""The TUI over the real PostgreSQL engine: asking for a password, then a rewind."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from reel_tui.tui.app import ReelApp
from reel_tui.tui.screens import ConfirmRewind, PasswordScreen
from test_tui import finished, settle


def pg_dump_of_orders(pg_server, tmp_path: Path) -> Path:
    """A real pg_dump file of a small "orders" table."""
    source = "src_" + os.urandom(4).hex()
    pg_server.execute(f'CREATE DATABASE "{source}"')
    pg_server.execute(
        "CREATE TABLE orders (id int PRIMARY KEY, note text);"
        "INSERT INTO orders VALUES (1, 'tab\tand\\backslash'), (2, 'two');",
        dbname=source,
    )
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    dump = dumps / "orders.sql"
    subprocess.run(["pg_dump", "--no-owner", "-f", str(dump), source],
                   env=pg_server.env(), check=True)  # fmt: skip
    pg_server.execute(f'DROP DATABASE "{source}"')
    return dump


async def test_password_asked_then_postgres_rewound_from_the_ui(
    pg_server, pg_dbname, tmp_path, monkeypatch
):
    for name in ("PGPASSWORD", "PGPASSFILE", "PGHOST", "PGUSER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.pgpass
    pg_dump_of_orders(pg_server, tmp_path)
    config = tmp_path / "reel.toml"
    config.write_text(
        f'[shop]\ndbdriver = "postgres"\ndbserver = "{pg_server.host}"\n'
        f'dbport = {pg_server.port}\ndatabase = "{pg_dbname}"\ndbuser = "{pg_server.user}"\n'
        'dbsources = "dumps"\n'
    )
    pg_server.execute(f'CREATE DATABASE "{pg_dbname}"')
    app = ReelApp(config, poll_history=False)
    screens: list[str] = []  # what a screenshot would show at each step
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        assert isinstance(app.screen, PasswordScreen), "no password known: the TUI asks"
        await pilot.press(*pg_server.password)
        screens.append(app.export_screenshot())  # typed, not yet submitted
        await pilot.press("enter")
        await settle(app, pilot)
        while app.connections["shop"][0] is None:
            await pilot.pause(0.05)
        assert app.connections["shop"][0] is True, app.connections["shop"]
        await pilot.press("enter", "enter")  # to the sources, rewind orders.sql
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmRewind)
        screens.append(app.export_screenshot())
        await pilot.press("enter")
        job = await finished(app, pilot)
        assert job.state.value == "succeeded", job.error
        # the background work keeps the cached copy and records it; the Sources pane
        # then marks the dump as cached, without another keypress
        for _ in range(600):
            if "orders.sql" in app.cached.get("shop", ()):
                break
            await pilot.pause(0.05)
        assert "orders.sql" in app.cached.get("shop", ()), [line.message for line in job.log]
        screens.append(app.export_screenshot())
        await pilot.press("l")  # the job's full log
        await settle(app, pilot)
        screens.append(app.export_screenshot())
        history = await asyncio.to_thread(app.history.read_log, job.id)
    assert len(screens) == 4 and all("<svg" in screen for screen in screens)
    for screen in screens:
        assert pg_server.password not in screen
    assert "•" * len(pg_server.password) in screens[0].replace("&#160;", "")
    rows = pg_server.execute("SELECT id, note FROM orders ORDER BY id", dbname=pg_dbname)
    assert rows == [(1, "tab\tand\\backslash"), (2, "two")]
    assert pg_server.password not in history
    assert pg_server.password not in config.read_text()
