"""Who may call the API and how much: the bearer token, the loopback rule, rate bounds.

The token is compared in constant time and never logged: the access log's format
(:data:`ACCESS_LOG_FORMAT`) has no header in it, and no error message quotes one.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

CLIENT_MAX_SIZE = 64 * 1024
"""Largest request body read: the API takes no body worth more."""
BURST = 200
"""Requests a client may make at once before the rate applies."""
RATE = 50.0
"""Requests per second a client may make, sustained."""
ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tf'
"""Client, request line, status, size, seconds: no header (the token travels in one)."""
OPEN_PATHS = frozenset({"/healthz"})
"""Routes that answer without the token: a load balancer's or Vagrant's liveness probe."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses; any other name may reach a network."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """The API's one error shape: ``{"error": "<one line>", "status": N}``."""
    return web.json_response({"error": message, "status": status}, status=status, headers=headers)


class TokenBucket:
    """Per-client rate bound: ``burst`` requests at once, then ``rate`` a second."""

    MAX_CLIENTS = 10_000

    def __init__(
        self, burst: int = BURST, rate: float = RATE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst, self.rate, self.clock = burst, rate, clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, client: str) -> float:
        """Spend one token of ``client``'s: 0.0 if it had one, else the seconds to wait."""
        now = self.clock()
        tokens, last = self._buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if len(self._buckets) >= self.MAX_CLIENTS and client not in self._buckets:
            self._forget_idle(now)
        if tokens >= 1.0:
            self._buckets[client] = (tokens - 1.0, now)
            return 0.0
        self._buckets[client] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        """Drop clients whose bucket has refilled: they are as if never seen."""
        full = self.burst / self.rate
        for client, (_, last) in list(self._buckets.items()):
            if now - last >= full:
                del self._buckets[client]


def guard(
    token: str | None, bucket: TokenBucket
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Middleware: the size and rate bounds for every request, then the token where one is
    set. A body is refused by its announced length: no route reads one, so aiohttp's own
    ``client_max_size`` would never see it."""
    expected = token.encode() if token else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (request.content_length or 0) > CLIENT_MAX_SIZE:  # refused before it is read
            return error_response(413, f"request body over {CLIENT_MAX_SIZE // 1024} KiB")
        wait = bucket.take(request.remote or "")
        if wait:
            return error_response(
                429, "too many requests: slow down", {"Retry-After": str(max(1, math.ceil(wait)))}
            )
        if expected is not None and request.path not in OPEN_PATHS:
            problem = _token_problem(request.headers.get("Authorization"), expected)
            if problem:
                return error_response(401, problem, {"WWW-Authenticate": 'Bearer realm="reel"'})
        return await handler(request)

    return middleware


def _token_problem(header: str | None, expected: bytes) -> str | None:
    """Why the Authorization header does not carry the token; None when it does."""
    if not header:
        return "a token is required: send Authorization: Bearer <token>"
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return "a token is required: send Authorization: Bearer <token>"
    supplied = given.strip().encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(supplied, expected):
        return "wrong token"
    return None
