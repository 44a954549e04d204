"""A throwaway virtual environment for what the benchmark needs but reel-tui does not.

DSLR (the snapshot tool reel-tui's warm rewinds are compared with) and
matplotlib (for the chart) are installed with pip into ``<cache>/tools-venv``,
never into the project's ``.venv``: the comparison must not depend on, or
change, what reel-tui runs with. Made once, reused by later runs; delete the
folder to make it again.

reel-tui itself is timed as the README installs it: ``pip install .`` into a
fresh venv of its own, not the project's editable ``.venv``, whose import hook
adds about 30 ms to every process start (measured: 178 vs 147 ms median to
import the CLI and the PostgreSQL engine).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REQUIREMENTS = ("dslr[psycopg2-binary]==0.6.0", "matplotlib>=3.8")


@dataclass(frozen=True)
class ToolEnv:
    folder: Path

    @property
    def python(self) -> Path:
        return self.folder / "bin" / "python"

    @property
    def dslr(self) -> Path:
        return self.folder / "bin" / "dslr"

    def ready(self) -> bool:
        if not (self.python.exists() and self.dslr.exists()):
            return False
        probe = subprocess.run([str(self.python), "-c", "import matplotlib, dslr"],
                               capture_output=True)  # fmt: skip
        return probe.returncode == 0

    def version(self, package: str) -> str:
        done = subprocess.run(
            [str(self.python), "-c",
             f"import importlib.metadata as m; print(m.version({package!r}))"],
            capture_output=True, text=True,
        )  # fmt: skip
        return done.stdout.strip() or "?"


def ensure(cache: Path, log: Callable[[str], None]) -> ToolEnv | None:
    """The tools venv, made if missing; None (with a logged reason) if pip cannot make it."""
    env = ToolEnv(cache / "tools-venv")
    if env.ready():
        return env
    log(f"installing {', '.join(REQUIREMENTS)} into {env.folder}")
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(env.folder)],
        [str(env.python), "-m", "pip", "install", "-q", *REQUIREMENTS],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            log(f"could not make the tools venv ({' '.join(step[:4])}…): "
                f"{(done.stderr or done.stdout).strip()[-800:]}")  # fmt: skip
            return None
    return env if env.ready() else None


def install_reel(root: Path, folder: Path, log: Callable[[str], None]) -> list[str]:
    """``reel-tui`` installed from ``root`` into a fresh venv at ``folder``, as the
    README's first command does (not editable); its command line."""
    log(f"installing reel-tui from {root} into {folder} (pip install ., not editable)")
    python = folder / "bin" / "python"
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(folder)],
        [str(python), "-m", "pip", "install", "-q", str(root)],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"could not install reel-tui ({' '.join(step[:4])}…): "
                             f"{(done.stderr or done.stdout).strip()[-800:]}")  # fmt: skip
    return [str(folder / "bin" / "reel-tui")]
