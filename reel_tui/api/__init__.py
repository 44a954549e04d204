"""The HTTP API (issue 9): reel's routes on the job queue the TUI and headless mode share.

Only :mod:`reel_tui.api.service` is core (no HTTP library); the rest imports aiohttp,
and is imported only when the API is served, so ``reel-tui --rewind`` starts as fast
as before. Nothing here imports rich or textual.
"""
