"""Snapshots and undo in the TUI, from their keys, over real SQLite rewinds of the demo."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from conftest import fingerprint
from reel_tui.config import load_config
from reel_tui.engines.sqlite import SqliteEngine
from reel_tui.jobs import Job, JobState
from reel_tui.tui.app import ReelApp
from reel_tui.tui.screens import ConfirmDeleteSnapshot, ConfirmRewind, SnapshotNameScreen
from reel_tui.tui.widgets import JobTable, SourceTable
from test_tui import choose_source, finished, log_text, settle
from tui_demo import build_demo


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return build_demo(tmp_path / "demo")


def blog_db(demo: Path) -> Path:
    return demo.parent / "data" / "blog.sqlite3"


def snapshots_on_disk(demo: Path) -> list[str]:
    """The blog's snapshots as its engine finds them where they live (not the TUI's view)."""
    engine = SqliteEngine(load_config(demo).apps["blog"])
    return sorted(c.key for c in engine.cached_copies() if c.kind == "snapshot")


async def rewound_to_seed(app: ReelApp, pilot: Pilot) -> Job:
    await choose_source(pilot, app, "blog", "seed.sql")
    await pilot.press("enter")
    job = await finished(app, pilot)
    assert job.state is JobState.SUCCEEDED, job.error
    return job


async def take_snapshot(app: ReelApp, pilot: Pilot, name: str) -> Job:
    """``s``, type the name over the offered one, Enter: the job runs to its end."""
    await pilot.press("s")
    assert isinstance(app.screen, SnapshotNameScreen)
    await pilot.press(*name)
    assert app.screen.query_one(Input).value == name  # the dated default was selected
    await pilot.press("enter")
    await settle(app, pilot)
    job = await finished(app, pilot)
    assert job.state is JobState.SUCCEEDED, job.error
    return job


async def highlight(pilot: Pilot, table: SourceTable, key: str) -> None:
    table.focus()
    await pilot.pause()
    for _ in range(len(table._keys)):
        if table.current_key == key:
            return
        await pilot.press("down")
    assert table.current_key == key, table._keys


def source_cells(table: SourceTable, key: str) -> list[str]:
    return [str(cell) for cell in table.get_row(key)]


async def test_snapshot_rewind_to_it_and_undo_from_the_keys(demo: Path):
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await rewound_to_seed(app, pilot)
        seeded = fingerprint(blog_db(demo))

        job = await take_snapshot(app, pilot, "before-demo")
        assert (job.kind, job.source) == ("snapshot", "@before-demo")
        jobs = app.query_one(JobTable)
        assert str(jobs.get_cell(str(job.id), "kind")) == "snapshot"
        assert "snapshot @before-demo taken" in log_text(app)
        sources = app.query_one(SourceTable)
        name, kind, _size, age = source_cells(sources, "@before-demo")
        assert (name, kind, age) == ("◆ @before-demo", "snapshot", "now")

        with sqlite3.connect(blog_db(demo)) as db:
            db.execute("INSERT INTO authors VALUES (3, 'changed by hand')")
        db.close()
        changed = fingerprint(blog_db(demo))
        assert changed != seeded

        await highlight(pilot, sources, "@before-demo")
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmRewind)
        assert "with snapshot @before-demo (taken today" in str(
            app.screen.query_one("#dialog-body").render()
        )
        await pilot.press("enter")
        rewind = await finished(app, pilot)
        assert rewind.state is JobState.SUCCEEDED, rewind.error
        assert fingerprint(blog_db(demo)) == seeded
        assert "done: blog now holds @before-demo" in log_text(app)
        assert str(jobs.get_cell(str(rewind.id), "kind")) == "rewind"
        name, kind, *_ = source_cells(sources, "@undo")
        assert (name, kind) == ("↶ @undo (before @before-demo)", "undo")

        await pilot.press("u")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmRewind)
        assert "Undo the last rewind of blog" in str(app.screen.query_one("#dialog-title").render())
        body = str(app.screen.query_one("#dialog-body").render())
        assert "Bring back what blog (sqlite" in body and "held before @before-demo" in body
        assert "undo again to redo" in body
        await pilot.press("enter")
        undo = await finished(app, pilot)
        assert (undo.kind, undo.state) == ("undo", JobState.SUCCEEDED), undo.error
        assert fingerprint(blog_db(demo)) == changed  # the state that rewind replaced
        assert str(jobs.get_cell(str(undo.id), "kind")) == "undo"
        assert any("last rewind undone" in n.message for n in app._notifications)
        assert str(sources.get_row("@undo")[0]) == "↶ @undo (what the undo replaced)"


async def test_rename_and_delete_a_snapshot_from_the_keys(demo: Path):
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await rewound_to_seed(app, pilot)
        await take_snapshot(app, pilot, "old")
        sources = app.query_one(SourceTable)

        await highlight(pilot, sources, "seed.sql")
        await pilot.press("n", "x")  # on a dump: neither is offered
        assert not isinstance(app.screen, SnapshotNameScreen | ConfirmDeleteSnapshot)
        assert "n" not in app.screen.active_bindings

        await highlight(pilot, sources, "@old")
        assert {"n", "x"} <= set(app.screen.active_bindings)  # shown in the footer
        await pilot.press("n")
        assert isinstance(app.screen, SnapshotNameScreen)
        await pilot.press(*"new name", "enter")
        await settle(app, pilot)
        assert "@new name" in sources._keys and "@old" not in sources._keys
        assert snapshots_on_disk(demo) == ["snapshot:new name"]

        await highlight(pilot, sources, "@new name")
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmDeleteSnapshot)
        await pilot.press("enter")  # Cancel has the focus: nothing is deleted by accident
        await settle(app, pilot)
        assert snapshots_on_disk(demo) == ["snapshot:new name"]
        await pilot.press("x", "shift+tab", "enter")
        await settle(app, pilot)
        assert "@new name" not in sources._keys
        assert snapshots_on_disk(demo) == []
        assert app.queue is not None and len(app.queue.jobs()) == 2  # no job: a worker call


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("a/b", "no '/'"),
        ("undo", "'undo' names the undo copy"),
        ("taken", "a snapshot named @taken exists already"),
    ],
)
async def test_a_bad_snapshot_name_is_said_in_the_dialog_and_creates_nothing(
    demo: Path, typed: str, error: str
):
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await rewound_to_seed(app, pilot)
        await take_snapshot(app, pilot, "taken")
        await pilot.press("s")
        await pilot.press(*typed)
        assert error in str(app.screen.query_one("#name-error").render())
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, SnapshotNameScreen)  # still open: fix it or esc
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.queue is not None and len(app.queue.jobs()) == 2
    assert snapshots_on_disk(demo) == ["snapshot:taken"]


async def test_undo_with_nothing_to_undo_is_refused_with_one_line(demo: Path):
    app = ReelApp(demo, poll_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await pilot.press("u")
        await settle(app, pilot)
        assert not isinstance(app.screen, ConfirmRewind)
        shown = [(n.title, n.message) for n in app._notifications]
        assert any(t == "Undo refused" and "nothing to undo" in m for t, m in shown), shown
        assert app.queue is not None and app.queue.jobs() == []
