"""TOML config to typed, validated settings, compatible with the Go reel's keys.

A file that does not parse is fatal (:class:`ConfigError`). Anything wrong
inside one app only disables that app: its problems are collected as
:class:`Problem` lines (file, line, app, key) so the other apps keep working
and every face can show the same one-line messages.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

Driver = Literal["sqlite", "postgres", "mysql"]

DRIVER_ALIASES: dict[str, Driver] = {
    "sqlite": "sqlite",
    "sqlite3": "sqlite",
    "postgres": "postgres",
    "postgresql": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
}
DEFAULT_PORTS: dict[Driver, int] = {"postgres": 5432, "mysql": 3306}
SYSTEM_DATABASES: dict[Driver, frozenset[str]] = {
    "postgres": frozenset({"postgres", "template0", "template1"}),
    "mysql": frozenset({"mysql", "information_schema", "sys", "performance_schema"}),
    "sqlite": frozenset(),
}
CONFIG_FILE_NAME = "reel.toml"
RESERVED_TABLE = "reel"


def is_system_database(driver: Driver, database: str) -> bool:
    """True when ``database`` names one of the server's own databases, compared as that
    server compares names.

    PostgreSQL names are exact (libpq and quoted SQL never fold case): ``Postgres`` is an
    ordinary database. MySQL / MariaDB fold case where ``lower_case_table_names`` is set
    (Windows, macOS) and always for ``information_schema``; which server a config will meet is
    not known here, so MySQL names are compared without case.
    """
    if driver == "mysql":
        return database.casefold() in SYSTEM_DATABASES[driver]
    return database in SYSTEM_DATABASES[driver]


class ConfigError(Exception):
    """The config cannot be used at all (not found, unreadable, not TOML)."""


@dataclass(frozen=True)
class Problem:
    """One finding about the config, printable as a single line."""

    file: Path
    message: str
    line: int | None = None
    app: str | None = None
    key: str | None = None
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        parts = [where]
        if self.app:
            parts.append(f"app {self.app!r}")
        elif self.key in SETTINGS_KEYS:
            parts.append(f"[{RESERVED_TABLE}]")
        if self.key:
            parts.append(self.key)
        parts.append(self.message)
        return _one_line(": ".join(parts))


def _one_line(text: str) -> str:
    """``text`` with newlines and other control characters escaped.

    Keys, app names and paths come from the file and may hold any character;
    a message must still print as exactly one line.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclass(frozen=True)
