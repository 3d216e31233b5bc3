"""What `resume --max-iters N [--rewarm F[:S]]` says about the LR, and how it refuses bad re-warms."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.ckpt_cli import run
from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.loop.launch import start_run
from tui_trainer.engine.rundir.history import read_history
from tui_trainer.engine.rundir.layout import HISTORY_FILE, RunSettings


def finished(tmp_path: Path, job: str, max_iters: int = 20) -> Path:
    run_dir = tmp_path / job
    start_run(run_dir, job=f"tests.lr_jobs:{job}", policy=CheckpointPolicy(every_steps=10),
              settings=RunSettings(max_iters=max_iters, log_every=1)).run()
    return run_dir


def start_line(out: str) -> str:
    [line] = [line for line in out.splitlines() if line.startswith("training ")]
    return line


def test_resume_with_a_new_target_says_the_takeover(capsys, tmp_path):
    run_dir = finished(tmp_path, "cosine")
    result = run(capsys, "resume", run_dir, "--max-iters", "40", "--headless")
    assert result.code == 0, result.err
    assert start_line(result.out) == (
        f"training {run_dir} on cpu: step 20 -> 40; "
        "LR stays at 0 until step 40: CosineAnnealingLR has ended at 0 (re-warm to train on)"
    )


def test_resume_with_a_re_warm_says_the_plan_and_trains_it(capsys, tmp_path):
    run_dir = finished(tmp_path, "linear")
    result = run(capsys, "resume", run_dir, "--max-iters", "40", "--rewarm", "0.5:5", "--headless")
    assert result.code == 0, result.err
    assert start_line(result.out).endswith(
        "step 20 -> 40; LR warms up from 0.0e+00 to 5.0e-02 by step 25, then decays (linear) to 0.0e+00 "
        "at step 40, taken over from LambdaLR; all 2 param groups keep their ratios")
    lrs = {r["step"]: r["lr"] for r in read_history(run_dir / HISTORY_FILE) if "loss" in r}
    assert lrs[25] == pytest.approx(0.05) and lrs[20] == 0.0 and lrs[39] > lrs[40] == 0.0


@pytest.mark.parametrize(("args", "message"), [
    (["--rewarm", "half"], "error: argument --rewarm: re-warm 'half': give FRACTION[:STEPS], e.g. 0.5 or 0.5:200"),
    (["--rewarm", "2"], "error: argument --rewarm: the re-warm fraction of the peak LR must be above 0 and at most 1"),
    (["--rewarm", "0.5"], "--rewarm comes with a new target: add --max-iters N"),
    (["--max-iters", "40", "--rewarm", "0.5:30"], "a re-warm of 30 steps does not fit before the new target"),
])
def test_bad_re_warms_are_one_line_and_leave_the_run_resumable(capsys, tmp_path, args, message):
    run_dir = finished(tmp_path, "linear")
    result = run(capsys, "resume", run_dir, *args, "--headless")
    assert result.code != 0
    [line] = result.err.strip().splitlines()
    assert message in line
    assert "Traceback" not in result.out + result.err
    again = run(capsys, "resume", run_dir, "--max-iters", "25", "--headless")
    assert again.code == 0, again.err
