"""Benchmark reel-tui's headless rewinds, cold and warm, side by side with the other tools.

    .venv/bin/python bench/run.py [--sizes 10,100] [--runs 5] [--engines sqlite,postgres,mysql]

Makes synthetic dumps (cached), starts throwaway PostgreSQL / MariaDB servers
in temporary folders (the test suite's, never a server already running), then
for every dump times the whole ``reel-tui --rewind -q`` process, cold (no
cache) and warm (a cached copy of the dump, with and without a ready spare),
beside the engine's own client, DSLR (in a throwaway venv) and the server's
floors, alternating runs. Prints medians, ratios, peak RSS and issue 6's
targets with pass/fail; writes bench/results.json and bench/results.png.
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
import reel_jobs  # noqa: E402
import report  # noqa: E402
import toolenv  # noqa: E402
from measure import ChildFailed, Sample, timed  # noqa: E402

if TYPE_CHECKING:
    from mysql_server import MysqlServer
    from pg_server import PgServer

ENGINES = ("sqlite", "postgres", "mysql")
REEL_TARGET = "bench_reel"
WARM_TARGET = "bench_warm"
INSERTS_MAX_MB = 100.0
"""``psql -f`` of a one-INSERT-per-row dump takes minutes per 100 MB: larger sizes are opt-in."""
PG_PASSWORD_ENV = "REEL_BENCH_PGPASSWORD"
MY_PASSWORD_ENV = "REEL_BENCH_MYPASSWORD"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Tool:
    """One timed command on a dump: what to do before each run (untimed), and checks.

    ``role`` says what it is (see bench/report.py); ``after`` reads how a
    reel-tui run went from its job log (cold, warm from the spare, …).
    """

    name: str
    argv: list[str]
    env: dict[str, str]
    dump: Path
    role: str = "reference"
    stdin: bool = False
    prepare: Callable[[], None] = lambda: None
    counts: Callable[[], dict[str, int]] | None = None
    after: Callable[[], str] | None = None
    expect: str | None = None
    """For a warm row: the start of the note every run must have for its median to count."""
    job_seconds: Callable[[], float | None] | None = None
    """For reel-tui: the last job's own duration from its log (no start-up, no imports)."""
    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    jobs: list[float | None] = field(default_factory=list)

    def run(self) -> Sample:
        self.prepare()
        sample = timed(self.argv, self.env, self.dump if self.stdin else None)
        self.samples.append(sample)
        if self.after is not None:
            self.notes.append(self.after())
        if self.job_seconds is not None:
            self.jobs.append(self.job_seconds())
        return sample

    def forget(self) -> None:
        self.samples.clear()
        self.notes.clear()
        self.jobs.clear()

    @property
    def usable(self) -> bool:
        return bool(self.samples) and (
            self.expect is None or all(n.startswith(self.expect) for n in self.notes)
        )

    @property
    def median(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def peak_rss_mb(self) -> float:
        return max(s.max_rss_kb for s in self.samples) / 1024

    def to_json(self) -> dict[str, object]:
        return {
            "tool": self.name,
            "role": self.role,
            "dump_file": self.dump.name,
            "seconds": [round(s.seconds, 4) for s in self.samples],
            "median_s": round(self.median, 4) if self.samples else None,
            "usable": self.usable,
            "notes": list(self.notes),
            "job_seconds": list(self.jobs),
            "max_rss_kb": [s.max_rss_kb for s in self.samples],
            "peak_rss_mb": round(self.peak_rss_mb, 1) if self.samples else None,
            "rss_exact": all(s.rss_exact for s in self.samples),
        }


@dataclass
class Case:
    """The commands compared on one dump (some read another format of it), run alternately.

    ``warmups`` run once, in order, before the timed rounds (the first makes the
    target, a warm app's first rewind makes its cached copy); ``setup`` then
    makes what the other commands start from (a DSLR snapshot, a template).
    """

    engine: str
    dump: str
    size_mb: float
    tools: list[Tool]
    warmups: list[Tool] = field(default_factory=list)
    setup: Callable[[], None] = lambda: None
    cleanup: Callable[[], None] = lambda: None
    first: Tool | None = None
    check: str = ""

    def to_json(self) -> dict[str, object]:
        tools = [t for t in [*self.tools, self.first] if t is not None and t.samples]
        return {
            "engine": self.engine,
            "dump": self.dump,
            "size_mb": self.size_mb,
            "dump_mb": round(self.tools[0].dump.stat().st_size / 1e6, 1),
            "check": self.check,
            "tools": [t.to_json() for t in tools],
        }


# ---------------------------------------------------------------- engines


class Bench:
    """The throwaway servers, reel-tui's config and state, and the cases for each engine.

    Every engine gets two reel-tui apps: a *cold* one (``cache_copies = 0``, so
    every rewind loads the dump) on ``bench_reel``, and a *warm* one (default
    cache settings) on ``bench_warm``, whose first rewind keeps a cached copy.
    """

    def __init__(self, work: Path, cache: Path, reel_exe: list[str],
                 tools: toolenv.ToolEnv | None) -> None:  # fmt: skip
        self.work = work
        self.cache = cache
        self.reel_exe = reel_exe
        self.tools = tools
        self.config = work / "reel.toml"
        self.apps: dict[str, str] = {}
        # Timed as installed: pip writes bytecode at install; a PYTHONDONTWRITEBYTECODE
        # inherited from the shell would make every run compile reel-tui from source.
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "reel_tui")],
                       check=False, env=self.env, stdout=subprocess.DEVNULL)  # fmt: skip
        self.jobs = reel_jobs.ReelJobs(work / "state")
        self.pg: PgServer | None = None
        self.my: MysqlServer | None = None
        self.versions: dict[str, str] = {}
        self.inserts_max = INSERTS_MAX_MB

    def write_config(self) -> None:
        text = f'[reel]\nstate_dir = "{self.work / "state"}"\n'
        for name, body in self.apps.items():
            text += f"\n[{name}]\n{body}"
        self.config.write_text(text, encoding="utf-8")
        os.chmod(self.config, 0o600)

    def reel_tool(self, app: str, dump: Path, role: str,
                  counts: Callable[[], dict[str, int]] | None = None) -> Tool:  # fmt: skip
        argv = [*self.reel_exe, "-c", str(self.config), "--rewind", app, "--source", dump.name,
                "-q"]  # fmt: skip
        names = {"cold": "reel-tui cold", "warm": "reel-tui warm",
                 "warm-no-spare": "reel-tui warm, no spare ready",
                 "first": "reel-tui first rewind, cache on"}  # fmt: skip
        expect = {"warm": "warm", "warm-no-spare": "warm"}.get(role)
        return Tool(names[role], argv, self.env, dump, role=role, counts=counts,
                    after=self.jobs.after_run, expect=expect,
                    job_seconds=lambda: self.jobs.last_job_seconds)  # fmt: skip

    def reel_pair(self, app: str, dump: Path,
                  counts: Callable[[str], Callable[[], dict[str, int]]],
                  cold_target: str, warm_target: str) -> tuple[Tool, Tool, Tool]:  # fmt: skip
        """The cold row, the warm row, and the warm app's first rewind (makes the copy)."""
        cold = self.reel_tool(app, dump, "cold", counts(cold_target))
        warm = self.reel_tool(f"{app}_warm", dump, "warm", counts(warm_target))
        first = self.reel_tool(f"{app}_warm", dump, "first")
        return cold, warm, first

    @staticmethod
    def app_body(lines: dict[str, object]) -> str:
        def value(v: object) -> str:
            return str(v) if isinstance(v, int) else f'"{v}"'

        return "".join(f"{k} = {value(v)}\n" for k, v in lines.items())

    def add_apps(self, name: str, common: dict[str, object], cold_target: str,
                 warm_target: str, key: str = "database") -> None:  # fmt: skip
        """The cold app (no cache) and the warm app (default cache) of one engine."""
        self.apps[name] = self.app_body({**common, key: cold_target, "cache_copies": 0})
        self.apps[f"{name}_warm"] = self.app_body({**common, key: warm_target})

    # -- SQLite

    def sqlite_cases(self, size: float) -> list[Case]:
        made = dumps.sqlite_dumps(self.cache, size)
        dump = made["sqlite3 .dump"]
        cold_db, warm_db = self.work / "reel-target.sqlite3", self.work / "reel-warm.sqlite3"
        self.add_apps("sq", {"dbdriver": "sqlite", "dbsources": str(dump.parent)},
                      str(cold_db), str(warm_db))  # fmt: skip
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
        cold, warm, first = self.reel_pair(
            "sq", dump, lambda t: lambda: sqlite_counts(Path(t)), str(cold_db), str(warm_db)
        )
        no_spare = self.reel_tool("sq_warm", dump, "warm-no-spare",
                                  lambda: sqlite_counts(warm_db))  # fmt: skip
        no_spare.expect = "warm: no spare"
        warm.expect = "warm: took the ready spare"
        warm.prepare = lambda: sqlite_check_spare(warm_db)
        no_spare.prepare = lambda: sqlite_drop_spares(warm_db)
        return [Case("sqlite", "sqlite3 .dump", size, [cold, warm, no_spare, reference],
                     warmups=[cold, first], first=first)]  # fmt: skip

    # -- PostgreSQL

    def start_pg(self) -> None:
        import pg_server

        log("starting a throwaway PostgreSQL server")
        self.pg = pg_server.start_server()
        self.env[PG_PASSWORD_ENV] = self.pg.password
        self.versions["postgres"] = str(self.pg.execute("SHOW server_version")[0][0])

    def pg_cases(self, size: float) -> list[Case]:
        pg = self.pg
        assert pg is not None
        made = dumps.pg_dumps(self.cache, size, pg)
        self.add_apps("pg", {"dbdriver": "postgres", "dbserver": pg.host, "dbport": pg.port,
                             "dbuser": pg.user, "dbpassword_env": PG_PASSWORD_ENV,
                             "dbsources": str(made["pg_dump"].parent)},
                      REEL_TARGET, WARM_TARGET)  # fmt: skip
        env = pg.env()
        counts = pg_counter(pg)

        def psql(dump: Path, db: str) -> Tool:
            argv = ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-q", "-d", db, "-f", str(dump)]
            return Tool("psql -f", argv, env, dump, prepare=pg_fresh(pg, db), counts=counts(db))

        custom = made["pg_dump -Fc"]
        restore = Tool(
            "pg_restore -j2 (custom)",
            ["pg_restore", "-j2", "--exit-on-error", "-d", "ref_restore", str(custom)],
            env,
            custom,
            prepare=pg_fresh(pg, "ref_restore"),
            counts=counts("ref_restore"),
        )
        plain, inserts = made["pg_dump"], made["pg_dump --inserts"]
        cold, warm, first = self.reel_pair("pg", plain, counts, REEL_TARGET, WARM_TARGET)
        no_spare = self.reel_tool("pg_warm", plain, "warm-no-spare", counts(WARM_TARGET))
        no_spare.expect = "warm: no spare"
        warm.expect = "warm: took the ready spare"
        warm.prepare = lambda: pg_check_spare(pg, WARM_TARGET)
        no_spare.prepare = lambda: pg_drop_spares(pg, WARM_TARGET)
        extra = pg_side_tools(pg, self.tools, plain, self.work)
        found = [
            Case("postgres", "pg_dump", size,
                 [cold, warm, no_spare, psql(plain, "ref_psql"), restore, *extra.tools],
                 warmups=[cold, first], setup=extra.setup, cleanup=extra.cleanup,
                 first=first),
        ]  # fmt: skip
        if size <= self.inserts_max:
            inserts_cold = self.reel_tool("pg", inserts, "cold", counts(REEL_TARGET))
            found.append(Case("postgres", "pg_dump --inserts", size,
                              [inserts_cold, psql(inserts, "ref_psql_inserts")],
                              warmups=[inserts_cold]))  # fmt: skip
        return found

    # -- MySQL / MariaDB

    def start_mysql(self) -> None:
        import mysql_server

        log("starting a throwaway MariaDB server")
        self.my = mysql_server.start_server()
        self.env[MY_PASSWORD_ENV] = self.my.password
        self.versions["mariadb"] = str(self.my.execute("SELECT VERSION()")[0][0])

    def mysql_cases(self, size: float) -> list[Case]:
        my = self.my
        assert my is not None
        dump = dumps.mysql_dumps(self.cache, size, my)["mysqldump"]
        self.add_apps("my", {"dbdriver": "mariadb", "dbserver": my.host, "dbport": my.port,
                             "dbuser": my.user, "dbpassword_env": MY_PASSWORD_ENV,
                             "dbsources": str(dump.parent)},
                      REEL_TARGET, WARM_TARGET)  # fmt: skip

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
        cold, warm, first = self.reel_pair("my", dump, counts, REEL_TARGET, WARM_TARGET)
        return [Case("mysql", "mysqldump", size, [cold, warm, reference],
                     warmups=[cold, first], first=first)]  # fmt: skip