class AppConfig:
    """One application's database and where its dumps live."""

    name: str
    driver: Driver
    database: str
    """Database name; for SQLite the absolute path of the database file."""
    server: str | None = None
    """Host name, IP address, or a directory holding a unix socket."""
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    password_env: str | None = None
    source: Path | None = None
    """The default dump (reel's ``dbsource``), absolute."""
    sources_dir: Path | None = None
    """Folder searched recursively for more dumps (reel's ``dbsources``), absolute."""
    protected: bool = False
    confirm: bool = True
    skip_owner: bool = False
    """PostgreSQL: drop the dump's ``ALTER … OWNER TO`` (as pg_restore --no-owner)."""
    skip_privileges: bool = False
    """PostgreSQL: drop the dump's GRANT / REVOKE (as pg_restore --no-privileges)."""
    on_error: Literal["stop", "continue"] = "stop"
    """PostgreSQL: stop at the first SQL error (nothing is swapped in) or log it and go on."""
    analyze: bool = True
    """PostgreSQL: ANALYZE after the load, so the app does not start without statistics."""
    sslmode: str | None = None
    """PostgreSQL: libpq's sslmode, passed through."""
    rewind_mode: Literal["auto", "swap", "in-place"] = "auto"
    """PostgreSQL: staging database and swap, or in place in one transaction."""
    jobs: int | None = None
    """PostgreSQL and MySQL: connections loading a dump into the staging database at once
    (tables' data; for PostgreSQL also indexes and constraints); None: :func:`default_jobs`."""
    definers: Literal["auto", "keep", "strip"] = "auto"
    """MySQL: DEFINER clauses naming accounts missing here are stripped (auto), all kept, or
    all stripped; a stripped object belongs to the user reel connects as."""
    cache_copies: int = 3
    """Copies kept for near-instant rewinds: loaded dumps and the undo copy (3: two dumps
    and the undo copy); 0 turns the cache, and undo, off."""
    cache_max_bytes: int | None = None
    """Disk the app's cached copies may take in all; None: no limit but ``cache_copies``."""
    before_rewind: tuple[str, ...] = ()
    """Shell commands run in order before a rewind (see :mod:`reel_tui.hooks`); one failing
    stops the rewind with the database untouched."""
    after_rewind: tuple[str, ...] = ()
    """Shell commands run in order after a successful swap."""
    after_failed_rewind: tuple[str, ...] = ()
    """Shell commands run when before-hooks ran but the rewind then failed or was cancelled
    (the database unchanged): e.g. start again the app a before-hook stopped."""
    hook_timeout: float = 60.0
    """Seconds each hook may run before it is stopped (and counts as failed)."""
    on_hook_failure: Literal["fail", "warn"] = "fail"
    """An after-hook that fails: the job fails (the database stays rewound) or only warns."""
    config_dir: Path | None = None
    """Folder of the config file: hooks run there."""
    undo: bool = True
    """Keep the state a rewind replaced as the undo copy (counted against the cache limits)."""
    line: int | None = None
    """Line of the app's table header, for messages."""

    @property
    def target(self) -> str:
        """The target as a user thinks of it, never with a password."""
        if self.driver == "sqlite":
            return self.database
        host = self.server or "localhost"
        if host.startswith("/"):
            return f"{self.database}@{host}"
        port = self.port or DEFAULT_PORTS[self.driver]
        return f"{self.database}@{host}:{port}"

    @property
    def target_key(self) -> str:
        """Identity of the target database, equal for apps sharing one database."""
        if self.driver == "sqlite":
            return f"sqlite:{os.path.realpath(self.database)}"
        host = self.server or "localhost"
        if not host.startswith("/"):
            host = host.lower()  # host names are case-insensitive; socket folders are not
        if host in ("127.0.0.1", "::1", "localhost"):
            host = "localhost"
        return f"{self.driver}:{host}:{self.port or DEFAULT_PORTS[self.driver]}:{self.database}"

    def resolve_password(self) -> str | None:
        """The password to use, from ``dbpassword_env`` or ``dbpassword``; None for defaults."""
        if self.password_env:
            return os.environ.get(self.password_env)
        return self.password


@dataclass(frozen=True)
class Settings:
    """The ``[reel]`` table."""

    default_app: str | None = None
    token: str | None = field(default=None, repr=False)
    """The HTTP API's bearer token (reel's key, which reel never checked): when set, every
    API route but ``/healthz`` requires it; without one the API listens on loopback only."""
    token_env: str | None = field(default=None, repr=False)
    """Name of an environment variable holding the token instead (as ``dbpassword_env``);
    not shown either, so no repr says "token" at all."""
    api_listen: str | None = None
    """``HOST:PORT`` the TUI serves the HTTP API on (and ``--serve``'s default address);
    None: the TUI serves nothing unless ``--listen`` asks."""
    api_get_rewind: bool = False
    """Answer ``GET`` on the rewind routes as reel did. Off: any web page open in a browser
    on the host could otherwise wipe a database with an ``<img src>``."""
    workers: int = 2
    """Jobs for different databases that may run at once."""
    history_limit: int = 500
    """Finished jobs kept in the history; the oldest are pruned."""
    state_dir: Path | None = None
    """Where history and logs live; default is the user's state directory."""

    def resolve_token(self) -> str | None:
        """The API token, from ``token_env`` or ``token``; None (or empty): no token."""
        if self.token_env:
            return os.environ.get(self.token_env) or None
        return self.token or None


def restart_settings(settings: Settings) -> tuple[object, ...]:
    """The ``[reel]`` settings a reload cannot change: the queue and the API are built once."""
    return (settings.state_dir, settings.workers, settings.history_limit, settings.api_listen,
            settings.token_env, settings.token, settings.api_get_rewind)  # fmt: skip


RESTART_SETTINGS_TEXT = "state_dir, workers, history_limit and the API's settings"
"""What :func:`restart_settings` covers, for the line saying they wait for a restart."""


