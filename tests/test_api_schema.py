"""The committed OpenAPI document: up to date with scripts/openapi.py, and true of the
server: schemathesis generates requests from it against a live API (loopback, with the
token) and checks every answer (no 5xx, documented status, body and content type)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from api_tools import V1, InProcess
from conftest import REPO
from reel_tui.api.auth import TokenBucket
from reel_tui.config import Config

EXAMPLES = 25
"""Generated requests per operation: the whole run stays well under a minute."""


def test_committed_openapi_is_what_the_script_writes():
    result = subprocess.run([sys.executable, "scripts/openapi.py", "--check"], cwd=REPO)
    assert result.returncode == 0, "run: .venv/bin/python scripts/openapi.py"


def test_schemathesis_finds_nothing_against_a_live_server(
    blog: Config, write_config, state_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    token = secrets.token_hex(16)
    monkeypatch.setenv("REEL_TEST_API_TOKEN", token)
    # GET rewinds on, so the document's every operation is live; a bucket that never
    # runs dry, or its 429s would be all schemathesis sees after the first 200 requests
    text = blog.path.read_text().replace(
        "[reel]", '[reel]\ntoken_env = "REEL_TEST_API_TOKEN"\napi_get_rewind = true'
    )
    config = write_config(text, "schema.toml")
    api = InProcess(config, state_dir, bucket=TokenBucket(burst=10**6, rate=10**6))
    auth = {"Authorization": f"Bearer {token}"}
    try:
        schema = schemathesis.openapi.from_url(f"{api.url}{V1}/openapi.json", headers=auth)
        failures, operations = [], 0
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1

            @given(operation.as_strategy())
            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))  # fmt: skip
            def check(case: schemathesis.Case) -> None:
                case.call_and_validate(base_url=api.url, headers=auth)

            try:
                check()
            except BaseException as exc:  # schemathesis raises an ExceptionGroup of failures
                failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    finally:
        api.close()
    document = json.loads((REPO / "reel_tui" / "api" / "openapi.json").read_text())
    # every operation but the document's own route, which schemathesis leaves out
    assert operations == sum(len(methods) for methods in document["paths"].values()) - 1
    assert not failures, "\n\n".join(failures)
