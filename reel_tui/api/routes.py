"""The API's handlers: HTTP in, :class:`~reel_tui.api.service.RewindService` calls, JSON out.

Service calls run on threads (``asyncio.to_thread``): they read dumps' headers and
the history, and must not stall the loop the TUI draws with. Job events reach a
log stream through ``loop.call_soon_threadsafe``: the workers never wait for a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from importlib.resources import files
from typing import Any

from aiohttp import web

from reel_tui.api.auth import CLIENT_MAX_SIZE, TokenBucket, error_response, guard
from reel_tui.api.service import (
    API_PREFIX,
    DEFAULT_LIST_LIMIT,
    ApiError,
    RewindService,
    job_view,
    status_url,
)
from reel_tui.jobs import Job, JobEvent, LogLine
from reel_tui.prometheus import CONTENT_TYPE as PROMETHEUS_TYPE

SERVICE = web.AppKey("service", RewindService)
GET_REWIND = web.AppKey("get_rewind", bool)
STREAMS = web.AppKey("streams", set)
POLL_SECONDS = 0.5
LATE_END_SECONDS = 2.0
KEEPALIVE_SECONDS = 15.0
"""A comment line on a quiet log stream this often, so proxies keep it open."""
STREAM_BACKLOG = 10_000
"""Events a slow log-stream client may fall behind by; later progress events are dropped."""
GET_REWIND_OFF = (
    "a rewind is a POST request: GET is off because any web page open in a browser on "
    "this machine could send one; set api_get_rewind = true in [reel] for reel's GET"
)


def _logger() -> logging.Logger:
    return logging.getLogger("reel_tui.api")


def build_app(
    service: RewindService,
    *,
    token: str | None,
    get_rewind: bool,
    bucket: TokenBucket | None = None,
) -> web.Application:
    """The aiohttp application: every route of the API, its bounds and its guard.

    ``bucket``: the per-client rate bound (default: a burst of 200, then 50 a second)."""
    app = web.Application(
        client_max_size=CLIENT_MAX_SIZE,
        middlewares=[_json_errors, guard(token, bucket or TokenBucket())],
    )
    app[SERVICE] = service
    app[GET_REWIND] = get_rewind
    app[STREAMS] = set()
    app.on_shutdown.append(_end_streams)
    v1 = API_PREFIX
    app.router.add_get("/healthz", healthz)
    app.router.add_get(f"{v1}/openapi.json", openapi)
    for path in (f"{v1}/sources/", f"{v1}/sources/{{app}}"):
        app.router.add_get(path, sources)
    for path in (f"{v1}/rewind/", f"{v1}/rewind/{{app}}", f"{v1}/rewind/{{app}}/{{source:.*}}"):
        app.router.add_post(path, rewind)
        app.router.add_get(path, rewind, allow_head=False)
    app.router.add_get(f"{v1}/jobs", jobs)
    app.router.add_get(f"{v1}/jobs/{{id:\\d+}}", job)
    app.router.add_get(f"{v1}/jobs/{{id:\\d+}}/log", log)
    app.router.add_post(f"{v1}/jobs/{{id:\\d+}}/cancel", cancel)
    app.router.add_get(f"{v1}/metrics", metrics)
    return app


@web.middleware
async def _json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every error as ``{"error", "status"}``: the service's, aiohttp's own (404, 405,
    413), and a bug's (500, logged without the request's headers)."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return error_response(exc.status, exc.reason, headers)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        _logger().exception("internal error answering %s %s", request.method, request.path)
        return error_response(500, "internal error; see the server's log")


# --- routes -------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVICE].health())


async def openapi(request: web.Request) -> web.Response:
    text = files("reel_tui.api").joinpath("openapi.json").read_text(encoding="utf-8")
    return web.Response(text=text, content_type="application/json")


async def sources(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    body = await asyncio.to_thread(service.sources, request.match_info.get("app"))
    return web.json_response(body)


async def rewind(request: web.Request) -> web.Response:
    """Queue a rewind (or join an identical queued one); 202 with where to follow it."""
    if request.method == "GET" and not request.app[GET_REWIND]:
        raise ApiError(405, GET_REWIND_OFF, headers={"Allow": "POST"})
    service = request.app[SERVICE]
    app_name = request.match_info.get("app") or None
    source = request.match_info.get("source") or None
    plan = await asyncio.to_thread(service.plan, app_name, source)
    submitted = await asyncio.to_thread(service.submit, plan, f"api {request.remote}")
    job_id = submitted.job.id
    body = {
        "id": job_id,
        "status_url": status_url(job_id),
        "coalesced": submitted.coalesced,
        "job": job_view(submitted.job),
    }
    return web.json_response(body, status=202, headers={"Location": status_url(job_id)})


async def jobs(request: web.Request) -> web.Response:
    query = request.query
    try:
        limit = int(query.get("limit", DEFAULT_LIST_LIMIT))
    except ValueError:
        raise ApiError(400, "limit must be a whole number") from None
    service = request.app[SERVICE]
    views = await asyncio.to_thread(
        service.jobs, query.get("app") or None, query.get("state") or None, limit
    )
    return web.json_response({"jobs": views})


async def job(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    return web.json_response(await asyncio.to_thread(service.job, _job_id(request)))


async def cancel(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    view = await asyncio.to_thread(service.cancel, _job_id(request))
    return web.json_response({"id": view["id"], "cancel_requested": True, "job": view}, status=202)


async def metrics(request: web.Request) -> web.Response:
    """JSON by default; Prometheus text with ``?format=prometheus`` or ``Accept: text/plain``."""
    wanted = request.query.get("format")
    if wanted not in (None, "json", "prometheus"):
        raise ApiError(400, "format must be json or prometheus")
    accept = request.headers.get("Accept", "")
    service = request.app[SERVICE]
    if wanted == "prometheus" or (wanted is None and _prefers_text(accept)):
        text = await asyncio.to_thread(service.prometheus)
        return web.Response(body=text.encode(), headers={"Content-Type": PROMETHEUS_TYPE})
    return web.json_response(await asyncio.to_thread(service.metrics))


def _prefers_text(accept: str) -> bool:
    """``Accept: text/plain`` (as Prometheus sends) and no JSON asked for."""
    return "text/plain" in accept and "application/json" not in accept


def _job_id(request: web.Request) -> int:
    return int(request.match_info["id"])


# --- a job's log: JSON lines, or server-sent events while it runs ---------------------


async def log(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE]
    job_id = _job_id(request)
    streamed = request.query.get("stream") in ("1", "true") or "text/event-stream" in (
        request.headers.get("Accept", "")
    )
    if streamed:
        return await _stream_log(request, service, job_id)
    lines = await asyncio.to_thread(service.log, job_id)
    body = "".join(json.dumps(line) + "\n" for line in lines)
    return web.Response(text=body, content_type="application/x-ndjson")


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


def _progress(view: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "state",
        "phase",
        "fraction",
        "bytes_read",
        "bytes_total",
        "rate",
        "eta",
        "detail",
    )
    return {key: view[key] for key in keys}


def _end(view: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "state", "duration", "error", "error_code")
    return {key: view[key] for key in keys}


async def _stream_log(
    request: web.Request, service: RewindService, job_id: int
) -> web.StreamResponse:
    """The log so far, then each new line and progress as it happens, then ``end``."""
    await asyncio.to_thread(service.job, job_id)  # 404 before the stream starts
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    live = service.queue.get(job_id)
    if live is None:  # another process's or a past job: the file has all there is
        for line in await asyncio.to_thread(service.log, job_id):
            await response.write(_sse("log", line))
        await response.write(_sse("end", _end(await asyncio.to_thread(service.job, job_id))))
        return response
    events: asyncio.Queue[JobEvent | None] = asyncio.Queue(STREAM_BACKLOG)
    loop = asyncio.get_running_loop()

    def offer(event: JobEvent | None) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            events.put_nowait(event)

    def on_event(event: JobEvent) -> None:  # on a worker thread
        if event.job is live:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
                loop.call_soon_threadsafe(offer, event)

    unsubscribe = service.queue.subscribe(on_event)
    request.app[STREAMS].add(offer)
    try:
        await _follow(response, live, events)
    finally:
        unsubscribe()
        request.app[STREAMS].discard(offer)
    await response.write(_sse("end", _end(job_view(live))))
    return response


async def _follow(response: web.StreamResponse, live: Job, events: asyncio.Queue[Any]) -> None:
    """Write the job's lines so far, then its events until it finishes (or the server stops).

    The ``finished`` event ends it; a job that finished before the stream subscribed
    sends none, so a job over for :data:`LATE_END_SECONDS` ends it too."""
    backlog = list(live.log)
    seen = {id(line) for line in backlog}  # a line may come again as an event
    for line in backlog:
        await response.write(_sse("log", _line(line)))
    await response.write(_sse("progress", _progress(job_view(live))))
    quiet_since = time.monotonic()
    while not _long_over(live) or not events.empty():
        try:
            event = await asyncio.wait_for(events.get(), POLL_SECONDS)
        except asyncio.TimeoutError:
            if time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                quiet_since = time.monotonic()
                await response.write(b": keep-alive\n\n")
            continue
        quiet_since = time.monotonic()
        if event is None or event.kind == "finished":
            return
        if event.kind == "log" and event.line is not None and id(event.line) not in seen:
            await response.write(_sse("log", _line(event.line)))
        elif event.kind in ("progress", "started"):
            await response.write(_sse("progress", _progress(job_view(live))))


def _long_over(job: Job) -> bool:
    """Over long enough ago that its ``finished`` event has surely been sent."""
    return job.finished is not None and time.time() - job.finished > LATE_END_SECONDS


def _line(line: LogLine) -> dict[str, Any]:
    return {"time": line.time, "level": line.level, "message": line.message}


async def _end_streams(app: web.Application) -> None:
    """On shutdown: every open log stream writes its ``end`` and closes."""
    for offer in list(app[STREAMS]):
        offer(None)
