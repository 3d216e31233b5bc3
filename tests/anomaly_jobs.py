"""A tiny demo job whose loss goes wrong on purpose: NaN, or a spike, at chosen optimizer steps."""

from __future__ import annotations

import tui_trainer
from tui_trainer.demo.job import make_job, next_char_loss


@tui_trainer.job_factory
def anomaly_job(nan_at: int = 0, nan_times: int = 1, spike_at: int = 0, **options):
    """The loss of the `nan_at`-th step this process trains is NaN (and of the `nan_times - 1` after
    it); that of the `spike_at`-th is 50 times what it is. Counted by calls, so a step trained
    again after a roll-back is a new call: a NaN that came from the data would not come back
    once its batches are skipped, and this one does not either (unless `nan_times` says so)."""
    job = make_job(**options)
    calls = [0]

    def loss_fn(model, batch):
        calls[0] += 1
        loss = next_char_loss(model, batch)
        if nan_at and nan_at <= calls[0] < nan_at + nan_times:
            return loss * float("nan")
        if spike_at and calls[0] == spike_at:
            return loss * 50
        return loss

    job.loss_fn = loss_fn
    return job
