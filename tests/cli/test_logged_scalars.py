"""The numbers logged beside the loss (a loss_fn's dict, the grad norm, throughput) in `ckpt history`."""

import contextlib
import io
import json

import pytest

from tests.cli.ckpt_cli import run
from tui_trainer.cli.main import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "scalars"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(["train", "--headless", "--job", "tests.scalar_jobs:scalars_job", "--job-opt", "size=tiny",
                     "--job-opt", "device=cpu", "--run-dir", str(path), "--max-iters", "40", "--ckpt-every", "20"])
    assert code == 0
    return path


@pytest.mark.parametrize("source", ["run dir", "checkpoint"])
def test_ckpt_history_summarises_the_scalars_of_the_last_logged_step(capsys, run_dir, source):
    path, last = (run_dir, 40) if source == "run dir" else (run_dir / "step_00000020.pt", 20)
    out = run(capsys, "ckpt", "history", path).out
    header = next(line for line in out.splitlines() if line.lstrip().startswith("step"))
    assert header.split()[-2:] == ["grad", "norm"]
    at = next(line for line in out.splitlines() if line.startswith(f"at step {last}: "))
    for part in ("grad norm ", " samples/s", " tokens/s", "accuracy ", "tokens "):
        assert part in at
    assert "training time " in out


def test_the_json_records_carry_the_scalars(capsys, run_dir):
    records = json.loads(run(capsys, "ckpt", "history", run_dir, "--json").out)
    steps = [r for r in records if "loss" in r]
    assert len(steps) == 40 and all(0 <= r["accuracy"] <= 1 and r["grad_norm"] > 0 for r in steps)
    assert steps[-1]["elapsed"] > steps[0]["elapsed"] > 0
