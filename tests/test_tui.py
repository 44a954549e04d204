"""The TUI, driven by its real keys with Textual's Pilot, over real SQLite rewinds."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from rich.cells import cell_len
from textual.pilot import Pilot
from textual.widgets import TextArea

from conftest import REEL, fingerprint
from reel_tui.jobs import Job, JobState
from reel_tui.tui.app import ReelApp
from reel_tui.tui.screens import ConfirmQuit, ConfirmRewind, FullLogScreen, HelpScreen
from reel_tui.tui.widgets import AppList, JobLog, JobTable, SourceTable
from tui_demo import build_demo, workers_done


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return build_demo(tmp_path / "demo")


@pytest.fixture
def demo_big(tmp_path: Path) -> Path:
    """With shop/big.sql: about 10 s to load, time enough to press keys during the load
    (Pilot waits for the process to go idle after each key, up to 2 s while it loads)."""
    return build_demo(tmp_path / "demo", big_rows=1_000_000)


async def settle(app: ReelApp, pilot: Pilot) -> None:
    """Wait for the app's thread workers and the messages they posted."""
    for _ in range(3):
        await workers_done(app)
        await pilot.pause()


async def finished(app: ReelApp, pilot: Pilot, index: int = -1) -> Job:
    """Wait (without sleeping blindly) until a job of this process is final."""
    assert app.queue is not None
    for _ in range(100):
        jobs = app.queue.jobs()
        if jobs:
            break
        await pilot.pause(0.05)
    job = app.queue.jobs()[index]
    assert await asyncio.to_thread(app.queue.wait, job, 60)
    await settle(app, pilot)
    return job


def log_text(app: ReelApp) -> str:
    """The Log pane's text with its wrapped lines joined up again (a long message goes on
    indented under its start: the indent becomes the space it was broken at)."""
    parts: list[str] = []
    for strip in app.query_one(JobLog).lines:
        text = strip.text
        if parts and text.startswith(" " * LOG_INDENT) and text.strip():
            parts[-1] = parts[-1].rstrip() + " " + text.strip()
        else:
            parts.append(text)
    return "".join(parts)


LOG_INDENT = len("12:00:00  ")


def table_keys(table: SourceTable | AppList | JobTable) -> list[str]:
    return list(table._keys)


async def choose_source(pilot: Pilot, app: ReelApp, app_name: str, source: str) -> None:
    """Highlight the app, go to its sources, highlight the source and press Enter."""
    apps = app.query_one(AppList)
    while apps.current_key != app_name:
        await pilot.press("down")
    await pilot.press("enter")
    sources = app.query_one(SourceTable)
    assert app.focused is sources
    while sources.current_key != source:
        await pilot.press("down")
    await pilot.press("enter")
    await settle(app, pilot)


async def test_rewind_confirmed_from_the_ui_rewinds_sqlite(demo: Path):
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        assert table_keys(app.query_one(AppList)) == ["blog", "shop", "crm"]
        await choose_source(pilot, app, "blog", "seed.sql")
        assert isinstance(app.screen, ConfirmRewind)
        body = str(app.screen.query_one("#dialog-body").render())
        assert "Replace blog (sqlite" in body and "seed.sql" in body
        await pilot.press("enter")
        job = await finished(app, pilot)
        assert job.state is JobState.SUCCEEDED, job.error
        assert "done: blog now holds seed.sql" in log_text(app)
        assert app.query_one(JobTable).current_key == str(job.id)
    rows = fingerprint(demo.parent / "data" / "blog.sqlite3")[1]
    assert rows["authors"] == [(1, "Ada"), (2, "O'Brien; -- not a comment")]


async def test_confirmation_refused_does_nothing(demo: Path):
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await choose_source(pilot, app, "blog", "seed.sql")
        assert isinstance(app.screen, ConfirmRewind)
        await pilot.press("escape")
        await settle(app, pilot)
        assert not isinstance(app.screen, ConfirmRewind)
        assert app.queue.jobs() == []
    assert not (demo.parent / "data" / "blog.sqlite3").exists()


async def test_default_source_key_and_tab_to_cancel_button(demo: Path):
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await pilot.press("d")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmRewind)
        assert app.screen.plan.source.name == "seed.sql"
        await pilot.press("tab", "enter")  # focus moves to Cancel, which cancels
        await settle(app, pilot)
        assert app.queue.jobs() == []


