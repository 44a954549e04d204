"""Everything checked before a rewind is queued: the guards every face shares.

A refusal here means nothing was touched; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from reel_tui.cache import UNDO_KEY, SnapshotNameError, snapshot_key, snapshot_name
from reel_tui.config import AppConfig, Config
from reel_tui.dumpfile import DumpFormat
from reel_tui.engines import Engine, RewindError, engine_for
from reel_tui.sources import Source, SourceError, resolve_source

if TYPE_CHECKING:
    from reel_tui.engines.base import RewindContext

JobKind = Literal["rewind", "snapshot", "undo"]


class Refused(Exception):
    """The rewind may not start; the message says why and what to do."""


@dataclass(frozen=True)
class RewindPlan:
    """A rewind that passed every guard: which app, from which source, by which engine."""

    app: AppConfig
    source: Source
    """What the target is rewound to; for a snapshot job, the snapshot to take (``@NAME``)."""
    engine: Engine
    kind: JobKind = "rewind"

    def describe(self) -> str:
        where = f"{self.app.name} ({self.app.driver} {self.app.target})"
        if self.kind == "snapshot":
            return f"take snapshot {self.source.name} of {where}"
        if self.source.stored is not None:
            taken = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.source.modified))
            what = "the undo copy" if self.kind == "undo" else "snapshot"
            return (f"replace {where} with {what} {self.source.name} "
                    f"(taken {taken}, {self.source.size:,} bytes)")  # fmt: skip
        return (
            f"replace {where} with "
            f"{self.source.name} ({self.source.format.describe()}, {self.source.size:,} bytes)"
        )

    def run(self, ctx: RewindContext) -> str:
        """Do the job with the engine; the line that says it is done."""
        if self.kind == "snapshot":
            self.engine.snapshot(self.source.name[1:], ctx)
            return f"done: snapshot {self.source.name} of {self.app.name} taken"
        self.engine.rewind(self.source, ctx)
        return f"done: {self.app.name} now holds {self.source.name}"


EngineFactory = Callable[[AppConfig], Engine]


def pick_app(config: Config, app_name: str | None) -> AppConfig:
    """The named app, or ``[reel] default_app``; refused if unknown or disabled."""
    if not config.apps and not config.disabled:
        raise Refused(f"{config.path}: no apps configured: add a table such as [myapp]"
                      + _ignored_keys(config))  # fmt: skip
    name = app_name or config.settings.default_app or only_app(config)
    if name is None:
        raise Refused(f"{config.path}: name an app: there is no [reel] default_app")
    if name in config.disabled:
        reasons = "; ".join(str(p) for p in config.disabled[name])
        raise Refused(f"app {name!r} is disabled by config errors: {reasons}")
    if name not in config.apps:
        import difflib

        close = difflib.get_close_matches(name, list(config.apps), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise Refused(f"{config.path}: no app named {name!r}{hint}")
    return config.apps[name]


def _ignored_keys(config: Config) -> str:
    """Why a file with content has no apps: its top-level keys that are not tables."""
    ignored = [p.key for p in config.warnings if p.app is None and "top-level key" in p.message]
    if not ignored:
        return ""
    return f" (top-level {', '.join(repr(k) for k in ignored[:3])} not a table)"


def only_app(config: Config) -> str | None:
    """The app's name when the config has exactly one (usable or not): the implicit default."""
    names = [*config.apps, *config.disabled]
    return names[0] if len(names) == 1 else None


