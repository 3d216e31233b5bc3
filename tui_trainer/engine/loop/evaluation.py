"""The job's evaluation, run apart from training: eval mode, no grad, and the training RNG streams untouched."""

from __future__ import annotations

import random

import torch

from tui_trainer.engine.loop.job import Job


def evaluate_apart(job: Job) -> dict[str, float]:
    """The job's metrics as plain floats; training afterwards draws the same random numbers as without it."""
    if job.evaluate is None:
        return {}
    model = job.model
    devices = [torch.device(job.device).index or 0] if str(job.device).startswith("cuda") else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        python_state = random.getstate()
        model.eval()
        try:
            raw = job.evaluate(model)
        finally:
            model.train()
            random.setstate(python_state)
    return {str(k): float(v) for k, v in raw.items()}
