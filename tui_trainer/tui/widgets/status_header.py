"""The top line: run, job, state (in words and colour), step / target, epoch, ETA, speed, elapsed, device."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, Static

from tui_trainer.tui.run_model import STATE_WORDS, RunModel
from tui_trainer.tui.time_format import format_duration, format_rate


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
    StatusHeader #run-facts { width: 1fr; height: auto; }
    """

    def compose(self) -> ComposeResult:
        yield Label(STATE_WORDS["loading"].upper(), id="run-state", classes="-loading")
        yield Static("loading torch and the job...", id="run-facts")

    _shown: tuple[str, str] | None = None

    def show(self, model: RunModel) -> None:
        facts = describe(model)
        word, css_class = STATE_WORDS.get(model.state, model.state.title()), f"-{model.state}"
        if model.state == "paused" and model.disk_full is not None:
            word, css_class = "Paused: disk full", "-disk-full"
        if (word, facts) == self._shown:
            return  # called at 4 Hz: repaint (and send bytes over SSH) only on a change
        self._shown = (word, facts)
        state = self.query_one("#run-state", Label)
        # The word carries the state on its own: a monochrome terminal or a screenshot loses colour.
        state.update(word.upper())
        state.set_classes(css_class)
        self.query_one("#run-facts", Static).update(facts)


def describe(model: RunModel) -> str:
    if model.state == "loading":
        return "loading torch and the job..."
    if model.started_at is None:
        return model.error or ""
    target = model.target if model.target is not None else "-"
    parts = [
        model.run_name,
        f"job {model.job_name}",
        f"step {model.step}/{target}",
        f"epoch {model.epoch if model.epoch is not None else '-'}",
        f"ETA {format_duration(model.eta_seconds())}",
        format_rate(model.steps_per_sec) if model.state == "running" else "- it/s",
        f"elapsed {format_duration(model.elapsed_seconds())}",
        (model.device or "-").upper(),
    ]
    return "  ".join(parts)
