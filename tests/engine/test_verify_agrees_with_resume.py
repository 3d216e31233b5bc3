"""`ckpt verify` says OK only for a checkpoint `resume` would load: both ask the same of its contents."""

from __future__ import annotations

import pytest
import torch

from tui_trainer.engine.checkpoints.meta import CheckpointMeta, checkpoint_name
from tui_trainer.engine.checkpoints.store import CheckpointStore
from tui_trainer.engine.errors import CheckpointError
from tui_trainer.engine.rundir.layout import read_run
from tui_trainer.engine.tools.verify import verify_path


def _without_rng(state):
    del state["rng"]


def _newer_format(state):
    state["format_version"] = 99


def _another_run(state):
    state["meta"]["run_id"] = "19990101-000000-feedee"


def _another_step(state):
    state["meta"]["step"] = 20  # saved as step 30, and its sidecar says 30 too


CASES = {
    "no training state": (_without_rng, "it lacks the training state needed to resume (rng)"),
    "newer format": (_newer_format, "format version 99, which this tui-trainer cannot read"),
    "another run": (_another_run, "it was written by run 19990101-000000-feedee, not by this run"),
    "renamed": (_another_step, "holds step 20"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_verify_refuses_what_resume_refuses(tiny_run, resume, case):
    change, reason = CASES[case]
    run = tiny_run(max_iters=20, every_steps=10)
    run.run()
    run_dir = run.run_dir
    state = torch.load(run_dir / checkpoint_name(20), weights_only=True)
    state["meta"]["step"] = 30
    change(state)
    meta = CheckpointMeta(checkpoint_name(30), 30, run_id=state["meta"]["run_id"])
    CheckpointStore(run_dir).save(meta, lambda f: torch.save(state, f))

    results = {r.path.name: r for r in verify_path(run_dir)}
    assert not results[checkpoint_name(30)].ok
    assert reason in results[checkpoint_name(30)].problem
    assert all(r.ok for name, r in results.items() if name != checkpoint_name(30))

    with pytest.raises(CheckpointError):
        resume(run_dir / checkpoint_name(30), max_iters=40)
    resumed = resume(run_dir, max_iters=25)
    assert resumed.trainer.step == 20
    assert read_run(run_dir).run_id != "19990101-000000-feedee"

