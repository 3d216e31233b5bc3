"""The top line: run, job, state (in words and colour), step / target, epoch, ETA, speed, elapsed, device.

Speed, ETA and elapsed are over training time: a pause, an evaluation or a save does not move
them; the time evaluations and saves took is shown after elapsed, as room allows.

It stays one line: on a narrow terminal the least useful facts are left out, not wrapped.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, Static

from tui_trainer.tui.run_model import STATE_WORDS, RunModel
from tui_trainer.tui.time_format import format_duration, format_rate
from tui_trainer.tui.widgets.live_text import show_text

SEPARATOR = "  "


class StatusHeader(Horizontal):
    DEFAULT_CSS = """
    StatusHeader {
        height: auto;
        background: $panel;
        padding: 0 1;
    }
    StatusHeader #run-state {
        width: auto;
        padding: 0 1;
        margin-right: 1;
        text-style: bold;
        background: $surface;
        color: $text;
    }
    StatusHeader #run-state.-running { background: $success; color: auto; }
    StatusHeader #run-state.-paused, StatusHeader #run-state.-pausing { background: $warning; color: auto; }
    StatusHeader #run-state.-stopping, StatusHeader #run-state.-stopped,
    StatusHeader #run-state.-interrupted { background: $warning-darken-2; color: auto; }
    StatusHeader #run-state.-finished { background: $primary; color: auto; }
    StatusHeader #run-state.-failed, StatusHeader #run-state.-disk-full { background: $error; color: auto; }
    StatusHeader #run-facts { width: 1fr; height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    StatusHeader #run-facts.-problem { height: auto; text-wrap: wrap; }  /* why it could not start: all of it */
    """

    def compose(self) -> ComposeResult:
        yield Label(STATE_WORDS["loading"].upper(), id="run-state", classes="-loading")
        yield Static("loading torch and the job...", id="run-facts")

    _shown: tuple[str, str] | None = None
    _model: RunModel | None = None

    def on_resize(self) -> None:
        if self._model is not None:
            self.show(self._model)

    def show(self, model: RunModel) -> None:
        self._model = model
        facts = describe(model, self.query_one("#run-facts", Static).size.width or None)
        word, css_class = STATE_WORDS.get(model.state, model.state.title()), f"-{model.state}"
        if model.state == "paused" and model.disk_full is not None:
            word, css_class = "Paused: disk full", "-disk-full"
        if (word, facts) == self._shown:
            return  # called at every tick: repaint (and send bytes over SSH) only on a change
        if word != (self._shown or ("", ""))[0]:
            state = self.query_one("#run-state", Label)
            # The word carries the state on its own: a monochrome terminal or a screenshot loses colour.
            state.update(word.upper())
            state.set_classes(css_class)
        self._shown = (word, facts)
        facts_label = self.query_one("#run-facts", Static)
        facts_label.set_class(model.started_at is None and bool(model.error), "-problem")
        show_text(facts_label, facts)


def describe(model: RunModel, width: int | None = None) -> str:
    """The facts in display order, leaving out the least important ones that do not fit `width`."""
    if model.state == "loading":
        return "loading torch and the job..."
    if model.started_at is None:
        return model.error or ""
    target = model.target if model.target is not None else "-"
    # (importance, text) in display order; 0 is kept however narrow the line is.
    # The run's name right after step, ETA and speed: at 80 columns it says which run this is.
    parts = [
        (3, model.run_name),
        (6, f"job {model.job_name}"),
        (0, f"step {model.step}/{target}"),
        (5, f"epoch {model.epoch if model.epoch is not None else '-'}"),
        (1, f"ETA {format_duration(model.eta_seconds())}"),
        (2, format_rate(model.steps_per_sec) if model.state == "running" else "- it/s"),
        (4, f"elapsed {format_duration(model.elapsed_seconds())}"),
        (7, (model.device or "-").upper()),
    ]
    if model.eval_seconds >= 0.5 or model.save_seconds >= 0.5:  # kept out of elapsed, so said apart
        parts.insert(-1, (8, f"+ eval {format_duration(model.eval_seconds)}, saves {format_duration(model.save_seconds)}"))
    if width is None:
        return SEPARATOR.join(text for _, text in parts)
    # Strictly by importance: once a fact does not fit, the less important ones are left out too.
    kept: set[int] = {0}
    for importance, _ in sorted(parts)[1:]:
        if len(SEPARATOR.join(text for i, text in parts if i in kept | {importance})) > width:
            break
        kept.add(importance)
    return SEPARATOR.join(text for i, text in parts if i in kept)
