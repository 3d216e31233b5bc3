"""torch's own AveragedModel as a job's EMA: updated every optimizer step and resumed exactly."""

from __future__ import annotations

from test_loader_batches import TARGET, interrupted_twice, same_training

from tui_trainer.engine.checkpoints.file import load_checkpoint
from tui_trainer.engine.checkpoints.meta import checkpoint_name


def test_an_averaged_model_ema_resumes_bit_identically(tiny_run, resume):
    options = {"ema": "averaged", "grad_accum_steps": 2}
    straight = tiny_run("straight", job="loader_jobs:make_job", job_options=options, max_iters=TARGET, every_steps=10)
    straight.run()
    resumed = interrupted_twice(tiny_run, resume, options, stops=(9, 14), per_epoch=12)
    same_training(straight, resumed)
    assert int(resumed.trainer.job.ema.n_averaged) == TARGET  # once per optimizer step, none lost on resume
    saved = load_checkpoint(resumed.run_dir / checkpoint_name(14))
    assert int(saved["ema"]["n_averaged"]) == 14
