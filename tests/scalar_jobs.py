"""Tiny demo jobs for the numbers beside the loss: uneven step times, and a loss_fn that returns a dict."""

from __future__ import annotations

import time

import torch

import tui_trainer
from tui_trainer.demo.job import make_job, next_char_loss

FAST_S, SLOW_S = 0.005, 0.060  # the uneven job's steps, in turn


@tui_trainer.job_factory
def uneven_job(**options):
    """Steps that take 5 ms and 60 ms in turn (a sleep in loss_fn): a mean of per-step rates is 3.5x the truth."""
    job = make_job(**options)
    calls = [0]

    def loss_fn(model, batch):
        calls[0] += 1
        time.sleep(SLOW_S if calls[0] % 2 else FAST_S)
        return next_char_loss(model, batch)

    job.loss_fn = loss_fn
    return job


@tui_trainer.job_factory
def scalars_job(clip: bool = True, **options):
    """loss_fn returns {"loss", "accuracy", "tokens"}: a tensor and a plain number beside the loss."""
    job = make_job(**options)

    def loss_fn(model, windows):
        logits = model(windows[:, :-1])
        targets = windows[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        accuracy = (logits.argmax(-1) == targets).float().mean()
        return {"loss": loss, "accuracy": accuracy, "tokens": float(targets.numel())}

    job.loss_fn = loss_fn
    if not clip:
        job.grad_clip = None
    return job
