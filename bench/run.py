"""Benchmark reel-tui's headless cold rewind side by side with each engine's own client.

    .venv/bin/python bench/run.py [--sizes 10,100] [--runs 5] [--engines sqlite,postgres,mysql]

Makes synthetic dumps (cached), starts throwaway PostgreSQL / MariaDB servers
in temporary folders (the test suite's, never a server already running), then
for every dump times the whole ``reel-tui --rewind -q`` process and the
reference client on the same dump, alternating runs, and prints medians,
ratios (reel-tui / reference; below 1 means reel-tui is faster) and
reel-tui's peak RSS. Everything is also written to bench/results.json.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT / "tests")]  # the throwaway servers live in tests/

import datagen  # noqa: E402
import dumps  # noqa: E402
from measure import ChildFailed, Sample, timed  # noqa: E402

if TYPE_CHECKING:
    from mysql_server import MysqlServer
    from pg_server import PgServer

ENGINES = ("sqlite", "postgres", "mysql")
REEL_TARGET = "bench_reel"
PG_PASSWORD_ENV = "REEL_BENCH_PGPASSWORD"
MY_PASSWORD_ENV = "REEL_BENCH_MYPASSWORD"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Tool:
    """One way to load a dump: a command, what to do before each run, and a row count check."""

    name: str
    argv: list[str]
    env: dict[str, str]
    dump: Path
    stdin: bool = False
    prepare: Callable[[], None] = lambda: None
    counts: Callable[[], dict[str, int]] = dict
    samples: list[Sample] = field(default_factory=list)

    def run(self) -> Sample:
        self.prepare()
        sample = timed(self.argv, self.env, self.dump if self.stdin else None)
        self.samples.append(sample)
        return sample

    @property
    def median(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def peak_rss_mb(self) -> float:
        return max(s.max_rss_kb for s in self.samples) / 1024

    def to_json(self) -> dict[str, object]:
        return {
            "tool": self.name,
            "dump_file": self.dump.name,
            "seconds": [round(s.seconds, 4) for s in self.samples],
            "median_s": round(self.median, 4),
            "max_rss_kb": [s.max_rss_kb for s in self.samples],
            "rss_exact": all(s.rss_exact for s in self.samples),
        }


@dataclass
class Case:
    """reel-tui and the references on one dump (references may read another format of it)."""

    engine: str
    dump: str
    size_mb: float
    reel: Tool
    references: list[Tool]
    check: str = ""

    def tools(self) -> list[Tool]:
        return [self.reel, *self.references]


# ---------------------------------------------------------------- engines


class Bench:
    def __init__(self, work: Path, cache: Path, reel_exe: list[str]) -> None:
        self.work = work
        self.cache = cache
        self.reel_exe = reel_exe
        self.config = work / "reel.toml"
        self.apps: dict[str, str] = {}
        self.env = dict(os.environ)
        self.pg: PgServer | None = None
        self.my: MysqlServer | None = None
        self.versions: dict[str, str] = {}

    def write_config(self) -> None:
        text = f'[reel]\nstate_dir = "{self.work / "state"}"\n'
        for name, body in self.apps.items():
            text += f"\n[{name}]\n{body}"
        self.config.write_text(text, encoding="utf-8")
        os.chmod(self.config, 0o600)

    def reel_tool(self, app: str, dump: Path, counts: Callable[[], dict[str, int]]) -> Tool:
        argv = [
            *self.reel_exe,
            "-c",
            str(self.config),
            "--rewind",
            app,
            "--source",
            dump.name,
            "-q",
        ]
        return Tool("reel-tui", argv, self.env, dump, counts=counts)

    # -- SQLite

    def sqlite_cases(self, size: float) -> list[Case]:
        made = dumps.sqlite_dumps(self.cache, size)
        dump = made["sqlite3 .dump"]
        target = self.work / "reel-target.sqlite3"
        self.apps["sq"] = (
            f'dbdriver = "sqlite"\ndatabase = "{target}"\ndbsources = "{dump.parent}"\n'
        )
        ref_db = self.work / "ref.sqlite3"

        def fresh() -> None:
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(f"{ref_db}{suffix}").unlink(missing_ok=True)

        reference = Tool(
            "sqlite3 new.db < dump",
            ["sqlite3", str(ref_db)],
            self.env,
            dump,
            stdin=True,
            prepare=fresh,
            counts=lambda: sqlite_counts(ref_db),
        )
        reel = self.reel_tool("sq", dump, lambda: sqlite_counts(target))
        return [Case("sqlite", "sqlite3 .dump", size, reel, [reference])]

    # -- PostgreSQL

    def start_pg(self) -> None:
        import pg_server

        log("starting a throwaway PostgreSQL server")
        self.pg = pg_server.start_server()
        self.env[PG_PASSWORD_ENV] = self.pg.password
        self.apps["pg"] = (
            f'dbdriver = "postgres"\ndbserver = "{self.pg.host}"\n'
            f'dbport = {self.pg.port}\ndatabase = "{REEL_TARGET}"\n'
            f'dbuser = "{self.pg.user}"\ndbpassword_env = "{PG_PASSWORD_ENV}"\n'
        )
        self.versions["postgres"] = self.pg.execute("SHOW server_version")[0][0]

    def pg_cases(self, size: float) -> list[Case]:
        pg = self.pg
        assert pg is not None
        made = dumps.pg_dumps(self.cache, size, pg)
        self.apps["pg"] = self._with_sources(self.apps["pg"], made["pg_dump"].parent)
        env = pg.env()

        def fresh(db: str) -> Callable[[], None]:
            def make() -> None:
                pg.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
                pg.execute(f'CREATE DATABASE "{db}" TEMPLATE template0')

            return make

        def counts(db: str) -> Callable[[], dict[str, int]]:
            return lambda: {
                t: int(pg.execute(f"SELECT count(*) FROM {t}", db)[0][0])
                for t in ("customers", "orders")
            }

        def psql(dump: Path, db: str) -> Tool:
            argv = ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-q", "-d", db, "-f", str(dump)]
            return Tool("psql -f", argv, env, dump, prepare=fresh(db), counts=counts(db))

        custom = made["pg_dump -Fc"]
        restore = Tool(
            "pg_restore -j2 (custom)",
            ["pg_restore", "-j2", "--exit-on-error", "-d", "ref_restore", str(custom)],
            env,
            custom,
            prepare=fresh("ref_restore"),
            counts=counts("ref_restore"),
        )
        plain, inserts = made["pg_dump"], made["pg_dump --inserts"]
        return [
            Case(
                "postgres",
                "pg_dump",
                size,
                self.reel_tool("pg", plain, counts(REEL_TARGET)),
                [psql(plain, "ref_psql"), restore],
            ),
            Case(
                "postgres",
                "pg_dump --inserts",
                size,
                self.reel_tool("pg", inserts, counts(REEL_TARGET)),
                [psql(inserts, "ref_psql_inserts")],
            ),
        ]

    # -- MySQL / MariaDB

    def start_mysql(self) -> None:
        import mysql_server

        log("starting a throwaway MariaDB server")
        self.my = mysql_server.start_server()
        self.env[MY_PASSWORD_ENV] = self.my.password
        self.apps["my"] = (
            f'dbdriver = "mariadb"\ndbserver = "{self.my.host}"\n'
            f'dbport = {self.my.port}\ndatabase = "{REEL_TARGET}"\n'
            f'dbuser = "{self.my.user}"\ndbpassword_env = "{MY_PASSWORD_ENV}"\n'
        )
        self.versions["mariadb"] = str(self.my.execute("SELECT VERSION()")[0][0])

    def mysql_cases(self, size: float) -> list[Case]:
        my = self.my
        assert my is not None
        dump = dumps.mysql_dumps(self.cache, size, my)["mysqldump"]
        self.apps["my"] = self._with_sources(self.apps["my"], dump.parent)

        def fresh() -> None:
            my.execute("DROP DATABASE IF EXISTS ref_mysql")
            my.execute("CREATE DATABASE ref_mysql CHARACTER SET utf8mb4")

        def counts(db: str) -> Callable[[], dict[str, int]]:
            return lambda: {
                t: int(my.execute(f"SELECT count(*) FROM {t}", db)[0][0])
                for t in ("customers", "orders")
            }

        argv = [
            "mysql",
            *my.client_args(),
            "--comments",
            "--default-character-set=utf8mb4",
            "ref_mysql",
        ]
        reference = Tool(
            "mysql db < dump",
            argv,
            my.client_env(),
            dump,
            stdin=True,
            prepare=fresh,
            counts=counts("ref_mysql"),
        )
        reel = self.reel_tool("my", dump, counts(REEL_TARGET))
        return [Case("mysql", "mysqldump", size, reel, [reference])]

    @staticmethod
    def _with_sources(body: str, folder: Path) -> str:
        lines = [line for line in body.splitlines() if not line.startswith("dbsources")]
        return "\n".join([*lines, f'dbsources = "{folder}"']) + "\n"


def sqlite_counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("customers", "orders")
        }
    finally:
        conn.close()


# ---------------------------------------------------------------- running


def run_case(case: Case, runs: int) -> None:
    """One untimed reel-tui rewind (creates the target), then ``runs`` alternating rounds."""
    log(f"{case.engine} {case.dump} {case.size_mb:g} MB: warm-up rewind")
    case.reel.run()
    case.reel.samples.clear()
    tools = case.tools()
    for i in range(runs):
        order = tools if i % 2 == 0 else tools[::-1]
        for tool in order:
            sample = tool.run()
            log(
                f"  run {i + 1}/{runs} {tool.name}: {sample.seconds:.2f} s, "
                f"{sample.max_rss_kb / 1024:.0f} MB"
            )
    expected = dumps.expected_counts(case.size_mb)
    wrong = [f"{tool.name}: {got}" for tool in tools if (got := tool.counts()) != expected]
    case.check = "ok" if not wrong else f"row counts differ from {expected}: " + "; ".join(wrong)
    if wrong:
        log(f"  CHECK FAILED: {case.check}")


def comparisons(cases: list[Case]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for case in cases:
        for ref in case.references:
            rows.append(
                {
                    "engine": case.engine,
                    "dump": case.dump,
                    "size_mb": case.size_mb,
                    "dump_mb": round(case.reel.dump.stat().st_size / 1e6, 1),
                    "reel_s": round(case.reel.median, 3),
                    "reference": ref.name,
                    "reference_dump_mb": round(ref.dump.stat().st_size / 1e6, 1),
                    "reference_s": round(ref.median, 3),
                    "ratio": round(case.reel.median / ref.median, 3),
                    "reel_peak_rss_mb": round(case.reel.peak_rss_mb, 1),
                    "reference_peak_rss_mb": round(ref.peak_rss_mb, 1),
                    "check": case.check,
                }
            )
    return rows


def print_table(rows: list[dict[str, object]], runs: int) -> None:
    header = (
        "engine",
        "dump",
        "size",
        "dump MB",
        "reel-tui s",
        "reference",
        "ref s",
        "ratio",
        "reel RSS",
    )
    body = [
        (
            str(r["engine"]),
            str(r["dump"]),
            f"{r['size_mb']:g} MB",
            f"{r['dump_mb']}",
            f"{r['reel_s']:.2f}",
            str(r["reference"]),
            f"{r['reference_s']:.2f}",
            f"{r['ratio']:.2f}x",
            f"{r['reel_peak_rss_mb']:.0f} MB",
        )
        for r in rows
    ]
    widths = [max(len(x[i]) for x in [header, *body]) for i in range(len(header))]
    right = {2, 3, 4, 6, 7, 8}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(
        f"\nmedians of {runs} alternating runs; ratio = reel-tui / reference "
        "(below 1: reel-tui is faster)"
    )
    print(line(header))
    print(line(tuple("-" * w for w in widths)))
    for cells in body:
        print(line(cells))
    for r in rows:
        if r["check"] != "ok":
            print(f"CHECK FAILED ({r['engine']} {r['dump']}): {r['check']}")


def machine(bench: Bench) -> dict[str, object]:
    mem = ""
    with contextlib.suppress(OSError):
        lines = Path("/proc/meminfo").read_text().splitlines()
        mem = next(
            (line.split(":")[1].strip() for line in lines if line.startswith("MemTotal")), ""
        )
    sqlite_version = subprocess.run(["sqlite3", "--version"], capture_output=True, text=True)
    import reel_tui

    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory": mem,
        "python": platform.python_version(),
        "reel_tui": reel_tui.__version__,
        "sqlite3": sqlite_version.stdout.split(" ")[0],
        **bench.versions,
    }


def parse_sizes(text: str) -> list[float]:
    sizes = [float(part) for part in text.split(",") if part.strip()]
    if not sizes or any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError("sizes are positive numbers of MB, e.g. 10,100")
    return sizes


def parse_engines(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    aliases = {"pg": "postgres", "postgresql": "postgres", "mariadb": "mysql"}
    names = [aliases.get(n, n) for n in names]
    unknown = [n for n in names if n not in ENGINES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"engines are {', '.join(ENGINES)}")
    return names


def reel_command() -> list[str]:
    script = Path(sys.executable).parent / "reel-tui"
    return [str(script)] if script.exists() else [sys.executable, "-m", "reel_tui"]


@contextmanager
def servers(bench: Bench, engines: list[str]) -> Iterator[None]:
    with ExitStack() as stack:
        if "postgres" in engines:
            bench.start_pg()
            stack.callback(lambda: bench.pg.stop() if bench.pg else None)
        if "mysql" in engines:
            bench.start_mysql()
            stack.callback(lambda: bench.my.stop() if bench.my else None)
        yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=[10.0],
        help="dump sizes in MB, comma-separated (default 10)",
    )
    parser.add_argument("--runs", type=int, default=3, help="timed runs per tool (default 3)")
    parser.add_argument(
        "--engines",
        type=parse_engines,
        default=list(ENGINES),
        help="comma-separated: sqlite,postgres,mysql (default all)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(
            os.environ.get("REEL_BENCH_CACHE") or Path(tempfile.gettempdir()) / "reel-tui-bench"
        ),
        help="where generated dumps are kept ($REEL_BENCH_CACHE, default <tmp>/reel-tui-bench)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=BENCH / "results.json",
        help="results file (default bench/results.json)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    cache = args.cache / f"v{datagen.GEN_VERSION}"
    started = time.time()
    load_before = os.getloadavg()
    cases: list[Case] = []
    with tempfile.TemporaryDirectory(prefix="reel-bench-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        bench = Bench(work, cache, reel_command())
        try:
            with servers(bench, args.engines):
                for size in args.sizes:
                    found: list[Case] = []
                    log(f"dumps of {size:g} MB (cached in {cache})")
                    if "sqlite" in args.engines:
                        found += bench.sqlite_cases(size)
                    if "postgres" in args.engines:
                        found += bench.pg_cases(size)
                    if "mysql" in args.engines:
                        found += bench.mysql_cases(size)
                    bench.write_config()
                    for case in found:
                        run_case(case, args.runs)
                    cases += found
        except ChildFailed as exc:
            log(f"a timed command failed: {exc}")
            return 1
        info = machine(bench)

    rows = comparisons(cases)
    print_table(rows, args.runs)
    load_after = os.getloadavg()
    print(
        f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        f"on {info['cpus']} CPUs; wall time {time.time() - started:.0f} s"
    )
    result = {
        "version": 1,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "runs": args.runs,
        "sizes_mb": args.sizes,
        "engines": args.engines,
        "machine": info,
        "load_average": {"before": load_before, "after": load_after},
        "comparisons": rows,
        "cases": [
            {
                "engine": c.engine,
                "dump": c.dump,
                "size_mb": c.size_mb,
                "check": c.check,
                "tools": [t.to_json() for t in c.tools()],
            }
            for c in cases
        ],
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"written {args.out}")
    return 0 if all(c.check == "ok" for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
