"""The reel-tui Textual app: apps, sources, jobs and a live log, all from the keyboard.

A thin face on the core. Everything that touches a file or a database runs
in a thread worker and reports back by message; job events from the queue's
worker threads arrive the same way (``post_message`` is thread-safe), so the
UI thread never blocks on I/O and no widget is touched from another thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.notifications import SeverityLevel
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import Worker, WorkerState

from reel_tui.cache import (
    SNAPSHOT_PREFIX,
    UNDO_KEY,
    CachedCopy,
    SnapshotNameError,
    snapshot_name,
)
from reel_tui.config import (
    RESTART_SETTINGS_TEXT,
    AppConfig,
    Config,
    ConfigError,
    load_config,
    restart_settings,
)
from reel_tui.engines import RewindError, engine_for
from reel_tui.engines.base import needs_password
from reel_tui.history import (
    HistoryError,
    HistoryStore,
    JobRecord,
    default_state_dir,
    parse_log,
)
from reel_tui.jobqueue import JobQueue
from reel_tui.jobs import Job, JobEvent, JobState
from reel_tui.plan import Refused, plan_rewind, plan_snapshot
from reel_tui.reporters import human_size
from reel_tui.sources import Source, list_sources
from reel_tui.tui.format import (
    ENGINE_TAGS,
    KIND_STYLES,
    STATE_GLYPHS,
    STORED_GLYPHS,
    ago,
    bar,
    eta,
    seconds,
    short,
    short_left,
    state_text,
    without_folders,
)
from reel_tui.tui.messages import (
    CacheScanned,
    ConfigLoaded,
    ConnectionChecked,
    HistoryLoaded,
    JobChanged,
    LogLoaded,
    RewindPlanned,
    SnapshotEdited,
)
from reel_tui.tui.screens import (
    ConfirmDeleteSnapshot,
    ConfirmQuit,
    ConfirmRewind,
    FullLogScreen,
    HelpScreen,
    PasswordScreen,
    SnapshotNameScreen,
)
from reel_tui.tui.widgets import AppList, FilterInput, JobLog, JobTable, SourceTable

if TYPE_CHECKING:  # aiohttp is imported only when the TUI serves the API
    from reel_tui.api.serve import ApiSocket, RunningApi

HISTORY_POLL_SECONDS = 2.0
"""How often jobs of other reel processes (cron, scripts) are looked for."""
JOBS_SHOWN = 50
PROGRESS_REDRAW_SECONDS = 0.25
"""Progress is redrawn at most this often, however many jobs report it."""
AGES_REDRAW_SECONDS = 20
"""How often "3 min ago" is worked out again when nothing else redraws it."""


class ReelApp(App[None]):
    """Rewind apps' databases from their dumps."""

    CSS_PATH = "app.tcss"
    TITLE = "reel"
    AUTO_FOCUS = "#apps"
    BINDINGS = [
        Binding("f1,question_mark", "help", "Help", key_display="f1"),
        Binding("ctrl+q", "quit", "Quit", key_display="^q", priority=True),
        Binding("q", "quit", "Quit", show=False),  # not a priority: q may be typed in inputs
        Binding("s", "snapshot", "Snapshot", tooltip="Keep the app's current state under a name"),
        Binding("u", "undo", "Undo", tooltip="Bring back what the app's last rewind replaced"),
        Binding("c", "cancel_job", "Cancel", tooltip="Cancel the highlighted or running job"),
        Binding("r", "reload", "Reload", tooltip="Read the config file again"),
        Binding("d", "rewind_default", "Default", show=False),
        Binding("t", "test", "Test", show=False),
        Binding("l", "open_log", "Log", show=False),
    ]

    def __init__(
        self, config_path: Path, *, poll_history: bool = True, api: ApiSocket | None = None
    ) -> None:
        super().__init__()
        self.config_path = config_path
        self.poll_history = poll_history
        self.api_socket = api
        """Where to serve the HTTP API once the job queue exists (bound already)."""
        self.api: RunningApi | None = None
        self.api_problem: str | None = None
        """Why the API asked for is not served (shown in the title bar)."""
        self.quitting = False
        self.config: Config | None = None
        self.config_error: str | None = None
        self.history: HistoryStore | None = None
        self.queue: JobQueue | None = None
        self.sources: dict[str, list[Source]] = {}
        self.cached: dict[str, frozenset[str]] = {}
        """Per app, the sources with a cached copy: their rewind is a swap, not a load."""
        self.stored: dict[str, tuple[CachedCopy, ...]] = {}
        """Per app, its snapshots (by name) and its undo copy, from the cache index."""
        self.connections: dict[str, tuple[bool | None, str]] = {}
        self.unsupported: set[str] = set()
        self.passwords: dict[str, str | None] = {}
        """Passwords typed in this session (None: asked, not given); never written anywhere."""
        self.records: dict[int, JobRecord] = {}
        self.selected_app: str | None = None
        self.selected_job: int | None = None
        self.source_filter = ""
        self.progress_pending = False

    # --- layout -------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="topbar"):
            yield Static(id="title")
            yield Static(id="summary")
        with Horizontal(id="top"):
            yield AppList(id="apps")
            with Vertical(id="sources-pane"):
                yield FilterInput(placeholder="filter sources (esc clears)", id="filter")
                yield SourceTable(id="sources")
        yield JobTable(id="jobs")
        yield JobLog(id="log")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#apps").border_title = "Apps"
        self.query_one("#sources-pane").border_title = "Sources"
        self.query_one("#jobs").border_title = "Jobs"
        self.query_one("#log").border_title = "Log"
        self.query_one("#filter").display = False
        self.update_title()
        self.load_config()
        self.set_interval(PROGRESS_REDRAW_SECONDS, self.draw_progress)
        self.set_interval(AGES_REDRAW_SECONDS, self.redraw_ages)
        if self.poll_history:
            self.set_interval(HISTORY_POLL_SECONDS, self.refresh_history)

    def on_resize(self) -> None:
        narrow = self.size.width < 110
        self.set_class(narrow, "-narrow")
        self.query_one(Footer).compact = narrow  # the keys of the focused pane still fit
        self.call_after_refresh(self.refresh_sources_title)  # the pane's new width is known then

    def redraw_ages(self) -> None:
        """ "2 min ago" must not stay "now": the tables are redrawn with fresh ages (not
        once the app is closing: the timer may fire after its widgets are gone)."""
        if not self.is_running:
            return
        with contextlib.suppress(NoMatches):  # taken down between the check and here
            self.refresh_apps()
            self.refresh_sources()
            self.refresh_jobs()

    # --- workers: everything that touches a file or a database ------------------------

    @work(thread=True, exit_on_error=False, exclusive=True, group="config")
    def load_config(self) -> None:
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            self.post_message(ConfigLoaded(None, error=str(exc)))
            return
        sources: dict[str, list[Source]] = {}
        for name, app in config.apps.items():
            try:
                sources[name] = list_sources(app)
            except OSError as exc:
                sources[name] = []
                self.notify(f"{name}: cannot list sources: {exc}", severity="error")
        history = self.history
        if history is None:
            try:
                history = HistoryStore(
                    config.settings.state_dir or default_state_dir(),
                    config.settings.history_limit,
                )
            except HistoryError as exc:
                self.post_message(ConfigLoaded(None, error=str(exc)))
                return
        self.post_message(ConfigLoaded(config, sources, history))

    @work(thread=True, exit_on_error=False, exclusive=True, group="cache")
    def scan_cache(self) -> None:
        """Which sources are cached: stat calls and a small SQLite read, so off the UI thread."""
        config, queue = self.config, self.queue
        if config is None or queue is None:
            return
        index = queue.cache_index  # the one the rewinds write to: thread-safe, kept open
        cached = {
            name: frozenset(source.name for source in self.sources.get(name, [])
                            if index.cached_source(app, source.path) is not None)
            for name, app in config.apps.items()
        }  # fmt: skip
        stored = {name: stored_copies(index.copies(app.target_key))
                  for name, app in config.apps.items()}  # fmt: skip
        self.post_message(CacheScanned(cached, stored))

    def on_cache_scanned(self, message: CacheScanned) -> None:
        if (message.cached, message.stored) != (self.cached, self.stored):
            self.cached, self.stored = message.cached, message.stored
            self.refresh_sources()

    @work(thread=True, exit_on_error=False, group="checks")
    def check_connection(self, app: AppConfig) -> None:
        try:
            text = engine_for(app).check()
        except RewindError as exc:
            unsupported = exc.code == "refused"
            self.post_message(
                ConnectionChecked(app.name, False, str(exc), unsupported, needs_password(exc))
            )
            return
        self.post_message(ConnectionChecked(app.name, True, text))

    @work(thread=True, exit_on_error=False, exclusive=True, group="history")
    def refresh_history(self) -> None:
        if self.history is not None:
            self.post_message(HistoryLoaded(self.history.records(limit=JOBS_SHOWN)))

    @work(thread=True, exit_on_error=False, exclusive=True, group="log")
    def load_log(self, job_id: int) -> None:
        if self.history is not None:
            self.post_message(LogLoaded(job_id, self.history.read_log(job_id)))

    @work(thread=True, exit_on_error=False, group="plan")
    def plan(self, app_name: str, source_name: str | None) -> None:
        assert self.config is not None
        what = "Undo" if source_name == f"@{UNDO_KEY}" else "Rewind"
        try:
            plan = plan_rewind(self.config, app_name, source_name, allow_remote=True)
        except Refused as exc:
            self.post_message(RewindPlanned(None, str(exc), what))
            return
        self.post_message(RewindPlanned(plan, what=what))

    @work(thread=True, exit_on_error=False, group="plan")
    def plan_snapshot(self, app_name: str, name: str) -> None:
        """The engine is asked whether the name is free: another process may have taken it."""
        assert self.config is not None
        try:
            plan = plan_snapshot(self.config, app_name, name, allow_remote=True)
        except Refused as exc:
            self.post_message(RewindPlanned(None, str(exc), "Snapshot"))
            return
        self.post_message(RewindPlanned(plan, what="Snapshot"))

    @work(thread=True, exit_on_error=False, group="snapshots")
    def edit_snapshot(self, app: AppConfig, name: str, new_name: str | None) -> None:
        """Delete snapshot ``name`` (``new_name`` None) or rename it, as ``reel-tui
        --delete-snapshot`` / ``--rename-snapshot`` do: no job, a moment under the target's
        lock (waiting here, off the UI thread, while a job of that target runs)."""
        engine = engine_for(app)
        engine.cache_index = self.queue.cache_index if self.queue else None
        said: list[str] = []
        try:
            if new_name is None:
                engine.delete_snapshot(name, said.append)
            else:
                engine.rename_snapshot(name, new_name, said.append)
        except RewindError as exc:
            self.post_message(SnapshotEdited(app.name, "", str(exc)))
            return
        self.post_message(SnapshotEdited(app.name, "; ".join(said)))

    @work(thread=True, exit_on_error=False, group="submit")
    def submit(self, plan: object) -> None:
        assert self.queue is not None
        self.queue.submit(plan)  # type: ignore[arg-type]

    @work(thread=True, exit_on_error=False, group="cancel")
    def cancel(self, job_id: int) -> None:
        if self.queue is not None and not self.queue.cancel(job_id):
            self.notify(f"job #{job_id} has already finished", severity="warning")

    @work(exit_on_error=False, exclusive=True, group="api")
    async def serve_api(self) -> None:
        """Serve the HTTP API on the TUI's own queue, in Textual's loop: its jobs come and go
        as job events like the keyboard's. Returns at once; the socket was bound before."""
        from reel_tui.api.serve import ApiStartError, start_api

        bound, self.api_socket = self.api_socket, None
        if bound is None or self.queue is None or self.config is None:
            return
        try:
            self.api = await start_api(self.queue, self.config, bound.listen, sock=bound.sock,
                                       allow_remote=bound.allow_remote)  # fmt: skip
        except ApiStartError as exc:
            bound.sock.close()
            self.api_problem = str(exc)
            self.notify(str(exc), title="HTTP API not served", severity="error", timeout=15)
        self.update_title()

    async def close_api(self) -> None:
        """Stop serving (open log streams are ended); the socket is closed."""
        api, self.api = self.api, None
        if api is not None:
            await api.close()
        if self.api_socket is not None:  # bound, never served (the config did not load)
            self.api_socket.sock.close()
            self.api_socket = None

    @work(exit_on_error=False, group="quit")
    async def shutdown_and_exit(self) -> None:
        """No new API requests, the jobs cancelled and waited for (off the loop), then the
        API closed, so a client following a job's log sees its end. Once: a second quit
        pressed meanwhile changes nothing; the app exits whatever goes wrong on the way."""
        if self.quitting:
            return
        self.quitting = True
        try:
            if self.api is not None:
                await self.api.stop_accepting()
            if self.queue is not None:
                await asyncio.to_thread(self.queue.shutdown, True)
            await self.close_api()
        finally:
            self.exit()

    async def on_unmount(self) -> None:
        """However the app ends (a test, an error), the port is let go."""
        await self.close_api()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """As App.notify, but text is literal by default: messages carry SQL, paths and
        config text, and a ``[/]`` in them must not be read as markup."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that failed unexpectedly is reported, never a crash of the app."""
        if event.state is WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"{type(error).__name__}: {error}", title="Unexpected error",
                        severity="error", timeout=15)  # fmt: skip

    # --- messages from workers -------------------------------------------------------

    def on_config_loaded(self, message: ConfigLoaded) -> None:
        if message.config is None:
            self.config_error = message.error
            if self.api_socket is not None:
                self.api_problem = "the config did not load"
            self.notify(message.error or "config error", title="Config", severity="error",
                        timeout=15)  # fmt: skip
            if self.config is None:
                self.query_one(JobLog).show([f"Cannot use the config: {message.error}",
                                             "Fix it and press r to reload."])  # fmt: skip
            self.update_title()
            return
        previous = self.config.settings if self.config else None
        self.config, self.config_error = message.config, None
        self.apply_passwords(message.config)
        self.sources = message.sources
        settings = message.config.settings
        if previous and restart_settings(previous) != restart_settings(settings):
            self.notify(f"{RESTART_SETTINGS_TEXT} take effect at the next start",
                        title="Config", severity="warning")  # fmt: skip
        if self.history is None and message.history is not None:
            self.history = message.history
            self.queue = JobQueue(self.history, workers=message.config.settings.workers)
            self.queue.subscribe(lambda event: self.post_message(JobChanged(event)))
            if self.api_socket is not None:
                self.serve_api()
        if self.api is not None:  # API rewinds see the apps and sources as the TUI does
            self.api.service.config = message.config
        for problem in message.config.problems:
            severity = "error" if problem.severity == "error" else "warning"
            self.notify(str(problem), title="Config", severity=severity, timeout=10)
        if self.selected_app not in self.all_app_names():
            self.selected_app = next(iter(self.all_app_names()), None)
        self.connections = {name: (None, "checking…") for name in message.config.apps}
        for app in message.config.apps.values():
            self.check_connection(app)
        self.refresh_history()
        self.refresh_all()
        self.scan_cache()

    def on_connection_checked(self, message: ConnectionChecked) -> None:
        self.connections[message.app] = (message.ok, message.text)
        if message.unsupported:
            self.unsupported.add(message.app)
        elif message.needs_password and message.app not in self.passwords:
            self.ask_password(message.app, message.text)
        elif not message.ok:
            self.notify(message.text, title=f"{message.app}: connection", severity="error",
                        timeout=8)  # fmt: skip
        self.refresh_apps()
        self.refresh_sources_title()

    def ask_password(self, app_name: str, reason: str) -> None:
        """Ask once per app; the password lives in this process's memory only."""
        self.passwords[app_name] = None

        def answered(password: str | None) -> None:
            if not password or self.config is None or app_name not in self.config.apps:
                self.notify(reason, title=f"{app_name}: connection", severity="error")
                return
            self.passwords[app_name] = password
            self.apply_passwords(self.config)
            self.connections[app_name] = (None, "checking…")
            self.check_connection(self.config.apps[app_name])
            self.refresh_apps()

        self.push_screen(PasswordScreen(app_name, reason), answered)

    def apply_passwords(self, config: Config) -> None:
        """Put the passwords typed in this session into the apps (memory only)."""
        for name, password in self.passwords.items():
            if password and name in config.apps:
                app = config.apps[name]
                config.apps[name] = replace(app, password=password, password_env=None)

    def on_history_loaded(self, message: HistoryLoaded) -> None:
        self.records = {record.id: record for record in message.records}
        self.refresh_apps()
        self.refresh_jobs()
        selected = self.records.get(self.selected_job or -1)
        if selected and selected.state == "running" and self.live_job(selected.id) is None:
            self.load_log(selected.id)  # another process's job: follow its log file

    def on_log_loaded(self, message: LogLoaded) -> None:
        if message.job_id == self.selected_job and self.live_job(message.job_id) is None:
            self.query_one(JobLog).show(parse_log(message.text))

    def on_job_changed(self, message: JobChanged) -> None:
        """A job event, redrawn; none once the app is closing: a job's background work
        (ANALYZE after a PostgreSQL rewind) may still log while the widgets are gone."""
        if not self.is_running:
            return
        try:
            self.show_job_event(message.event)
        except NoMatches:  # the screen was taken down between the check and here
            return

    def show_job_event(self, event: JobEvent) -> None:
        job = event.job
        if event.kind == "queued":
            if job.origin is None or not self.following_a_job():
                self.select_job(job.id)
        elif event.kind == "log" and event.line is not None and job.id == self.selected_job:
            self.query_one(JobLog).add_live(event.line)
        elif event.kind == "finished":
            self.announce(job)
            self.refresh_history()
            self.scan_cache()
        elif event.kind == "maintained":
            self.scan_cache()  # the background work recorded the copies it made and dropped
        if event.kind == "progress":
            self.progress_pending = True  # drawn by the next tick: the loader keeps the GIL
        elif event.kind != "log":
            self.refresh_live()

    def refresh_live(self) -> None:
        """Redraw what running jobs change: their rows, their apps' state, the title."""
        self.progress_pending = False
        self.refresh_jobs()
        self.refresh_apps()
        self.update_title()

    def draw_progress(self) -> None:
        """The progress a tick has left pending; none once the app is closing (as above)."""
        if self.progress_pending and self.is_running:
            with contextlib.suppress(NoMatches):
                self.refresh_live()

    def on_rewind_planned(self, message: RewindPlanned) -> None:
        plan = message.plan
        if plan is None:
            self.notify(message.error or "refused", title=f"{message.what} refused",
                        severity="error")  # fmt: skip
            return
        if plan.kind == "snapshot" or (not plan.app.confirm and plan.engine.is_local()):
            self.submit(plan)
            return

        def confirmed(answer: bool | None) -> None:
            if answer:
                self.submit(plan)

        holds = next((c.name for c in self.stored.get(plan.app.name, ()) if c.kind == "undo"), "")
        self.push_screen(ConfirmRewind(plan, holds if plan.kind == "undo" else ""), confirmed)

    def on_snapshot_edited(self, message: SnapshotEdited) -> None:
        if message.error:
            self.notify(message.error, title=f"{message.app}: snapshot", severity="error")
        else:
            self.notify(message.text, title=message.app)
        self.scan_cache()

    def announce(self, job: Job) -> None:
        if job.state is JobState.SUCCEEDED:
            done = {"snapshot": f"snapshot {job.source} of {job.app} taken",
                    "undo": f"{job.app}: last rewind undone (undo again to redo)"}  # fmt: skip
            self.notify(f"{done.get(job.kind, f'{job.app} now holds {job.source}')} "
                        f"({seconds(job.duration)})", title=f"#{job.id} succeeded")  # fmt: skip
        elif job.state is JobState.CANCELLED:
            self.notify(job.error or "cancelled", title=f"#{job.id} cancelled",
                        severity="warning")  # fmt: skip
        else:
            self.notify(job.error or "failed", title=f"#{job.id} failed", severity="error",
                        timeout=12)  # fmt: skip

    # --- user actions ----------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#apps")
    def app_highlighted(self, event: DataTable.RowHighlighted) -> None:
        name = event.row_key.value
        if name and name != self.selected_app:
            self.selected_app = name
            self.refresh_sources()

    @on(DataTable.RowSelected, "#sources")
    def source_chosen(self, event: DataTable.RowSelected) -> None:
        if self.selected_app and event.row_key.value:
            self.request_rewind(self.selected_app, event.row_key.value)

    @on(DataTable.RowHighlighted, "#jobs")
    def job_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value:
            self.select_job(int(event.row_key.value), move_cursor=False)

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.source_filter = event.value.strip().lower()
        self.refresh_sources()

    @on(Input.Submitted, "#filter")
    def filter_done(self) -> None:
        self.query_one(SourceTable).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.query_one(SourceTable).focus()

    def request_rewind(self, app_name: str, source_name: str | None) -> None:
        if self.config is None:
            self.notify("No usable config: fix it and press r", severity="error")
            return
        self.plan(app_name, source_name)

    def action_focus_sources(self) -> None:
        self.query_one(SourceTable).focus()

    def action_rewind_default(self) -> None:
        if self.selected_app:
            self.request_rewind(self.selected_app, None)

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_snapshot(self) -> None:
        """Ask a name for a snapshot of the highlighted app (a dated one is offered)."""
        app_name = self.selected_app
        if self.config is None or app_name is None:
            self.notify("No app to snapshot", severity="warning")
            return
        if app_name not in self.config.apps:
            self.notify(f"{app_name} is disabled by config errors: fix them, then press r",
                        title="Snapshot refused", severity="error")  # fmt: skip
            return
        taken = {copy.source for copy in self.stored.get(app_name, ())}
        name = time.strftime("%Y-%m-%d %H:%M")
        name = next(f"{name}{suffix}" for suffix in ("", *(f" ({n})" for n in range(2, 99)))
                    if f"@{name}{suffix}" not in taken)  # fmt: skip

        def named(chosen: str | None) -> None:
            if chosen is not None:
                self.plan_snapshot(app_name, chosen)

        body = (f"Keep {app_name}'s current state under a name; it is listed among the "
                "sources as @NAME and rewinds like one.")  # fmt: skip
        self.push_screen(
            SnapshotNameScreen(f"Snapshot {app_name}", body, name,
                               lambda typed: self.snapshot_problem(app_name, typed)),
            named,
        )  # fmt: skip

    def snapshot_problem(self, app_name: str, typed: str, keep: str | None = None) -> str | None:
        """Why ``typed`` cannot name a new snapshot of the app (the core's rule, or a name
        the app has already; ``keep`` is the one being renamed), else None."""
        try:
            bare = snapshot_name(typed)
        except SnapshotNameError as exc:
            return str(exc)
        if bare != keep and f"@{bare}" in {c.source for c in self.stored.get(app_name, ())}:
            return f"a snapshot named @{bare} exists already: pick another name"
        return None

    def action_undo(self) -> None:
        if self.selected_app:
            self.request_rewind(self.selected_app, f"@{UNDO_KEY}")

    def highlighted_snapshot(self) -> CachedCopy | None:
        key = self.query_one(SourceTable).current_key
        copies = self.stored.get(self.selected_app or "", ())
        return next((c for c in copies if c.kind == "snapshot" and c.source == key), None)

    def action_rename_snapshot(self) -> None:
        copy, app = self.highlighted_snapshot(), self.selected_app_config()
        if copy is None or app is None:
            self.notify("Highlight a snapshot (◆ @name) to rename it", severity="warning")
            return
        old = copy.source[1:]

        def named(chosen: str | None) -> None:
            if chosen is not None and snapshot_name(chosen) != old:
                self.edit_snapshot(app, old, snapshot_name(chosen))

        self.push_screen(
            SnapshotNameScreen(f"Rename snapshot {copy.source}", f"A new name for "
                               f"{copy.source} of {app.name}:", old,
                               lambda typed: self.snapshot_problem(app.name, typed, keep=old)),
            named,
        )  # fmt: skip

    def action_delete_snapshot(self) -> None:
        copy, app = self.highlighted_snapshot(), self.selected_app_config()
        if copy is None or app is None:
            self.notify("Highlight a snapshot (◆ @name) to delete it", severity="warning")
            return

        def confirmed(answer: bool | None) -> None:
            if answer:
                self.edit_snapshot(app, copy.source[1:], None)

        self.push_screen(ConfirmDeleteSnapshot(app.name, copy.source, copy.bytes, copy.created),
                         confirmed)  # fmt: skip

    def selected_app_config(self) -> AppConfig | None:
        return self.config.apps.get(self.selected_app or "") if self.config else None

    def action_cancel_job(self) -> None:
        job_id = self.job_to_cancel()
        if job_id is None:
            self.notify("Nothing to cancel: no queued or running job here", severity="warning")
        elif self.live_job(job_id) is None:
            record = self.records.get(job_id)
            if record is None or record.state not in ("queued", "running"):
                self.notify(f"#{job_id} has already finished", severity="warning")
                return
            owner = f"pid {record.pid}"
            self.notify(f"#{job_id} runs in another reel process ({owner}); cancel it there",
                        severity="warning")  # fmt: skip
        else:
            self.cancel(job_id)

    def job_to_cancel(self) -> int | None:
        """The highlighted job if the Jobs pane has focus, else the selected app's active job."""
        if self.focused is self.query_one(JobTable) and self.selected_job is not None:
            return self.selected_job
        for job in reversed(self.queue.jobs() if self.queue else []):
            if job.app == self.selected_app and not job.state.is_final:
                return job.id
        return None

    def action_open_log(self) -> None:
        if self.selected_job is None or self.history is None:
            self.notify("No job selected", severity="warning")
            return
        self.open_full_log(self.selected_job)

    @work(thread=True, exit_on_error=False, group="full-log")
    def open_full_log(self, job_id: int) -> None:
        assert self.history is not None
        text = self.history.read_log(job_id)
        path = self.history.log_path(job_id)
        self.call_from_thread(self.push_screen, FullLogScreen(f"#{job_id} · {path}", text))

    def action_test(self) -> None:
        if self.config:
            for app in self.config.apps.values():
                self.connections[app.name] = (None, "checking…")
                self.check_connection(app)
            self.refresh_apps()

    def action_reload(self) -> None:
        self.notify(f"Reloading {self.config_path}")
        self.load_config()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        running = [f"#{j.id} {j.app}" for j in self.active_jobs()]
        if not running:
            self.shutdown_and_exit()
            return

        def answer(quit_now: bool | None) -> None:
            if quit_now:
                self.notify("Cancelling jobs…")
                self.shutdown_and_exit()

        self.push_screen(ConfirmQuit(running), answer)

    # --- state to widgets ------------------------------------------------------------

    def all_app_names(self) -> list[str]:
        if self.config is None:
            return []
        return [*self.config.apps, *self.config.disabled]

    def live_job(self, job_id: int) -> Job | None:
        return self.queue.get(job_id) if self.queue else None

    def active_jobs(self) -> list[Job]:
        return [j for j in (self.queue.jobs() if self.queue else []) if not j.state.is_final]

    def following_a_job(self) -> bool:
        """Whether the Log shows a job that is not over: a job from the API does not take
        the Log from it (it is listed, and a keypress away)."""
        job = self.live_job(self.selected_job) if self.selected_job is not None else None
        return job is not None and not job.state.is_final

    def select_job(self, job_id: int, move_cursor: bool = True) -> None:
        self.selected_job = job_id
        job = self.live_job(job_id)
        record = self.records.get(job_id)
        log = self.query_one(JobLog)
        name = job_title(job) if job else ""
        if record and not job:
            name = job_title(record)
        log.border_title = f"Log · {name}" if name else "Log"
        if job is not None:
            log.show(job.log)
        else:
            log.show([])
            self.load_log(job_id)
        table = self.query_one(JobTable)
        if move_cursor:
            self.refresh_jobs()
            if str(job_id) in table._keys:
                table.move_cursor(row=table._keys.index(str(job_id)), animate=False)

    def refresh_all(self) -> None:
        self.refresh_apps()
        self.refresh_sources()
        self.refresh_jobs()
        self.update_title()

    def update_title(self) -> None:
        title = Text(" reel ", style="bold")
        title.append(f"─ {self.config_path.name}")
        if self.config_error:
            title.append(f"  ✗ {short(self.config_error, 90)}", style="bold red")
        self.query_one("#title", Static).update(title)
        apps = len(self.all_app_names())
        running = sum(1 for j in self.active_jobs() if j.state is JobState.RUNNING)
        summary = self.api_text()
        summary.append(f"{apps} app{'s' if apps != 1 else ''}")
        if running:
            summary.append(f" · {running} running")
        self.query_one("#summary", Static).update(summary + " ")

    def api_text(self) -> Text:
        """``API http://127.0.0.1:7999 · token │ `` while served (the token itself never
        shown); the reason when it was asked for and is not; nothing otherwise."""
        if self.api is not None:
            guard = "token" if self.api.token_required else "no token"
            return Text.assemble(("API ", "bold green"), f"{self.api.url} · {guard}  │  ")
        if self.api_problem:
            return Text.assemble(("API off", "bold red"), f": {short(self.api_problem, 40)}  │  ")
        return Text()

    def refresh_apps(self) -> None:
        table = self.query_one(AppList)
        rows = []
        if self.config:
            for name, app in self.config.apps.items():
                rows.append((name, [Text(name, style="bold"), ENGINE_TAGS[app.driver],
                                    self.app_state(app)]))  # fmt: skip
            for name in self.config.disabled:
                rows.append((name, [Text(name, style="dim"), "", Text("✗ config", style="red")]))
        table.sync(rows)
        if self.selected_app and self.selected_app in table._keys:
            index = table._keys.index(self.selected_app)
            if table.cursor_row != index:
                table.move_cursor(row=index, animate=False)

    def app_state(self, app: AppConfig) -> Text:
        """Running or queued job, else the last result, else the connection."""
        active = [j for j in self.active_jobs() if j.app == app.name]
        if active:
            job = active[0]
            if job.state is JobState.RUNNING:
                return Text(f"● {job.fraction:.0%}", style="cyan")
            return Text("◌ queued", style="yellow")
        ok, _ = self.connections.get(app.name, (None, ""))
        if app.name in self.unsupported:
            return Text("✗ no engine", style="red")
        if ok is False:
            return Text("✗ offline", style="red")
        last = next((r for r in sorted(self.records.values(), key=lambda r: -r.id)
                     if r.app == app.name and r.state != "queued"), None)  # fmt: skip
        if last is not None and last.state == "running" and last.bytes_total:
            return Text(f"● {last.bytes_read / last.bytes_total:.0%}", style="cyan")  # elsewhere
        if last is not None:
            glyph, colour = STATE_GLYPHS[last.state]
            return Text(f"{glyph} {ago(last.finished)}", style=colour)
        if ok is None:
            return Text("… checking", style="dim")
        return Text("○ idle", style="dim")

    def refresh_sources(self) -> None:
        table = self.query_one(SourceTable)
        rows = []
        if self.config and self.selected_app in self.config.disabled:
            for problem in self.config.disabled[self.selected_app]:
                where = f"line {problem.line}: " if problem.line else ""
                text = Text(f"✗ {where}{problem.key or ''}: {problem.message}", "red")
                rows.append((f"problem-{len(rows)}", [text, "", "", ""]))
        for source in self.sources.get(self.selected_app or "", []):
            if self.source_filter and self.source_filter not in source.name.lower():
                continue
            name = Text.assemble(("★ " if source.is_default else "  ", "yellow"), source.name)
            if source.name in self.cached.get(self.selected_app or "", ()):
                name.append(" ●", "green")
            rows.append((source.name, [name, source.format.label,
                                       Text(human_size(source.size), justify="right"),
                                       ago(source.modified)]))  # fmt: skip
        snapshots = set()
        for copy in self.stored.get(self.selected_app or "", ()):
            if self.source_filter and self.source_filter not in copy.source.lower():
                continue
            rows.append(stored_row(copy))
            if copy.kind == "snapshot":
                snapshots.add(copy.source)
        table.snapshot_keys = frozenset(snapshots)
        table.sync(rows)
        table.refresh_bindings()
        self.refresh_sources_title()

    def refresh_sources_title(self) -> None:
        pane = self.query_one("#sources-pane")
        app = self.config.apps.get(self.selected_app or "") if self.config else None
        if app is None:
            pane.border_title = f"Sources · {self.selected_app or ''}"
            pane.border_subtitle = ""
            if self.config and self.selected_app in self.config.disabled:
                pane.border_subtitle = "disabled: fix the config, then press r"
            return
        ok, text = self.connections.get(app.name, (None, ""))
        status = {True: "● reachable", False: "✗ unreachable", None: "… checking"}[ok]
        head = f"Sources · {app.name}  {app.driver}  "
        room = max(12, pane.size.width - len(head) - 6)  # the border's corners and padding
        pane.border_title = head + short_left(app.target, room)
        pane.border_subtitle = status if ok is not False else short(f"✗ {text}", 70)

    def refresh_jobs(self) -> None:
        live = {job.id: job for job in self.queue.jobs()} if self.queue else {}
        apps = set(self.all_app_names())  # the history may hold other configs' jobs too
        past = {job_id for job_id, record in self.records.items() if record.app in apps}
        ids = sorted(set(live) | past, reverse=True)[:JOBS_SHOWN]
        rows = []
        for job_id in ids:
            job = live.get(job_id)
            cells = self.job_cells(job) if job else self.record_cells(self.records[job_id])
            rows.append((str(job_id), cells))
        table = self.query_one(JobTable)
        table.sync(rows)
        table.border_subtitle = "" if rows else "no jobs yet: pick a source and press enter"

    def job_cells(self, job: Job) -> list[str | Text]:
        state = job.state.value
        progress: str | Text
        if job.state is JobState.RUNNING:
            rate = f"{human_size(int(job.rate))}/s" if job.rate else ""
            progress = bar(job.fraction)
            progress.append(f" {job.fraction:4.0%} {eta(job.eta)}")
            info = "  ".join(part for part in (rate, job.detail or job.phase) if part)
        elif job.state is JobState.QUEUED:
            progress, info = "", "waiting for a worker or an earlier job on this database"
        else:
            progress = f"took {seconds(job.duration)}"
            info = job.error or ""
        style = "red" if job.state is JobState.FAILED else ""
        return [job_number(job), kind_text(job.kind), job.app, job.source, state_text(state),
                progress, Text(short(without_folders(info), 90), style=style)]  # fmt: skip

    def record_cells(self, record: JobRecord) -> list[str | Text]:
        progress: str | Text = ""
        if record.duration is not None:
            progress = f"took {seconds(record.duration)}"
        if record.state == "running" and record.bytes_total:
            fraction = record.bytes_read / record.bytes_total
            progress = bar(fraction)
            progress.append(f" {fraction:4.0%}")
        info = record.error or ""
        if record.state == "running" and record.pid != os.getpid():
            info = f"in another reel process (pid {record.pid})"
        style = "red" if record.state == "failed" else ""
        return [job_number(record), kind_text(record.kind), record.app, record.source,
                state_text(record.state), progress,
                Text(short(without_folders(info), 90), style=style)]  # fmt: skip


