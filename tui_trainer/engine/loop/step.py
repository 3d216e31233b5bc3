"""One training step of a job, on whichever thread trains it; no run dir, no events."""

from __future__ import annotations

from typing import Any

import torch

from tui_trainer.engine.loop.job import Job
from tui_trainer.engine.loop.lr_takeover import steps_on_metric


def train_step(job: Job) -> torch.Tensor:
    """One optimizer step of `job` on its next batch (clip, schedule and EMA included); the loss, detached."""
    batch = to_device(job.batches.next_batch(), job.device)
    loss = job.loss_fn(job.model, batch)
    job.optimizer.zero_grad(set_to_none=True)
    scaler = job.grad_scaler
    if scaler is not None:
        scaler.scale(loss).backward()
        if job.grad_clip:
            scaler.unscale_(job.optimizer)
            torch.nn.utils.clip_grad_norm_(job.model.parameters(), job.grad_clip)
        scaler.step(job.optimizer)
        scaler.update()
    else:
        loss.backward()
        if job.grad_clip:
            torch.nn.utils.clip_grad_norm_(job.model.parameters(), job.grad_clip)
        job.optimizer.step()
    if job.scheduler is not None and not steps_on_metric(job.scheduler):  # those step at evaluations
        job.scheduler.step()
    if job.ema is not None:
        job.ema.update(job.model)
    return loss.detach()


def to_device(batch: Any, device: Any) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch

