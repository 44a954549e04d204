"""``reel-tui``: the headless face (cron, scripts, CI) over the same core as the TUI.

Exit codes: 0 success; 1 the rewind failed (database unchanged), or an after-hook
failed (database rewound: error_code ``after-hook``); 2 refused
before anything started; 130 / 143 cancelled by SIGINT / SIGTERM.

rich is imported only where it draws (a progress bar or a table, colour on a
terminal): a cron line, ``-q`` or ``--json`` starts without it
(tests/test_import_hygiene.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import closing, suppress
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, NoReturn

from reel_tui import __version__
from reel_tui.cache import UNDO_KEY, SnapshotNameError, snapshot_name
from reel_tui.config import AppConfig, Config, ConfigError, find_config, load_config
from reel_tui.engines import RewindError
from reel_tui.history import HistoryError, HistoryStore, default_state_dir
from reel_tui.hooks import Hook
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import EVENT_FORMAT_VERSION, JobState
from reel_tui.listing import source_entries
from reel_tui.plan import Refused, RewindPlan, only_app, pick_app, plan_rewind, plan_snapshot
from reel_tui.reporters import JsonReporter, PlainReporter, Reporter, RichReporter, human_size

if TYPE_CHECKING:
    from rich.console import Console

    from reel_tui.api.serve import ApiSocket


EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2
API_KEYS = frozenset({"api_listen", "token", "token_env", "api_get_rewind"})
"""``[reel]`` keys the API reads: an error in one stops the TUI from serving, not from opening."""
REFUSED_CODES = {"refused", "lock-timeout"}


class _Refusal(Exception):
    """Stop the command with one line on stderr and exit code 2."""


class _Stderr:
    """Messages on stderr: coloured by rich on a terminal, plain lines elsewhere.

    Off a terminal rich would write the same plain line, so cron and scripts get
    it without paying for importing rich. Text is printed literally either way.
    """

    def print(self, text: str, style: str) -> None:
        if _styles(sys.stderr):
            from rich.console import Console

            Console(stderr=True, highlight=False, soft_wrap=True, emoji=False).print(
                text, markup=False, style=style
            )
        else:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()


def _styles(stream: IO[str]) -> bool:
    """Whether rich would style output to ``stream``: its TTY_COMPATIBLE / FORCE_COLOR /
    isatty rule, so forcing colour in CI still works."""
    forced = os.environ.get("TTY_COMPATIBLE", "")
    if forced in ("0", "1"):
        return forced == "1"
    if "FORCE_COLOR" in os.environ:
        return os.environ["FORCE_COLOR"] != ""
    try:
        return stream.isatty()
    except ValueError:  # closed
        return False


class _OneLineParser(argparse.ArgumentParser):
    """Usage mistakes are one line on stderr and exit code 2, like every refusal."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_REFUSED, f"reel-tui: {message} (see reel-tui --help)\n")


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    return value


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, sized without importing shutil: argparse makes one at
    every ``add_argument``, and shutil loads bz2 and lzma, paid by every warm rewind."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:  # fmt: skip
        if width is None:
            width = _terminal_columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


def _terminal_columns() -> int:
    """What ``shutil.get_terminal_size`` says: $COLUMNS, else the terminal's, else 80."""
    with suppress(ValueError):
        if int(os.environ.get("COLUMNS", "0")) > 0:
            return int(os.environ["COLUMNS"])
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="reel-tui",
        formatter_class=_Formatter,
        description="Rewind an application's database to a known state from dump files.",
        epilog="Exit codes: 0 ok, 1 rewind failed (database unchanged) or an after-hook "
        "failed (database rewound), 2 refused, "
        "130/143 cancelled by SIGINT/SIGTERM.",
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        help="config file (default: $REEL_CONFIG, ./reel.toml, user config)",
    )
    parser.add_argument("--version", action="version", version=f"reel-tui {__version__}")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--list", action="store_true", help="list apps and their sources")
    action.add_argument("--rewind", action="store_true", help="rewind APP from a source")
    action.add_argument("--history", action="store_true", help="list past jobs")
    action.add_argument("--log", metavar="JOB_ID", type=int, help="print one job's full log")
    action.add_argument("--metrics", action="store_true", help="per-app run figures")
    action.add_argument(
        "--serve",
        action="store_true",
        help="serve the HTTP API (rewind, jobs, metrics) until SIGINT/SIGTERM",
    )
    action.add_argument(
        "--clear-cache", action="store_true", help="drop the cached copies of APP (default: all)"
    )
    action.add_argument(
        "--snapshot",
        metavar="NAME",
        help="keep APP's current state as snapshot NAME (then: --source @NAME)",
    )
    action.add_argument(
        "--undo",
        action="store_true",
        help="swap back the state APP's last rewind replaced (again: redo)",
    )
    action.add_argument("--delete-snapshot", metavar="NAME", help="delete APP's snapshot NAME")
    action.add_argument(
        "--rename-snapshot",
        nargs=2,
        metavar=("OLD", "NEW"),
        help="rename APP's snapshot OLD to NEW",
    )
    parser.add_argument(
        "app", nargs="?", metavar="APP", help="app to rewind (default: [reel] default_app)"
    )
    parser.add_argument("--source", metavar="NAME", help="source to rewind to (default: dbsource)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    parser.add_argument(
        "--dry-run", action="store_true", help="check config, source and connection; change nothing"
    )
    parser.add_argument(
        "--wait",
        type=_seconds,
        metavar="SECONDS",
        help="longest wait for another rewind of the same database",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow rewinding a database that is not on this machine",
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="serve the HTTP API here: with --serve, or alone to open the TUI and serve "
        "beside it (default: [reel] api_listen, else 127.0.0.1:7999 for --serve; off "
        "loopback a token is required)",
    )
    parser.add_argument(
        "--limit", type=int, default=30, metavar="N", help="jobs shown by --history (default 30)"
    )
    parser.add_argument(
        "--all", action="store_true",
        help="--history: also the jobs of apps not in this config (a shared state folder)",
    )  # fmt: skip
    return parser  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    err = _Stderr()
    try:
        snapshots = (args.snapshot, args.delete_snapshot, args.rename_snapshot)
        actions = (args.list, args.rewind, args.history, args.metrics, args.clear_cache,
                   args.undo, args.serve, *(value is not None for value in snapshots))  # fmt: skip
        others = (any(actions) and not args.serve) or args.log is not None
        if args.listen is not None and others:
            raise _Refusal("--listen goes with --serve, or alone (the TUI serves the API)")
        if not any(actions) and args.log is None:
            return _tui(args)
        if args.serve:
            config = _load(args, err)
            _print_problems(config, args, err)
            with closing(_history_store(config)) as state:
                return _serve(config, state, args)
        if args.list or args.rewind or args.clear_cache or args.undo or any(snapshots):
            config = _load(args, err)
            if args.list:
                return _list(config, args)
            if args.clear_cache:
                return _clear_cache(config, args, err)
            if args.delete_snapshot is not None or args.rename_snapshot is not None:
                return _edit_snapshot(config, args, err)
            with closing(_history_store(config)) as state:
                return _rewind(config, state, args, err)
        config = _load_if_any(args, err)
        with closing(_history_store(config)) as state:
            if args.history:
                return _history(state, args, config)
            if args.metrics:
                return _metrics(state, args)
            return _log(state, args.log)
    except (_Refusal, ConfigError, HistoryError, Refused) as exc:
        if args.json:
            print(json.dumps({"v": EVENT_FORMAT_VERSION, "event": "refused", "error": str(exc)}))
        err.print(f"reel-tui: {exc}", style="red")
        return EXIT_REFUSED


def _tui(args: argparse.Namespace) -> int:
    """Open the TUI; config problems are shown inside it, not here. Serving the API beside
    it (``--listen``, ``[reel] api_listen``) is checked and its port bound first: a refusal
    is one line on a terminal the TUI has not taken yet."""
    if not sys.stdout.isatty() or not sys.stdin.isatty():
        if args.listen is not None:
            raise _Refusal("the TUI needs a terminal: --serve serves the API without it")
        raise _Refusal("the TUI needs a terminal: use --list or --rewind in scripts (see --help)")
    path = find_config(args.config)
    api = _tui_api(path, args)
    from reel_tui.tui.app import run_tui

    return run_tui(path, api)


def _tui_api(path: Path, args: argparse.Namespace) -> ApiSocket | None:
    """The bound API socket the TUI is to serve on; None when nothing asks for it."""
    try:
        config = load_config(path)
    except ConfigError:
        if args.listen is not None:
            raise
        return None  # the TUI says what is wrong with the file
    fatal = [p for p in config.errors if p.app is None and p.key in API_KEYS]
    if fatal and (args.listen is not None or "api_listen" in {p.key for p in fatal}
                  or config.settings.api_listen):  # fmt: skip
        raise _Refusal(str(fatal[0]))
    if args.listen is None and config.settings.api_listen is None:
        return None
    listen = args.listen or config.settings.api_listen or ""
    try:
        from reel_tui.api.serve import ApiSocket, ApiStartError, bind_listen
    except ImportError as exc:
        raise _Refusal(f"serving the API needs aiohttp ({exc}): pip install aiohttp") from None
    try:
        return ApiSocket(listen, bind_listen(config, listen), args.allow_remote)
    except ApiStartError as exc:
        raise _Refusal(_named_listen(str(exc), config, args)) from None


def _named_listen(message: str, config: Config, args: argparse.Namespace) -> str:
    """An API start refusal naming where its address came from: the config's api_listen
    (file and line) when ``--listen`` did not give one."""
    if args.listen is not None or not message.startswith("--listen "):
        return message
    line = config.line_of("reel", "api_listen")
    where = f"{config.path}:{line}" if line else str(config.path)
    return f"{where}: [reel] api_listen {message.removeprefix('--listen ')}"


def _load(args: argparse.Namespace, err: _Stderr) -> Config:
    """Load the config; print the problems that matter to this command.

    Errors in ``[reel]`` concern every app, so they stop the command. A rewind
    prints its warnings only once its plan has passed (:func:`_print_problems`),
    so a refusal is exactly one line; its own app's errors come back as the refusal.
    """
    config = load_config(find_config(args.config))
    fatal = [p for p in config.errors if p.app is None]
    if fatal:
        raise _Refusal(str(fatal[0]))
    if not args.rewind:
        _print_problems(config, args, err)
    return config


def _print_problems(config: Config, args: argparse.Namespace, err: _Stderr) -> None:
    """The config's problems on stderr; for a rewind only the warnings of its own app and of
    the whole file (a cron line should not mail about other apps)."""
    target = (args.app or config.settings.default_app or only_app(config)) if args.rewind else None
    for problem in config.problems:
        if args.quiet or (args.rewind and problem.app not in (None, target)):
            continue
        if args.rewind and problem.severity == "error":
            continue
        err.print(f"{problem.severity}: {problem}",
                  style="yellow" if problem.severity == "warning" else "red")  # fmt: skip


def _load_if_any(args: argparse.Namespace, err: _Stderr) -> Config | None:
    """The config for commands that only read the history: none found is fine."""
    try:
        return _load(args, err)
    except ConfigError:
        if args.config or os.environ.get("REEL_CONFIG"):
            raise
        return None


def _state_dir(config: Config | None) -> Path:
    if config is None or config.settings.state_dir is None:
        return default_state_dir()
    return config.settings.state_dir


def _history_store(config: Config | None) -> HistoryStore:
    if config is None:
        return HistoryStore(_state_dir(None))
    return HistoryStore(_state_dir(config), config.settings.history_limit)


def _rewind(config: Config, state: HistoryStore, args: argparse.Namespace, err: _Stderr) -> int:
    """A job: a rewind, an undo (a rewind to ``@undo``) or taking a snapshot."""
    if args.snapshot is not None:
        plan = plan_snapshot(config, args.app, args.snapshot, allow_remote=args.allow_remote)
    else:
        source = f"@{UNDO_KEY}" if args.undo else args.source
        plan = plan_rewind(config, args.app, source, allow_remote=args.allow_remote)
    _print_problems(config, args, err)
    if args.dry_run:
        return _dry_run(plan, args, err)
    reporter = _reporter(args)
    queue = JobQueue(state, workers=1, detach_maintenance=True)
    queue.subscribe(reporter)
    signals: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signals.append(signum)  # only a note: the loop below cancels (handlers can re-enter)

    job = queue.submit(plan, wait=args.wait)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        cancelled = False
        while not queue.wait(job, timeout=0.1):
            if signals and not cancelled:
                cancelled = queue.cancel(job.id) or True
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        reporter.close()
        queue.shutdown(cancel=True)
    if job.state is JobState.FAILED:  # also on stderr, where cron and scripts look
        err.print(f"reel-tui: {job.app}: {job.error}", style="red")
    return _exit_code(job.state, job.error_code, signals)


