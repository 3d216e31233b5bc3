"""Bad input to `train` and `resume`: a non-zero exit, one line on stderr, no traceback, nothing changed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.ckpt_cli import run
from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.loop.launch import start_run
from tui_trainer.engine.rundir.layout import RunSettings


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    start_run(run_dir, job_options={"size": "tiny", "device": "cpu"}, policy=CheckpointPolicy(every_steps=5),
              settings=RunSettings(max_iters=10)).run()
    return run_dir


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"  # the lock file records who tried; it holds no data
    }


CASES = {
    "target zero": ["train", "--max-iters", "0"],
    "target not a number": ["train", "--max-iters", "lots"],
    "negative keep-last": ["train", "--keep-last", "-1"],
    "save interval not a number": ["train", "--ckpt-every", "often"],
    "infinite minutes": ["train", "--ckpt-minutes", "inf"],
    "negative minutes": ["train", "--ckpt-minutes", "-2"],
    "unknown mode": ["train", "--mode", "avg"],
    "job without a factory": ["train", "--job", "mytask"],
    "job module missing": ["train", "--job", "no_such_module_here:make_job"],
    "job factory missing": ["train", "--job", "tui_trainer.demo.job:no_such_factory"],
    "factory returns no Job": ["train", "--job", "os:getcwd"],
    "job option without a value": ["train", "--job-opt", "size"],
    "job option the job rejects": ["train", "--job-opt", "size=huge"],
    "job option the job does not take": ["train", "--job-opt", "colour=blue"],
    "run dir is a file": ["train", "--run-dir", "{file}"],
    "run dir already holds a run": ["train", "--run-dir", "{run}"],
    "resume a missing path": ["resume", "{tmp}/nowhere"],
    "resume a folder that is no run": ["resume", "{tmp}"],
    "resume a finished run without a new target": ["resume", "{run}"],
    "resume to a target already passed": ["resume", "{run}", "--max-iters", "5"],
    "resume from a file that is no checkpoint of the run": ["resume", "{run}/run.json"],
    "resume with a zero target": ["resume", "{run}", "--max-iters", "0"],
    "unknown command": ["trian"],
}


@pytest.mark.parametrize("argv", CASES.values(), ids=CASES.keys())
def test_bad_input_gets_one_line_and_changes_nothing(argv, tmp_path, finished_run, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default run dir would land under ./checkpoints
    (tmp_path / "notes.txt").write_text("not a dir")
    values = {"file": tmp_path / "notes.txt", "run": finished_run, "tmp": tmp_path}
    argv = [a.format(**values) for a in argv]
    before = snapshot(tmp_path), snapshot(finished_run)

    result = run(capsys, *argv, "--headless") if argv[0] in ("train", "resume") else run(capsys, *argv)

    assert result.code != 0
    assert result.err.count("\n") == 1 and result.err.startswith("tui-trainer"), result.err
    assert ": error: " in result.err and "Traceback" not in result.err + result.out
    assert (snapshot(tmp_path), snapshot(finished_run)) == before
    assert not (tmp_path / "checkpoints").exists()


def test_a_run_dir_busy_with_another_trainer_is_refused(finished_run, capsys, tmp_path):
    from tui_trainer.engine.rundir.layout import RunLock

    with RunLock(finished_run):
        result = run(capsys, "resume", finished_run, "--max-iters", "20", "--headless")
    assert result.code != 0 and result.err.count("\n") == 1
    assert f"pid {os.getpid()}" in result.err and "another process" in result.err


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "mps", "xpu", "meta", "npu:3", "nonsense"])
def test_a_device_this_machine_lacks_is_one_line_before_anything_is_written(capsys, tmp_path, device):
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run(capsys, "train", "--job-opt", f"device={device}", "--job-opt", "size=tiny",
                 "--run-dir", tmp_path / "run", "--headless")
    assert result.code == 2 and result.err.count("\n") == 1
    assert f"device {device!r} cannot train on this machine; it has: cpu" in result.err
    assert not (tmp_path / "run").exists()


def test_resume_of_a_file_outside_any_run_names_that_file(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text("not a checkpoint\n")
    result = run(capsys, "resume", "README.md", "--headless")
    assert result.code == 2 and result.err.count("\n") == 1
    assert "README.md is neither a run dir nor a checkpoint in one" in result.err
