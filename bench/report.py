"""The benchmark's table, ratios and the issue-6 targets, from the results JSON.

Works on the ``cases`` list that ``run.py`` writes to ``bench/results.json``,
so a saved run can be printed again without running anything::

    python bench/report.py [bench/results.json]

Roles of the timed commands (``role`` in the JSON):

* ``cold``, ``warm``, ``warm-no-spare``, ``first``: reel-tui rewinds (``first``
  is the one untimed-for-the-median rewind that made the cached copy, shown
  for what it costs, with its single sample);
* ``reference``: the engine's own client loading the dump (``psql -f``, …);
* ``snapshot-restore`` / ``snapshot``: DSLR's restore and snapshot;
* ``floor``: what the server itself needs (clone by FILE_COPY, rename in).
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REEL_ROLES = ("cold", "warm", "warm-no-spare", "first")
WARM_ROLES = ("warm", "warm-no-spare")
RSS_LIMIT_MB = 64.0
WARM_LIMIT_S = 0.2

Case = dict[str, Any]
Tool = dict[str, Any]


def label(case: Case) -> str:
    return f"{case['engine']} {case['dump']} {case['size_mb']:g} MB"


def usable(tool: Tool) -> bool:
    """A median that means what its row says (a warm row whose runs all used the cache)."""
    return bool(tool.get("usable", True)) and tool.get("median_s") is not None


def speed_words(reel_s: float, other_s: float) -> str:
    """``75x faster`` / ``1.4x slower``: how reel-tui compares with another command."""
    factor = other_s / reel_s
    if factor >= 1:
        return f"{factor:.0f}x faster" if factor >= 10 else f"{factor:.1f}x faster"
    return f"{1 / factor:.1f}x slower"


# ------------------------------------------------------------------- the table


def table_rows(cases: list[Case]) -> Iterator[tuple[str, ...]]:
    for case in cases:
        first = True
        for tool in case["tools"]:
            median = f"{tool['median_s']:.3f}" if usable(tool) else "n/a"
            runs = len(tool["seconds"])
            rss = f"{tool['peak_rss_mb']:.0f} MB" if tool.get("peak_rss_mb") else ""
            head = (case["engine"], case["dump"], f"{case['size_mb']:g} MB",
                    f"{case['dump_mb']}") if first else ("", "", "", "")  # fmt: skip
            yield (*head, tool["tool"], median, str(runs), rss, note(tool))
            first = False


def note(tool: Tool) -> str:
    """What the runs did, when it matters: the warm path taken, or why a row is n/a."""
    notes = tool.get("notes") or []
    counts: dict[str, int] = {}
    for item in notes:
        counts[item] = counts.get(item, 0) + 1
    said = [f"{item} x{n}" if n > 1 else item for item, n in counts.items()]
    jobs = [s for s in tool.get("job_seconds") or [] if s is not None]
    if jobs:
        said.append(f"job itself {statistics.median(jobs):.2f} s")
    return "; ".join(said)


def print_table(cases: list[Case], runs: int) -> None:
    header = ("engine", "dump", "size", "dump MB", "command", "median s", "runs", "peak RSS",
              "how the runs went")  # fmt: skip
    body = list(table_rows(cases))
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    right = {2, 3, 5, 6, 7}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(f"\nmedians of {runs} alternating runs (wall clock of the whole process)")
    print(line(header))
    print(line(tuple("-" * w for w in widths)))
    for cells in body:
        print(line(cells))


# ------------------------------------------------------------------- ratios


def comparisons(cases: list[Case]) -> list[dict[str, Any]]:
    """Every reel-tui row against every other command of its case that it replaces."""
    rows = []
    for case in cases:
        for reel in case["tools"]:
            if reel["role"] not in ("cold", "warm", "warm-no-spare") or not usable(reel):
                continue
            against = ("reference",) if reel["role"] == "cold" else (
                "reference", "snapshot-restore", "floor")  # fmt: skip
            for other in case["tools"]:
                if other["role"] not in against or not usable(other):
                    continue
                rows.append({
                    "engine": case["engine"], "dump": case["dump"], "size_mb": case["size_mb"],
                    "reel": reel["tool"], "reel_role": reel["role"], "reel_s": reel["median_s"],
                    "other": other["tool"], "other_role": other["role"],
                    "other_s": other["median_s"],
                    "ratio": round(reel["median_s"] / other["median_s"], 4),
                    "speedup": round(other["median_s"] / reel["median_s"], 2),
                })  # fmt: skip
    return rows


def print_comparisons(rows: list[dict[str, Any]]) -> None:
    print("\nratios (medians; ratio = reel-tui / other, below 1: reel-tui is faster)")
    current = None
    for row in rows:
        where = f"{row['engine']} {row['dump']} {row['size_mb']:g} MB"
        if where != current:
            print(f"  {where}:")
            current = where
        who = {"cold": "cold", "warm": "warm", "warm-no-spare": "warm (no spare)"}[row["reel_role"]]
        words = speed_words(row["reel_s"], row["other_s"])
        print(f"    {who} reel-tui vs {row['other']}: {words} (ratio {row['ratio']:.3f})")


# ------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """One line of issue 6's targets, checked on one case."""

    status: str  # PASS, FAIL, n/a
    text: str

    def line(self) -> str:
        return f"  {self.status:<4}  {self.text}"


