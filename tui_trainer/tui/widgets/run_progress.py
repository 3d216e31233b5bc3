"""Progress toward the current target: a bar with the percentage, step counts and ETA, then the
learning rate, gradient norm, throughput and the job's scalars (`TrainScalars`) as room allows."""

from __future__ import annotations

from functools import partial

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, ProgressBar

from tui_trainer.tui.run_model import RunModel
from tui_trainer.tui.time_format import format_duration
from tui_trainer.tui.widgets.live_text import show_text
from tui_trainer.tui.widgets.train_scalars import TrainScalars

BAR_ROOM = 20  # the bar and its percentage keep at least this many columns


class RunProgress(Horizontal):
    DEFAULT_CSS = """
    RunProgress {
        height: 1;
        padding: 0 1;
    }
    RunProgress ProgressBar { width: 1fr; }
    RunProgress ProgressBar Bar { width: 1fr; }
    RunProgress #progress-text { width: auto; margin-left: 1; }
    """

    def compose(self) -> ComposeResult:
        yield ProgressBar(total=None, show_eta=False, show_percentage=True)
        yield Label("", id="progress-text")
        yield TrainScalars(id="train-scalars")

    _shown: tuple[object, ...] | None = None
    _text_width = 0
    _model: RunModel | None = None

    def on_resize(self) -> None:
        if self._model is not None:
            self.show(self._model)

    def show(self, model: RunModel) -> None:
        self._model = model
        room = self.content_size.width - self._text_width - 1 - BAR_ROOM - 2  # 1: the text's margin; 2: ours
        self.query_one(TrainScalars).show(model, room)
        text = f"{model.step}/{model.target or '-'}"
        if model.state == "running":
            text += f"  ETA {format_duration(model.eta_seconds())}"
        elif model.state == "paused":
            text += "  paused"
        if (model.step, model.target, text) == self._shown:
            return
        self._shown = (model.step, model.target, text)
        # Padded to the widest text so far: a label that keeps its width needs no layout pass.
        self._text_width = max(self._text_width, cell_len(text))
        show_text(self.query_one("#progress-text", Label), text.ljust(self._text_width))
        if model.target:
            update = partial(self.query_one(ProgressBar).update, total=model.target,
                             progress=min(model.step, model.target))
            update()  # the bar draws its fill from its width when it renders, laid out or not
