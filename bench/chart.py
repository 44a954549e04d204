"""The benchmark's chart: one panel per engine and dump, bars of median seconds (log scale).

    python bench/chart.py [bench/results.json] [bench/results.png]

Needs matplotlib, which reel-tui does not: ``run.py`` runs this file with the
benchmark's tools venv (see toolenv.py). Bars are grouped by dump size; within
a group, reel-tui's rewinds (blue: cold, greens: warm) stand beside the
engine's own client (oranges), DSLR (purple) and the server's floors (greys).
A warm row that used no cached copy is left out and marked "n/a".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

WARM_TARGET_S = 0.2
ENGINE_TITLES = {"sqlite": "SQLite", "postgres": "PostgreSQL", "mysql": "MariaDB"}
ROLE_ORDER = ("cold", "first", "warm", "warm-no-spare", "reference", "snapshot-restore",
              "snapshot", "floor")  # fmt: skip
ROLE_COLORS = {
    "cold": ["#1f5fa8"],
    "first": ["#8fb3dc"],
    "warm": ["#1e8c3a"],
    "warm-no-spare": ["#7cc47f"],
    "reference": ["#e07b1a", "#b5520c", "#f2b36b"],
    "snapshot-restore": ["#7b3fa0"],
    "snapshot": ["#b99ad0"],
    "floor": ["#6e6e6e", "#a8a8a8"],
}


def panels(cases: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for case in cases:
        grouped.setdefault((case["engine"], case["dump"]), []).append(case)
    return grouped


def tool_order(cases: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(role, name) of every command in these cases, reel-tui first, then the others."""
    seen: list[tuple[str, str]] = []
    for case in cases:
        for tool in case["tools"]:
            if (tool["role"], tool["tool"]) not in seen:
                seen.append((tool["role"], tool["tool"]))
    return sorted(seen, key=lambda rn: ROLE_ORDER.index(rn[0]) if rn[0] in ROLE_ORDER else 99)


def colors_for(order: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    used: dict[str, int] = {}
    found = {}
    for role, name in order:
        palette = ROLE_COLORS.get(role, ["#333333"])
        found[(role, name)] = palette[used.get(role, 0) % len(palette)]
        used[role] = used.get(role, 0) + 1
    return found


def seconds_label(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"


def draw_panel(ax: Any, title: str, cases: list[dict[str, Any]],
               colors: dict[tuple[str, str], str]) -> None:  # fmt: skip
    order = tool_order(cases)
    width = 0.84 / max(len(order), 1)
    labelled: set[tuple[str, str]] = set()
    missing: list[Patch] = []
    for group, case in enumerate(sorted(cases, key=lambda c: c["size_mb"])):
        by_key = {(t["role"], t["tool"]): t for t in case["tools"]}
        for i, key in enumerate(order):
            x = group + (i - (len(order) - 1) / 2) * width
            tool = by_key.get(key)
            if tool is None:
                continue
            if not tool.get("usable", True) or tool.get("median_s") is None:
                ax.text(x, 0.012, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
                if key not in labelled:
                    missing.append(Patch(facecolor="white", edgecolor=colors[key], hatch="///",
                                         label=f"{key[1]}: n/a, no cached copy used"))  # fmt: skip
                    labelled.add(key)
                continue
            value = max(tool["median_s"], 0.001)
            label = key[1] if key not in labelled else None
            labelled.add(key)
            ax.bar(x, value, width * 0.9, color=colors[key], label=label)
            ax.text(x, value * 1.1, seconds_label(value), ha="center", va="bottom", fontsize=7,
                    rotation=90)  # fmt: skip
    if any(t["role"] == "warm" for c in cases for t in c["tools"]):
        ax.axhline(WARM_TARGET_S, color="#1e8c3a", linestyle="--", linewidth=0.9,
                   label=f"target for a warm rewind ({WARM_TARGET_S:g} s)")  # fmt: skip
    sizes = sorted(c["size_mb"] for c in cases)
    ax.set_xticks(range(len(sizes)))
    ax.set_xticklabels([f"{s:g} MB dump" for s in sizes])
    ax.set_xlim(-0.5, len(sizes) - 0.5)
    ax.set_yscale("log")
    ax.set_ylim(0.01, max(t["median_s"] or 0.01 for c in cases for t in c["tools"]) * 8)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g} s"))
    ax.set_ylabel("median, log scale")
    ax.set_title(title, fontsize=11)
    ax.grid(axis="y", which="major", alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=[*handles, *missing], loc="upper left", bbox_to_anchor=(1.01, 1.0),
              fontsize=8, frameon=False)  # fmt: skip


def memory(text: str) -> str:
    """``24684092 kB`` as ``24 GB``."""
    parts = text.split()
    if len(parts) == 2 and parts[0].isdigit() and parts[1].lower() == "kb":
        return f"{int(parts[0]) / 1e6:.0f} GB RAM"
    return text


def draw(result: dict[str, Any], out: Path) -> None:
    """One row per engine and dump, its legend on the right; the machine in the title."""
    grouped = panels(result["cases"])
    colors = colors_for(tool_order(result["cases"]))
    fig, axes = plt.subplots(len(grouped), 1, figsize=(12.0, 1.4 + 3.4 * len(grouped)),
                             squeeze=False)  # fmt: skip
    for ax, ((engine, dump), cases) in zip(axes[:, 0], grouped.items(), strict=True):
        draw_panel(ax, f"{ENGINE_TITLES.get(engine, engine)}: {dump}", cases, colors)
    info = result.get("machine", {})
    versions = ", ".join(
        f"{k} {str(info[k]).split('-')[0].split()[0]}"
        for k in ("postgres", "mariadb", "sqlite3", "dslr")
        if info.get(k)
    )
    load = result.get("load_average", {}).get("before", [None])[0]
    fig.suptitle(
        f"reel-tui rewinds vs the engines' own tools: medians of {result['runs']} alternating "
        f"runs, wall clock of the whole process\n{info.get('cpus', '?')} CPUs, "
        f"{memory(info.get('memory', ''))}; {versions}"
        + (f"; load average {load:.1f} at the start" if load is not None else ""),
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97 - 0.1 / len(grouped)))
    fig.savefig(out, dpi=100)


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    source = Path(argv[0]) if argv else here / "results.json"
    out = Path(argv[1]) if len(argv) > 1 else here / "results.png"
    draw(json.loads(source.read_text(encoding="utf-8")), out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
