"""The HTTP API over real HTTP on loopback: a ``reel-tui --serve`` process, or
``start_api`` in this process where a test must look inside (the queue, the limits)."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api_tools import V1, InProcess, Served, call, wait_running
from conftest import REEL, big_dump, file_hash, fingerprint
from reel_tui.config import Config
from test_sqlite_engine import reference

TOKEN_ENV = "REEL_TEST_API_TOKEN"


@pytest.fixture
def served(blog: Config) -> Iterator[Served]:
    server = Served(blog.path)
    yield server
    server.stop()


@pytest.fixture
def inproc(blog: Config, state_dir: Path) -> Iterator[InProcess]:
    api = InProcess(blog.path, state_dir, workers=1)
    yield api
    api.close()


def error_of(reply, status: int) -> str:
    """The JSON error's message, after checking its shape and status."""
    assert reply.status == status, (reply.status, reply.body)
    body = reply.json
    assert set(body) == {"error", "status"} and body["status"] == status
    assert "\n" not in body["error"]
    return body["error"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REEL, *args], capture_output=True, text=True, timeout=60,
                          env=env or os.environ.copy())  # fmt: skip


def refusal(result: subprocess.CompletedProcess[str]) -> str:
    """Exit 2, exactly one line on stderr and no traceback: that line."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


# --- the routes --------------------------------------------------------------------------


def test_health_sources_openapi_and_unknown_routes(served: Served):
    health = served("GET", "/healthz")
    assert health.status == 200
    assert health.json["status"] == "ok" and health.json["running"] == 0
    assert "no token, loopback only" in served.banner

    for path in (f"{V1}/sources/", f"{V1}/sources/blog"):
        body = served("GET", path).json
        assert body["Sources"] == ["seed.sql", "other.sql"]  # reel's body: default first
        assert body["app"] == "blog" and body["engine"] == "sqlite"
        assert body["default_source"] == "seed.sql"
        assert [s["name"] for s in body["sources"]] == body["Sources"]
        assert all(s["kind"] == "dump" and s["size"] > 0 and s["modified"] > 0
                   for s in body["sources"])  # fmt: skip

    assert "ghost" in error_of(served("GET", f"{V1}/sources/ghost"), 404)
    error_of(served("GET", f"{V1}/nowhere"), 404)
    error_of(served("DELETE", f"{V1}/jobs"), 405)
    served_doc = served("GET", f"{V1}/openapi.json")
    assert served_doc.status == 200
    committed = files("reel_tui.api").joinpath("openapi.json").read_text(encoding="utf-8")
    assert served_doc.json == json.loads(committed)


def test_disabled_app_is_503_with_the_reason(write_config, tmp_path: Path):
    (tmp_path / "d.sql").write_text("CREATE TABLE t (x);\n")
    path = write_config(
        """
        [good]
        database = "good.db"
        dbsource = "d.sql"
        [bad]
        dbdriver = "oracle"
        database = "bad"
        dbsource = "d.sql"
        """
    )
    server = Served(path)
    try:
        assert "oracle" in error_of(server("GET", f"{V1}/sources/bad"), 503)
        assert "oracle" in error_of(server("POST", f"{V1}/rewind/bad"), 503)
        assert "default" in error_of(server("POST", f"{V1}/rewind/"), 503)
        assert server("GET", f"{V1}/sources/good").status == 200
    finally:
        server.stop()


def test_rewind_is_accepted_runs_and_is_told_apart_in_history(served: Served, blog: Config,
                                                               tmp_path: Path):  # fmt: skip
    reply = served("POST", f"{V1}/rewind/blog/other.sql")
    assert reply.status == 202, reply.body
    job_id = reply.json["id"]
    assert reply.headers["Location"] == reply.json["status_url"] == f"{V1}/jobs/{job_id}"
    assert reply.json["coalesced"] is False
    # the job as it was when the reply was made: a small dump may be loaded by then on a
    # loaded machine (the reply is made after the submit, on the server's loop)
    assert reply.json["job"]["id"] == job_id
    assert reply.json["job"]["state"] in ("queued", "running", "succeeded")
    view = served.wait_final(job_id)
    assert view["state"] == "succeeded", view
    assert view["origin"] == "api 127.0.0.1" and view["fraction"] == 1.0
    assert view["source"] == "other.sql" and view["duration"] > 0
    target = Path(blog.apps["blog"].database)
    assert fingerprint(target) == fingerprint(reference(blog.apps["blog"].sources_dir / "other.sql",
                                                        tmp_path))  # fmt: skip

    log = served("GET", f"{V1}/jobs/{job_id}/log")
    assert log.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in log.text.splitlines()]
    assert any(line["message"] == "done: blog now holds other.sql" for line in lines)
    assert all(set(line) == {"time", "level", "message"} for line in lines)

    for path, source in ((f"{V1}/rewind/", "seed.sql"), (f"{V1}/rewind/blog", "seed.sql")):
        again = served("POST", path)
        assert again.status == 202
        assert served.wait_final(again.json["id"])["source"] == source

    listed = served("GET", f"{V1}/jobs").json["jobs"]
    assert [job["id"] for job in listed] == sorted((job["id"] for job in listed), reverse=True)
    assert len(listed) == 3 and all(job["origin"] == "api 127.0.0.1" for job in listed)
    history = json.loads(run("-c", str(blog.path), "--history", "--json").stdout)["jobs"]
    assert {job["origin"] for job in history} == {"api 127.0.0.1"}
    table = run("-c", str(blog.path), "--history").stdout
    assert "from" in table.splitlines()[0] and "api 127.0.0.1" in table


def test_jobs_filters_bounds_and_unknown_ids(inproc: InProcess):
    first = inproc("POST", f"{V1}/rewind/blog/other.sql").json["id"]
    inproc.wait_final(first)
    inproc.queue.history.create({"app": "elsewhere", "source": "x.sql", "target": "x",
                                 "created": time.time(), "bytes_total": 1})  # fmt: skip
    assert [j["id"] for j in inproc("GET", f"{V1}/jobs?app=blog").json["jobs"]] == [first]
    assert [j["app"] for j in inproc("GET", f"{V1}/jobs?state=queued").json["jobs"]] == [
        "elsewhere"
    ]
    assert len(inproc("GET", f"{V1}/jobs?limit=1").json["jobs"]) == 1
    past = inproc("GET", f"{V1}/jobs/{first + 1}").json  # from the history, not this queue
    assert past["app"] == "elsewhere" and past["live"] is False
    for query in ("limit=0", "limit=501", "limit=x", "state=lost"):
        error_of(inproc("GET", f"{V1}/jobs?{query}"), 400)
    for job_id in (999_999, 10**30):
        error_of(inproc("GET", f"{V1}/jobs/{job_id}"), 404)
        error_of(inproc("GET", f"{V1}/jobs/{job_id}/log"), 404)
        error_of(inproc("POST", f"{V1}/jobs/{job_id}/cancel"), 404)
    assert "already over" in error_of(inproc("POST", f"{V1}/jobs/{first}/cancel"), 409)
    assert "another reel-tui process" in error_of(
        inproc("POST", f"{V1}/jobs/{first + 1}/cancel"), 409
    )


# --- GET compatibility ---------------------------------------------------------------------


def test_get_rewind_is_405_naming_the_key_unless_turned_on(blog: Config, write_config):
    off = Served(blog.path)
    try:
        reply = off("GET", f"{V1}/rewind/blog")
        assert "api_get_rewind = true" in error_of(reply, 405)
        assert reply.headers["Allow"] == "POST"
        assert off("GET", f"{V1}/jobs").json["jobs"] == []
    finally:
        off.stop()
    text = blog.path.read_text().replace("[reel]", "[reel]\napi_get_rewind = true")
    on = Served(write_config(text, "on.toml"))
    try:
        reply = on("GET", f"{V1}/rewind/blog/other.sql")
        assert reply.status == 202
        assert on.wait_final(reply.json["id"])["state"] == "succeeded"
    finally:
        on.stop()


# --- sources are names, never paths ---------------------------------------------------------


def test_source_in_url_is_only_a_configured_name(served: Served, blog: Config, tmp_path: Path):
    app = blog.apps["blog"]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.sql").write_text("CREATE TABLE secret (x);\n")
    (app.sources_dir / "link-out.sql").symlink_to(outside / "secret.sql")
    (app.sources_dir / "link-in.sql").symlink_to(app.sources_dir / "seed.sql")
    quoted_dump = urllib.parse.quote(str(app.sources_dir / "seed.sql"))
    attempts = [
        "../reel.toml", "..%2F..%2Freel.toml", "%2e%2e/%2e%2e/reel.toml", "%2E%2E%2Freel.toml",
        "/etc/passwd", "%2Fetc%2Fpasswd", quoted_dump, f"dumps/../{quoted_dump}",
        "./seed.sql", "link-out.sql", "link-in.sql", "..", "%00", "seed.sql%00",
        f"..%2F{urllib.parse.quote(str(outside / 'secret.sql'))}",
    ]  # fmt: skip
    for attempt in attempts:
        reply = served("POST", f"{V1}/rewind/blog/{attempt}")
        assert reply.status == 404, (attempt, reply.status, reply.body)
        assert reply.json["status"] == 404
    assert not Path(app.database).exists(), "nothing was loaded"
    assert served("GET", f"{V1}/jobs").json["jobs"] == []


# --- auth ------------------------------------------------------------------------------------


def test_token_required_everywhere_but_healthz_and_never_shown(blog: Config, write_config,
                                                               state_dir: Path):  # fmt: skip
    token = "tok-" + secrets.token_hex(16)
    text = blog.path.read_text().replace("[reel]", f'[reel]\ntoken_env = "{TOKEN_ENV}"')
    env = {**os.environ, TOKEN_ENV: token}
    server = Served(write_config(text, "auth.toml"), env=env)
    try:
        assert "bearer token required" in server.banner
        assert server("GET", "/healthz").status == 200
        for path in (f"{V1}/sources/", f"{V1}/jobs", f"{V1}/metrics", f"{V1}/openapi.json"):
            missing = server("GET", path)
            assert "Authorization: Bearer" in error_of(missing, 401)
            assert missing.headers["WWW-Authenticate"].startswith("Bearer")
            assert error_of(server("GET", path, token="wrong"), 401) == "wrong token"
            assert server("GET", path, token=token).status == 200
        basic = server("GET", f"{V1}/jobs", headers={"Authorization": f"Basic {token}"})
        error_of(basic, 401)
        error_of(server("POST", f"{V1}/rewind/blog"), 401)
        assert not Path(blog.apps["blog"].database).exists()
        reply = server("POST", f"{V1}/rewind/blog", token=token)
        assert reply.status == 202
        server.token = token
        assert server.wait_final(reply.json["id"])["state"] == "succeeded"
        server("GET", f"{V1}/jobs/{reply.json['id']}/log?stream=1")
    finally:
        code, out, err = server.stop()
    assert code == 143
    assert token not in out and token not in err
    assert '"GET /reel/api/v1/jobs HTTP/1.1" 401' in err  # the access log is on stderr
    for path in state_dir.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_token_allows_a_network_listen(blog: Config, write_config):
    text = blog.path.read_text().replace("[reel]", '[reel]\ntoken = "plain-token"')
    server = Served(write_config(text, "net.toml"), "--listen", "0.0.0.0:0")
    try:
        assert "bearer token required" in server.banner and "0.0.0.0" in server.banner
        port = server.url.rsplit(":", 1)[1]
        reply = call(f"http://127.0.0.1:{port}", "GET", f"{V1}/jobs", token="plain-token")
        assert reply.status == 200
    finally:
        server.stop()


def test_start_refusals_are_one_line_exit_2(blog: Config, write_config):
    config = str(blog.path)
    assert "not a loopback address" in refusal(
        run("--serve", "-c", config, "--listen", "0.0.0.0:7999")
    )
    for bad in ("nonsense", "127.0.0.1:", "127.0.0.1:99999", ":7999", "127.0.0.1:x"):
        assert "--listen" in refusal(run("--serve", "-c", config, "--listen", bad))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert "cannot listen" in refusal(
            run("--serve", "-c", config, "--listen", f"127.0.0.1:{port}")
        )
    assert "--serve" in refusal(run("--list", "-c", config, "--listen", "127.0.0.1:1"))
    text = blog.path.read_text().replace("[reel]", f'[reel]\ntoken_env = "{TOKEN_ENV}"')
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    assert TOKEN_ENV in refusal(run("--serve", "-c", str(write_config(text, "t.toml")), env=env))


# --- coalescing, bounds ------------------------------------------------------------------------


def test_identical_queued_rewind_is_coalesced(inproc: InProcess, blog: Config, tmp_path: Path):
    # big enough to be still loading while the requests below are made on a loaded
    # machine (it is cancelled, never loaded to the end)
    big_dump(blog.apps["blog"].sources_dir / "big.sql", 600_000)
    big = inproc("POST", f"{V1}/rewind/blog/big.sql").json["id"]
    wait_running(inproc, big, past_bytes=100_000)
    first = inproc("POST", f"{V1}/rewind/blog/seed.sql")
    again = inproc("POST", f"{V1}/rewind/blog/seed.sql")
    default = inproc("POST", f"{V1}/rewind/blog")  # the default source: seed.sql again
    other = inproc("POST", f"{V1}/rewind/blog/other.sql")
    last = inproc("POST", f"{V1}/rewind/blog/seed.sql")  # after other: joining first is wrong
    replies = (first, again, default, other, last)
    assert [reply.status for reply in replies] == [202] * 5
    assert [reply.json["coalesced"] for reply in replies] == [False, True, True, False, False]
    assert again.json["id"] == default.json["id"] == first.json["id"]
    ids = [first.json["id"], other.json["id"], last.json["id"]]
    assert len(set(ids)) == 3
    assert inproc("POST", f"{V1}/jobs/{big}/cancel").status == 202
    views = [inproc.wait_final(i) for i in (big, *ids)]
    assert [v["state"] for v in views] == ["cancelled", "succeeded", "succeeded", "succeeded"]
    assert (
        views[1]["finished"] <= views[2]["started"] and views[2]["finished"] <= views[3]["started"]
    ), "run in submission order"
    expected = reference(blog.apps["blog"].sources_dir / "seed.sql", tmp_path)
    assert fingerprint(Path(blog.apps["blog"].database)) == fingerprint(expected)
    assert len(inproc("GET", f"{V1}/jobs").json["jobs"]) == 4


def test_queued_jobs_per_app_are_bounded(inproc: InProcess, blog: Config):
    dumps = blog.apps["blog"].sources_dir
    big_dump(dumps / "big.sql", 600_000)  # still loading during the requests (cancelled)
    (dumps / "third.sql").write_text("CREATE TABLE third (x);\n")
    inproc.api.service.max_queued_per_app = 2
    big = inproc("POST", f"{V1}/rewind/blog/big.sql").json["id"]
    wait_running(inproc, big, past_bytes=100_000)
    assert inproc("POST", f"{V1}/rewind/blog/seed.sql").status == 202
    assert inproc("POST", f"{V1}/rewind/blog/other.sql").status == 202
    full = inproc("POST", f"{V1}/rewind/blog/third.sql")
    assert "queued" in error_of(full, 429) and full.headers["Retry-After"] == "5"
    assert inproc("POST", f"{V1}/rewind/blog/other.sql").json["coalesced"] is True


def test_rate_bound_answers_429_with_retry_after(blog: Config, state_dir: Path):
    from reel_tui.api.auth import TokenBucket

    # a token back only every 20 s: a loaded machine's slow requests do not refill one
    api = InProcess(blog.path, state_dir, bucket=TokenBucket(burst=5, rate=0.05))
    try:
        assert [api("GET", "/healthz").status for _ in range(5)] == [200] * 5
        limited = api("GET", "/healthz")
        assert "slow down" in error_of(limited, 429)
        assert int(limited.headers["Retry-After"]) >= 1
    finally:
        api.close()


def test_token_bucket_refills_at_its_rate():
    from reel_tui.api.auth import TokenBucket

    now = [100.0]
    bucket = TokenBucket(burst=3, rate=2.0, clock=lambda: now[0])
    assert [bucket.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take("a") == pytest.approx(0.5)
    assert bucket.take("b") == 0.0, "clients have their own buckets"
    now[0] += 0.5
    assert bucket.take("a") == 0.0
    assert bucket.take("a") > 0


def test_request_body_is_bounded(served: Served):
    big_body = b"x" * (70 * 1024)
    request = urllib.request.Request(served.url + f"{V1}/rewind/blog", data=big_body,
                                     method="POST")  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 413
    assert json.loads(refused.value.read())["status"] == 413
    assert served("GET", f"{V1}/jobs").json["jobs"] == [], "nothing was queued"
    assert served("GET", "/healthz").status == 200


# --- cancel, signals -------------------------------------------------------------------------


def test_cancel_through_the_api_leaves_the_target_unchanged(inproc: InProcess, blog: Config):
    first = inproc("POST", f"{V1}/rewind/blog/other.sql").json["id"]
    assert inproc.wait_final(first)["state"] == "succeeded"
    target = Path(blog.apps["blog"].database)
    before = file_hash(target)
    big_dump(blog.apps["blog"].sources_dir / "big.sql", 300_000)
    job_id = inproc("POST", f"{V1}/rewind/blog/big.sql").json["id"]
    wait_running(inproc, job_id)
    reply = inproc("POST", f"{V1}/jobs/{job_id}/cancel")
    assert reply.status == 202 and reply.json["cancel_requested"] is True
    view = inproc.wait_final(job_id)
    assert view["state"] == "cancelled" and view["error_code"] == "cancelled"
    assert file_hash(target) == before
    assert not list(target.parent.glob(".blog.sqlite3.reel-*.tmp*"))


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_cancels_running_jobs_and_leaves_target(blog: Config, sig, code):
    server = Served(blog.path)
    try:
        first = server("POST", f"{V1}/rewind/blog/other.sql").json["id"]
        assert server.wait_final(first)["state"] == "succeeded"
        target = Path(blog.apps["blog"].database)
        before = file_hash(target)
        big_dump(blog.apps["blog"].sources_dir / "big.sql", 300_000)
        running = server("POST", f"{V1}/rewind/blog/big.sql").json["id"]
        queued = server("POST", f"{V1}/rewind/blog/seed.sql").json["id"]
        wait_running(server, running)
    finally:
        exit_code, _, err = server.stop(sig)
    assert exit_code == code, err
    assert "Traceback" not in err
    assert file_hash(target) == before
    assert not list(target.parent.glob(".blog.sqlite3.reel-*.tmp*"))
    history = json.loads(run("-c", str(blog.path), "--history", "--json").stdout)["jobs"]
    states = {job["id"]: job["state"] for job in history}
    assert states[running] == states[queued] == "cancelled"


# --- the log as server-sent events -------------------------------------------------------------


def read_events(response: http.client.HTTPResponse) -> Iterator[tuple[str, dict]]:
    kind = None
    for raw in response:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind:
            yield kind, json.loads(line[6:])
            kind = None


def test_log_streams_live_and_ends_with_the_final_state(inproc: InProcess, blog: Config):
    big_dump(blog.apps["blog"].sources_dir / "big.sql", 300_000)
    job_id = inproc("POST", f"{V1}/rewind/blog/big.sql").json["id"]
    host, port = inproc.url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.request("GET", f"{V1}/jobs/{job_id}/log",
                       headers={"Accept": "text/event-stream"})  # fmt: skip
    response = connection.getresponse()
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    events = []
    state_at_first_log = None
    for kind, data in read_events(response):
        if kind == "log" and state_at_first_log is None:
            state_at_first_log = inproc("GET", f"{V1}/jobs/{job_id}").json["state"]
        events.append((kind, data))
    connection.close()
    assert state_at_first_log in ("queued", "running"), "a line came before the job ended"
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "end" and kinds.count("end") == 1
    assert events[-1][1]["state"] == "succeeded" and events[-1][1]["id"] == job_id
    assert any(kind == "progress" and data["state"] == "running" for kind, data in events)
    messages = [data["message"] for kind, data in events if kind == "log"]
    assert "done: blog now holds big.sql" in messages
    assert len(messages) == len(set(messages)), "no line twice"

    ended = call(inproc.url, "GET", f"{V1}/jobs/{job_id}/log?stream=1")  # a finished job
    assert ended.text.rstrip().splitlines()[-1].startswith("data: ")
    assert '"state": "succeeded"' in ended.text and "event: end" in ended.text


# --- metrics ---------------------------------------------------------------------------------


def test_metrics_json_and_prometheus(inproc: InProcess, blog: Config):
    (blog.apps["blog"].sources_dir / "broken.sql").write_text("CREATE TABLE (;\n")
    ok = inproc("POST", f"{V1}/rewind/blog/other.sql").json["id"]
    bad = inproc("POST", f"{V1}/rewind/blog/broken.sql").json["id"]
    assert inproc.wait_final(ok)["state"] == "succeeded"
    assert inproc.wait_final(bad)["state"] == "failed"
    body = inproc("GET", f"{V1}/metrics").json
    (blog_metrics,) = body["apps"]
    assert blog_metrics["app"] == "blog" and blog_metrics["runs"] == 2
    assert blog_metrics["succeeded"] == 1 and blog_metrics["failed"] == 1
    assert body["live"] == {"queued": 0, "running": 0}

    for how in ({"path": f"{V1}/metrics?format=prometheus"},
                {"path": f"{V1}/metrics", "headers": {"Accept": "text/plain"}}):  # fmt: skip
        reply = inproc("GET", how["path"], headers=how.get("headers"))
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        families = {f.name: f for f in text_string_to_metric_families(reply.text)}
        totals = {(s.labels["app"], s.labels["state"]): s.value
                  for s in families["reel_rewinds"].samples}  # fmt: skip
        assert totals == {("blog", "succeeded"): 1, ("blog", "failed"): 1,
                          ("blog", "cancelled"): 0}  # fmt: skip
        durations = {s.labels["stat"]: s.value
                     for s in families["reel_rewind_duration_seconds"].samples}  # fmt: skip
        assert set(durations) == {"mean", "median", "p95", "last"} and durations["mean"] > 0
    error_of(inproc("GET", f"{V1}/metrics?format=xml"), 400)


# --- start-up cost -----------------------------------------------------------------------------


def test_headless_rewind_never_imports_the_api(blog: Config):
    code = (
        "import sys\nimport reel_tui.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'aiohttp'"
        " or m.startswith('reel_tui.api')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    rewind = (
        "import sys\nfrom reel_tui.cli import main\ncode = main(sys.argv[1:])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'aiohttp'"
        " or m.startswith('reel_tui.api')))\nraise SystemExit(code)"
    )
    result = subprocess.run(
        [sys.executable, "-c", rewind, "-c", str(blog.path), "--rewind", "-q"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_sighup_reloads_the_config_and_a_broken_one_is_not_taken(blog: Config):
    """A long-running ``--serve`` picks up a new app on SIGHUP, as the TUI's ``r`` does; a
    config that no longer parses keeps the old one, and one line says why."""
    server = Served(blog.path)
    try:
        assert "notes" in error_of(server("GET", f"{V1}/sources/notes"), 404)
        text = blog.path.read_text(encoding="utf-8")
        blog.path.write_text(text + '\n[notes]\ndbdriver = "sqlite"\ndatabase = "notes.sqlite3"\n'
                             'dbsources = "dumps"\n', encoding="utf-8")  # fmt: skip
        server.proc.send_signal(signal.SIGHUP)
        line = server.proc.stdout.readline()
        assert "SIGHUP: reloaded" in line and "2 usable apps" in line, line
        reply = server("GET", f"{V1}/sources/notes")
        assert reply.status == 200 and "seed.sql" in reply.json["Sources"], reply.body

        blog.path.write_text(text + "\n[broken\n", encoding="utf-8")
        server.proc.send_signal(signal.SIGHUP)
        line = server.proc.stdout.readline()
        assert "SIGHUP: kept the config as it was" in line and str(blog.path) in line, line
        assert server("GET", f"{V1}/sources/notes").status == 200
    finally:
        code, _, err = server.stop()
    assert code == 143 and "Traceback" not in err