async def test_cancel_from_the_ui_leaves_database_unchanged(demo_big: Path):
    demo = demo_big
    target = demo.parent / "data" / "shop.sqlite3"
    with sqlite3.connect(target) as db:
        db.execute("CREATE TABLE precious (x)")
        db.execute("INSERT INTO precious VALUES ('keep me')")
    db.close()
    before = fingerprint(target)
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await choose_source(pilot, app, "shop", "big.sql")
        await pilot.press("enter")
        while not app.queue.jobs() or app.queue.jobs()[0].bytes_read == 0:
            await pilot.pause(0.02)
        await pilot.press("c")
        job = await finished(app, pilot)
        assert job.state is JobState.CANCELLED
        assert "cancel requested" in log_text(app)
        assert "cancelled" in str(app.query_one(JobTable).get_cell(str(job.id), "state"))
    assert fingerprint(target) == before


async def test_failing_dump_shows_its_error(demo: Path):
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await choose_source(pilot, app, "blog", "broken.sql")
        await pilot.press("enter")
        job = await finished(app, pilot)
        assert job.state is JobState.FAILED
        assert "broken.sql:2:" in log_text(app) and "no such table: missing" in log_text(app)
        messages = [n.message for n in app._notifications]
        assert any("no such table: missing" in m for m in messages)
        # the error's long line goes on under its own start, not under the time stamp
        lines = [strip.text.rstrip() for strip in app.query_one(JobLog).lines]
        assert any(line.startswith(" " * LOG_INDENT) and line[LOG_INDENT] != " " for line in lines)
        starts = re.compile(rf"\d\d:\d\d:\d\d  \S| {{{LOG_INDENT}}}\S|$")
        assert all(starts.match(line) for line in lines), lines


async def test_disabled_app_shows_its_problem_and_cannot_be_rewound(demo: Path):
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        apps = app.query_one(AppList)
        while apps.current_key != "crm":
            await pilot.press("down")
        await settle(app, pilot)
        problem = app.query_one(SourceTable).get_row_at(0)
        assert "unknown driver 'oracle'" in str(problem[0])
        await pilot.press("d")
        await settle(app, pilot)
        assert not isinstance(app.screen, ConfirmRewind)
        assert any("disabled" in n.message for n in app._notifications)


async def test_reload_picks_up_a_changed_config(demo: Path):
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        text = demo.read_text().replace("[shop]", "[store]")
        demo.write_text(text)
        await pilot.press("r")
        await settle(app, pilot)
        assert table_keys(app.query_one(AppList)) == ["blog", "store", "crm"]


async def test_broken_config_is_shown_not_crashed_on_and_reload_recovers(demo: Path):
    good = demo.read_text()
    demo.write_text(good + "\n[oops\n")
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        assert app.config is None and "invalid TOML" in (app.config_error or "")
        assert f"{demo}:" in app.config_error
        assert "Cannot use the config" in log_text(app)
        title = str(app.query_one("#title").render())
        assert "✗" in title
        demo.write_text(good)
        await pilot.press("r")
        await settle(app, pilot)
        assert app.config_error is None
        assert table_keys(app.query_one(AppList)) == ["blog", "shop", "crm"]


async def test_filter_sources(demo: Path):
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        sources = app.query_one(SourceTable)
        assert table_keys(sources) == ["seed.sql", "broken.sql", "demo/prospect-acme.sql"]
        await pilot.press("enter", "slash")  # to the sources, then the filter
        await pilot.press(*"acme")
        assert table_keys(sources) == ["demo/prospect-acme.sql"]
        await pilot.press("escape")
        assert table_keys(sources) == ["seed.sql", "broken.sql", "demo/prospect-acme.sql"]
        assert app.focused is sources


