"""Training from Python in a few lines: `tui_trainer.train(make_job, run_dir=..., max_iters=...)`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any


def train(
    job: Callable[..., Any] | str = "tui_trainer.demo.job:make_job",
    *,
    run_dir: str | os.PathLike[str],
    max_iters: int,
    ckpt_every: int = 100,
    keep_last: int = 5,
    eval_every: int = 0,
    resume: bool = True,
    on_event: Callable[[Any], None] | None = None,
    **job_options: Any,
) -> Any:
    """Train `job` in `run_dir` up to `max_iters`; if the dir already holds the run, continue it.

    `job` is a factory returning a `tui_trainer.engine.loop.job.Job` (or its `module:factory` spec);
    `job_options` are passed to it. Returns the engine's RunResult. Policy settings given here
    override those stored in a resumed run.
    """
    from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
    from tui_trainer.engine.loop.launch import resume_run, start_run
    from tui_trainer.engine.rundir.layout import RunSettings, is_run_dir

    if resume and is_run_dir(run_dir):
        trainer = resume_run(
            run_dir,
            max_iters=max_iters,
            policy_overrides={"every_steps": ckpt_every, "keep_last": keep_last},
            settings_overrides={"eval_every": eval_every},
            job=None if isinstance(job, str) else job,
            on_event=on_event,
        )
    else:
        trainer = start_run(
            run_dir,
            job=job,
            job_options=job_options,
            policy=CheckpointPolicy(every_steps=ckpt_every, keep_last=keep_last),
            settings=RunSettings(max_iters=max_iters, eval_every=eval_every),
            on_event=on_event,
        )
    return trainer.run()
