"""`--job mytask:make_job` finds mytask.py in the current directory, as `python -m` would; a run dir never."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.cli.ckpt_cli import run

JOB_MODULE = '''
import torch
from tui_trainer import EpochBatches, Job, job_factory

@job_factory
def make_job(seed: int = 0) -> Job:
    torch.manual_seed(seed)
    xs = torch.randn(64, 4)
    data = torch.utils.data.TensorDataset(xs, xs.sum(dim=1, keepdim=True))
    model = torch.nn.Linear(4, 1)
    return Job(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
               batches=EpochBatches(data, 8, seed=seed),
               loss_fn=lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]), name="cwdtask")
'''


@pytest.fixture
def console_script(monkeypatch, request):
    """sys.path as the `tui-trainer` console script has it: without the current directory."""
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])
    name = f"cwdtask_{abs(hash(request.node.name)) % 10**8}"
    yield name
    sys.modules.pop(name, None)


def forget(name: str, folder: Path) -> None:
    """As a new process would start: the module not imported, its folder not on sys.path."""
    sys.modules.pop(name, None)
    while str(folder) in sys.path:
        sys.path.remove(str(folder))


def test_train_and_resume_find_the_job_module_in_the_current_directory(capsys, tmp_path, monkeypatch, console_script):
    name = console_script
    (tmp_path / f"{name}.py").write_text(JOB_MODULE)
    monkeypatch.chdir(tmp_path)
    trained = run(capsys, "train", "--job", f"{name}:make_job", "--run-dir", "runs/a", "--max-iters", "4",
                  "--ckpt-every", "2", "--headless")
    assert trained.code == 0, trained.err
    assert json.loads((tmp_path / "runs/a/run.json").read_text())["job"] == f"{name}:make_job"
    forget(name, tmp_path)
    resumed = run(capsys, "resume", "runs/a", "--max-iters", "6", "--headless")
    assert resumed.code == 0, resumed.err
    assert (tmp_path / "runs/a/step_00000006.pt").exists()


def test_a_module_planted_in_the_run_dir_is_never_imported(capsys, tmp_path, monkeypatch, console_script):
    name = console_script
    (tmp_path / f"{name}.py").write_text(JOB_MODULE)
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "train", "--job", f"{name}:make_job", "--run-dir", "run", "--max-iters", "2",
               "--headless").code == 0
    forget(name, tmp_path)
    (tmp_path / f"{name}.py").unlink()
    pwned = tmp_path / "pwned"
    (tmp_path / "run" / f"{name}.py").write_text(f"open({str(pwned)!r}, 'w').close()\n" + JOB_MODULE)
    monkeypatch.chdir(tmp_path / "run")
    result = run(capsys, "resume", ".", "--max-iters", "4", "--headless")
    assert result.code == 2 and not pwned.exists()
    assert result.err.count("\n") == 1 and "the run dir, whose files are data and are never imported" in result.err


def test_a_module_nowhere_is_still_one_line(capsys, tmp_path, monkeypatch, console_script):
    monkeypatch.chdir(tmp_path)
    result = run(capsys, "train", "--job", f"{console_script}:make_job", "--run-dir", "run", "--headless")
    assert result.code == 2 and result.err.count("\n") == 1 and "cannot import job module" in result.err
    assert not (tmp_path / "run").exists()
