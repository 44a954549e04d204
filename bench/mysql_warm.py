"""Warm vs cold MySQL rewinds, headless, against ``mysql db < dump`` (medians).

    .venv/bin/python bench/mysql_warm.py [--size 100] [--runs 3] [--only mysql,spare]

Uses bench/run.py's dumps and throwaway MariaDB. Each timed command is the whole
``reel-tui --rewind`` process; before each timed run the background work of the
previous one is waited for, so runs do not compete with it for the CPU:

* ``mysql <``: the reference, into a database created just before (untimed);
* cold, no cache: ``cache_copies = 0``, a rewind as before warm rewinds existed;
* cold, cache on: after ``--clear-cache``: the load, plus asking for a cached copy;
* warm, spare: the spare's tables renamed into staging, then the swap;
* warm, copy: the spare dropped first, so the rewind copies the template itself
  (INSERT … SELECT): what copying the staged tables before the swap would cost.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent / "tests")]

import datagen  # noqa: E402
import dumps  # noqa: E402
import mysql_server  # noqa: E402

TARGET = "bench_warm"
PASSWORD_ENV = "REEL_BENCH_MYPASSWORD"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=float, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/reel-tui-bench"))
    parser.add_argument("--only", default="", help="comma-separated words: run the kinds "
                        "whose name holds one (e.g. 'mysql,spare')")  # fmt: skip
    args = parser.parse_args()
    server = mysql_server.start_server()
    try:
        return bench(server, args)
    finally:
        server.stop()


def bench(server: mysql_server.MysqlServer, args: argparse.Namespace) -> int:
    dump = dumps.mysql_dumps(args.cache / f"v{datagen.GEN_VERSION}", args.size, server)["mysqldump"]
    work = Path(tempfile.mkdtemp(prefix="reel-warm-bench-"))
    env = {**os.environ, PASSWORD_ENV: server.password, "REEL_STATE_DIR": str(work / "state")}

    def config(extra: str = "") -> Path:
        path = work / "reel.toml"
        path.write_text(
            f'[reel]\nstate_dir = "{work / "state"}"\n[my]\ndbdriver = "mariadb"\n'
            f'dbserver = "{server.host}"\ndbport = {server.port}\ndatabase = "{TARGET}"\n'
            f'dbuser = "{server.user}"\ndbpassword_env = "{PASSWORD_ENV}"\n'
            f'dbsources = "{dump.parent}"\n{extra}\n'
        )
        return path

    def reel(*extra: str) -> tuple[float, str]:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "reel_tui", "-c", str(work / "reel.toml"),
                               *extra], env=env, capture_output=True, text=True)  # fmt: skip
        elapsed = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(f"reel-tui failed: {done.stderr}{done.stdout}")
        return elapsed, done.stdout

    rewind = ("--rewind", "my", "--source", dump.name)

    def schemas(kind: str) -> list[str]:
        return [d for d in server.databases() if d.startswith(f"{TARGET}__reel_{kind}")]

    def idle() -> None:
        """Wait for the detached background work: a spare ready, nothing else pending."""
        deadline = time.monotonic() + 600
        while not (schemas("spare") and not any(schemas(k) for k in ("load", "prep", "trash"))):
            assert time.monotonic() < deadline, "the background work did not finish"
            time.sleep(0.2)

    def mysql_client() -> float:
        server.execute("DROP DATABASE IF EXISTS ref_mysql")
        server.execute("CREATE DATABASE ref_mysql CHARACTER SET utf8mb4")
        started = time.monotonic()
        with open(dump, "rb") as stdin:
            subprocess.run(["mysql", *server.client_args(), "--comments",
                            "--default-character-set=utf8mb4", "ref_mysql"], stdin=stdin,
                           env=server.client_env(), check=True)  # fmt: skip
        return time.monotonic() - started

    def cold_plain() -> float:
        config("cache_copies = 0")
        return reel(*rewind, "-q")[0]

    def cold_cached() -> float:
        config()
        reel("--clear-cache")
        elapsed, _ = reel(*rewind, "-q")
        idle()
        return elapsed

    def warm_spare() -> float:
        config()
        idle()
        elapsed, out = reel(*rewind)
        assert "took its ready spare" in out, out
        details.append(_detail(out))
        return elapsed

    def warm_copy() -> float:
        config()
        idle()
        for spare in schemas("spare"):
            server.execute(f"DROP DATABASE `{spare}`")
        elapsed, out = reel(*rewind)
        assert "no spare was ready" in out, out
        details.append(_detail(out))
        return elapsed

    details: list[str] = []
    config()
    reel(*rewind, "-q")  # the target exists and holds data, as in real use
    idle()  # and a cached copy of the dump with its spare
    kinds: dict[str, Callable[[], float]] = {
        "mysql < dump": mysql_client,
        "reel cold, cache off": cold_plain,
        "reel cold, cache on": cold_cached,
        "reel warm, spare ready": warm_spare,
        "reel warm, copying the template": warm_copy,
    }
    if args.only:
        words = args.only.split(",")
        kinds = {k: v for k, v in kinds.items() if any(w in k for w in words)}
    times: dict[str, list[float]] = {name: [] for name in kinds}
    for run in range(args.runs):
        order = list(kinds.items())
        for name, measure in order if run % 2 == 0 else reversed(order):
            times[name].append(measure())
            print(f"run {run + 1}: {name}: {times[name][-1]:.2f} s", flush=True)
    reference = statistics.median(times.get("mysql < dump", [float("nan")]))
    print(f"\n{dump.name}, {dump.stat().st_size / 1e6:.0f} MB, medians of {args.runs}:")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"  {name:34} {median:7.2f} s   mysql< / this = {reference / median:6.1f}x")
    print("\nfrom the warm runs' logs:\n  " + "\n  ".join(details))
    logs = sorted((work / "state").rglob("*.log"))
    made = [m for log in logs for m in re.findall(r"(cached copy of .* made.*|spare copy .*)",
                                                  log.read_text())]  # fmt: skip
    print("background work:\n  " + "\n  ".join(made[-6:]))
    return 0


def _detail(out: str) -> str:
    keep = ("took its ready spare", "no spare was ready", "in one RENAME TABLE")
    return " | ".join(line.strip() for line in out.splitlines() if any(k in line for k in keep))


if __name__ == "__main__":
    sys.exit(main())