async def test_quit_while_running_asks_first_and_cancels(demo: Path):
    from reel_tui.locks import TargetLock

    app = ReelApp(demo, poll_history=False)
    target = demo.parent / "data" / "shop.sqlite3"
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        # another process rewinding shop: our job runs, waiting for it (and idle)
        other = TargetLock(app.history.lock_dir, app.config.apps["shop"].target_key)
        assert other.try_acquire()
        await choose_source(pilot, app, "shop", "seed.sql")
        await pilot.press("enter")
        while not app.queue.jobs() or app.queue.jobs()[0].phase != "waiting":
            await pilot.pause(0.02)
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmQuit)
        assert "#1 shop" in str(app.screen.query_one("#dialog-body").render())
        await pilot.press("escape")
        assert not isinstance(app.screen, ConfirmQuit)
        assert app.queue.jobs()[0].state is JobState.RUNNING, "staying changes nothing"
        await pilot.press("q")
        await pilot.press("shift+tab", "enter")  # from "Stay" back to "Cancel jobs and quit"
        await settle(app, pilot)
        other.release()
    job = app.queue.jobs()[0]
    assert job.state is JobState.CANCELLED
    assert not target.exists()


async def test_help_and_full_log(demo: Path):
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await choose_source(pilot, app, "blog", "seed.sql")
        await pilot.press("enter")
        job = await finished(app, pilot)
        await pilot.press("l")
        await settle(app, pilot)
        text = app.screen.query_one("#full-log-text", TextArea).text
        assert "schema: table authors" in text and f"job #{job.id}" in text
        await pilot.press("q", "escape")  # q is not quit here: the log has focus
        assert not isinstance(app.screen, FullLogScreen)
        assert app.is_running


async def test_jobs_of_other_processes_appear(demo: Path):
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        cron = [*REEL, "-c", str(demo), "--rewind", "shop", "-q"]
        assert (await asyncio.to_thread(subprocess.run, cron, timeout=60)).returncode == 0
        app.refresh_history()
        await settle(app, pilot)
        jobs = app.query_one(JobTable)
        assert len(table_keys(jobs)) == 1
        key = table_keys(jobs)[0]
        assert jobs.get_cell(key, "app") == "shop"
        assert "succeeded" in str(jobs.get_cell(key, "state"))
        assert str(jobs.get_cell(key, "kind")) == "rewind"  # from the history: format 2
        await pilot.press("tab", "tab")
        assert app.focused is jobs
        await settle(app, pilot)
        assert "done: shop now holds seed.sql" in log_text(app)


async def test_confirm_false_rewinds_a_local_target_without_asking(demo: Path):
    demo.write_text(demo.read_text().replace("[shop]", "[shop]\nconfirm = false"))
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await choose_source(pilot, app, "shop", "seed.sql")
        assert not isinstance(app.screen, ConfirmRewind)
        job = await finished(app, pilot)
        assert job.state is JobState.SUCCEEDED and job.app == "shop"


async def test_remote_target_needs_its_name_typed(demo: Path, monkeypatch):
    from reel_tui.engines.sqlite import SqliteEngine

    monkeypatch.setattr(SqliteEngine, "is_local", lambda self: False)
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await choose_source(pilot, app, "blog", "seed.sql")
        assert isinstance(app.screen, ConfirmRewind)
        await pilot.press(*"wrong", "enter")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmRewind), "a wrong name does not confirm"
        assert app.queue.jobs() == []
        typed = app.screen.query_one("#typed")
        typed.value = ""
        await pilot.press(*str(demo.parent / "data" / "blog.sqlite3"), "enter")
        job = await finished(app, pilot)
        assert job.state is JobState.SUCCEEDED


async def test_log_lines_are_not_shown_twice_when_a_running_job_is_selected(demo: Path):
    from reel_tui.jobs import LogLine

    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        log = app.query_one(JobLog)
        lines = [LogLine(1.0, f"line {n}") for n in range(3)]
        log.show(lines[:2])  # the job's log as it was when selected
        for line in lines:  # then the events, two of them still queued at that time
            log.add_live(line)
        await pilot.pause()
        assert [s.text.split("  ", 1)[1] for s in log.lines] == ["line 0", "line 1", "line 2"]


async def test_error_text_with_markup_characters_does_not_crash_the_app(demo: Path):
    (demo.parent / "dumps" / "blog" / "brackets.sql").write_text(
        "CREATE TABLE t (x);\nINSERT INTO [/]nope VALUES('[/]');\n"
    )
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await settle(app, pilot)
        await choose_source(pilot, app, "blog", "brackets.sql")
        await pilot.press("enter")
        job = await finished(app, pilot)
        assert job.state is JobState.FAILED
        deadline = time.monotonic() + 30  # the toast renders (polled: a fixed 0.3 s was a guess)
        while not any("[/]" in n.message for n in app._notifications):
            assert time.monotonic() < deadline, list(app._notifications)
            await pilot.pause(0.05)
        assert app.is_running


