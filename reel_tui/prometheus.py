"""Per-app run figures in Prometheus's text exposition format (version 0.0.4).

A core module (no HTTP library): the API serves its output at
``/reel/api/v1/metrics?format=prometheus``, and it is tested on its own. The figures
are those of ``--metrics``: computed over the jobs the history keeps, so the
"totals" can go down when old jobs are pruned (a scraper sees a counter reset).
"""

from __future__ import annotations

from collections.abc import Mapping

from reel_tui.history import AppMetrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FINAL_STATES = ("succeeded", "failed", "cancelled")
"""The job states counted, each an :class:`AppMetrics` field of the same name."""


def escape_label(value: str) -> str:
    r"""A label value as the format wants it: ``\``, ``"`` and newlines escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _sample(name: str, labels: Mapping[str, str], value: float) -> str:
    inner = ",".join(f'{key}="{escape_label(text)}"' for key, text in labels.items())
    return f"{name}{{{inner}}} {value!r}" if inner else f"{name} {value!r}"


def _family(name: str, kind: str, help_text: str, samples: list[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]


def render(metrics: Mapping[str, AppMetrics], live: Mapping[str, int] | None = None) -> str:
    """The exposition text: one family per figure, one sample per app (and state).

    ``live``: jobs of the serving process by state (``queued``, ``running``).
    Figures that are not known yet (no successful run) are left out, never 0.
    """
    apps = list(metrics.values())
    lines = _family(
        "reel_rewinds_total", "counter",
        "Finished jobs of each app by final state, over the jobs the history keeps.",
        [_sample("reel_rewinds_total", {"app": m.app, "state": state},
                 float(getattr(m, state))) for m in apps for state in FINAL_STATES],
    )  # fmt: skip
    stats = (("mean", "mean_duration"), ("median", "median_duration"),
             ("p95", "p95_duration"), ("last", "last_duration"))  # fmt: skip
    lines += _family(
        "reel_rewind_duration_seconds", "gauge",
        "Duration of an app's jobs: mean, median and 95th percentile of the successful "
        "ones, and the last one.",
        [_sample("reel_rewind_duration_seconds", {"app": m.app, "stat": stat}, value)
         for m in apps for stat, field in stats
         if (value := getattr(m, field)) is not None],
    )  # fmt: skip
    lines += _family(
        "reel_rewind_throughput_bytes_per_second", "gauge",
        "Mean bytes of dump rewound per second over an app's successful jobs.",
        [_sample("reel_rewind_throughput_bytes_per_second", {"app": m.app}, m.throughput)
         for m in apps if m.throughput is not None],
    )  # fmt: skip
    if live is not None:
        lines += _family(
            "reel_jobs", "gauge", "Jobs of the serving reel-tui process that are not over.",
            [_sample("reel_jobs", {"state": state}, float(live.get(state, 0)))
             for state in ("queued", "running")],
        )  # fmt: skip
    return "\n".join(lines) + "\n"