# ---------------------------------------------------------------- PostgreSQL side tools


def pg_counter(pg: PgServer) -> Callable[[str], Callable[[], dict[str, int]]]:
    def counts(db: str) -> Callable[[], dict[str, int]]:
        return lambda: {
            t: int(pg.execute(f"SELECT count(*) FROM {t}", db)[0][0])
            for t in ("customers", "orders")
        }

    return counts


def pg_fresh(pg: PgServer, db: str) -> Callable[[], None]:
    def make() -> None:
        pg.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        pg.execute(f'CREATE DATABASE "{db}" TEMPLATE template0')

    return make


def pg_like(pg: PgServer, pattern: str) -> list[str]:
    rows = pg.execute(f"SELECT datname FROM pg_database WHERE datname LIKE '{pattern}'")
    return sorted(str(row[0]) for row in rows)


def pg_spares(pg: PgServer, target: str) -> list[str]:
    return pg_like(pg, target.replace("_", "\\_") + "\\_\\_reel\\_spare\\_%")


def sqlite_spares(target: Path) -> list[Path]:
    return sorted((target.parent / f".{target.name}.reel-cache").glob("*.spare.sqlite3"))


def sqlite_check_spare(target: Path) -> None:
    """Before a warm run: the spare the background made must be there (else it is noted)."""
    if not sqlite_spares(target):
        log(f"  no spare of {target.name} after the background work: this run copies")


