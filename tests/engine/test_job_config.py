"""A job's config is made plain when the run starts (or refused in one line), and a resume that finds
no checkpoint it can use says which it skipped and why."""

from __future__ import annotations

import enum
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import torch

from tests.cli.ckpt_cli import run
from tui_trainer.demo.job import make_job
from tui_trainer.engine.checkpoints.file import load_checkpoint
from tui_trainer.engine.checkpoints.hashing_writer import checksum_of_file
from tui_trainer.engine.checkpoints.meta import checkpoint_name, read_sidecar, sidecar_path
from tui_trainer.engine.checkpoints.store import CheckpointStore
from tui_trainer.engine.loop.job import job_factory


class Colour(enum.Enum):
    RED = "red"


class Size(enum.IntEnum):
    SMALL = 1


CONFIGS = {
    "path and numpy": {"data_dir": Path("data/train"), "lr": np.float32(0.5), "epochs": np.int64(3),
                       "nested": {"files": [PurePosixPath("a.txt"), "b.txt"], "flag": np.bool_(True)},
                       "size": Size.SMALL},
    "an array": {"mean": np.zeros(3)},
    "an enum": {"stage": {"colour": Colour.RED}},
    "a set": {"tags": {"a", "b"}},
    "a tensor": {"scale": torch.tensor(2.0)},
}


@job_factory
def configured_job(config: str = "path and numpy", **options):
    job = make_job(**{"size": "tiny", "device": "cpu", **options})
    job.config = {**job.config, **CONFIGS[config]}
    return job


def test_a_path_and_numpy_scalars_are_stored_as_plain_values_and_the_run_resumes(capsys, tmp_path):
    trained = run(capsys, "train", "--job", "test_job_config:configured_job", "--run-dir", tmp_path / "run",
                  "--max-iters", "4", "--ckpt-every", "2", "--headless")
    assert trained.code == 0, trained.err
    config = load_checkpoint(tmp_path / "run" / checkpoint_name(4))["config"]
    assert {k: config[k] for k in CONFIGS["path and numpy"]} == {
        "data_dir": "data/train", "lr": 0.5, "epochs": 3, "nested": {"files": ["a.txt", "b.txt"], "flag": True},
        "size": 1,
    }
    assert [type(config[k]) for k in ("data_dir", "lr", "epochs", "size")] == [str, float, int, int]
    resumed = run(capsys, "resume", tmp_path / "run", "--max-iters", "6", "--headless")
    assert resumed.code == 0, resumed.err


@pytest.mark.parametrize("config, where, kind", [
    ("an array", "job.config['mean']", "numpy.ndarray"),
    ("an enum", "job.config['stage']['colour']", "test_job_config.Colour"),
    ("a set", "job.config['tags']", "builtins.set"),
    ("a tensor", "job.config['scale']", "torch.Tensor"),
])
def test_a_value_a_checkpoint_cannot_hold_is_one_line_naming_its_key_before_anything_is_written(
        capsys, tmp_path, config, where, kind):
    result = run(capsys, "train", "--job", "test_job_config:configured_job", "--job-opt", f"config={config}",
                 "--run-dir", tmp_path / "run", "--headless")
    assert result.code == 2 and result.err.count("\n") == 1
    assert f"{where} is a {kind}, which a checkpoint cannot hold for resume" in result.err
    assert not (tmp_path / "run").exists()


def test_no_valid_checkpoint_names_each_one_skipped_and_why(capsys, tmp_path):
    """The report's case: checkpoints that hold a Path (written before configs were made plain)."""
    run_dir = tmp_path / "run"
    assert run(capsys, "train", "--job", "test_job_config:configured_job", "--run-dir", run_dir,
               "--max-iters", "4", "--ckpt-every", "2", "--headless").code == 0
    for step in (2, 4):
        path = run_dir / checkpoint_name(step)
        state = load_checkpoint(path)
        state["config"]["data_dir"] = Path("data/train")
        torch.save(state, path)
        meta = read_sidecar(sidecar_path(path))  # the sidecar vouches for the file as written: it verifies
        meta.checksum, meta.size_bytes = checksum_of_file(path), path.stat().st_size
        CheckpointStore(run_dir).write_meta(meta)
    (run_dir / checkpoint_name(2)).write_bytes(b"PK\x03\x04 cut short")
    result = run(capsys, "resume", run_dir, "--max-iters", "6", "--headless")
    assert result.code != 0 and result.err.count("\n") == 1
    assert f"no valid checkpoint left in {run_dir} to resume from: skipped step_00000004.pt: " in result.err
    assert "(pathlib.PosixPath)" in result.err
    assert "; step_00000002.pt: size 14 != recorded" in result.err and "(truncated or overwritten)" in result.err
