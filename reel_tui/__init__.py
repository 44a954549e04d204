"""reel-tui: rewind an application's database to a known state from dump files."""

__version__ = "0.1.0"
