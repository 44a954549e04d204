"""Messages from worker threads to the UI; frequent ones coalesce."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.message import Message

from reel_tui.cache import CachedCopy
from reel_tui.config import Config
from reel_tui.history import HistoryStore, JobRecord
from reel_tui.jobs import JobEvent
from reel_tui.plan import RewindPlan
from reel_tui.sources import Source


@dataclass
class ConfigLoaded(Message):
    """The config was (re)read, with every app's sources; or it could not be."""

    config: Config | None
    sources: dict[str, list[Source]] = field(default_factory=dict)
    history: HistoryStore | None = None
    error: str | None = None


@dataclass
class CacheScanned(Message):
    """Which sources of each app have a cached copy (a warm rewind), and which snapshots and
    undo copy each app has: from the local index, which every engine and reel process updates."""

    cached: dict[str, frozenset[str]]
    stored: dict[str, tuple[CachedCopy, ...]] = field(default_factory=dict)
    """Per app, its snapshots and undo copy as the index last saw them."""


@dataclass
class ConnectionChecked(Message):
    """The result of checking one app's target in the background."""

    app: str
    ok: bool
    text: str
    unsupported: bool = False
    """The app's engine is not in this version: no connection was tried."""
    needs_password: bool = False
    """The server refused the credentials: asking for a password may help."""


@dataclass
class JobChanged(Message):
    """A job event from the queue. Progress of one job coalesces while the UI is busy."""

    event: JobEvent

    def can_replace(self, message: Message) -> bool:
        return (
            isinstance(message, JobChanged)
            and message.event.kind == "progress"
            and self.event.kind == "progress"
            and message.event.job.id == self.event.job.id
        )


@dataclass
class HistoryLoaded(Message):
    """Recent jobs from the history on disk, including other reel processes' jobs."""

    records: list[JobRecord]


@dataclass
class LogLoaded(Message):
    """A past job's full log, read from disk."""

    job_id: int
    text: str


@dataclass
class RewindPlanned(Message):
    """A job (rewind, undo, snapshot) passed its checks (``plan``) or was refused (``error``)."""

    plan: RewindPlan | None
    error: str | None = None
    what: str = "Rewind"
    """What was asked for (Rewind, Undo, Snapshot): the title of a refusal."""


@dataclass
class SnapshotEdited(Message):
    """A snapshot was renamed or deleted (``text`` says so), or could not be (``error``)."""

    app: str
    text: str
    error: str | None = None