def _serve(config: Config, state: HistoryStore, args: argparse.Namespace) -> int:
    """The HTTP API, headless; aiohttp is imported only here, never by ``--rewind``."""
    try:
        from reel_tui.api.serve import DEFAULT_LISTEN, ApiStartError, serve_headless
    except ImportError as exc:
        raise _Refusal(f"--serve needs aiohttp ({exc}): pip install aiohttp") from None
    listen = args.listen or config.settings.api_listen or DEFAULT_LISTEN
    try:
        return serve_headless(config, state, listen,
                              allow_remote=args.allow_remote, quiet=args.quiet,
                              say=lambda line: print(line, flush=True))  # fmt: skip
    except ApiStartError as exc:
        raise _Refusal(_named_listen(str(exc), config, args)) from None


def _dry_run(plan: RewindPlan, args: argparse.Namespace, err: _Stderr) -> int:
    """Check the target and say what a rewind would do; change nothing."""
    try:
        found, error = plan.engine.check(), None
    except RewindError as exc:
        found, error = None, str(exc)
    hooks = _hook_lines(plan.app)
    if args.json:
        print(json.dumps({"v": EVENT_FORMAT_VERSION, "event": "dry-run", "app": plan.app.name,
                          "source": plan.source.name, "target": plan.app.target,
                          "ok": error is None, "found": found, "error": error,
                          "would": plan.describe(), "hooks": hooks}))  # fmt: skip
    elif found is not None:
        print(f"target: {found}")
        print(f"would {plan.describe()}")
        for phase in ("before", "after", "failed"):
            count = len(hooks[phase])
            for number, command in enumerate(hooks[phase], start=1):
                print(f"would run {Hook(phase, number, count, command).label}: {command}")
    if error is not None:
        err.print(f"reel-tui: {plan.app.name}: {error}", style="red")
        return EXIT_FAILED
    return EXIT_OK


def _hook_lines(app: AppConfig) -> dict[str, list[str]]:
    """The app's hook commands, as a dry run lists them (never runs them); a password the
    user wrote into one is shown as ``***``, as in a job's log."""
    password = app.resolve_password()

    def scrub(command: str) -> str:
        return command.replace(password, "***") if password else command

    return {"before": [scrub(c) for c in app.before_rewind],
            "after": [scrub(c) for c in app.after_rewind],
            "failed": [scrub(c) for c in app.after_failed_rewind]}  # fmt: skip


def _exit_code(state: JobState, error_code: str | None, signals: list[int]) -> int:
    if state is JobState.SUCCEEDED:
        return EXIT_OK
    if state is JobState.CANCELLED and signals:
        return 128 + signals[0]
    if error_code in REFUSED_CODES:
        return EXIT_REFUSED
    return EXIT_FAILED


def _reporter(args: argparse.Namespace) -> Reporter:
    if args.json:
        return JsonReporter()
    if sys.stdout.isatty() and os.environ.get("TERM") != "dumb":
        return RichReporter(quiet=args.quiet)
    return PlainReporter(quiet=args.quiet)


def _clear_cache(config: Config, args: argparse.Namespace, err: _Stderr) -> int:
    """Drop the cached copies of one app or of all: the next rewinds load their dumps."""
    from reel_tui.cache import CacheIndex
    from reel_tui.engines import engine_for

    apps = [pick_app(config, args.app)] if args.app else list(config.apps.values())
    index = CacheIndex(_state_dir(config))
    failed = False
    for app in apps:
        engine = engine_for(app)
        engine.cache_index = index
        lines: list[str] = []
        try:
            dropped = engine.drop_cached(None, lines.append if args.json else _say(args))
        except RewindError as exc:
            failed = True
            err.print(f"reel-tui: {app.name}: {exc}", style="red")
            continue
        freed = sum(copy.bytes for copy in dropped)
        if args.json:
            print(json.dumps({"v": EVENT_FORMAT_VERSION, "event": "cache-cleared",
                              "app": app.name, "dropped": [c.source for c in dropped],
                              "bytes": freed}))  # fmt: skip
        elif not args.quiet and not dropped:
            print(f"{app.name}: nothing cached")
        elif not args.quiet:
            copies = "copy" if len(dropped) == 1 else "copies"
            print(f"{app.name}: {len(dropped)} cached {copies} dropped, {human_size(freed)} freed")
    return EXIT_FAILED if failed else EXIT_OK


