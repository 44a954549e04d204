"""Start the API inside any running asyncio loop (Textual's too), or headless for ``--serve``.

:func:`start_api` installs no signal handler and blocks nothing: the TUI can
serve the API beside its own loop. :func:`serve_headless` is ``reel-tui --serve``:
it serves until SIGINT / SIGTERM, then stops accepting, cancels the jobs (they
roll back, as ``--rewind``'s do) and waits for them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from reel_tui.api.auth import ACCESS_LOG_FORMAT, TokenBucket, is_loopback
from reel_tui.api.routes import build_app
from reel_tui.api.service import API_PREFIX, RewindService
from reel_tui.config import (
    RESTART_SETTINGS_TEXT,
    Config,
    ConfigError,
    load_config,
    restart_settings,
    split_listen,
)
from reel_tui.history import HistoryStore
from reel_tui.jobqueue import JobQueue

DEFAULT_LISTEN = "127.0.0.1:7999"
"""reel's documented address and port."""
SHUTDOWN_SECONDS = 5.0
"""How long open requests (a log stream) get to finish when the API closes."""


class ApiStartError(Exception):
    """The API cannot start: a bad address, a port in use, no token off loopback."""


@dataclass
class RunningApi:
    """A started API: where it listens, and how to stop it."""

    url: str
    """``http://HOST:PORT``, the routes under ``url + API_PREFIX``."""
    token_required: bool
    service: RewindService
    _runner: web.AppRunner
    _site: web.BaseSite

    async def stop_accepting(self) -> None:
        """Close the listening socket; requests under way go on."""
        await self._site.stop()

    async def close(self) -> None:
        """Stop listening and end open requests (log streams send their ``end``)."""
        await self._runner.cleanup()