async def test_reload_says_which_settings_wait_for_a_restart(demo: Path):
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        demo.write_text(demo.read_text().replace("[reel]", "[reel]\nworkers = 4"))
        await pilot.press("r")
        await settle(app, pilot)
        assert any("next start" in n.message for n in app._notifications)


async def test_a_rewound_source_is_marked_cached_and_its_next_rewind_is_warm(demo: Path):
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        sources = app.query_one(SourceTable)

        name = "demo/prospect-acme.sql"  # the longest name: the mark widens its column

        def seed_row() -> str:
            return str(sources.get_row(name)[0])

        assert "●" not in seed_row()
        await choose_source(pilot, app, "blog", name)
        await pilot.press("enter")
        first = await finished(app, pilot)
        assert first.state is JobState.SUCCEEDED, first.error
        await settle(app, pilot)
        assert seed_row().endswith("●")
        width = next(c.width for k, c in sources.columns.items() if k.value == "source")
        assert width >= cell_len(seed_row()), "the mark is cut off by its column"
        await pilot.press("enter")  # the same source again: still highlighted
        await settle(app, pilot)
        await pilot.press("enter")
        second = await finished(app, pilot)
        assert second.state is JobState.SUCCEEDED, second.error
        assert "cached copy of this dump found" in log_text(app)


async def test_protected_app_is_refused_in_the_tui(demo: Path):
    demo.write_text(demo.read_text().replace("[blog]", "[blog]\nprotected = true"))
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await choose_source(pilot, app, "blog", "seed.sql")
        assert not isinstance(app.screen, ConfirmRewind)
        assert app.queue.jobs() == []
        shown = [n.message for n in app._notifications]
        assert any("is protected (protected = true); refused" in m for m in shown), shown
    assert not (demo.parent / "data" / "blog.sqlite3").exists()


async def test_remote_target_asks_for_its_name_even_with_confirm_false(demo: Path, monkeypatch):
    from reel_tui.engines.sqlite import SqliteEngine

    monkeypatch.setattr(SqliteEngine, "is_local", lambda self: False)
    demo.write_text(demo.read_text().replace("[blog]", "[blog]\nconfirm = false"))
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await choose_source(pilot, app, "blog", "seed.sql")
        assert isinstance(app.screen, ConfirmRewind)
        assert app.screen.query("#typed"), "the stronger confirmation: type the target's name"
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.queue.jobs() == []
    assert not (demo.parent / "data" / "blog.sqlite3").exists()


async def test_source_ages_are_redrawn_as_time_passes(demo: Path, monkeypatch):
    monkeypatch.setattr("reel_tui.tui.app.AGES_REDRAW_SECONDS", 0.3)
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        sources = app.query_one(SourceTable)
        assert str(sources.get_row("seed.sql")[3]) == "2d ago"
        real_time = time.time
        monkeypatch.setattr(time, "time", lambda: real_time() + 3 * 86400)
        # the app's own timer redraws it, nothing pressed (polled: a loaded machine is late)
        deadline = time.monotonic() + 30
        while str(sources.get_row("seed.sql")[3]) != "5d ago":
            assert time.monotonic() < deadline, sources.get_row("seed.sql")
            await pilot.pause(0.1)


async def test_a_narrow_sources_title_keeps_the_end_of_the_database_path(demo: Path):
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        pane = app.query_one("#sources-pane")
        title = str(pane.border_title)
        assert title.startswith("Sources · blog  sqlite  …") and title.endswith("blog.sqlite3")
        assert cell_len(title) <= pane.size.width - 4


async def test_the_redraw_timers_firing_as_the_app_closes_do_nothing(demo: Path):
    """A timer may fire while the app is being taken down (its widgets gone): a loaded
    machine's test run crashed there once, in the ages redraw (NoMatches)."""
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
    app.progress_pending = True
    app.redraw_ages()
    app.draw_progress()
