"""A config with three apps for TUI tests, snapshots and screenshots.

Built at a fixed path with fixed file times, so that what the TUI shows
(paths, "2 days ago") is the same on every machine and snapshots compare.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from textual.app import App
from textual.worker import WorkerCancelled

from conftest import BLOG_SCRIPT, big_dump, make_dump

DEMO_ROOT = Path("/tmp/reel-tui-demo")

CONFIG = """\
[reel]
default_app = "blog"

[blog]
dbdriver = "sqlite"
database = "data/blog.sqlite3"
dbsource = "dumps/blog/seed.sql"
dbsources = "dumps/blog/"

[shop]
dbdriver = "sqlite"
database = "data/shop.sqlite3"
dbsource = "dumps/shop/seed.sql"
dbsources = "dumps/shop/"

[crm]
dbdriver = "oracle"
database = "crm"
dbsource = "dumps/blog/seed.sql"
"""


@contextlib.contextmanager
def demo_held() -> Iterator[None]:
    """Hold the fixed demo folder: two test runs (or a run and scripts/screenshots.py) on
    one machine would otherwise rebuild it under each other. The second waits."""
    with open(f"{DEMO_ROOT}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_demo(root: Path = DEMO_ROOT, big_rows: int = 0) -> Path:
    """Write the demo config, dumps and folders under ``root``; return the config path."""
    shutil.rmtree(root, ignore_errors=True)
    (root / "data").mkdir(parents=True)
    blog = root / "dumps" / "blog"
    make_dump(blog, "seed.sql", BLOG_SCRIPT)
    make_dump(blog / "demo", "prospect-acme.sql", BLOG_SCRIPT + "DELETE FROM posts WHERE id > 1;")
    (blog / "broken.sql").write_text("CREATE TABLE t (x);\nINSERT INTO missing VALUES (1);\n")
    shop = root / "dumps" / "shop"
    make_dump(shop, "seed.sql", "CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL);")
    if big_rows:
        big_dump(shop / "big.sql", big_rows)
    config = root / "reel.toml"
    config.write_text(CONFIG)
    os.chmod(config, 0o600)
    two_days_ago = time.time() - 2 * 86400 - 600
    for path in (root / "dumps").rglob("*"):
        os.utime(path, (two_days_ago, two_days_ago))
    return config


def with_snapshots(config: Path, state_dir: Path) -> None:
    """Real jobs before the TUI starts: blog rewound to seed.sql, snapshots @before-demo and
    @clean-install taken, then blog rewound to demo/prospect-acme.sql (so its undo copy holds
    the seed state). The job history and logs are removed afterwards, the cache index kept:
    the Sources pane shows the copies, the Jobs pane no durations that differ between runs."""
    from reel_tui.config import load_config
    from reel_tui.history import HistoryStore
    from reel_tui.jobqueue import JobQueue
    from reel_tui.jobs import JobState
    from reel_tui.plan import plan_rewind, plan_snapshot

    loaded = load_config(config)
    history = HistoryStore(state_dir)
    queue = JobQueue(history, workers=1)
    try:
        for plan in (
            lambda: plan_rewind(loaded, "blog", "seed.sql"),
            lambda: plan_snapshot(loaded, "blog", "before-demo"),
            lambda: plan_snapshot(loaded, "blog", "clean-install"),
            lambda: plan_rewind(loaded, "blog", "demo/prospect-acme.sql"),
        ):
            job = queue.submit(plan())
            assert queue.wait(job, 60) and job.state is JobState.SUCCEEDED, job.error
    finally:
        queue.shutdown(cancel=False)
        history.close()
    (state_dir / "history.sqlite3").unlink()
    shutil.rmtree(state_dir / "logs", ignore_errors=True)


async def workers_done(app: App[object]) -> None:
    """Wait for each of the app's workers to end.

    A worker cancelled on the way counts as ended: an exclusive worker (the history
    refresh) is cancelled when the next one of its group starts, and Textual's
    ``wait_for_complete`` raises WorkerCancelled for it, which failed a CI run."""
    for worker in list(app.workers):
        with contextlib.suppress(WorkerCancelled):
            await worker.wait()
