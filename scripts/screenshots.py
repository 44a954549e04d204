"""Regenerate screenshots/ from the real TUI: ``.venv/bin/python scripts/screenshots.py``.

Drives the app with Textual's Pilot over the demo config of the tests (SQLite
apps, one with a config error), through a finished rewind, a failed one and
one caught mid-load, snapshots and an undo, rewinds asked for over the HTTP API the TUI
serves, and saves each screen as SVG (what Textual exports) and
PNG (rendered with cairosvg, for viewers that cannot show SVG).
Needs the ``screenshots`` extra: ``pip install -e '.[screenshots]'``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from textual.pilot import Pilot  # noqa: E402

from reel_tui.api.serve import ApiSocket, ApiStartError, bind_listen  # noqa: E402
from reel_tui.config import load_config  # noqa: E402
from reel_tui.tui.app import ReelApp  # noqa: E402
from tui_demo import build_demo, demo_held, workers_done  # noqa: E402

OUT = ROOT / "screenshots"
MONO_FONT = '"DejaVu Sans Mono"'
Scene = Callable[[ReelApp, Pilot], Awaitable[None]]


async def settle(app: ReelApp, pilot: Pilot) -> None:
    for _ in range(3):
        await workers_done(app)
        await pilot.pause()


async def rewind(app: ReelApp, pilot: Pilot, app_name: str, source: str, wait: bool) -> None:
    """Pick the app and source with the real keys, confirm, and wait for the end if asked."""
    await settle(app, pilot)
    apps = app.query_one("#apps")
    apps.focus()
    apps.move_cursor(row=apps._keys.index(app_name))  # type: ignore[attr-defined]
    await pilot.pause()
    await pilot.press("enter")
    sources = app.query_one("#sources")
    sources.move_cursor(row=sources._keys.index(source))  # type: ignore[attr-defined]
    await pilot.press("enter")
    await settle(app, pilot)
    await pilot.press("enter")
    assert app.queue is not None
    while not app.queue.jobs() or app.queue.jobs()[-1].source != source:
        await pilot.pause(0.05)
    job = app.queue.jobs()[-1]
    if wait:
        await asyncio.to_thread(app.queue.wait, job, 120)
    else:
        while job.fraction < 0.35:
            await asyncio.sleep(0.05)
    await settle(app, pilot)


async def busy_day(app: ReelApp, pilot: Pilot) -> None:
    """A finished rewind, a failed one, and one running: the main screen as it is used."""
    await rewind(app, pilot, "blog", "demo/prospect-acme.sql", wait=True)
    await rewind(app, pilot, "blog", "broken.sql", wait=True)
    await rewind(app, pilot, "shop", "big.sql", wait=False)
    app.clear_notifications()
    app.query_one("#jobs").focus()  # to show the Jobs pane's keys in the footer
    await pilot.pause()


API_TOKEN = "screenshot-token"
"""The API scene's token: it must appear nowhere in the picture (checked)."""


