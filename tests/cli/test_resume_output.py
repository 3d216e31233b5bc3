"""What `resume --max-iters N` prints: the new target once, in order, never the stored one first."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from tests.cli.ckpt_cli import run
from tui_trainer.cli.console_reporter import PlainReporter, RichReporter
from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.loop.launch import start_run
from tui_trainer.engine.rundir.layout import RunSettings


@pytest.fixture
def finished_run(tmp_path) -> Path:
    run_dir = tmp_path / "run"
    start_run(run_dir, job_options={"size": "tiny", "device": "cpu"}, policy=CheckpointPolicy(every_steps=5),
              settings=RunSettings(max_iters=10)).run()
    return run_dir


def test_resume_with_a_new_target_says_the_new_target_in_order(capsys, finished_run):
    result = run(capsys, "resume", finished_run, "--max-iters", "25", "--headless")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert not [line for line in lines if re.search(r"-> 10\b|target 10 -> 25", line)]  # the stored target: never
    [start] = [i for i, line in enumerate(lines) if " -> " in line]
    assert lines[start].startswith(f"training {finished_run} on cpu: step 10 -> 25; LR ")
    resumed = next(i for i, line in enumerate(lines) if line.startswith("resuming from step_00000010.pt"))
    assert lines[resumed].endswith("target 25")
    ended = next(i for i, line in enumerate(lines) if line == "finished at step 25 (target)")
    assert resumed < start < ended


def _events(target_at_start: bool) -> list[ev.Event]:
    started = ev.Started("run", "id", "job", 10, 10, "cpu")
    changed = ev.TargetChanged(10, 10, 25, "LR continues from 1.0e-03 to its floor over 15 steps")
    if target_at_start:
        return [started, changed, ev.Finished(25, "target")]
    return [started, ev.StepCompleted(11, 0, 1.0, 1e-3, 5.0, 0.0, 10), changed, ev.Finished(25, "target")]


def test_a_new_target_at_the_start_is_in_the_start_line_of_either_reporter():
    plain = io.StringIO()
    reporter = PlainReporter(plain)
    for event in _events(target_at_start=True):
        reporter.handle(event)
    reporter.close(None)
    assert plain.getvalue().splitlines() == [
        "training run on cpu: step 10 -> 25; LR continues from 1.0e-03 to its floor over 15 steps",
        "finished at step 25 (target)",
    ]

    rich = RichReporter()
    rich.console.file = io.StringIO()
    rich.start()
    for event in _events(target_at_start=True):
        rich.handle(event)
    rich.close(None)
    shown = rich.console.file.getvalue()
    assert "step 10 -> 25; LR continues" in shown and "10 -> 25:" not in shown
    assert rich.progress.tasks[0].total == 25


def test_a_target_changed_while_training_is_said_as_a_change():
    plain = io.StringIO()
    reporter = PlainReporter(plain)
    for event in _events(target_at_start=False):
        reporter.handle(event)
    lines = plain.getvalue().splitlines()
    assert lines[0] == "training run on cpu: step 10 -> 10"
    assert "target 10 -> 25: LR continues from 1.0e-03 to its floor over 15 steps" in lines


def test_a_step_with_no_speed_yet_says_a_dash_not_zero_steps_per_second():
    from tui_trainer.cli.console_reporter import describe

    def line(speed: float) -> str:
        return describe(ev.StepCompleted(step=101, epoch=0, loss=2.5, lr=1e-3, steps_per_sec=speed,
                                         samples_per_sec=0.0, target=300)) or ""

    assert line(0.0).endswith(" - steps/s ETA -")  # the first step after a roll-back
    assert line(12.5).endswith(" 12.5 steps/s ETA 16s")