@dataclass
class Config:
    """A loaded config: the usable apps, the disabled ones and every finding."""

    path: Path
    settings: Settings
    apps: dict[str, AppConfig]
    disabled: dict[str, list[Problem]]
    problems: list[Problem]
    key_lines: dict[tuple[str | None, str | None], int] = field(default_factory=dict, repr=False)
    """Line of each ``(table, key)`` in the file: a later refusal about a value can name it."""

    def line_of(self, table: str, key: str) -> int | None:
        return self.key_lines.get((table, key))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


# --- key schema -------------------------------------------------------------

Checker = Callable[[Any], Any]


class _BadValue(ValueError):
    """A value of the wrong type or range; the message says what was expected."""


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _BadValue(f"expected a string, got {_show(value)}")
    return value


def _secret(value: Any) -> str:
    """A string that must never be echoed back, not even when it has the wrong type."""
    if not isinstance(value, str):
        raise _BadValue(f"expected a string, got {type(value).__name__} (value not shown)")
    return value


def _port(value: Any) -> int:
    # isdigit() alone also accepts "²" and other digits int() rejects
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise _BadValue(f"expected a port number 1-65535, got {_show(value)}")
    return value


def split_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:7999`` for IPv6) as host and port; ValueError saying what is
    wrong. Here, not in the API package, so the config is checked without importing aiohttp."""
    host, sep, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port_text.isascii() or not port_text.isdigit():
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:7999")
    port = int(port_text)
    if port > 65535:
        raise ValueError("port must be 0-65535")
    return host, port


def _listen(value: Any) -> str:
    if not isinstance(value, str):
        raise _BadValue(f'expected "HOST:PORT" such as "127.0.0.1:7999", got {_show(value)}')
    try:
        split_listen(value.strip())
    except ValueError as exc:
        raise _BadValue(f"{exc}, got {_show(value)}") from None
    return value.strip()


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _BadValue(f"expected true or false, got {_show(value)}")
    return value


def _choice(*choices: str) -> Checker:
    """A checker accepting one of ``choices`` (case-insensitive), returned in lower case."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or value.lower() not in choices:
            raise _BadValue(f"expected one of {', '.join(choices)}, got {_show(value)}")
        return value.lower()

    return check


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _BadValue(f"expected a whole number of at least 1, got {_show(value)}")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _BadValue(f"expected a whole number of at least 0, got {_show(value)}")
    return value


_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip


def _size(value: Any) -> int:
    """A number of bytes, or a string such as ``"5 GB"`` or ``"500MiB"``."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        number = value.strip().rstrip("BbIiKkMmGgTt ")
        unit = value.strip()[len(number) :].strip().lower()
        try:
            amount = float(number)
        except ValueError:
            amount = -1
        if amount > 0 and unit in _SIZE_UNITS:
            return int(amount * _SIZE_UNITS[unit])
    raise _BadValue(f'expected a size such as "5 GB" or "500 MiB", got {_show(value)}')


MAX_JOBS = 32
"""More loading connections than this only queue up on the server."""


def _jobs(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_JOBS:
        raise _BadValue(f"expected a whole number 1-{MAX_JOBS}, got {_show(value)}")
    return value


def default_jobs() -> int:
    """``jobs`` when the config does not say: one connection per core, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


MAX_HOOK_TIMEOUT = 86400.0
"""A day: a longer hook is a mistake in the number, not a migration."""


def _commands(value: Any) -> tuple[str, ...]:
    """A shell command, or a list of them run in order; empty ones are mistakes."""
    commands = [value] if isinstance(value, str) else value
    if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
        raise _BadValue(f"expected a command string or a list of them, got {_show(value)}")
    for number, command in enumerate(commands, start=1):
        which = "" if isinstance(value, str) else f"command {number}: "
        if not command.strip():
            raise _BadValue(f"{which}empty command (leave the key out instead)")
        if "\x00" in command:
            raise _BadValue(f"{which}must not contain a NUL character")
    return tuple(commands)


def _timeout(value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value <= MAX_HOOK_TIMEOUT
    ):
        raise _BadValue(f"expected seconds, more than 0 and at most 86400, got {_show(value)}")
    return float(value)


