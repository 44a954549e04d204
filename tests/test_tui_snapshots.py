"""SVG snapshots of the screens: an unintended change of the UI fails here.

Regenerate deliberately with ``pytest tests/test_tui_snapshots.py --snapshot-update``
and look at the result (the snapshot report, or ``scripts/screenshots.py``).
"""

from __future__ import annotations

import pytest
from textual.pilot import Pilot

from reel_tui.tui.app import ReelApp
from tui_demo import build_demo, demo_held, with_snapshots, workers_done


@pytest.fixture(autouse=True, scope="module")
def _demo_folder_held():
    """The demo lives at a fixed path (snapshots show it): one run at a time uses it."""
    with demo_held():
        yield


@pytest.fixture
def demo_app() -> ReelApp:
    return ReelApp(build_demo(), poll_history=False)


async def ready(pilot: Pilot) -> None:
    """Config read, connections checked, everything drawn."""
    app = pilot.app
    for _ in range(3):
        await workers_done(app)
        await pilot.pause()
    while not app.connections or any(ok is None for ok, _ in app.connections.values()):
        await pilot.pause(0.05)
    await pilot.pause()
    app.clear_notifications()


def test_main_screen_large(snap_compare, demo_app):
    assert snap_compare(demo_app, terminal_size=(120, 36), run_before=ready)


def test_main_screen_80x24(snap_compare, demo_app):
    assert snap_compare(demo_app, terminal_size=(80, 24), run_before=ready)


def test_confirm_rewind(snap_compare, demo_app):
    async def open_confirm(pilot: Pilot) -> None:
        await ready(pilot)
        await pilot.press("enter", "down", "enter")
        await ready(pilot)

    assert snap_compare(demo_app, terminal_size=(100, 30), run_before=open_confirm)


def test_disabled_app_and_filter(snap_compare, demo_app):
    async def crm_then_filter(pilot: Pilot) -> None:
        await ready(pilot)
        await pilot.press("down", "down")
        await ready(pilot)

    assert snap_compare(demo_app, terminal_size=(100, 30), run_before=crm_then_filter)


def test_help(snap_compare, demo_app):
    async def open_help(pilot: Pilot) -> None:
        await ready(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(demo_app, terminal_size=(100, 30), run_before=open_help)


def test_sources_with_snapshots_and_undo(snap_compare, state_dir):
    """Snapshots (◆) and the undo copy (↶) beside the dumps, with what the undo holds."""
    config = build_demo()
    with_snapshots(config, state_dir)

    async def to_sources(pilot: Pilot) -> None:
        await ready(pilot)
        await pilot.press("enter", "down", "down", "down")  # onto @before-demo

    app = ReelApp(config, poll_history=False)
    assert snap_compare(app, terminal_size=(100, 30), run_before=to_sources)
