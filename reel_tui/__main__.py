"""The ``reel-tui`` command and ``python -m reel_tui``: start-up tuned for short runs.

A warm rewind is ~0.05 s of work; the rest of a headless run is Python
starting, importing and tearing down, so two things here matter:

* The cyclic garbage collector is paused while the modules load: imports
  make some hundred thousand objects that all live until exit, and the
  collections they trigger find nothing (about 10 % of start-up). The
  objects are then frozen out of later collections.
* Once the command has returned (its output flushed, its files and history
  closed, its worker threads done: they are all daemons, which a normal exit
  would not wait for either), the process leaves with ``os._exit`` instead of
  tearing every module down one by one.

``reel_tui.cli.main`` stays an ordinary function for tests and callers.
"""

from __future__ import annotations

import gc
import os
import sys


def main() -> None:
    """Run the command line and exit with its code."""
    gc.disable()
    try:
        from reel_tui.cli import main as cli_main
    finally:
        gc.freeze()
        gc.enable()
    code = cli_main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe: nothing more can be said
        code = code or 1
    os._exit(code)


if __name__ == "__main__":
    main()