def sqlite_drop_spares(target: Path) -> None:
    """Before a "no spare" run: remove the ready spares, as if rewinding again at once
    (the backup-API copy, as when the application has the database open)."""
    for spare in sqlite_spares(target):
        spare.unlink()


def pg_check_spare(pg: PgServer, target: str) -> None:
    """Before a warm run: the spare the background made must be there (else it is noted)."""
    if not pg_spares(pg, target):
        log(f"  no spare of {target} after the background work: this run clones")


def pg_drop_spares(pg: PgServer, target: str) -> None:
    """Before a "no spare" run: drop the ready spares, as if rewinding again at once."""
    for name in pg_spares(pg, target):
        pg.execute(f'DROP DATABASE IF EXISTS "{name}"')


@dataclass
class SideTools:
    """DSLR and the server's floors for one PostgreSQL case."""

    tools: list[Tool]
    setup: Callable[[], None]
    cleanup: Callable[[], None]


FLOOR_TEMPLATE = "bench_floor_tpl"
FLOOR_COPY = "bench_floor_copy"
FLOOR_TARGET = "bench_floor_target"
FLOOR_READY = "bench_floor_ready"
FLOOR_OLD = "bench_floor_old"
DSLR_SNAPSHOT = "reelbench"


def pg_passfile(pg: PgServer, work: Path) -> Path:
    """A libpq password file for the throwaway server, readable by this user only."""
    path = work / "pgpass"

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace(":", "\\:")

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(f"{pg.host}:{pg.port}:*:{escape(pg.user)}:{escape(pg.password)}\n")
    return path