def _show(value: Any) -> str:
    kind = type(value).__name__
    text = repr(value)
    return f"{kind} {text[:40]}"


APP_KEYS: dict[str, Checker] = {
    "dbdriver": _string,
    "dbserver": _string,
    "dbport": _port,
    "database": _string,
    "dbuser": _string,
    "dbpassword": _secret,
    "dbpassword_env": _string,
    "dbsource": _string,
    "dbsources": _string,
    "protected": _bool,
    "confirm": _bool,
    "skip_owner": _bool,
    "skip_privileges": _bool,
    "on_error": _choice("stop", "continue"),
    "analyze": _bool,
    "sslmode": _choice("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "rewind_mode": _choice("auto", "swap", "in-place"),
    "jobs": _jobs,
    "definers": _choice("auto", "keep", "strip"),
    "cache_copies": _count,
    "cache_max_size": _size,
    "before_rewind": _commands,
    "after_rewind": _commands,
    "after_failed_rewind": _commands,
    "hook_timeout": _timeout,
    "on_hook_failure": _choice("fail", "warn"),
    "undo": _bool,
}
HOOK_KEYS = frozenset({"before_rewind", "after_rewind", "after_failed_rewind"})
POSTGRES_KEYS = (
    "skip_owner", "skip_privileges", "on_error", "analyze", "sslmode", "rewind_mode",
)  # fmt: skip
"""App keys only the PostgreSQL engine reads; other drivers warn that they are ignored."""
UNUSED_APP_KEYS = {"proxy_dest": "reel's HTTP proxy is not part of reel-tui"}
SERVER_KEYS = ("dbserver", "dbport", "dbuser", "dbpassword", "dbpassword_env")
SETTINGS_KEYS: dict[str, Checker] = {
    "default_app": _string,
    "token": _secret,
    "token_env": _string,
    "api_listen": _listen,
    "api_get_rewind": _bool,
    "workers": _positive_int,
    "history_limit": _positive_int,
    "state_dir": _string,
}


# --- locating config files --------------------------------------------------


def user_config_path() -> Path:
    """``reel.toml`` in the user's config directory (XDG on Linux)."""
    from platformdirs import user_config_path as _user_config_path

    return _user_config_path("reel-tui") / CONFIG_FILE_NAME


def find_config(
    explicit: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path:
    """The config to use: ``-c PATH``, else ``$REEL_CONFIG``, else ./reel.toml, else the user's."""
    environ = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if environ.get("REEL_CONFIG"):
        return Path(environ["REEL_CONFIG"])
    local = (cwd or Path.cwd()) / CONFIG_FILE_NAME
    if local.is_file():
        return local
    user = user_config_path()
    if user.is_file():
        return user
    raise ConfigError(
        f"no config found: give -c PATH or set REEL_CONFIG, or create {local} or {user}"
    )


# --- loading ------------------------------------------------------------------


_TABLE_RE = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_KEY_RE = re.compile(r"""^\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")


def _key_lines(text: str) -> dict[tuple[str | None, str | None], int]:
    """Line numbers of table headers and keys, for messages that TOML cannot give.

    A plain line scan: good for the flat tables reel configs use. Keys in inline
    tables or multi-line values may be missed, and then a message has no line.
    """
    lines: dict[tuple[str | None, str | None], int] = {}
    table: str | None = None
    # split("\n"), not splitlines(): TOML ends lines only at \n, while splitlines()
    # also splits at \u2028, \x0c and friends, which may sit inside strings and comments.
    for number, line in enumerate(text.split("\n"), start=1):
        header = _TABLE_RE.match(line)
        if header:
            table = header.group(1).strip().strip("\"'")
            lines.setdefault((table, None), number)
            if not header.group(1).startswith(('"', "'")):
                # [app.sub] defines app too, when no [app] header came first
                lines.setdefault((table.split(".")[0].strip(), None), number)
            continue
        key = _KEY_RE.match(line)
        if key:
            lines.setdefault((table, key.group(1).strip("\"'")), number)
    return lines


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a config file.

    Raises:
        ConfigError: the file is missing, unreadable, not UTF-8 or not TOML.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")  # a BOM, as Notepad writes
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not a text file (invalid UTF-8)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_error(path, exc, text)) from None
    return _Validator(path, text, data).run()


def _toml_error(path: Path, exc: tomllib.TOMLDecodeError, text: str) -> str:
    """``file:line: message`` from tomllib's "message (at line L, column C)".

    tomllib says "(at end of document)" instead when the last value is cut short
    (an unclosed array, ``key =`` on the last line): that is the last non-blank line.
    """
    message = _plain_toml_message(str(exc))
    match = re.search(r"\(at line (\d+), column (\d+)\)", message)
    if match:
        message = message[: match.start()].strip()
        return f"{path}:{match.group(1)}: invalid TOML: {message} (column {match.group(2)})"
    match = re.search(r"\(at end of document\)", message)
    if match:
        message = message[: match.start()].strip()
        line = len(text.rstrip().split("\n"))
        return f"{path}:{line}: invalid TOML: {message} (at end of file)"
    return f"{path}: invalid TOML: {message}"


def _plain_toml_message(message: str) -> str:
    """tomllib's wording where it shows Python: "Cannot declare ('a',) twice" says which
    table is repeated as a tuple; a user wrote ``[a]`` twice, so say that."""
    match = re.match(r"Cannot declare \((.*)\) twice", message)
    if not match:
        return message
    import ast  # only for this message: not worth its import time on every start

    try:
        parts = ast.literal_eval(f"({match.group(1)})")
    except (ValueError, SyntaxError):
        return message
    if not isinstance(parts, tuple) or not all(isinstance(part, str) for part in parts):
        return message
    table = ".".join(parts)
    return f"[{table}] is declared twice (each app once){message[match.end() :]}"


class _Validator:
    """Turns parsed TOML into a :class:`Config`, collecting problems as it goes."""

    def __init__(self, path: Path, text: str, data: dict[str, Any]) -> None:
        self.path = path
        self.base = path.resolve().parent
        self.lines = _key_lines(text)
        self.data = data
        self.problems: list[Problem] = []
        self.mode = path.stat().st_mode

    def problem(
        self,
        message: str,
        *,
        app: str | None = None,
        key: str | None = None,
        table: str | None = None,
        severity: Literal["error", "warning"] = "error",
    ) -> Problem:
        table = table or app
        line = self.lines.get((table, key)) or self.lines.get((table, None))
        found = Problem(self.path, message, line, app, key, severity)
        self.problems.append(found)
        return found

    def run(self) -> Config:
        settings = self.settings(self.data.get(RESERVED_TABLE, {}))
        apps: dict[str, AppConfig] = {}
        disabled: dict[str, list[Problem]] = {}
        for name, table in self.data.items():
            if name == RESERVED_TABLE:
                continue
            if not isinstance(table, dict):
                self.problem(
                    f"top-level key {name!r} is ignored: apps are tables such as [{name}]",
                    key=name,
                    severity="warning",
                )
                continue
            before = len(self.errors())
            app = self.app(name, table)
            if app is None or len(self.errors()) > before:
                disabled[name] = self.errors()[before:]
            else:
                apps[name] = app
        if not apps and not disabled:
            self.problem("no apps configured: add a table such as [myapp]", severity="warning")
        if settings.default_app and settings.default_app not in (*apps, *disabled):
            self.problem(
                f"names {settings.default_app!r}, which is not an app in this file"
                + _suggest(settings.default_app, [*apps, *disabled]),
                key="default_app",
                table=RESERVED_TABLE,
            )
        return Config(self.path, settings, apps, disabled, self.problems, self.lines)

    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def settings(self, table: Any) -> Settings:
        if not isinstance(table, dict):
            self.problem("[reel] must be a table", key=RESERVED_TABLE, table=None)
            return Settings()
        values = self.checked(table, SETTINGS_KEYS, app=None, table_name=RESERVED_TABLE)
        state_dir = None
        if values.get("state_dir"):
            state_dir = self.resolve(values["state_dir"], key="state_dir", table=RESERVED_TABLE)
        self.token_warnings(table)
        return Settings(
            default_app=values.get("default_app"),
            token=values.get("token"),
            token_env=values.get("token_env") or None,
            api_listen=values.get("api_listen"),
            api_get_rewind=values.get("api_get_rewind", False),
            workers=values.get("workers", Settings.workers),
            history_limit=values.get("history_limit", Settings.history_limit),
            state_dir=state_dir,
        )

    def token_warnings(self, table: dict[str, Any]) -> None:
        """The API token's pitfalls, as the app password's: both keys, or a readable file."""
        if "token" in table and "token_env" in table:
            self.problem("both token and token_env are set: token_env wins", key="token",
                         table=RESERVED_TABLE, severity="warning")  # fmt: skip
        if "token" in table and self.mode & (stat.S_IRGRP | stat.S_IROTH):
            self.problem(
                f"a plain-text API token in a file other users can read "
                f"(mode {stat.S_IMODE(self.mode):o}): use token_env, or chmod 600 the file",
                key="token", table=RESERVED_TABLE, severity="warning",
            )  # fmt: skip

    def checked(
        self,
        table: dict[str, Any],
        schema: dict[str, Checker],
        app: str | None,
        table_name: str | None = None,
    ) -> dict[str, Any]:
        """Values of known keys converted by their checkers; problems for the rest."""
        values: dict[str, Any] = {}
        for key, value in table.items():
            checker = schema.get(key)
            if checker is None:
                if app is not None and key in UNUSED_APP_KEYS:
                    self.problem(
                        f"accepted but unused: {UNUSED_APP_KEYS[key]}",
                        app=app,
                        key=key,
                        severity="warning",
                    )
                else:
                    self.problem(
                        "unknown key, ignored" + _suggest(key, list(schema)),
                        app=app,
                        key=key,
                        table=table_name,
                        severity="warning",
                    )
                continue
            try:
                values[key] = checker(value)
            except _BadValue as exc:
                self.problem(str(exc), app=app, key=key, table=table_name)
        return values

    def app(self, name: str, table: dict[str, Any]) -> AppConfig | None:
        values = self.checked(table, APP_KEYS, app=name)
        if "dbdriver" in table and "dbdriver" not in values:
            return None  # wrong type, already reported; guessing sqlite would only add noise
        if "dbdriver" not in table and any(key in table for key in SERVER_KEYS):
            # reel configs always named their driver; guessing sqlite here would turn
            # `database = "shop"` into a file beside the config and ignore the server
            self.problem(
                "missing: set postgres, mysql or sqlite (server keys are set, so "
                "the sqlite default does not apply)",
                app=name,
                key="dbdriver",
            )
            return None
        driver_name = values.get("dbdriver", "sqlite")
        driver = DRIVER_ALIASES.get(driver_name.lower())
        if driver is None:
            self.problem(
                f"unknown driver {driver_name!r}: use sqlite, postgres or mysql"
                + _suggest(driver_name.lower(), list(DRIVER_ALIASES)),
                app=name,
                key="dbdriver",
            )
            return None
        database = values.get("database")
        if database is None:
            if "database" not in table:
                self.problem("missing: the database to rewind", app=name, key="database")
            return None
        if not database.strip():
            self.problem("must not be empty", app=name, key="database")
            return None
        if "\x00" in database:
            # no server or file system takes it; os.path.realpath() would raise later
            self.problem("must not contain a NUL character", app=name, key="database")
            return None
        if is_system_database(driver, database):
            self.problem(
                f"{database!r} is a system database; reel-tui will not rewind it",
                app=name,
                key="database",
            )
            return None
        if driver == "sqlite":
            database_path = self.resolve(database, app=name, key="database")
            if database_path is None:
                return None
            database = str(database_path)
            for key in SERVER_KEYS:
                if key in table:
                    self.problem("ignored for sqlite apps", app=name, key=key, severity="warning")
            if "jobs" in table:
                self.problem("ignored for sqlite apps (a SQLite file takes one writer)",
                             app=name, key="jobs", severity="warning")  # fmt: skip
        if driver != "postgres":
            for key in POSTGRES_KEYS:
                if key in table:
                    self.problem(
                        f"ignored for {driver} apps (PostgreSQL only)",
                        app=name,
                        key=key,
                        severity="warning",
                    )
        source = self.source_file(name, values.get("dbsource"))
        sources_dir = self.sources_dir(name, values.get("dbsources"))
        if "dbsource" not in table and "dbsources" not in table:
            self.problem(
                "no dumps configured: set dbsource (a file) or dbsources (a folder)",
                app=name,
                key="dbsource",
            )
        if "dbpassword" in table and "dbpassword_env" in table:
            self.problem(
                "both dbpassword and dbpassword_env are set: dbpassword_env wins",
                app=name,
                key="dbpassword",
                severity="warning",
            )
        if "dbpassword" in table and self.mode & (stat.S_IRGRP | stat.S_IROTH):
            self.problem(
                f"a plain-text password in a file other users can read "
                f"(mode {stat.S_IMODE(self.mode):o}): use dbpassword_env, or chmod 600 the file",
                app=name,
                key="dbpassword",
                severity="warning",
            )
        self.unused_hook_keys(name, table)
        return AppConfig(
            name=name,
            driver=driver,
            database=database,
            server=values.get("dbserver") or None,
            port=values.get("dbport"),
            user=values.get("dbuser") or None,
            password=values.get("dbpassword"),
            password_env=values.get("dbpassword_env"),
            source=source,
            sources_dir=sources_dir,
            protected=values.get("protected", False),
            confirm=values.get("confirm", True),
            skip_owner=values.get("skip_owner", False),
            skip_privileges=values.get("skip_privileges", False),
            on_error=values.get("on_error", "stop"),
            analyze=values.get("analyze", True),
            sslmode=values.get("sslmode"),
            rewind_mode=values.get("rewind_mode", "auto"),
            jobs=values.get("jobs"),
            definers=values.get("definers", "auto"),
            cache_copies=values.get("cache_copies", 3),
            cache_max_bytes=values.get("cache_max_size"),
            before_rewind=values.get("before_rewind", ()),
            after_rewind=values.get("after_rewind", ()),
            after_failed_rewind=values.get("after_failed_rewind", ()),
            hook_timeout=values.get("hook_timeout", AppConfig.hook_timeout),
            on_hook_failure=values.get("on_hook_failure", "fail"),
            config_dir=self.base,
            undo=values.get("undo", True),
            line=self.lines.get((name, None)),
        )

    def unused_hook_keys(self, app: str, table: dict[str, Any]) -> None:
        """Warn about hook settings with no hook to apply to: likely a misspelt hook key."""
        if "on_hook_failure" in table and "after_rewind" not in table:
            self.problem("ignored: it applies to after_rewind hooks, and none are set",
                         app=app, key="on_hook_failure", severity="warning")  # fmt: skip
        if "hook_timeout" in table and not HOOK_KEYS & table.keys():
            self.problem("ignored: no before_rewind or after_rewind hooks are set",
                         app=app, key="hook_timeout", severity="warning")  # fmt: skip
        if "after_failed_rewind" in table and "before_rewind" not in table:
            self.problem("never runs: it follows before_rewind hooks, and none are set",
                         app=app, key="after_failed_rewind", severity="warning")  # fmt: skip

    def resolve(
        self, value: str, *, key: str, app: str | None = None, table: str | None = None
    ) -> Path | None:
        """``value`` as an absolute path: ``~`` expanded, else relative to the config's folder.

        None, with a problem, for ``~user`` naming no user (expanduser() raises).
        """
        try:
            return self.base / Path(value).expanduser()
        except RuntimeError:
            self.problem(
                f"cannot expand {value!r}: no such user or home folder",
                app=app,
                key=key,
                table=table,
            )
            return None

    def source_file(self, app: str, value: str | None) -> Path | None:
        path = None if value is None else self.resolve(value, app=app, key="dbsource")
        if path is None:
            return None
        if not path.exists():
            self.problem(f"dump not found: {path}", app=app, key="dbsource")
        elif not (path.is_file() or (path / "toc.dat").is_file()):
            self.problem(f"not a dump file: {path}", app=app, key="dbsource")
        return path

    def sources_dir(self, app: str, value: str | None) -> Path | None:
        if value is not None and not value.strip():
            self.problem("must not be empty (leave it out instead)", app=app, key="dbsources")
            return None
        path = None if value is None else self.resolve(value, app=app, key="dbsources")
        if path is None:
            return None
        if not path.is_dir():
            self.problem(f"folder not found: {path}", app=app, key="dbsources")
        return path


def _suggest(word: str, choices: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
