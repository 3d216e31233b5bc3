"""The run on disk: its size, its checkpoints', the free space, and whether the run will fit.

The run's size is `run_disk_bytes`, the measure `tui-trainer runs` and the runs screen show
(exports and the history included), so the two never disagree; the forecast is about checkpoints.
Reading the run dir (sidecars, run.json, its files' sizes) happens on a worker thread when the
checkpoints change and every `DISK_REFRESH_S` (other programs fill disks too); the forecast is
re-done from that reading as the run advances, which is arithmetic only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from textual import work
from textual.widgets import Static
from textual.worker import get_current_worker

from tui_trainer.engine.sizes import human_bytes
from tui_trainer.engine.words import counted
from tui_trainer.tui.widgets.live_text import show_text

if TYPE_CHECKING:
    # Imported once the run has loaded (the checkpoint store with it): not needed for the first frame.
    from tui_trainer.engine.checkpoints.disk_forecast import DiskForecast, DiskState

DISK_REFRESH_S = 10.0


def describe_disk(result: DiskForecast | None, problem: str | None = None,
                  run_bytes: int | None = None, width: int | None = None) -> tuple[str, bool]:
    """The panel's text, and whether it is a warning. The warning is in words, not only colour.

    Within `width`, the longest of its forms that fits: the least useful parts are left out whole
    (the checkpoints' size first, then the run's, then the free space), so that no line wraps
    between a number and its unit. The shortest form wraps where even it does not fit.
    """
    forms, warning = disk_forms(result, problem, run_bytes)
    return fitting(forms, width), warning


def fitting(forms: list[str], width: int | None) -> str:
    """The longest of `forms` (longest first) within `width`; the shortest if none fits; the whole without a width."""
    if width is None:
        return forms[0]
    return next((text for text in forms if cell_len(text) <= width), forms[-1])


def disk_forms(result: DiskForecast | None, problem: str | None = None,
               run_bytes: int | None = None) -> tuple[list[str], bool]:
    """The panel's text from the whole to the shortest, and whether it is a warning."""
    if problem:
        return [f"disk: {problem}"], False
    if result is None:
        return ["disk: waiting for the run"], False
    free = f"{human_bytes(result.free_bytes)} free"
    run = f"run {human_bytes(run_bytes)}, " if run_bytes is not None else ""
    if result.save_bytes is None:
        return _distinct(f"disk: {run}no checkpoints yet · {free}", f"disk: no checkpoints yet · {free}",
                         f"disk: {free}"), False
    if result.fill_step is not None:
        needs = (f"DISK FULL AT STEP {result.fill_step:,}: needs ~{human_bytes(result.end_bytes)}, room "
                 f"{human_bytes(result.room_bytes)}")
        return [f"{needs} ({human_bytes(result.used_bytes)} used + {free}); lower keep-last or free space",
                f"{needs}; lower keep-last or free space", needs], True
    ckpts = f"{human_bytes(result.used_bytes)} in {counted(result.count_now, 'ckpt')}"
    end = f"end ~{rough_bytes(result.end_bytes)}, fits" if result.saves_left else "no more saves planned"
    # The checkpoints' sizes are in the table below: the first to go.
    run_alone = f"run {human_bytes(run_bytes)} · " if run_bytes is not None else ""
    return _distinct(f"disk: {run}{ckpts} · {free} · {end}", f"disk: {run_alone}{free} · {end}",
                     f"disk: {free} · {end}", f"disk: {end}"), False


def rough_bytes(count: int | float) -> str:
    """A forecast's size to two significant digits ("~26 GB", not "~26.4 GB"): it moves with the
    measured speed, and each change of its last digit repainted the line, a few times a second."""
    number, _, unit = human_bytes(count).partition(" ")
    if unit == "B":
        return human_bytes(count)
    try:
        value = float(number)
    except ValueError:
        return human_bytes(count)
    return f"{float(f'{value:.2g}'):g} {unit}".strip()


def _distinct(*forms: str) -> list[str]:
    return list(dict.fromkeys(forms))


def explain_forecast(result: DiskForecast | None) -> str | None:
    """The forecast's arithmetic, for the tooltip."""
    if result is None or result.save_bytes is None or not result.saves_left:
        return None
    return (
        f"At the end of the run: {counted(result.count_at_end, 'checkpoint')} of about {human_bytes(result.save_bytes)}, "
        f"plus one being written, ~{human_bytes(result.end_bytes)}; {counted(result.saves_left, 'save')} to come. "
        f"Room: {human_bytes(result.room_bytes)} (checkpoints now + free space)."
    )


class DiskPanel(Static):
    DEFAULT_CSS = """
    DiskPanel {
        height: auto;
        padding: 0 1;
        color: $text-muted;
    }
    DiskPanel.-warning {
        background: $error;
        color: $text;
        text-style: bold;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("disk: waiting for the run", markup=False, **kwargs)
        self.run_dir: str | None = None
        self.state: DiskState | None = None
        self.forecast: DiskForecast | None = None
        self.run_bytes: int | None = None
        self.reads = 0
        self._problem: str | None = None
        self._step = 0
        self._target: int | None = None
        self._steps_per_sec = 0.0
        self._shown: tuple[str, bool, str] | None = None

    def on_mount(self) -> None:
        self.set_interval(DISK_REFRESH_S, self._reload_current)

    def on_resize(self) -> None:
        self._render_forecast()  # another width may want another form

    def show(self, model: Any) -> None:
        """Follow the run's step, target and speed (a RunModel); cheap, called at the UI tick."""
        self._step, self._target, self._steps_per_sec = model.step, model.target, model.steps_per_sec
        self._render_forecast()

    def reload(self, run_dir: str) -> None:
        """Re-read the run dir and the free space, on a worker thread."""
        self.run_dir = run_dir
        self._read(run_dir)

    def _reload_current(self) -> None:
        if self.run_dir:
            self._read(self.run_dir)

    @work(thread=True, exclusive=True, group="disk-panel", exit_on_error=False)
    def _read(self, run_dir: str) -> None:
        from tui_trainer.engine.checkpoints.disk_forecast import read_disk_state
        from tui_trainer.engine.errors import TrainerError
        from tui_trainer.engine.rundir.runs_index import run_disk_bytes

        try:
            state, problem = read_disk_state(run_dir), None
        except (TrainerError, OSError) as exc:
            state, problem = None, " ".join(str(exc).split())
        run_bytes = run_disk_bytes(run_dir) if state is not None else None
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._got, state, problem, run_bytes)

    def _got(self, state: DiskState | None, problem: str | None, run_bytes: int | None = None) -> None:
        self.reads += 1
        if state is not None or self.state is None:
            self.state, self.run_bytes = state, run_bytes
        self._problem = problem if state is None and self.state is None else None
        self._render_forecast()

    def _render_forecast(self) -> None:
        state = self.state
        if state is not None:
            from tui_trainer.engine.checkpoints.disk_forecast import forecast

            self.forecast = forecast(state, self._step, self._target or state.target, self._steps_per_sec)
        width = self.content_size.width if self.is_mounted else 0
        forms, warning = disk_forms(self.forecast, self._problem, self.run_bytes)
        text, whole = fitting(forms, width or None), forms[0]
        if (text, warning, whole) != self._shown:  # repaint (and send bytes over SSH) only on a change
            self._shown = (text, warning, whole)
            show_text(self, text)
            self.set_class(warning, "-warning")
            # What a narrow panel leaves out, then the forecast's arithmetic.
            self.tooltip = "\n\n".join(t for t in (whole if whole != text else None,
                                                    explain_forecast(self.forecast)) if t) or None