def _edit_snapshot(config: Config, args: argparse.Namespace, err: _Stderr) -> int:
    """Delete or rename a snapshot: no job, a moment under the target's lock."""
    from reel_tui.cache import CacheIndex
    from reel_tui.engines import engine_for

    app = pick_app(config, args.app)
    try:
        if args.delete_snapshot is not None:
            names = [snapshot_name(args.delete_snapshot)]
        else:
            names = [snapshot_name(name) for name in args.rename_snapshot]
    except SnapshotNameError as exc:
        raise _Refusal(f"{app.name}: {exc}") from None
    engine = engine_for(app)
    engine.cache_index = CacheIndex(_state_dir(config))
    lines: list[str] = []
    say = lines.append if args.json else _say(args)
    try:
        if len(names) == 1:
            copy = engine.delete_snapshot(names[0], say)
            event = {"event": "snapshot-deleted", "name": f"@{names[0]}", "bytes": copy.bytes}
        else:
            engine.rename_snapshot(names[0], names[1], say)
            event = {"event": "snapshot-renamed", "name": f"@{names[0]}", "to": f"@{names[1]}"}
    except RewindError as exc:
        if exc.code == "refused":
            raise _Refusal(f"{app.name}: {exc}") from None
        err.print(f"reel-tui: {app.name}: {exc}", style="red")
        return EXIT_FAILED
    if args.json:
        print(json.dumps({"v": EVENT_FORMAT_VERSION, **event, "app": app.name}))
    return EXIT_OK


def _say(args: argparse.Namespace) -> Callable[[str], None]:
    return (lambda line: None) if args.quiet else print


def _list(config: Config, args: argparse.Namespace) -> int:
    from reel_tui.cache import CacheIndex

    if args.app and args.app not in config.apps and args.app not in config.disabled:
        pick_app(config, args.app)  # refuses, with a "did you mean"
    index = CacheIndex(_state_dir(config))
    apps: list[dict[str, Any]] = []
    for name, app in config.apps.items():
        if args.app and name != args.app:
            continue
        sources = source_entries(index, app)
        apps.append({"name": name, "driver": app.driver, "target": app.target,
                     "protected": app.protected, "enabled": True, "sources": sources})  # fmt: skip
    for name, problems in config.disabled.items():
        if args.app and name != args.app:
            continue
        apps.append({"name": name, "enabled": False, "problems": [str(p) for p in problems]})
    if args.json:
        print(
            json.dumps(
                {
                    "v": EVENT_FORMAT_VERSION,
                    "config": str(config.path),
                    "default_app": config.settings.default_app,
                    "apps": apps,
                },
                indent=2,
            )
        )
        return EXIT_OK  # fmt: skip
    from rich.table import Table
    from rich.text import Text

    console = _console()
    default = config.settings.default_app or only_app(config) or "-"
    console.print(Text.assemble((str(config.path), "bold"), f"  default app: {default}"))
    for app in apps:
        if not app["enabled"]:
            console.print(
                Text.assemble("\n", (f"✗ {app['name']}", "bold red"), "  disabled: ",
                              app["problems"][0])
            )  # fmt: skip
            continue
        flag = ("  protected", "yellow") if app["protected"] else ""
        console.print(
            Text.assemble("\n", (app["name"], "bold"), f"  {app['driver']}  {app['target']}", flag)
        )
        table = Table(box=None, pad_edge=False, show_header=True, header_style="dim")
        for column in ("", "source", "format", "size", "modified", "cached"):
            table.add_column(column, justify="right" if column == "size" else "left")
        for source in app["sources"]:
            modified = time.strftime("%Y-%m-%d %H:%M", time.localtime(source["modified"]))
            cached = source["cached"]
            table.add_row("★" if source["default"] else " ", source["name"], source["format"],
                          human_size(source["size"]), modified,
                          f"✓ {human_size(cached['bytes'])}" if cached else "")  # fmt: skip
        console.print(table)
        cached_bytes = sum(s["cached"]["bytes"] for s in app["sources"] if s["cached"])
        if cached_bytes:
            console.print(Text(f"   cached copies take {human_size(cached_bytes)}; "
                               "--clear-cache drops them", style="dim"))  # fmt: skip
    return EXIT_OK