def pg_side_tools(pg: PgServer, tools: toolenv.ToolEnv | None, dump: Path, work: Path) -> SideTools:
    """DSLR's snapshot and restore of reel-tui's cold target, and the raw floors: a clone
    with ``STRATEGY FILE_COPY`` and renaming a ready copy into place (dropping the old).

    DSLR reaches the server through ``DATABASE_URL`` without a password, never
    argv. It passes ``password=""`` to libpq, which then ignores ``PGPASSWORD``
    but reads a password file: a 0600 one in the work folder, named by ``PGPASSFILE``.
    """
    env = pg.env()
    counts = pg_counter(pg)
    strategy = " STRATEGY FILE_COPY" if pg.version >= 150000 else ""
    psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres"]

    def drop(name: str) -> None:
        pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def clone(name: str) -> None:
        drop(name)
        pg.execute(f'CREATE DATABASE "{name}" TEMPLATE "{FLOOR_TEMPLATE}"')

    def ready_to_rename() -> None:
        drop(FLOOR_OLD)
        if not pg_like(pg, FLOOR_TARGET):
            clone(FLOOR_TARGET)
        clone(FLOOR_READY)

    found = [
        Tool(f"CREATE DATABASE … TEMPLATE{strategy}",
             [*psql, "-c", f'CREATE DATABASE "{FLOOR_COPY}" TEMPLATE "{FLOOR_TEMPLATE}"{strategy}'],
             env, dump, role="floor", prepare=lambda: drop(FLOOR_COPY)),
        Tool("rename a ready copy in, drop the old",
             [*psql, "-c", f'ALTER DATABASE "{FLOOR_TARGET}" RENAME TO "{FLOOR_OLD}"',
              "-c", f'ALTER DATABASE "{FLOOR_READY}" RENAME TO "{FLOOR_TARGET}"',
              "-c", f'DROP DATABASE "{FLOOR_OLD}"'],
             env, dump, role="floor", prepare=ready_to_rename, counts=counts(FLOOR_TARGET)),
    ]  # fmt: skip
    dslr_env = {
        **env,
        "DATABASE_URL": f"postgres://{pg.user}@{pg.host}:{pg.port}/{REEL_TARGET}",
        "PGPASSFILE": str(pg_passfile(pg, work)),
    }

    def drop_snapshots() -> None:
        for name in pg_like(pg, "dslr\\_%"):
            drop(name)

    if tools is not None:
        dslr = [str(tools.dslr)]

        def snapshot_once() -> None:
            if not pg_like(pg, f"dslr\\_%\\_{DSLR_SNAPSHOT}"):
                timed([*dslr, "snapshot", "-y", DSLR_SNAPSHOT], dslr_env)

        found += [
            Tool("dslr restore", [*dslr, "restore", DSLR_SNAPSHOT], dslr_env, dump,
                 role="snapshot-restore", prepare=snapshot_once, counts=counts(REEL_TARGET)),
            Tool("dslr snapshot", [*dslr, "snapshot", "-y", DSLR_SNAPSHOT], dslr_env, dump,
                 role="snapshot", prepare=drop_snapshots),
        ]  # fmt: skip

    def setup() -> None:
        drop(FLOOR_TEMPLATE)
        pg.execute(f'CREATE DATABASE "{FLOOR_TEMPLATE}" TEMPLATE "{REEL_TARGET}"')

    def cleanup() -> None:
        for name in (FLOOR_TEMPLATE, FLOOR_COPY, FLOOR_TARGET, FLOOR_READY, FLOOR_OLD):
            drop(name)
        drop_snapshots()

    return SideTools(found, setup, cleanup)


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


def run_case(case: Case, runs: int, jobs: reel_jobs.ReelJobs) -> None:
    """Warm-ups and setup (untimed), then ``runs`` rounds of every command, alternating
    the order (``a, b, c`` then ``c, b, a``) so that drift in the machine's load hits all.

    Before every command, reel-tui's background work from earlier runs is waited
    for: a user who rewinds again minutes later finds it done.
    """
    where = f"{case.engine} {case.dump} {case.size_mb:g} MB"
    for tool in case.warmups:
        jobs.quiesce()
        sample = tool.run()
        log(f"{where}: untimed {tool.name}: {sample.seconds:.2f} s ({tool.notes[-1:]})")
        if tool is not case.first:
            tool.forget()
    jobs.quiesce()
    case.setup()
    skipped: set[int] = set()
    for i in range(runs):
        order = case.tools if i % 2 == 0 else case.tools[::-1]
        for tool in order:
            if id(tool) in skipped:
                continue
            waited = jobs.quiesce()
            sample = tool.run()
            how = f" [{tool.notes[-1]}]" if tool.notes else ""
            log(
                f"  run {i + 1}/{runs} {tool.name}: {sample.seconds:.3f} s, "
                f"{sample.max_rss_kb / 1024:.0f} MB{how}"
                + (f" (waited {waited:.1f} s for background work)" if waited > 0.5 else "")
            )
            if tool.expect is not None and not tool.notes[-1].startswith("warm"):
                log(f"  {tool.name} used no cached copy: the row is n/a, not run again")
                skipped.add(id(tool))
    jobs.quiesce()
    expected = dumps.expected_counts(case.size_mb)
    wrong = [f"{tool.name}: {got}" for tool in case.tools
             if tool.counts is not None and (got := tool.counts()) != expected]  # fmt: skip
    case.check = "ok" if not wrong else f"row counts differ from {expected}: " + "; ".join(wrong)
    if wrong:
        log(f"  CHECK FAILED: {case.check}")
    case.cleanup()


