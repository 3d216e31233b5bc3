"""The tiny demo job, but one that talks: prints while built, every 5 steps, and warns and logs once."""

from __future__ import annotations

import logging
import warnings
from typing import Any

from tui_trainer.demo.job import make_job
from tui_trainer.engine.loop.job import Job, job_factory


@job_factory
def chatty_job(max_iters: int = 30, **options: Any) -> Job:
    print("building the chatty job")
    job = make_job(max_iters=max_iters, **options)
    plain_loss, calls = job.loss_fn, []

    def loss_fn(model: Any, batch: Any) -> Any:
        calls.append(None)
        if len(calls) % 5 == 0:
            print(f"job says step {len(calls)}")
        if len(calls) == 3:
            warnings.warn("lr too high")
            logging.getLogger("chatty").warning("careful now")
        return plain_loss(model, batch)

    job.loss_fn = loss_fn
    return job