@dataclass
class ApiSocket:
    """Where the TUI is to serve the API: bound by the command before the TUI starts."""

    listen: str
    sock: socket.socket
    allow_remote: bool = False


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:7999`` for IPv6) as host and port; ApiStartError if not."""
    try:
        return split_listen(text)
    except ValueError as exc:
        raise ApiStartError(f"--listen {text!r}: {exc}") from None


def api_token(config: Config) -> str | None:
    """The configured token; ApiStartError when ``token_env`` names an unset variable (the
    API would otherwise start open, which is not what the config asked for)."""
    settings = config.settings
    token = settings.resolve_token()
    if settings.token_env and token is None:
        raise ApiStartError(f"[reel] token_env names {settings.token_env}, which is not set "
                            "(or empty): the API will not start without its token")  # fmt: skip
    return token


def check_listen(config: Config, listen: str) -> tuple[str, int]:
    """Host and port to serve on, after the rules that hold wherever the API runs: a valid
    address, the token when ``token_env`` names one, a token off loopback.

    Raises:
        ApiStartError: one of them does not hold.
    """
    host, port = parse_listen(listen)
    if api_token(config) is None and not is_loopback(host):
        raise ApiStartError(f"--listen {listen}: not a loopback address, and no API token is "
                            "configured: set token_env (or token) in [reel], or listen on "
                            "127.0.0.1")  # fmt: skip
    return host, port


def bind_listen(config: Config, listen: str) -> socket.socket:
    """A socket listening on ``listen``, for :func:`start_api` to serve later: the TUI binds
    before it takes the screen, so a port in use is one line on a normal terminal.

    Raises:
        ApiStartError: :func:`check_listen`'s refusals, or the address cannot be bound.
    """
    host, port = check_listen(config, listen)
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        return socket.create_server(address, family=family, backlog=128)
    except OSError as exc:
        raise ApiStartError(f"cannot listen on {listen}: {exc.strerror or exc}") from None


async def start_api(
    queue: JobQueue,
    config: Config,
    listen: str = DEFAULT_LISTEN,
    *,
    allow_remote: bool = False,
    access_log: logging.Logger | None = None,
    bucket: TokenBucket | None = None,
    sock: socket.socket | None = None,
) -> RunningApi:
    """Serve the API for ``config`` on ``queue`` from the running loop; returns at once.
    ``sock``: already bound to ``listen`` by :func:`bind_listen` (served, closed with it).

    Raises:
        ApiStartError: a bad ``listen``, a port in use, or no token for a non-loopback address.
    """
    host, port = check_listen(config, listen)
    token = api_token(config)
    service = RewindService(config, queue, allow_remote=allow_remote)
    app = build_app(service, token=token, get_rewind=config.settings.api_get_rewind,
                    bucket=bucket)  # fmt: skip
    runner = web.AppRunner(app, access_log=access_log, access_log_format=ACCESS_LOG_FORMAT,
                           handle_signals=False, shutdown_timeout=SHUTDOWN_SECONDS)  # fmt: skip
    await runner.setup()
    site: web.BaseSite = web.SockSite(runner, sock) if sock else web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ApiStartError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
    bound_port = runner.addresses[0][1] if runner.addresses else port
    shown = f"[{host}]" if ":" in host else host
    return RunningApi(f"http://{shown}:{bound_port}", token is not None, service, runner, site)


def serve_headless(
    config: Config,
    history: HistoryStore,
    listen: str,
    *,
    allow_remote: bool = False,
    quiet: bool = False,
    say: Callable[[str], None] = print,
) -> int:
    """``reel-tui --serve``: serve until a signal; the exit code (130 / 143).

    Raises:
        ApiStartError: the API could not start (nothing was served).
    """
    return asyncio.run(_serve(config, history, listen, allow_remote, quiet, say))


async def _serve(
    config: Config,
    history: HistoryStore,
    listen: str,
    allow_remote: bool,
    quiet: bool,
    say: Callable[[str], None],
) -> int:
    queue = JobQueue(history, workers=config.settings.workers)
    try:
        api = await start_api(queue, config, listen, allow_remote=allow_remote,
                              access_log=None if quiet else _access_logger())  # fmt: skip
    except BaseException:
        queue.shutdown(cancel=True)
        raise
    token = "bearer token required" if api.token_required else "no token, loopback only"
    say(f"reel-tui: serving the HTTP API at {api.url}{API_PREFIX}/ ({token}); "
        "SIGHUP reloads the config, SIGINT or SIGTERM stops it")  # fmt: skip
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, _reload, api.service, say)
    received = await _until_signal()
    await api.stop_accepting()
    await asyncio.to_thread(queue.shutdown, True, None)  # cancels, waits for the jobs
    await api.close()
    return 128 + received


def _reload(service: RewindService, say: Callable[[str], None]) -> None:
    """SIGHUP: read the config file again, as the TUI's ``r`` does. Apps, sources and
    their settings apply to the next requests; a config that cannot be read keeps the
    old one (one line says why)."""
    before = service.config
    try:
        fresh = load_config(before.path)
    except ConfigError as exc:
        say(f"reel-tui: SIGHUP: kept the config as it was: {exc}")
        return
    service.config = fresh
    say(f"reel-tui: SIGHUP: reloaded {fresh.path}: {len(fresh.apps)} usable apps, "
        f"{len(fresh.disabled)} disabled")  # fmt: skip
    if restart_settings(before.settings) != restart_settings(fresh.settings):
        say(f"reel-tui: {RESTART_SETTINGS_TEXT} take effect at the next start")
    for problem in fresh.problems:
        say(f"reel-tui: {problem}")


async def _until_signal() -> int:
    """Wait for SIGINT or SIGTERM; the signal's number."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[int] = loop.create_future()

    def note(signum: int) -> None:
        if not received.done():
            received.set_result(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):  # kept: a second signal changes nothing
        loop.add_signal_handler(signum, note, signum)  # (asyncio.run removes them at the end)
    return await received


def _access_logger() -> logging.Logger:
    """One line per request on stderr: client, request line, status, size, time."""
    logger = logging.getLogger("reel_tui.api.access")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger
