"""The first screen: the presets on the left; the selected one's description and main fields,
editable, on the right; the same validation messages as the CLI, shown inline."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, ListItem, ListView, Select, Static, Switch, TextArea

from engine.config import Spec, available_presets, load_spec, parse_override, shadowed
from engine.errors import ConfigError, LplrError
from engine.events import LOST, RUNNING
from engine.eventlog import PLAN_SUFFIX
from engine.kinds import KINDS, SOURCES
from engine.tail import PlanState, PlanWatch, plan_logs
from lplr_tui.tables import advice_lines

# (the key the field edits, its label); the width field edits the model kind's width key, or
# model.width of every [[runs]] entry of a plan
FIELDS = [
    ("model.width", "width m"),
    ("optim.lr", "step size η"),
    ("train.epochs", "epochs"),
    ("probes.every", "probe every (epochs)"),
    ("train.device", "device"),
    ("data.source", "data source"),
    ("data.root", "data root"),
    ("data.n_train", "training images"),
    ("data.download", "download if missing"),
]
CHOICE = "data.source"  # a Select among the sources the model kind accepts
SWITCH = "data.download"  # a Switch; every other field is an Input whose text is read as --set reads it


PLANS_EVERY = 5.0  # seconds between looks at the results directory's plans


def plan_line(plan: "PlanState") -> str:
    """The plan's name and state, then its id (start time and name) on a line of its own."""
    return f"{'▶' if plan.live else '?'} {plan.name} ({plan.state})\n  {plan.path.name.removesuffix(PLAN_SUFFIX)}"


class PlanList:
    """The live and lost plans of a results directory, each plan's logs followed incrementally
    (a plan that has ended is not read again)."""

    def __init__(self, results_dir: Path | None):
        self.results_dir = results_dir
        self.watches: dict[Path, PlanWatch] = {}
        self.states: dict[Path, PlanState] = {}
        self.resumed: dict[Path, tuple[float, bool]] = {}  # lost plan -> (its run's log mtime, resumed since)

    def read(self) -> list["PlanState"]:
        if self.results_dir is None or not self.results_dir.is_dir():
            return []
        for path in plan_logs(self.results_dir):
            if path in self.states and not self.states[path].live and self.states[path].state != LOST:
                continue  # ended: it says so for good
            try:
                self.states[path] = self.watches.setdefault(path, PlanWatch(path)).state()
            except (OSError, LplrError):  # unreadable, or a newer version's: not listed
                self.states.pop(path, None)
                self.watches.pop(path, None)
        shown = [p for p in self.states.values() if p.runs and (p.live or (p.state == LOST and not self.resumed_since(p)))]
        return sorted(shown, key=lambda p: p.path.name, reverse=True)

    def resumed_since(self, plan: "PlanState") -> bool:
        """A lost plan's run that another worker has taken up since (a resume): nothing left to do."""
        from engine.liveness import worker_of
        from engine.record import read_current

        run_dir = Path(plan.lost.run_dir) if plan.lost and plan.lost.run_dir else None
        if run_dir is None:
            return False
        try:
            mtime = (run_dir / "events.jsonl").stat().st_mtime
            if self.resumed.get(plan.path, (None,))[0] != mtime:
                record, _ = read_current(run_dir)
                self.resumed[plan.path] = (mtime, record.state != RUNNING or worker_of(record.environment) != plan.worker)
        except (LplrError, OSError):
            return False
        return self.resumed[plan.path][1]


def field_id(key: str) -> str:
    return "field-" + key.replace(".", "-")


def widths_of(spec: Spec) -> list[int]:
    return [entry.get("model", {}).get("width", spec.model.width) for entry in spec.runs]


def width_key(spec: Spec) -> str:
    """What the width field edits: the key that sets the model kind's width."""
    return KINDS[spec.model.kind].width_key


def per_run_widths(spec: Spec) -> bool:
    """A plan whose [[runs]] entries may each set model.width: the field lists one per run."""
    return bool(spec.runs) and width_key(spec) == "model.width"


