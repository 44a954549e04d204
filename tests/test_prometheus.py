"""The Prometheus text rendering (a core module): parsed back by prometheus_client's parser,
label values with quotes, backslashes and newlines survive, unknown figures are left out."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from reel_tui.history import AppMetrics
from reel_tui.prometheus import render


def metrics(app: str, **fields: float | None) -> AppMetrics:
    base: dict = {"runs": 3, "succeeded": 2, "failed": 1, "cancelled": 0, "last_duration": 1.5,
                  "mean_duration": 1.25, "p95_duration": 1.5, "throughput": 2e6,
                  "median_duration": 1.2}  # fmt: skip
    return AppMetrics(app=app, **{**base, **fields})


def families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_every_family_parses_with_its_type_and_values():
    text = render({"shop": metrics("shop")}, {"queued": 2, "running": 1})
    found = families(text)
    assert found["reel_rewinds"].type == "counter"
    totals = {s.labels["state"]: s.value for s in found["reel_rewinds"].samples}
    assert totals == {"succeeded": 2, "failed": 1, "cancelled": 0}
    stats = {s.labels["stat"]: s.value for s in found["reel_rewind_duration_seconds"].samples}
    assert stats == {"mean": 1.25, "median": 1.2, "p95": 1.5, "last": 1.5}
    (rate,) = found["reel_rewind_throughput_bytes_per_second"].samples
    assert rate.value == 2e6 and rate.labels == {"app": "shop"}
    live = {s.labels["state"]: s.value for s in found["reel_jobs"].samples}
    assert live == {"queued": 2, "running": 1}
    assert text.endswith("\n")


def test_label_values_are_escaped():
    name = 'we"ird\\app\nname'
    found = families(render({name: metrics(name)}))
    assert {s.labels["app"] for s in found["reel_rewinds"].samples} == {name}
    assert "reel_jobs" not in found, "no live figures unless given"


def test_unknown_figures_are_left_out_not_zero():
    unknown = dict.fromkeys(("last_duration", "mean_duration", "median_duration",
                             "p95_duration", "throughput"))  # fmt: skip
    found = families(render({"new": metrics("new", succeeded=0, failed=1, runs=1, **unknown)}))
    assert not found["reel_rewind_duration_seconds"].samples
    assert not found["reel_rewind_throughput_bytes_per_second"].samples
