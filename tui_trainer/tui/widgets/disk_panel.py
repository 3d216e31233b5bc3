"""The run on disk: its size, its checkpoints', the free space, and whether the run will fit.

The run's size is `run_disk_bytes`, the measure `tui-trainer runs` and the runs screen show
(exports and the history included), so the two never disagree; the forecast is about checkpoints.
Reading the run dir (sidecars, run.json, its files' sizes) happens on a worker thread when the
checkpoints change and every `DISK_REFRESH_S` (other programs fill disks too); the forecast is
re-done from that reading as the run advances, which is arithmetic only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import work
from textual.widgets import Static
from textual.worker import get_current_worker

from tui_trainer.engine.sizes import human_bytes
from tui_trainer.tui.widgets.live_text import show_text

if TYPE_CHECKING:
    # Imported once the run has loaded (the checkpoint store with it): not needed for the first frame.
    from tui_trainer.engine.checkpoints.disk_forecast import DiskForecast, DiskState

DISK_REFRESH_S = 10.0


def describe_disk(result: DiskForecast | None, problem: str | None = None,
                  run_bytes: int | None = None) -> tuple[str, bool]:
    """The panel's text, and whether it is a warning. The warning is in words, not only colour."""
    if problem:
        return f"disk: {problem}", False
    if result is None:
        return "disk: waiting for the run", False
    free = human_bytes(result.free_bytes)
    run = f"run {human_bytes(run_bytes)}, " if run_bytes is not None else ""
    if result.save_bytes is None:
        return f"disk: {run}no checkpoints yet · {free} free", False
    now = f"{run}{human_bytes(result.used_bytes)} in {result.count_now} ckpt{'s' if result.count_now != 1 else ''}"
    if result.fill_step is not None:
        return (
            f"DISK FULL AT STEP {result.fill_step:,}: needs ~{human_bytes(result.end_bytes)}, room "
            f"{human_bytes(result.room_bytes)} ({human_bytes(result.used_bytes)} used + {free} free); "
            "lower keep-last or free space",
            True,
        )
    if not result.saves_left:
        return f"disk: {now} · {free} free · no more saves planned", False
    return f"disk: {now} · {free} free · end ~{human_bytes(result.end_bytes)}, fits", False


def explain_forecast(result: DiskForecast | None) -> str | None:
    """The forecast's arithmetic, for the tooltip."""
    if result is None or result.save_bytes is None or not result.saves_left:
        return None
    return (
        f"At the end of the run: {result.count_at_end} checkpoints of about {human_bytes(result.save_bytes)}, "
        f"plus one being written, ~{human_bytes(result.end_bytes)}; {result.saves_left} saves to come. "
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
        self._shown: tuple[str, bool] | None = None

    def on_mount(self) -> None:
        self.set_interval(DISK_REFRESH_S, self._reload_current)

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
        text, warning = describe_disk(self.forecast, self._problem, self.run_bytes)
        if (text, warning) != self._shown:  # repaint (and send bytes over SSH) only on a change
            self._shown = (text, warning)
            show_text(self, text)
            self.set_class(warning, "-warning")
            self.tooltip = explain_forecast(self.forecast)
