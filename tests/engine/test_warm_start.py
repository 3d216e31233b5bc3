"""`train --init-from CKPT`, `resume --fresh-optimizer` and `resume --job-opt`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.cli.ckpt_cli import run
from tests.foreign_layouts import lightning_checkpoint, nanogpt_checkpoint
from tui_trainer.demo.job import make_job
from tui_trainer.engine.checkpoints.file import load_checkpoint
from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.loop.launch import resume_run, start_run
from tui_trainer.engine.rundir.journal import read_journal
from tui_trainer.engine.rundir.journal_records import JournalLine
from tui_trainer.engine.rundir.layout import RunSettings, read_run

TINY = {"size": "tiny", "device": "cpu"}
TINY_ARGS = ("--job-opt", "size=tiny", "--job-opt", "device=cpu")


@pytest.fixture(scope="module")
def source_model() -> torch.nn.Module:
    """The tiny demo model, moved away from its initial weights so a warm start shows."""
    model = make_job(**TINY).model
    torch.manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def _hf_output_dir(folder: Path, model: torch.nn.Module) -> Path:
    checkpoint = folder / "checkpoint-40"
    checkpoint.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, checkpoint / "model.safetensors")
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 40, "epoch": 1.0, "log_history": []}))
    return folder


def _safetensors(path: Path, model: torch.nn.Module) -> Path:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return path


def _lightning(path: Path, model: torch.nn.Module) -> Path:
    return lightning_checkpoint(path, model, epoch=3, step=300, score=1.5, best=1.5, best_name=path.name)


SOURCES = {
    "nanoGPT": lambda root, model: nanogpt_checkpoint(root / "ckpt.pt", model),
    "Lightning": lambda root, model: _lightning(root / "epoch=3-step=300.ckpt", model),
    "safetensors": lambda root, model: _safetensors(root / "model.safetensors", model),
    "HF output dir": lambda root, model: _hf_output_dir(root / "outputs", model),
}


def finished_run(run_dir: Path, max_iters: int = 4) -> Path:
    start_run(run_dir, job_options=TINY, policy=CheckpointPolicy(every_steps=2),
              settings=RunSettings(max_iters=max_iters)).run()
    return run_dir


def assert_weights(model: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    state = model.state_dict()
    assert state.keys() == expected.keys()
    for key, tensor in expected.items():
        assert torch.equal(state[key], tensor), key


@pytest.mark.parametrize("kind", list(SOURCES))
def test_init_from_each_format_starts_at_step_0_with_its_weights(tmp_path, source_model, kind):
    source = SOURCES[kind](tmp_path, source_model)
    trainer = start_run(tmp_path / "new", job_options=TINY, settings=RunSettings(max_iters=1), init_from=source)
    assert trainer.step == 0
    assert_weights(trainer.job.model, source_model.state_dict())
    assert not trainer.job.optimizer.state_dict()["state"]  # a new optimizer
    assert any(note.startswith("weights from ") for note in trainer.notes)
    trainer.run()


def test_init_from_one_of_our_checkpoints(tmp_path):
    checkpoint = finished_run(tmp_path / "first", max_iters=2) / "step_00000002.pt"
    trainer = start_run(tmp_path / "second", job_options=TINY, settings=RunSettings(max_iters=1),
                        init_from=checkpoint)
    assert trainer.step == 0
    assert_weights(trainer.job.model, load_checkpoint(checkpoint)["model"])
    trainer.run()


def test_init_from_on_the_command_line(capsys, tmp_path, source_model):
    source = nanogpt_checkpoint(tmp_path / "ckpt.pt", source_model)
    result = run(capsys, "train", *TINY_ARGS, "--init-from", source, "--max-iters", "1", "--run-dir",
                 tmp_path / "run", "--headless")
    assert result.code == 0, result.err
    assert f"weights from {source}: " in result.out


def test_a_model_that_does_not_fit_is_refused_in_one_line_and_nothing_is_written(capsys, tmp_path, source_model):
    source = nanogpt_checkpoint(tmp_path / "ckpt.pt", source_model)
    result = run(capsys, "train", "--job-opt", "size=small", "--job-opt", "device=cpu", "--init-from", source,
                 "--run-dir", tmp_path / "run", "--headless")
    assert result.code == 2 and result.err.count("\n") == 1
    assert result.err.startswith(f"tui-trainer: error: --init-from {source} does not fit this job's model: "
                                 "token_embedding.weight: checkpoint (")
    assert "vs model (" in result.err and "more)" in result.err
    assert not (tmp_path / "run").exists()


def test_resume_with_a_fresh_optimizer_keeps_weights_and_step(tmp_path):
    run_dir = finished_run(tmp_path / "run")
    saved = load_checkpoint(run_dir / "step_00000004.pt")
    assert saved["optimizer"]["state"]  # Adam's moments were saved
    trainer = resume_run(run_dir, max_iters=6, fresh_optimizer=True)
    assert trainer.step == 4
    assert_weights(trainer.job.model, saved["model"])
    assert not trainer.job.optimizer.state_dict()["state"]  # no exp_avg: the optimizer starts anew
    assert trainer.job.scheduler.current_step == 4  # the schedule the options build, where the run is
    assert any("--fresh-optimizer" in note for note in trainer.notes)
    assert trainer.run().step == 6


def test_resume_with_changed_job_options_says_what_differs_and_records_it(capsys, tmp_path):
    run_dir = finished_run(tmp_path / "run")
    stored = read_run(run_dir).job_options["batch_size"]
    result = run(capsys, "resume", run_dir, "--max-iters", "6", "--job-opt", "batch_size=4", "--job-opt",
                 "size=tiny", "--headless")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    [said] = [i for i, line in enumerate(lines) if line.startswith("job options differ")]
    assert lines[said].startswith(f"job options differ from the run's stored ones: batch_size {stored} -> 4;")
    assert "size" not in lines[said].split(";")[0].replace("batch_size", "")  # unchanged options are not named
    start = next(i for i, line in enumerate(lines) if line.startswith("training "))
    assert said < start
    assert read_run(run_dir).job_options["batch_size"] == 4
    journaled = [e.text for e in read_journal(run_dir) if isinstance(e, JournalLine)]
    assert lines[said] in journaled