def width_label(spec: Spec) -> str:
    if width_key(spec) == "model.base_width":
        return "base width (channels)"
    return "widths m (one per run)" if per_run_widths(spec) else "width m"


def field_values(spec: Spec) -> dict[str, str | bool]:
    """The fields' contents for a spec: texts (floats written in full, so that they read back
    exactly), the data source and the download switch."""
    kind = KINDS[spec.model.kind]
    width = ", ".join(map(str, widths_of(spec))) if per_run_widths(spec) else str(kind.width(spec.model))
    return {
        "model.width": width,
        "optim.lr": repr(spec.optim.lr),
        "train.epochs": str(spec.train.epochs),
        "probes.every": str(spec.probes.every),
        "train.device": spec.train.device,
        "data.source": spec.data.source,
        "data.root": spec.data.root,
        "data.n_train": str(spec.data.n_train),
        "data.download": spec.data.download,
    }


def overrides_from(spec: Spec, texts: dict[str, str | bool], skip: Collection[str] = ()) -> dict:
    """The fields' contents as load_spec overrides; a plan's widths go into its [[runs]].
    A field whose key is in `skip` (the editor sets it) is left out."""
    values: dict = {}
    for key, text in texts.items():
        target = width_key(spec) if key == "model.width" else key
        if target in skip or (key == "model.width" and per_run_widths(spec)):
            continue
        if isinstance(text, bool) or key == CHOICE:  # a switch's or a choice's value, as it is
            values[target] = text
        else:
            values.update([parse_override(f"{target}={text}")])
    if per_run_widths(spec) and "runs" not in skip:
        widths = parse_widths(str(texts["model.width"]), len(spec.runs))
        values["runs"] = [
            {**entry, "model": {**entry.get("model", {}), "width": w}} for entry, w in zip(spec.runs, widths)
        ]
    return values


def editor_overrides(text: str) -> tuple[dict, dict[str, int]]:
    """The editor's `key = value` lines, read as the CLI reads `--set key=value` (blank lines
    and lines starting with # skipped; a later line wins), and each key's line number. A line
    that is not an override raises the CLI's message, prefixed by its line number."""
    values: dict = {}
    lines: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key, value = parse_override(line)
        except ConfigError as exc:
            raise ConfigError(exc.key, exc.value, exc.allowed, f"line {number}") from None
        values.pop(key, None)  # moved last: set after the fields and the lines before it
        values[key] = value
        lines.pop(key, None)
        lines[key] = number
    return values, lines


def editor_overrides_present(text: str) -> bool:
    return any(line.strip() and not line.strip().startswith("#") for line in text.split("\n"))


def line_of(key: str, lines: dict[str, int]) -> int | None:
    """The editor's line an error about `key` comes from: the last line that sets the key, a
    table above it or a key below it."""
    hits = [n for k, n in lines.items() if k == key or key.startswith(k + ".") or k.startswith(key + ".")]
    return max(hits, default=None)


def parse_widths(text: str, count: int) -> list:
    parts = [p.strip() for p in text.replace(",", " ").split()]
    try:
        widths = [int(p) for p in parts]
    except ValueError:
        raise ConfigError("model.width", text, f"must be {count} integers, one per run, e.g. 128, 256") from None
    if len(widths) != count:
        raise ConfigError("model.width", text, f"must list {count} widths, one per run of the plan")
    return widths