def render_chart(tools: toolenv.ToolEnv | None, results: Path, png: Path) -> None:
    """The PNG, drawn by the tools venv's matplotlib (reel-tui's own venv has none)."""
    if tools is None:
        log("no tools venv: no chart (run bench/chart.py with matplotlib installed)")
        return
    done = subprocess.run([str(tools.python), str(BENCH / "chart.py"), str(results), str(png)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        log(f"the chart failed: {done.stderr.strip()[-1500:]}")
    else:
        print(f"written {png}")


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
        **({"dslr": bench.tools.version("dslr")} if bench.tools else {}),
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
    parser.add_argument(
        "--inserts-max",
        type=float,
        default=INSERTS_MAX_MB,
        help=f"largest size for the pg_dump --inserts case (default {INSERTS_MAX_MB:g} MB)",
    )
    parser.add_argument(
        "--chart",
        type=Path,
        default=BENCH / "results.png",
        help="chart file (default bench/results.png)",
    )
    parser.add_argument(
        "--editable",
        action="store_true",
        help="time the project's own (editable) reel-tui instead of a fresh `pip install .`",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    cache = args.cache / f"v{datagen.GEN_VERSION}"
    tools = toolenv.ensure(args.cache, log)
    started = time.time()
    load_before = os.getloadavg()
    cases: list[Case] = []
    with tempfile.TemporaryDirectory(prefix="reel-bench-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        reel_exe = (reel_command() if args.editable
                    else toolenv.install_reel(ROOT, work / "reel-venv", log))  # fmt: skip
        bench = Bench(work, cache, reel_exe, tools)
        bench.inserts_max = args.inserts_max
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
                        run_case(case, args.runs, bench.jobs)
                    cases += found
                info = machine(bench)
        except (ChildFailed, reel_jobs.BackgroundTimeout) as exc:
            log(f"a timed command failed: {exc}")
            return 1

    load_after = os.getloadavg()
    case_rows = [c.to_json() for c in cases]
    result = {
        "version": 2,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "runs": args.runs,
        "sizes_mb": args.sizes,
        "engines": args.engines,
        "machine": info,
        "load_average": {"before": load_before, "after": load_after},
        "wall_time_s": round(time.time() - started),
        "comparisons": report.comparisons(case_rows),
        "targets": [t.__dict__ for t in report.targets(case_rows)],
        "cases": case_rows,
    }
    report.print_all(result)
    print(
        f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        f"on {info['cpus']} CPUs; wall time {result['wall_time_s']} s"
    )
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"written {args.out}")
    render_chart(tools, args.out, args.chart)
    return 0 if all(c.check == "ok" for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
