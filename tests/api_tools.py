"""Helpers for the HTTP API tests: a real ``reel-tui --serve`` process on a free loopback
port, an in-process API on its own loop thread, and a small HTTP client (urllib)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import REEL
from reel_tui.config import load_config
from reel_tui.history import HistoryStore
from reel_tui.jobqueue import JobQueue

V1 = "/reel/api/v1"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def call(
    base: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> Reply:
    """One request; 4xx and 5xx are replies too, not exceptions."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base + path, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers), error.read())


class Served:
    """``reel-tui --serve`` in a subprocess; its URL from the line it prints."""

    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [*REEL, "--serve", "-c", str(config), "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env or os.environ.copy(),
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.banner = self.proc.stdout.readline()
        if "serving the HTTP API at " not in self.banner:
            self.proc.kill()
            raise AssertionError(f"no banner: {self.banner!r} {self.proc.stderr.read()!r}")
        self.url = self.banner.split(" at ", 1)[1].split(V1, 1)[0]
        self.token: str | None = None

    def __call__(self, method: str, path: str, **kwargs: Any) -> Reply:
        kwargs.setdefault("token", self.token)
        return call(self.url, method, path, **kwargs)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> tuple[int, str, str]:
        """Signal it; its exit code, the rest of its stdout and its stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, self.banner + out, err

    def wait_final(self, job_id: int, timeout: float = 60) -> dict[str, Any]:
        return wait_final(self, job_id, timeout)


class InProcess:
    """The API served by :func:`start_api` on a loop in a thread of this process, so a test
    can look inside (the queue, the service) while talking HTTP to it."""

    def __init__(self, config: Path, state_dir: Path, workers: int = 2, **kwargs: Any) -> None:
        from reel_tui.api.serve import start_api

        self.history = HistoryStore(state_dir)
        self.queue = JobQueue(self.history, workers=workers)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        started = asyncio.run_coroutine_threadsafe(
            start_api(self.queue, load_config(config), "127.0.0.1:0", **kwargs), self.loop
        )
        self.api = started.result(30)
        self.url = self.api.url
        self.token: str | None = None

    def __call__(self, method: str, path: str, **kwargs: Any) -> Reply:
        kwargs.setdefault("token", self.token)
        return call(self.url, method, path, **kwargs)

    def wait_final(self, job_id: int, timeout: float = 60) -> dict[str, Any]:
        return wait_final(self, job_id, timeout)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.api.close(), self.loop).result(30)
        self.queue.shutdown(cancel=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.history.close()


def wait_final(api: Any, job_id: int, timeout: float = 60) -> dict[str, Any]:
    """Poll ``/jobs/{id}`` until the job is over; its view."""
    deadline = time.monotonic() + timeout
    while True:
        view = api("GET", f"{V1}/jobs/{job_id}").json
        if view["state"] in ("succeeded", "failed", "cancelled"):
            return view
        assert time.monotonic() < deadline, f"job #{job_id} still {view['state']}"
        time.sleep(0.05)


def wait_running(api: Any, job_id: int, past_bytes: int = 1_000_000, timeout: float = 60) -> None:
    """Poll until the job is loading and has read ``past_bytes`` of its dump."""
    deadline = time.monotonic() + timeout
    while True:
        view = api("GET", f"{V1}/jobs/{job_id}").json
        assert view["state"] in ("queued", "running"), view
        if view["phase"] == "loading" and view["bytes_read"] > past_bytes:
            return
        assert time.monotonic() < deadline, f"job #{job_id} never got loading: {view}"
        time.sleep(0.02)
