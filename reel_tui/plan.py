"""Everything checked before a rewind is queued: the guards every face shares.

A refusal here means nothing was touched; the CLI turns it into exit code 2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reel_tui.config import AppConfig, Config
from reel_tui.dumpfile import DumpFormat
from reel_tui.engines import Engine, RewindError, engine_for
from reel_tui.sources import Source, SourceError, resolve_source


class Refused(Exception):
    """The rewind may not start; the message says why and what to do."""


@dataclass(frozen=True)
class RewindPlan:
    """A rewind that passed every guard: which app, from which source, by which engine."""

    app: AppConfig
    source: Source
    engine: Engine

    def describe(self) -> str:
        return (
            f"replace {self.app.name} ({self.app.driver} {self.app.target}) with "
            f"{self.source.name} ({self.source.format.describe()}, {self.source.size:,} bytes)"
        )


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
    if not engine.is_local() and not allow_remote:
        raise Refused(
            f"app {app.name!r}: target {app.target} is not on this machine; "
            "pass --allow-remote to rewind it headless"
        )
    return RewindPlan(app, source, engine)


def _compressed(fmt: DumpFormat) -> str:
    if fmt.compression == "zstd":
        return "; zstd-compressed dumps are not supported: decompress it first"
    return ""