def plan_rewind(
    config: Config,
    app_name: str | None,
    source_name: str | None = None,
    *,
    allow_remote: bool = False,
    engine_factory: EngineFactory = engine_for,
) -> RewindPlan:
    """Check app, guards, source and engine; return the plan or raise :class:`Refused`."""
    app = pick_app(config, app_name)
    where = f"{config.path}:{app.line}" if app.line else str(config.path)
    if app.protected:
        raise Refused(f"{where}: app {app.name!r} is protected (protected = true); refused")
    try:
        engine = engine_factory(app)
        if source_name is not None and source_name.startswith("@"):
            _allowed(app, engine, allow_remote)
            kind: JobKind = "undo" if source_name == f"@{UNDO_KEY}" else "rewind"
            return RewindPlan(app, _stored_source(app, engine, source_name), engine, kind)
        source = resolve_source(app, source_name)
    except (RewindError, SourceError) as exc:
        raise Refused(str(exc)) from None
    fmt = source.format
    if fmt.container == "unknown":
        raise Refused(
            f"app {app.name!r}: source {source.name!r} is not a dump reel-tui recognises "
            f"(not SQL text, a pg_dump archive or a SQLite database{_compressed(fmt)})"
        )
    if fmt.flavor not in engine.accepts or fmt.container not in engine.accepts_containers:
        raise Refused(
            f"app {app.name!r}: source {source.name!r} is a {fmt.describe()}; "
            f"a {app.driver} app cannot load it"
        )
    _allowed(app, engine, allow_remote)
    return RewindPlan(app, source, engine)


def _allowed(app: AppConfig, engine: Engine, allow_remote: bool) -> None:
    if not engine.is_local() and not allow_remote:
        raise Refused(
            f"app {app.name!r}: target {app.target} is not on this machine; "
            "pass --allow-remote to rewind it headless"
        )


def _stored_source(app: AppConfig, engine: Engine, name: str) -> Source:
    """The snapshot ``@NAME`` or the undo copy ``@undo`` as a source (asks the engine).

    Raises:
        Refused: a bad name, or no such copy.
        RewindError: the engine could not look (the server is unreachable).
    """
    if name == f"@{UNDO_KEY}":
        if not engine.keeps_undo:
            raise Refused(f"app {app.name!r}: {app.driver} apps keep no undo copy yet")
        key = UNDO_KEY
    elif not engine.takes_snapshots:
        raise Refused(f"app {app.name!r}: {app.driver} apps have no snapshots yet")
    else:
        try:
            key = snapshot_key(snapshot_name(name))
        except SnapshotNameError as exc:
            raise Refused(f"app {app.name!r}: {exc}") from None
    copy = engine.stored_copy(key)
    if copy is None and key == UNDO_KEY:
        raise Refused(f"app {app.name!r}: nothing to undo: no undo copy is kept (none yet, "
                      "evicted by cache_copies / cache_max_size, or undo = false)")  # fmt: skip
    if copy is None:
        known = [c.source for c in engine.cached_copies() if c.kind == "snapshot"]
        listed = f"snapshots: {', '.join(known)}" if known else "it has no snapshots"
        raise Refused(f"app {app.name!r}: no snapshot named {name} ({listed})")
    return Source(name, Path(copy.name), copy.bytes, copy.created, DumpFormat("unknown"),
                  stored=key)  # fmt: skip


def plan_snapshot(
    config: Config,
    app_name: str | None,
    name: str,
    *,
    allow_remote: bool = False,
    engine_factory: EngineFactory = engine_for,
) -> RewindPlan:
    """A job that keeps the app's current state as snapshot ``name``, or :class:`Refused`.

    A protected app may be snapshotted: its data is only read."""
    app = pick_app(config, app_name)
    try:
        bare = snapshot_name(name)
        engine = engine_factory(app)
        if not engine.takes_snapshots:
            raise Refused(f"app {app.name!r}: {app.driver} apps cannot take snapshots yet")
        _allowed(app, engine, allow_remote)
        if engine.stored_copy(snapshot_key(bare)) is not None:
            raise Refused(f"app {app.name!r}: a snapshot named @{bare} exists already: "
                          "delete or rename it, or pick another name")  # fmt: skip
    except (SnapshotNameError, RewindError) as exc:
        raise Refused(f"app {app.name!r}: {exc}") from None
    size = 0
    if app.driver == "sqlite":
        try:
            size = Path(app.database).stat().st_size
        except OSError:
            raise Refused(f"app {app.name!r}: nothing to snapshot: {app.database} does not "
                          "exist yet") from None  # fmt: skip
    source = Source(f"@{bare}", Path(app.database), size, time.time(), DumpFormat("unknown"))
    return RewindPlan(app, source, engine, "snapshot")


def _compressed(fmt: DumpFormat) -> str:
    if fmt.compression == "zstd":
        return "; zstd-compressed dumps are not supported: decompress it first"
    return ""