def stored_copies(copies: list[CachedCopy]) -> tuple[CachedCopy, ...]:
    """An app's snapshots, by name, then its undo copy, each with ``source`` set to the name it
    is rewound by (``@NAME``, ``@undo``); the undo copy's ``name`` becomes what it holds."""
    named = [replace(c, source=f"@{c.key.removeprefix(SNAPSHOT_PREFIX)}")
             for c in copies if c.kind == "snapshot"]  # fmt: skip
    undo = [replace(c, source=f"@{UNDO_KEY}", name=c.source) for c in copies if c.kind == "undo"]
    return (*sorted(named, key=lambda c: c.source.lower()), *undo)


def stored_row(copy: CachedCopy) -> tuple[str, list[str | Text]]:
    """A snapshot or the undo copy as a row of the Sources table: its glyph, "snapshot" or
    "undo" as its format, its size, and when it was taken as its age."""
    glyph, colour = STORED_GLYPHS[copy.kind]
    name = Text.assemble((f"{glyph} ", colour), copy.source)
    if copy.kind == "undo" and copy.name:
        held = "what the undo replaced" if copy.name == f"before @{UNDO_KEY}" else copy.name
        name.append(f" ({held})", "dim")  # "before seed.sql": what replaced that state
    return copy.source, [name, Text(copy.kind, colour), Text(human_size(copy.bytes),
                         justify="right"), ago(copy.created)]  # fmt: skip


def job_number(job: Job | JobRecord) -> Text:
    """``#12``, and ``#12 api`` for a job the HTTP API started (here or in ``--serve``)."""
    text = Text(f"#{job.id}")
    if job.origin and job.origin.startswith("api"):
        text.append(" api", style="bold blue")
    return text


def kind_text(kind: str) -> Text:
    return Text(kind, style=KIND_STYLES.get(kind, ""))


def job_title(job: Job | JobRecord) -> str:
    """``#3 blog ← seed.sql``; a snapshot goes the other way: ``#4 blog → @before-demo``."""
    arrow = "→" if job.kind == "snapshot" else "←"
    title = f"#{job.id} {job.app} {arrow} {job.source}"
    return f"{title} · from {job.origin}" if job.origin else title


def run_tui(config_path: Path, api: ApiSocket | None = None) -> int:
    """Run the app until the user quits; with ``api``, serving the HTTP API meanwhile."""
    ReelApp(config_path, api=api).run()
    return 0
