"""The core must run headless: importing it loads neither Textual nor rich."""

from __future__ import annotations

import subprocess
import sys

CORE = [
    "reel_tui.config",
    "reel_tui.sources",
    "reel_tui.dumpfile",
    "reel_tui.jobs",
    "reel_tui.jobqueue",
    "reel_tui.history",
    "reel_tui.locks",
    "reel_tui.plan",
    "reel_tui.engines",
    "reel_tui.engines.sqlite",
]


def test_core_imports_no_ui_library():
    code = (
        "import sys\n"
        + "".join(f"import {module}\n" for module in CORE)
        + "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
