"""Allow ``python -m reel_tui``."""

from reel_tui.cli import main

raise SystemExit(main())
