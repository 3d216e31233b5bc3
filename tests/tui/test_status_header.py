"""The status line stays one line: on a narrow terminal the least useful facts are left out."""

from __future__ import annotations

import pytest

from tui_trainer.engine.loop.job import DEMO_JOB
from tui_trainer.tui.run_model import RunModel
from tui_trainer.tui.widgets.status_header import describe


def running_model() -> RunModel:
    return RunModel(state="running", run_dir="runs/demo-20261125-081144", job=DEMO_JOB, device="cpu", step=319,
                    target=600, epoch=0, steps_per_sec=6.3, started_at=1000.0, ended_at=1096.0)


def test_with_room_it_says_everything_in_order():
    assert describe(running_model(), 200) == describe(running_model()) == (
        "demo-20261125-081144  job demo  step 319/600  epoch 0  ETA 45s  6.3 it/s  elapsed 1:36  CPU"
    )


@pytest.mark.parametrize("width", [66, 50, 32])
def test_narrow_keeps_step_eta_and_speed_and_fits(width):
    line = describe(running_model(), width)
    assert len(line) <= width
    assert all(fact in line for fact in ("step 319/600", "ETA 45s", "6.3 it/s"))
    assert "CPU" not in line


def test_what_is_left_out_goes_least_important_first():
    # 68 columns is what an 80-column terminal leaves beside the state: the run's name stays.
    assert describe(running_model(), 68) == "demo-20261125-081144  step 319/600  ETA 45s  6.3 it/s  elapsed 1:36"
    assert describe(running_model(), 55) == "demo-20261125-081144  step 319/600  ETA 45s  6.3 it/s"
    assert describe(running_model(), 32) == "step 319/600  ETA 45s  6.3 it/s"


def test_the_step_is_kept_however_narrow():
    assert describe(running_model(), 5) == "step 319/600"