def why_not_usable(tool: Tool) -> str:
    """Why a row has no median that counts: no cache at all, or runs that took another path."""
    notes = tool.get("notes") or []
    if not tool.get("seconds"):
        return "not measured"
    if notes and not any(n.startswith("warm") for n in notes):
        return "no cached copy was used (no warm rewinds for this engine yet)"
    return f"not every run took the path this row measures ({note(tool)})"


def _tool(case: Case, role: str, name_prefix: str = "") -> Tool | None:
    return next((t for t in case["tools"]
                 if t["role"] == role and t["tool"].startswith(name_prefix)), None)  # fmt: skip


def _at(case: Case, sizes: tuple[float, ...]) -> str:
    if case["size_mb"] in sizes:
        return ""
    wanted = " and ".join(f"{s:g} MB" for s in sizes)
    return f" [target set for {wanted}]"


def _ratio_target(
    case: Case,
    reel: Tool | None,
    other: Tool | None,
    *,
    faster: float | None,
    at_most: float | None,
    what: str,
    sizes: tuple[float, ...],
) -> Target | None:
    if reel is None or other is None:
        return None
    where = f"{label(case)}: {what}"
    if not usable(reel) or not usable(other):
        return Target("n/a", f"{where}: {why_not_usable(reel if not usable(reel) else other)}")
    speedup = other["median_s"] / reel["median_s"]
    ratio = reel["median_s"] / other["median_s"]
    if faster is not None:
        ok = speedup >= faster
        words = speed_words(reel["median_s"], other["median_s"])
        text = f"{where}: {words}, target >= {faster:g}x faster"
    else:
        assert at_most is not None
        ok = ratio <= at_most
        text = f"{where}: {ratio:.2f}x its time, target <= {at_most:g}x"
    return Target("PASS" if ok else "FAIL", text + _at(case, sizes))


def targets(cases: list[Case]) -> list[Target]:
    """Issue 6's targets, each checked on every case it applies to."""
    found: list[Target | None] = []
    for case in cases:
        engine, dump = case["engine"], case["dump"]
        warm, cold = _tool(case, "warm"), _tool(case, "cold")
        if warm is not None:
            if usable(warm):
                ok = warm["median_s"] <= WARM_LIMIT_S
                found.append(Target("PASS" if ok else "FAIL", f"{label(case)}: warm rewind "
                                    f"{warm['median_s']:.3f} s, target <= {WARM_LIMIT_S} s "
                                    "(whole process, any size)"))  # fmt: skip
            else:
                found.append(Target("n/a", f"{label(case)}: warm rewind: {why_not_usable(warm)}"))
        if engine == "postgres" and dump == "pg_dump":
            psql = _tool(case, "reference", "psql")
            found.append(_ratio_target(case, warm, psql, faster=70, at_most=None,
                                       what="warm vs psql -f", sizes=(500,)))  # fmt: skip
            found.append(_ratio_target(case, warm, _tool(case, "snapshot-restore"), faster=14,
                                       at_most=None, what="warm vs DSLR restore",
                                       sizes=(500,)))  # fmt: skip
            found.append(_ratio_target(case, cold, psql, faster=None, at_most=0.8,
                                       what="cold vs psql -f", sizes=(100, 500)))  # fmt: skip
        if engine == "postgres" and dump == "pg_dump --inserts":
            found.append(_ratio_target(case, cold, _tool(case, "reference", "psql"), faster=8,
                                       at_most=None, what="cold vs psql -f, one INSERT per row",
                                       sizes=(case["size_mb"],)))  # fmt: skip
        if engine == "mysql":
            mysql = _tool(case, "reference", "mysql")
            found.append(_ratio_target(case, warm, mysql, faster=40, at_most=None,
                                       what="warm vs mysql <", sizes=(100,)))  # fmt: skip
            found.append(_ratio_target(case, cold, mysql, faster=None, at_most=1.0,
                                       what="cold vs mysql <", sizes=(100, 500)))  # fmt: skip
        found.append(_rss_target(case))
    return [t for t in found if t is not None]


def _rss_target(case: Case) -> Target | None:
    """The largest peak RSS of the case's reel-tui rows against the 64 MB target."""
    rows = [t for t in case["tools"] if t["role"] in REEL_ROLES and t.get("peak_rss_mb")]
    if not rows:
        return None
    top = max(rows, key=lambda t: t["peak_rss_mb"])
    rss = top["peak_rss_mb"]
    exact = (
        "" if all(t.get("rss_exact", True) for t in rows) else " (upper bound: no /usr/bin/time)"
    )
    return Target("PASS" if rss <= RSS_LIMIT_MB else "FAIL",
                  f"{label(case)}: reel-tui peak RSS {rss:.0f} MB ({top['tool']}, the largest "
                  f"of its {len(rows)} rows), target <= {RSS_LIMIT_MB:g} MB{exact}")  # fmt: skip


def print_targets(found: list[Target]) -> None:
    print("\ntargets (issue 6)")
    for target in found:
        print(target.line())


def print_all(result: dict[str, Any]) -> None:
    cases = result["cases"]
    print_table(cases, result["runs"])
    print_comparisons(comparisons(cases))
    print_targets(targets(cases))
    for case in cases:
        if case.get("check", "ok") != "ok":
            print(f"CHECK FAILED ({label(case)}): {case['check']}")


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else Path(__file__).resolve().parent / "results.json"
    print_all(json.loads(path.read_text(encoding="utf-8")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