def post(url: str, path: str) -> int:
    """A rewind asked for over HTTP, as the Vagrant host would; the job's id."""
    request = urllib.request.Request(url + "/reel/api/v1" + path, method="POST",
                                     headers={"Authorization": f"Bearer {API_TOKEN}"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(json.load(response)["id"])


async def api_rewinds(app: ReelApp, pilot: Pilot) -> None:
    """The TUI serving the API: a keyboard rewind done, then two asked for over HTTP: one
    loading (its log streaming), one queued behind it on the same database."""
    await rewind(app, pilot, "blog", "demo/prospect-acme.sql", wait=True)
    assert app.api is not None and app.queue is not None
    running = await asyncio.to_thread(post, app.api.url, "/rewind/shop/big.sql")
    await asyncio.to_thread(post, app.api.url, "/rewind/shop/seed.sql")
    job = app.queue.get(running)
    assert job is not None
    while job.fraction < 0.35:
        await asyncio.sleep(0.05)
    await settle(app, pilot)
    app.clear_notifications()
    table = app.query_one("#jobs")
    table.focus()
    table.move_cursor(row=table._keys.index(str(running)))  # type: ignore[attr-defined]
    await pilot.pause(0.3)


def api_socket(config: Path) -> ApiSocket:
    """reel's port when it is free here, else any: the title bar shows it."""
    os.environ["REEL_SCREENSHOT_TOKEN"] = API_TOKEN
    config.write_text(config.read_text().replace(
        "[reel]\n", '[reel]\ntoken_env = "REEL_SCREENSHOT_TOKEN"\n'))  # fmt: skip
    for listen in ("127.0.0.1:7999", "127.0.0.1:0"):
        try:
            return ApiSocket(listen, bind_listen(load_config(config), listen))
        except ApiStartError:  # in use
            continue
    raise RuntimeError("no port to serve the API on")


async def confirm(app: ReelApp, pilot: Pilot) -> None:
    await settle(app, pilot)
    app.clear_notifications()
    await pilot.press("enter", "down", "down", "enter")
    await settle(app, pilot)


async def finish_last(app: ReelApp, pilot: Pilot) -> None:
    assert app.queue is not None
    await asyncio.to_thread(app.queue.wait, app.queue.jobs()[-1], 120)
    await settle(app, pilot)


async def take_snapshot(app: ReelApp, pilot: Pilot, name: str) -> None:
    """``s``, the name typed over the dated one offered, Enter; wait for the job."""
    await pilot.press("s")
    await pilot.pause()
    await pilot.press(*name, "enter")
    await settle(app, pilot)
    await finish_last(app, pilot)


async def snapshots(app: ReelApp, pilot: Pilot) -> None:
    """A snapshot taken, a rewind, its undo: the snapshots and the undo copy among the
    sources, each job with its kind."""
    await rewind(app, pilot, "blog", "seed.sql", wait=True)
    await take_snapshot(app, pilot, "before-demo")
    await rewind(app, pilot, "blog", "demo/prospect-acme.sql", wait=True)
    await take_snapshot(app, pilot, "acme-walkthrough")
    await pilot.press("u")
    await settle(app, pilot)
    await pilot.press("enter")
    await finish_last(app, pilot)
    app.clear_notifications()
    sources = app.query_one("#sources")
    sources.focus()
    sources.move_cursor(row=sources._keys.index("@before-demo"))  # type: ignore[attr-defined]
    await pilot.pause()


async def undo_confirm(app: ReelApp, pilot: Pilot) -> None:
    await rewind(app, pilot, "blog", "seed.sql", wait=True)
    await rewind(app, pilot, "blog", "demo/prospect-acme.sql", wait=True)
    app.clear_notifications()
    await pilot.press("u")
    await settle(app, pilot)


async def help_screen(app: ReelApp, pilot: Pilot) -> None:
    await settle(app, pilot)
    app.clear_notifications()
    await pilot.press("f1")
    await pilot.pause()


async def config_error(app: ReelApp, pilot: Pilot) -> None:
    await settle(app, pilot)
    await pilot.press("down", "down")
    await settle(app, pilot)


SCENES: list[tuple[str, tuple[int, int], Scene]] = [
    ("main", (120, 36), busy_day),
    ("main-80x24", (80, 24), busy_day),
    ("confirm", (100, 30), confirm),
    ("config-error", (100, 30), config_error),
    ("help", (100, 30), help_screen),
    ("snapshots", (120, 36), snapshots),
    ("undo", (100, 30), undo_confirm),
    ("api", (120, 36), api_rewinds),
]


async def shoot(name: str, size: tuple[int, int], scene: Scene) -> None:
    os.environ["REEL_STATE_DIR"] = tempfile.mkdtemp(prefix="reel-screenshots-")
    config = build_demo(big_rows=1_500_000 if scene in (busy_day, api_rewinds) else 0)
    api = api_socket(config) if scene is api_rewinds else None
    app = ReelApp(config, poll_history=False, api=api)
    async with app.run_test(size=size) as pilot:
        await scene(app, pilot)
        svg = app.export_screenshot(title=f"reel-tui · {name}")
        assert API_TOKEN not in svg
        (OUT / f"{name}.svg").write_text(svg, encoding="utf-8")
        if app.queue is not None:
            await asyncio.to_thread(app.queue.shutdown)
            await settle(app, pilot)  # the last jobs' events, before the widgets go
    try:
        import cairosvg
    except ImportError:
        print(f"{name}.svg written; pip install '.[screenshots]' for the PNG")
        return
    # Textual's SVG asks for Fira Code from the web; offline, name an installed monospace
    # font, or cairosvg falls back to a proportional one and the columns drift.
    mono = svg.replace("Fira Code, monospace", MONO_FONT).replace('"Fira Code"', MONO_FONT)
    cairosvg.svg2png(bytestring=mono.encode(), write_to=str(OUT / f"{name}.png"),
                     output_width=size[0] * 10)  # fmt: skip
    print(f"screenshots/{name}.svg and .png")


async def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, size, scene in SCENES:
        await shoot(name, size, scene)


if __name__ == "__main__":
    with demo_held():  # the snapshot tests use the same fixed folder
        asyncio.run(main())
