"""Export the selected checkpoint's weights: format, output path, then the sizes before and after.

The export runs in a thread worker (it imports torch and reads the whole checkpoint); every
problem, an existing file or a missing folder included, is shown here rather than raised.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, RadioButton, RadioSet
from textual.worker import get_current_worker

from tui_trainer.engine.errors import TrainerError
from tui_trainer.engine.sizes import human_bytes
from tui_trainer.tui.error_text import describe_error

EXPORTS_DIR = "exports"
FORMAT_SUFFIXES = {"safetensors": ".safetensors", "pt": ".pt"}
SUFFIX_FORMATS = {".safetensors": "safetensors", ".pt": "pt", ".pth": "pt"}


class ExportRefused(TrainerError):
    """The chosen output would replace a file the user did not agree to replace."""


def default_export_path(run_dir: str | Path, checkpoint_name: str, fmt: str = "safetensors") -> Path:
    """`<run>/exports/step_00000300.safetensors`: beside the run, out of the checkpoint listing."""
    return Path(run_dir) / EXPORTS_DIR / (Path(checkpoint_name).stem + FORMAT_SUFFIXES[fmt])


def with_format_suffix(path_text: str, fmt: str) -> str:
    """The path with its export suffix swapped for `fmt`'s; any other name is left alone."""
    path = Path(path_text)
    current = SUFFIX_FORMATS.get(path.suffix.lower())
    if current is None or current == fmt:
        return path_text
    return str(path.with_suffix(FORMAT_SUFFIXES[fmt]))


def export_checkpoint(source: Path, out: Path, fmt: str, overwrite: bool, exports_dir: Path) -> Any:
    """Run on a worker thread: the engine's export, after the checks this modal adds."""
    if not overwrite and out.exists() and not out.is_dir():
        raise ExportRefused(f"{out} already exists; choose another name, or tick 'Replace an existing file'")
    if out.parent == exports_dir:
        exports_dir.mkdir(exist_ok=True)  # the default folder is ours to create; any other must exist
    from tui_trainer.engine.tools.export import export_weights  # imports torch

    return export_weights(source, out, fmt, overwrite=overwrite)


def result_lines(result: Any) -> list[str]:
    lines = [
        f"{result.out_path.name}: {human_bytes(result.weights_bytes)} of weights, from a "
        f"{human_bytes(result.checkpoint_bytes)} checkpoint ({result.ratio:.0%} of its size)",
        f"{result.tensors} tensors, {result.parameters:,} parameters, {result.fmt}",
    ]
    if result.skipped:
        lines.append(f"left out {len(result.skipped)} non-tensor entries: {', '.join(result.skipped)}")
    return lines


class ExportScreen(ModalScreen[Any]):
    """Dismissed with the engine's ExportResult once an export is done, else None."""

    DEFAULT_CSS = """
    ExportScreen { align: center middle; }
    ExportScreen > Vertical {
        width: 84;
        max-width: 100%;
        height: auto;
        border: thick $primary;
        background: $surface;
        padding: 1 2;
    }
    ExportScreen RadioSet { width: 100%; height: auto; layout: horizontal; }
    ExportScreen #export-error { color: $error; height: auto; width: 100%; }
    ExportScreen #export-result { color: $success; height: auto; width: 100%; }
    ExportScreen .-hidden { display: none; }
    ExportScreen Horizontal { height: auto; margin-top: 1; }
    ExportScreen Button { margin-right: 2; }
    """
    BINDINGS = [Binding("escape", "close", "Close", id="export.close")]

    def __init__(self, source: Path, run_dir: Path) -> None:
        super().__init__()
        self.source = source
        self.exports_dir = Path(run_dir) / EXPORTS_DIR
        self.result: Any = None
        self.busy = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(f"Export the weights of {self.source.name}"))
            with RadioSet(id="export-format"):
                yield RadioButton("safetensors", value=True, id="format-safetensors")
                yield RadioButton(".pt (PyTorch state dict)", id="format-pt")
            yield Label("Output file:")
            yield Input(str(default_export_path(self.exports_dir.parent, self.source.name)), id="export-path")
            yield Checkbox("Replace an existing file", id="export-overwrite")
            yield Label("", id="export-error", classes="-hidden")
            yield Label("", id="export-result", classes="-hidden")
            with Horizontal():
                yield Button("Export", variant="primary", id="export-ok")
                yield Button("Close", id="export-close")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @property
    def fmt(self) -> str:
        return "pt" if self.query_one("#format-pt", RadioButton).value else "safetensors"

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        event.stop()
        field = self.query_one(Input)
        field.value = with_format_suffix(field.value, self.fmt)

    def on_input_changed(self, event: Input.Changed) -> None:
        # A typed suffix picks the format, so the two can never disagree.
        fmt = SUFFIX_FORMATS.get(Path(event.value).suffix.lower())
        button = self.query_one(f"#format-{fmt}", RadioButton) if fmt else None
        if button is not None and not button.value:
            button.value = True

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._start()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "export-ok":
            self._start()
        else:
            self.action_close()

    def action_close(self) -> None:
        if not self.busy:
            self.dismiss(self.result)

    def _start(self) -> None:
        if self.busy:
            return
        text = self.query_one(Input).value.strip()
        if not text:
            self._show_error("give an output file, e.g. " + str(default_export_path(self.exports_dir.parent,
                                                                                     self.source.name)))
            return
        self.busy = True
        self.query_one("#export-ok", Button).disabled = True
        self._show_error("")
        self._show_result([f"exporting to {text} ..."])
        out = Path(text).expanduser()
        self._export(out, self.fmt, self.query_one(Checkbox).value)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _export(self, out: Path, fmt: str, overwrite: bool) -> None:
        try:
            result = export_checkpoint(self.source, out, fmt, overwrite, self.exports_dir)
        except Exception as exc:  # shown in the modal; the user fixes the path and tries again
            if not get_current_worker().is_cancelled:
                self.app.call_from_thread(self._finished, None, describe_error(exc))
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._finished, result, None)

    def _finished(self, result: Any, problem: str | None) -> None:
        self.busy = False
        self.query_one("#export-ok", Button).disabled = False
        if problem is not None:
            self._show_result([])
            self._show_error(problem)
            return
        self.result = result
        self._show_result(result_lines(result))
        self.query_one("#export-close", Button).focus()

    def _show_error(self, text: str) -> None:
        error = self.query_one("#export-error", Label)
        error.update(Text(text))
        error.set_class(not text, "-hidden")

    def _show_result(self, lines: list[str]) -> None:
        label = self.query_one("#export-result", Label)
        label.update(Text("\n".join(lines)))
        label.set_class(not lines, "-hidden")
