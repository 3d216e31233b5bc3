"""`--on-anomaly` headless: stop exits with its code and one line naming the step; rollback trains on."""

import contextlib
import io

import torch

from tui_trainer.cli.anomaly_flags import EXIT_ANOMALY
from tui_trainer.cli.main import main
from tui_trainer.engine.checkpoints.file import load_checkpoint
from tui_trainer.engine.rundir.history import read_history
from tui_trainer.engine.rundir.layout import read_run


def train(run_dir, *flags):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(["train", "--headless", "--job", "tests.anomaly_jobs:anomaly_job", "--job-opt", "size=tiny",
                     "--job-opt", "device=cpu", "--job-opt", "nan_at=14", "--run-dir", str(run_dir),
                     "--max-iters", "20", "--ckpt-every", "5", "--save-mode", "sync", *flags])
    return code, out.getvalue()


def test_headless_stops_by_default_with_its_exit_code_and_saves_nothing_new(tmp_path):
    code, out = train(tmp_path / "run")
    assert code == EXIT_ANOMALY == 5
    [line] = [line for line in out.splitlines() if line.startswith("stopped on an anomaly")]
    assert line.startswith("stopped on an anomaly at step 14: loss nan; nothing new was saved")
    assert sorted(p.name for p in (tmp_path / "run").glob("step_*.pt")) == ["step_00000005.pt", "step_00000010.pt"]
    assert read_run(tmp_path / "run").state == "anomaly"


def test_rollback_headless_ends_with_finite_weights(tmp_path):
    code, out = train(tmp_path / "run", "--on-anomaly", "rollback")
    assert code == 0
    assert "rolled back from step 14 to step_00000010.pt (step 10) and skipped the 4 batches of steps 11-14" in out
    final = load_checkpoint(tmp_path / "run" / "step_00000020.pt", map_location="cpu")
    assert all(bool(torch.isfinite(w).all()) for w in final["model"].values())
    assert final["meta"]["healthy"] is True
    [record] = [r for r in read_history(tmp_path / "run" / "history.jsonl") if "anomaly" in r]
    assert record["action"] == "rollback" and record["bad_step"] == 14


def test_the_flags_are_checked_before_anything_runs(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["train", "--headless", "--spike-k", "-1", "--run-dir", str(tmp_path / "run")])
    assert "--spike-k" in capsys.readouterr().err and not (tmp_path / "run").exists()