def _console() -> Console:
    """Text from the config and the history is printed literally, never as markup;
    off a terminal, lines are not wrapped or cut at 80 columns."""
    from rich.console import Console

    wide = None if sys.stdout.isatty() else 240
    return Console(highlight=False, markup=False, soft_wrap=True, width=wide)


def _history(state: HistoryStore, args: argparse.Namespace, config: Config | None) -> int:
    """The jobs of the config's apps (as the TUI shows them; the state folder may be shared
    with other configs), of ``APP`` when one is named, of all with ``--all``."""
    apps = None
    if config is not None and not args.app and not args.all:
        apps = sorted({*config.apps, *config.disabled})
    records = state.records(limit=max(args.limit, 1), app=args.app, apps=apps)
    if args.app and not records:
        raise _Refusal(f"no jobs of an app named {args.app!r} in the history")
    hidden = state.count_others(apps) if apps is not None else 0
    if args.json:
        print(json.dumps({"v": EVENT_FORMAT_VERSION, "jobs": [r.to_json() for r in records],
                          "other_apps_jobs": hidden}, indent=2))  # fmt: skip
        return EXIT_OK
    from rich.table import Table

    table = Table(box=None, header_style="dim", pad_edge=False)
    origins = any(record.origin for record in records)  # the column only when it says something
    columns = ("job", "when", "app", "kind", "source", "state", "duration", "error")
    for column in columns[:-1] + (("from",) if origins else ()) + columns[-1:]:
        table.add_column(column)
    for record in records:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        duration = f"{record.duration:.2f} s" if record.duration is not None else ""
        origin = (record.origin or "",) if origins else ()
        table.add_row(f"#{record.id}", when, record.app, record.kind, record.source,
                      record.state, duration, *origin, record.error or "")  # fmt: skip
    _console().print(table)
    if hidden and config is not None:
        _console().print(f"{hidden:,} jobs of apps not in {config.path.name} are not shown "
                         "(--all shows them)", style="dim")  # fmt: skip
    return EXIT_OK


def _metrics(state: HistoryStore, args: argparse.Namespace) -> int:
    metrics = state.metrics()
    if args.app:
        if args.app not in metrics:
            raise _Refusal(f"no jobs of an app named {args.app!r} in the history")
        metrics = {args.app: metrics[args.app]}
    if args.json:
        print(
            json.dumps(
                {"v": EVENT_FORMAT_VERSION, "apps": [m.to_json() for m in metrics.values()]},
                indent=2,
            )
        )
        return EXIT_OK  # fmt: skip
    from rich.table import Table

    table = Table(box=None, header_style="dim", pad_edge=False)
    for column in ("app", "runs", "ok", "failed", "cancelled", "last", "mean", "p95", "rate"):
        table.add_column(column, justify="left" if column == "app" else "right")

    def seconds(value: float | None) -> str:
        return f"{value:.2f} s" if value is not None else "-"

    for m in metrics.values():
        rate = f"{human_size(int(m.throughput))}/s" if m.throughput else "-"
        table.add_row(m.app, str(m.runs), str(m.succeeded), str(m.failed), str(m.cancelled),
                      seconds(m.last_duration), seconds(m.mean_duration),
                      seconds(m.p95_duration), rate)  # fmt: skip
    _console().print(table)
    return EXIT_OK


def _log(state: HistoryStore, job_id: int) -> int:
    if state.get(job_id) is None:
        raise _Refusal(f"no job #{job_id} in the history at {state.state_dir}")
    sys.stdout.write(state.read_log(job_id))
    return EXIT_OK