class PickerScreen(Screen):
    BINDINGS = [
        Binding("s", "start", "start"),
        Binding("a", "advise", "advise η"),
        Binding("w", "watch_plan", "watch plan"),
        Binding("r", "resume_plan", "resume lost"),
    ]  # ? and q are the app's

    def __init__(self, overrides: dict | None = None, results_dir: Path | None = None):
        super().__init__()
        self.presets: dict[str, Path] = available_presets()
        self.base_overrides = overrides or {}
        self.spec: Spec | None = None
        self.sources: tuple[str, ...] = SOURCES  # the data source field's options
        self.results_dir = results_dir
        self.plans = PlanList(results_dir)

    def compose(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="preset-pane"):
                yield Label("experiments", classes="pane-title")
                yield ListView(*(ListItem(Label(Text(name)), name=name) for name in self.presets), id="presets")
                yield Label("live & lost plans", classes="pane-title")
                yield ListView(id="plans")
            with VerticalScroll(id="detail-pane", can_focus=False):
                yield Static("", id="description")
                for key, label in FIELDS:
                    with Horizontal(classes="field"):
                        yield Label(Text(label), classes="field-label", id=field_id(key) + "-label")
                        yield self.field_widget(key)
                        if key == SWITCH:  # the switch's state in words: a slider alone is colour only
                            yield Label("", id=field_id(key) + "-state", classes="field-state")
                    yield Static("", id=field_id(key) + "-error", classes="field-error")
                yield Label(Text("other keys, one per line: key = value, as --set key=value"), id="overrides-label")
                yield TextArea(id="overrides", show_line_numbers=True)
                yield Static("", id="overrides-error", classes="field-error")
                yield Static("", id="form-error", classes="field-error")
                yield Button("Start  (s)", id="start", variant="primary")
                yield Static("[dim]a: each run's step size against 1/β and 2/β at initialisation[/dim]", id="advice")
                yield Static("", id="guide")
        yield Footer()

    @staticmethod
    def field_widget(key: str) -> Input | Select | Switch:
        if key == CHOICE:  # its options: the model kind's sources, set when a preset is selected
            return Select([(Text(s), s) for s in SOURCES], id=field_id(key), classes="field-choice", allow_blank=False, compact=True)
        if key == SWITCH:
            return Switch(id=field_id(key), classes="field-switch")
        return Input(id=field_id(key), classes="field-input")

    def on_mount(self) -> None:
        self.query_one("#presets", ListView).focus()
        if self.presets:
            self.select(next(iter(self.presets)))
        self.refresh_plans()
        self.set_interval(PLANS_EVERY, self.refresh_plans)

    def on_screen_resume(self) -> None:
        self.refresh_plans()

    def refresh_plans(self) -> None:
        """The live and lost plans under the results directory, newest first (looked at while
        the picker is the screen shown)."""
        if not self.is_current:
            return
        shown = self.plans.read()
        view = self.query_one("#plans", ListView)
        names = [str(p.path) for p in shown]
        if [item.name for item in view.children] != names:
            view.clear()
            view.extend(ListItem(Label(Text(plan_line(p))), name=str(p.path)) for p in shown)
        else:
            for item, plan in zip(view.children, shown):
                item.query_one(Label).update(Text(plan_line(plan)))

    def highlighted_plan(self) -> "PlanState | None":
        item = self.query_one("#plans", ListView).highlighted_child
        return self.plans.states.get(Path(item.name)) if item is not None else None

    def action_watch_plan(self) -> None:
        plan = self.highlighted_plan()
        if plan is None:
            self.notify("no live or lost plan highlighted (tab to the plans list)", severity="warning")
            return
        from lplr_tui.sources import TailSource

        self.app.attach(TailSource(plan.path))

    def action_resume_plan(self) -> None:
        plan = self.highlighted_plan()
        if plan is None or plan.lost is None or not plan.lost.run_dir:
            self.notify("highlight a lost plan in the plans list to resume it", severity="warning")
            return
        try:
            self.app.resume_run(Path(plan.lost.run_dir))
        except LplrError as exc:
            self.show_error(exc)

    @on(ListView.Highlighted, "#presets")
    def highlighted(self, event: ListView.Highlighted) -> None:
        if event.item is not None:
            self.select(event.item.name)

    def select(self, name: str) -> None:
        """Show a preset and its values in the fields; the editor keeps its lines (a user's
        extra keys usually apply to the next preset too), checked against this preset."""
        self.clear_errors()
        try:
            self.spec = load_spec(str(self.presets[name]), self.base_overrides)
        except LplrError as exc:
            self.spec = None
            self.show_error(exc)
            return
        hidden = shadowed(name, self.presets[name])
        origin = f"\n{self.presets[name]}: a local preset that shadows the bundled one" if hidden else ""
        self.query_one("#description", Static).update(
            Text.assemble((name, "bold"), (origin, "yellow"), "\n\n", self.spec.description)
        )
        self.query_one("#guide", Static).update(Text(self.spec.guide.text.strip()))
        self.query_one("#" + field_id("model.width") + "-label", Label).update(Text(width_label(self.spec)))
        with self.prevent(Input.Changed, Select.Changed, Switch.Changed):  # the preset's own values
            sources = KINDS[self.spec.model.kind].sources
            if sources != self.sources:
                self.query_one("#" + field_id(CHOICE), Select).set_options((Text(s), s) for s in sources)
                self.sources = sources
            for key, value in field_values(self.spec).items():
                self.query_one("#" + field_id(key), expect_type=None).value = value
        self.show_switch()
        if editor_overrides_present(self.query_one("#overrides", TextArea).text):
            self.checked_spec()

    def clear_errors(self) -> None:
        for widget in self.query(".field-error"):
            widget.update("")
            widget.display = False

    def texts(self) -> dict[str, str | bool]:
        """The fields' contents: texts, the chosen source and the switch's state."""
        return {key: self.query_one("#" + field_id(key), expect_type=None).value for key, _ in FIELDS}

    def checked_spec(self) -> Spec | None:
        """The spec with the fields, then the editor's lines, applied (as the CLI applies
        `--set`), or None with the error shown by its field or under the editor."""
        self.clear_errors()
        if self.spec is None:
            return None
        try:
            extra, lines = editor_overrides(self.query_one("#overrides", TextArea).text)
        except ConfigError as exc:
            self.show_error(exc, "#overrides-error")
            return None
        try:
            path = self.presets[self.query_one("#presets", ListView).highlighted_child.name]
            values = {**self.base_overrides, **overrides_from(self.spec, self.texts(), skip=extra)}
            for key, value in extra.items():  # after the fields: the editor wins
                values.pop(key, None)
                values[key] = value
            return load_spec(str(path), values)
        except ConfigError as exc:
            line = line_of(exc.key, lines)
            if line is None:
                self.show_error(exc)
            else:
                self.show_error(ConfigError(exc.key, exc.value, exc.allowed, f"line {line}"), "#overrides-error")
        return None

    def show_error(self, exc: LplrError, target: str | None = None) -> None:
        """The error under its field (without saying where it came from), under the editor
        (prefixed by its line) or under the form (the whole message)."""
        if target is None:
            key = getattr(exc, "key", "")
            if key in {kind.width_key for kind in KINDS.values()}:
                key = "model.width"  # the width field edits the kind's width key
            target = f"#{field_id(key)}-error" if key in dict(FIELDS) else "#form-error"
        widget = self.query_one(target, Static)
        widget.update(Text(exc.bare if target not in ("#form-error", "#overrides-error") else str(exc)))
        widget.display = True

    def action_advise(self) -> None:
        spec = self.checked_spec()
        if spec is None:
            return
        self.query_one("#advice", Static).update("computing λ_max(∇²L) of each run at its initialisation…")
        self.advise_in_background(spec)

    @work(thread=True, exclusive=True)
    def advise_in_background(self, spec: Spec) -> None:
        try:
            from engine.runner import Runner  # the training stack loads for the advice only

            runner = Runner(spec)
            runner.preflight()
            text = Text("\n".join(advice_lines(runner.advise(), compact=True)))
            text.highlight_words([" unstable"], "bold red")
            text.highlight_words([" outside"], "yellow")
        except LplrError as exc:
            text = Text(str(exc), style="red")
        self.app.call_from_thread(self.query_one("#advice", Static).update, text)

    def show_switch(self) -> None:
        on = self.query_one("#" + field_id(SWITCH), Switch).value
        self.query_one("#" + field_id(SWITCH) + "-state", Label).update(Text("true" if on else "false"))

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Switch.Changed)
    @on(TextArea.Changed, "#overrides")
    def changed(self) -> None:
        self.show_switch()
        self.checked_spec()

    @on(Input.Submitted)
    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        spec = self.checked_spec()
        if spec is None:
            return
        try:
            self.app.start_plan(spec)
        except LplrError as exc:
            self.show_error(exc)
