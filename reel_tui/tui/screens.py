"""Modal screens: confirm a rewind, name or delete a snapshot, confirm quitting, help,
a job's full log."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea

from reel_tui.config import AppConfig
from reel_tui.plan import RewindPlan
from reel_tui.reporters import human_size


def _hooks_note(app: AppConfig) -> str:
    """What the dialog says of the app's hooks: they may stop or start the app."""
    counts = [f"{len(commands)} {when}" for commands, when in
              ((app.before_rewind, "before"), (app.after_rewind, "after")) if commands]  # fmt: skip
    return f"\nHooks run too: {', '.join(counts)} (see the log)." if counts else ""


class ConfirmRewind(ModalScreen[bool]):
    """Names the target the way the user thinks of it; Enter rewinds, Esc cancels.

    A target on another machine asks for its database name to be typed.
    """

    BINDINGS = [Binding("escape", "dismiss(False)", "Cancel")]

    def __init__(self, plan: RewindPlan, undo_holds: str = "") -> None:
        super().__init__()
        self.plan = plan
        self.undo_holds = undo_holds
        """For an undo, what the undo copy holds as the index says it: ``before seed.sql``."""
        self.typed = not plan.engine.is_local()

    def compose(self) -> ComposeResult:
        app = self.plan.app
        undo = self.plan.kind == "undo"
        with Vertical(id="dialog"):
            yield Label(f"Undo the last rewind of {app.name}?" if undo else f"Rewind {app.name}?",
                        id="dialog-title")  # fmt: skip
            yield Static(self.body(), id="dialog-body")
            if self.typed:
                yield Static(
                    Text.assemble(
                        f"{app.target} is not on this machine. Type the database name, ",
                        (app.database, "bold"), ", to confirm:",
                    )
                )  # fmt: skip
                yield Input(placeholder=app.database, id="typed")
            with Horizontal(id="dialog-buttons"):
                yield Button("Undo" if undo else "Rewind", variant="error", id="rewind")
                yield Button("Cancel", id="cancel")

    def body(self) -> Text:
        """What comes back and what goes: a dump, a snapshot (when it was taken), or for an
        undo the state the last rewind replaced (the current one becomes the undo copy)."""
        app, source = self.plan.app, self.plan.source
        where = Text.assemble((app.name, "bold"), f" ({app.driver} {app.target})")
        size = human_size(source.size)
        if source.stored is None:
            return Text.assemble("Replace ", where, " with ", (source.name, "bold"),
                                 f", {size}?\nThe current data is replaced.",
                                 _hooks_note(app))  # fmt: skip
        taken = taken_at(source.modified)
        if self.plan.kind == "undo":
            held = self.undo_holds or "before its last rewind"
            return Text.assemble(
                "Bring back what ", where, " held ", (held, "bold"), f" (kept {taken}, "
                f"{size})?\nThe current data becomes the undo copy: undo again to redo.",
                _hooks_note(app),
            )  # fmt: skip
        return Text.assemble(
            "Replace ", where, " with snapshot ", (source.name, "bold"),
            f" (taken {taken}, {size})?\nThe current data is replaced.", _hooks_note(app),
        )  # fmt: skip

    def on_mount(self) -> None:
        self.query_one("#typed" if self.typed else "#rewind").focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "rewind":
            self.confirm()
        else:
            self.dismiss(False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.confirm()

    def confirm(self) -> None:
        if self.typed and self.query_one("#typed", Input).value != self.plan.app.database:
            self.notify("The name typed is not the database's name.", severity="warning")
            return
        self.dismiss(True)


def taken_at(timestamp: float) -> str:
    """``today 15:58``, ``2026-11-26 09:12``: when a copy was taken, as a person says it."""
    day = time.strftime("%Y-%m-%d", time.localtime(timestamp))
    clock = time.strftime("%H:%M", time.localtime(timestamp))
    return f"today {clock}" if day == time.strftime("%Y-%m-%d") else f"{day} {clock}"


class SnapshotNameScreen(ModalScreen[str | None]):
    """Asks for a snapshot's name (to take one, or to rename one); the name is checked as it
    is typed, by the core's rules, and the one-line reason shown here, so a bad name never
    leaves the dialog. Enter accepts, Esc cancels."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(
        self, title: str, body: str, name: str, problem: Callable[[str], str | None]
    ) -> None:
        super().__init__()
        self.title_text = title
        self.body_text = body
        self.initial = name
        self.problem = problem

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="snapshot"):
            yield Label(self.title_text, id="dialog-title")
            yield Static(self.body_text, id="dialog-body")
            yield Input(value=self.initial, id="snapshot-name")
            yield Static("", id="name-error")
            with Horizontal(id="dialog-buttons"):
                yield Button("OK", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.show_problem(self.problem(event.value))

    def show_problem(self, problem: str | None) -> None:
        self.query_one("#name-error", Static).update(Text(problem or "", style="red"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.accept()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self.accept()
        else:
            self.dismiss(None)

    def accept(self) -> None:
        name = self.query_one(Input).value
        problem = self.problem(name)
        if problem:
            self.show_problem(problem)
            return
        self.dismiss(name)


class ConfirmDeleteSnapshot(ModalScreen[bool]):
    """A snapshot is the one copy of a state that no dump holds: ask before it goes."""

    BINDINGS = [Binding("escape", "dismiss(False)", "Cancel")]

    def __init__(self, app_name: str, name: str, size: int, taken: float) -> None:
        super().__init__()
        self.app_name = app_name
        self.snapshot = name
        self.copy_bytes = size
        self.taken = taken

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Delete snapshot {self.snapshot}?", id="dialog-title")
            yield Static(
                Text.assemble("Delete ", (self.snapshot, "bold"), " of ",
                              (self.app_name, "bold"), f" (taken {taken_at(self.taken)}, "
                              f"{human_size(self.copy_bytes)})?\nIt cannot be brought back."),
                id="dialog-body",
            )  # fmt: skip
            with Horizontal(id="dialog-buttons"):
                yield Button("Delete", variant="error", id="delete")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel").focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "delete")


class ConfirmQuit(ModalScreen[bool]):
    """Quitting cancels running jobs: say which, and ask."""

    BINDINGS = [Binding("escape", "dismiss(False)", "Stay")]

    def __init__(self, running: list[str]) -> None:
        super().__init__()
        self.running = running

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Quit reel-tui?", id="dialog-title")
            yield Static(
                "Still running: "
                + ", ".join(self.running)
                + ".\n"
                + (
                    "Quitting cancels it; its database stays as it was."
                    if len(self.running) == 1
                    else "Quitting cancels them; their databases stay as they were."
                ),
                id="dialog-body",
            )
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel jobs and quit", variant="error", id="quit")
                yield Button("Stay", id="stay")

    def on_mount(self) -> None:
        self.query_one("#stay").focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "quit")


class PasswordScreen(ModalScreen[str | None]):
    """Asks for a password the config does not give; it is kept in memory only."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, app_name: str, reason: str) -> None:
        super().__init__()
        self.app_name = app_name
        self.reason = reason

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="password"):
            yield Label(f"Password for {self.app_name}", id="dialog-title")
            yield Static(Text(self.reason, style="red"), id="dialog-body")
            yield Static(
                "Type the password to use for this session. It is kept in memory "
                "only: never written to the config, the logs or the history."
            )
            yield Input(password=True, id="password")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value or None)


