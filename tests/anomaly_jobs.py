"""A tiny demo job whose loss goes wrong on purpose: NaN, or a spike, at chosen optimizer steps."""

from __future__ import annotations

import os

import torch

import tui_trainer
from tui_trainer.demo.job import make_job, next_char_loss


@tui_trainer.job_factory
def anomaly_job(nan_at: int = 0, nan_times: int = 1, spike_at: int = 0, on_rank: int = -1, weights_to: str = "",
                **options):
    """The loss of the `nan_at`-th step this process trains is NaN (and of the `nan_times - 1` after
    it); that of the `spike_at`-th is 50 times what it is. Counted by calls, so a step trained
    again after a roll-back is a new call: a NaN that came from the data would not come back
    once its batches are skipped, and this one does not either (unless `nan_times` says so).
    `on_rank`: only the process of that rank (of several) goes wrong; -1, every one. `weights_to`: each
    call writes the weights it starts from to `weights_to.rankR.callN`, so ranks can be compared."""
    job = make_job(**options)
    # Stored with the run, so the other ranks of a run on several processes build this job too.
    job.config["options"] = {**job.config["options"], "nan_at": nan_at, "nan_times": nan_times,
                             "spike_at": spike_at, "on_rank": on_rank, "weights_to": weights_to}
    calls = [0]
    if on_rank >= 0 and int(os.environ.get("RANK", "0")) != on_rank:
        nan_at = spike_at = 0

    def loss_fn(model, batch):
        calls[0] += 1
        if weights_to:  # whole tensors (a collective under FSDP: every rank is at the same call)
            weights = {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in model.state_dict().items()}
            torch.save(weights, f"{weights_to}.rank{os.environ.get('RANK', '0')}.call{calls[0]}")
        loss = next_char_loss(model, batch)
        if nan_at and nan_at <= calls[0] < nan_at + nan_times:
            return loss * float("nan")
        if spike_at and calls[0] == spike_at:
            return loss * 50
        return loss

    job.loss_fn = loss_fn
    return job
