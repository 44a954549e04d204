"""Write reel_tui/api/openapi.json, the API's OpenAPI 3.0 description, from the dict below.

    .venv/bin/python scripts/openapi.py          # rewrite the committed file
    .venv/bin/python scripts/openapi.py --check  # exit 1 if the file is out of date

The JSON is committed (and served at /reel/api/v1/openapi.json); tests/test_api_schema.py
checks it matches this script and runs schemathesis against a live server with it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "reel_tui" / "api" / "openapi.json"
V1 = "/reel/api/v1"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(kind: str, **more: Any) -> dict[str, Any]:
    return {"type": kind, "nullable": True, **more}


def json_body(schema: dict[str, Any], description: str, **headers: Any) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description,
                                "content": {"application/json": {"schema": schema}}}  # fmt: skip
    if headers:
        response["headers"] = {name: {"schema": {"type": "string"}, "description": text}
                               for name, text in headers.items()}  # fmt: skip
    return response


def errors(*statuses: int) -> dict[str, Any]:
    """Error responses: those named, and the ones every route may give."""
    words = {400: "Bad query parameter", 401: "Token missing or wrong (a token is configured)",
             403: "The app is protected", 404: "Unknown app, source or job",
             405: "GET on a rewind route while api_get_rewind is off",
             409: "The job is already over, or not this server's; or the rewind is refused",
             413: "Request body over 64 KiB", 429: "Rate bound, or too many queued jobs",
             500: "Internal error (a bug)", 503: "App disabled by config errors, no default "
             "app, or a password only a person could type"}  # fmt: skip
    chosen = sorted({*statuses, 401, 429})
    return {str(status): json_body(ref("Error"), words[status]) for status in chosen}


JOB_PROPERTIES: dict[str, Any] = {
    "id": {"type": "integer"},
    "kind": {"type": "string", "enum": ["rewind", "undo", "snapshot"]},
    "app": {"type": "string"},
    "source": {"type": "string"},
    "target": {"type": "string"},
    "state": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
    "phase": {"type": "string"},
    "created": {"type": "number", "description": "Unix time"},
    "started": nullable("number"),
    "finished": nullable("number"),
    "duration": nullable("number", description="seconds"),
    "bytes_read": {"type": "integer"},
    "bytes_total": {"type": "integer"},
    "statements": {"type": "integer"},
    "detail": {"type": "string"},
    "error": nullable("string"),
    "error_code": nullable("string"),
    "origin": nullable("string", description="'api ADDRESS' for a job the API started"),
    "fraction": {"type": "number", "minimum": 0, "maximum": 1},
    "rate": nullable("number", description="bytes of dump per second"),
    "eta": nullable("number", description="seconds left, while running"),
    "live": {"type": "boolean", "description": "a job of this server process"},
    "status_url": {"type": "string"},
}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error", "status"],
              "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}},
    "Job": {"type": "object", "required": list(JOB_PROPERTIES), "properties": JOB_PROPERTIES},
    "Source": {
        "type": "object", "required": ["name", "kind", "size", "modified", "default"],
        "properties": {"name": {"type": "string"},
                       "kind": {"type": "string", "enum": ["dump", "snapshot", "undo"]},
                       "size": {"type": "integer"}, "modified": {"type": "number"},
                       "format": {"type": "string"}, "default": {"type": "boolean"},
                       "cached": nullable("object")},
    },
    "Sources": {
        "type": "object",
        "required": ["Sources", "app", "engine", "target", "default_source", "sources"],
        "properties": {"Sources": {"type": "array", "items": {"type": "string"},
                                   "description": "reel's body, kept as it was"},
                       "app": {"type": "string"},
                       "engine": {"type": "string", "enum": ["sqlite", "postgres", "mysql"]},
                       "target": {"type": "string"}, "protected": {"type": "boolean"},
                       "default_source": nullable("string"),
                       "sources": {"type": "array", "items": ref("Source")}},
    },
    "Accepted": {
        "type": "object", "required": ["id", "status_url", "coalesced", "job"],
        "properties": {"id": {"type": "integer"}, "status_url": {"type": "string"},
                       "coalesced": {"type": "boolean", "description":
                                     "an identical queued job was returned instead of a new one"},
                       "job": ref("Job")},
    },
    "Jobs": {"type": "object", "required": ["jobs"],
             "properties": {"jobs": {"type": "array", "items": ref("Job")}}},
    "CancelRequested": {
        "type": "object", "required": ["id", "cancel_requested", "job"],
        "properties": {"id": {"type": "integer"}, "cancel_requested": {"type": "boolean"},
                       "job": ref("Job")},
    },
    "AppMetrics": {
        "type": "object",
        "required": ["app", "runs", "succeeded", "failed", "cancelled"],
        "properties": {"app": {"type": "string"}, "runs": {"type": "integer"},
                       "succeeded": {"type": "integer"}, "failed": {"type": "integer"},
                       "cancelled": {"type": "integer"}, "last_duration": nullable("number"),
                       "mean_duration": nullable("number"), "p95_duration": nullable("number"),
                       "median_duration": nullable("number"),
                       "throughput": nullable("number", description="bytes per second")},
    },
    "Metrics": {
        "type": "object", "required": ["v", "apps", "live"],
        "properties": {"v": {"type": "integer"},
                       "apps": {"type": "array", "items": ref("AppMetrics")},
                       "live": {"type": "object", "required": ["queued", "running"],
                                "properties": {"queued": {"type": "integer"},
                                               "running": {"type": "integer"}}}},
    },
    "Health": {
        "type": "object", "required": ["status", "version", "running", "queued"],
        "properties": {"status": {"type": "string", "enum": ["ok"]},
                       "version": {"type": "string"}, "running": {"type": "integer"},
                       "queued": {"type": "integer"}},
    },
}  # fmt: skip

APP = {"name": "app", "in": "path", "required": True, "schema": {"type": "string"},
       "description": "An app: a table of the config"}  # fmt: skip
SOURCE = {
    "name": "source",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "One of the app's source names (may hold '/'), or @snapshot",
}
JOB_ID = {"name": "id", "in": "path", "required": True,
          "schema": {"type": "integer", "minimum": 0}}  # fmt: skip


def rewind_operations(parameters: list[dict[str, Any]], what: str) -> dict[str, Any]:
    accepted = json_body(ref("Accepted"), "Queued (or joined an identical queued job)",
                         Location="the job's status URL")  # fmt: skip
    post = {"summary": f"Rewind {what}", "parameters": parameters,
            "responses": {"202": accepted, **errors(403, 404, 409, 503)}}  # fmt: skip
    get = {"summary": f"Rewind {what} on GET (reel compatibility; off unless "
                      "api_get_rewind = true)", "parameters": parameters,
           "responses": {"202": accepted, **errors(403, 404, 405, 409, 503)}}  # fmt: skip
    return {"post": post, "get": get}


def sources_operation(parameters: list[dict[str, Any]], what: str) -> dict[str, Any]:
    return {"get": {"summary": f"The sources of {what}", "parameters": parameters,
                    "responses": {"200": json_body(ref("Sources"), "The sources"),
                                  **errors(404, 503)}}}  # fmt: skip


PATHS: dict[str, Any] = {
    "/healthz": {"get": {"summary": "Liveness; needs no token", "security": [],
                         "responses": {"200": json_body(ref("Health"), "Serving"),
                                       "429": json_body(ref("Error"), "Rate bound")}}},
    f"{V1}/openapi.json": {"get": {"summary": "This document",
                                   "responses": {"200": json_body({"type": "object"}, "OpenAPI"),
                                                 **errors()}}},
    f"{V1}/sources/": sources_operation([], "the default app"),
    f"{V1}/sources/{{app}}": sources_operation([APP], "app"),
    f"{V1}/rewind/": rewind_operations([], "the default app from its default source"),
    f"{V1}/rewind/{{app}}": rewind_operations([APP], "app from its default source"),
    f"{V1}/rewind/{{app}}/{{source}}": rewind_operations([APP, SOURCE], "app from source"),
    f"{V1}/jobs": {"get": {
        "summary": "Jobs, newest first: this server's and the history's",
        "parameters": [
            {"name": "app", "in": "query", "schema": {"type": "string"}},
            {"name": "state", "in": "query",
             "schema": {"type": "string", "enum": JOB_PROPERTIES["state"]["enum"]}},
            {"name": "limit", "in": "query",
             "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}}],
        "responses": {"200": json_body(ref("Jobs"), "Jobs"), **errors(400)}}},
    f"{V1}/jobs/{{id}}": {"get": {"summary": "One job", "parameters": [JOB_ID],
                                  "responses": {"200": json_body(ref("Job"), "The job"),
                                                **errors(404)}}},
    f"{V1}/jobs/{{id}}/log": {"get": {
        "summary": "The job's log: JSON lines; server-sent events (log, progress, end) with "
                   "Accept: text/event-stream or ?stream=1, live while the job runs",
        "parameters": [JOB_ID, {"name": "stream", "in": "query",
                                "schema": {"type": "string", "enum": ["0", "1"]}}],
        "responses": {"200": {"description": "The log", "content": {
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/event-stream": {"schema": {"type": "string"}}}}, **errors(404)}}},
    f"{V1}/jobs/{{id}}/cancel": {"post": {
        "summary": "Cancel a queued or running job (it rolls back)", "parameters": [JOB_ID],
        "responses": {"202": json_body(ref("CancelRequested"), "Cancel requested"),
                      **errors(404, 409)}}},
    f"{V1}/metrics": {"get": {
        "summary": "Per-app runs, failures, durations, throughput; Prometheus text with "
                   "?format=prometheus or Accept: text/plain",
        "parameters": [{"name": "format", "in": "query",
                        "schema": {"type": "string", "enum": ["json", "prometheus"]}}],
        "responses": {"200": {"description": "Figures", "content": {
            "application/json": {"schema": ref("Metrics")},
            "text/plain": {"schema": {"type": "string"}}}}, **errors(400)}}},
}  # fmt: skip


def document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "reel-tui HTTP API", "version": "1",
                 "description": "reel's routes on reel-tui's job queue, with job status, "
                                "cancel and metrics. Errors are {\"error\", \"status\"}."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": PATHS,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "[reel] token / token_env; "
                                                      "required when configured"}}},
    }  # fmt: skip


def render() -> str:
    return json.dumps(document(), indent=2) + "\n"


if __name__ == "__main__":
    if "--check" in sys.argv:
        sys.exit(0 if OUT.read_text(encoding="utf-8") == render() else 1)
    OUT.write_text(render(), encoding="utf-8")