HELP = """\
[b]Moving[/b]
  tab, shift+tab  next / previous pane
  ↑ ↓             move in a list
[b]Rewinding[/b]
  enter           on a source: rewind to it (asks first)
  d               rewind the app to its default source ★
  /               filter the sources (esc clears)
  c               cancel the highlighted or running job
[b]Snapshots and undo[/b]
  s               take a snapshot of the app's current state
  u               undo the app's last rewind (asks first)
  n               on a snapshot: rename it
  x, delete       on a snapshot: delete it (asks first)
[b]Looking[/b]
  l               the highlighted job's full log
  t               check every app's connection again
  r               reload the config file
  f1, ?           this help
  q, ctrl+q       quit (asks while a job runs)
[b]Marks[/b]
  [yellow]★[/yellow]  the app's default source (dbsource)
  [green]●[/green]  a cached source: its rewind is a swap, not a load
  [magenta]◆[/magenta]  a snapshot (@name): enter rewinds to it
  [cyan]↶[/cyan]  the undo copy (@undo): what the last rewind replaced

Jobs of other reel processes (cron, scripts) show
up too. Headless: reel-tui --history, --log JOB_ID.
[b]HTTP API[/b]: reel-tui --listen HOST:PORT (or \\[reel] api_listen)
serves it beside the TUI; the title bar says where. Its jobs
are marked [b]api[/b] in Jobs; c cancels them like any job."""


class HelpScreen(ModalScreen[None]):
    """The keys, grouped by what the user wants to do."""

    BINDINGS = [Binding("escape,q,f1,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="help"):
            yield Label("reel-tui keys", id="dialog-title")
            with VerticalScroll(id="help-text"):
                yield Static(HELP, markup=True)


class FullLogScreen(ModalScreen[None]):
    """A job's whole log as stored on disk, scrollable."""

    BINDINGS = [Binding("escape,q,l", "dismiss", "Close")]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text = title
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(id="full-log"):
            yield Label(f"{self.title_text}  (esc closes)", id="dialog-title")
            yield TextArea(self.text or "(this job's log is empty)", read_only=True,
                           soft_wrap=True, show_line_numbers=False, id="full-log-text")  # fmt: skip

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()
