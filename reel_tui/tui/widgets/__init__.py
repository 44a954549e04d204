"""The panes of the main screen, each named for its role."""

from reel_tui.tui.widgets.apps import AppList
from reel_tui.tui.widgets.jobs import JobTable
from reel_tui.tui.widgets.log import JobLog
from reel_tui.tui.widgets.sources import FilterInput, SourceTable

__all__ = ["AppList", "FilterInput", "JobLog", "JobTable", "SourceTable"]
