"""One training step of a job, on whichever thread trains it; no run dir, no events."""

from __future__ import annotations

import copy
from collections.abc import Mapping, MutableMapping
from typing import Any

import torch

from tui_trainer.engine.loop.job import Job
from tui_trainer.engine.loop.lr_takeover import steps_on_metric


def train_step(job: Job) -> torch.Tensor:
    """One optimizer step of `job` over its next `grad_accum_steps` batches; their mean loss, detached.

    Each micro-batch's loss is divided by the number of micro-batches before its backward, so
    the gradients are those of their mean. Clipping, the optimizer, the scheduler and the EMA
    run once, after the last micro-batch (a grad scaler unscales once, before clipping).
    """
    micro_steps = job.grad_accum_steps
    scaler = job.grad_scaler
    job.optimizer.zero_grad(set_to_none=True)
    total = None
    for _ in range(micro_steps):
        batch = to_device(job.batches.next_batch(), job.device)
        loss = job.loss_fn(job.model, batch)
        scaled = loss / micro_steps if micro_steps > 1 else loss
        (scaler.scale(scaled) if scaler is not None else scaled).backward()
        total = loss.detach() if total is None else total + loss.detach()
    if scaler is not None:
        if job.grad_clip:
            scaler.unscale_(job.optimizer)
            torch.nn.utils.clip_grad_norm_(job.model.parameters(), job.grad_clip)
        scaler.step(job.optimizer)
        scaler.update()
    else:
        if job.grad_clip:
            torch.nn.utils.clip_grad_norm_(job.model.parameters(), job.grad_clip)
        job.optimizer.step()
    if job.scheduler is not None and not steps_on_metric(job.scheduler):  # those step at evaluations
        job.scheduler.step()
    if job.ema is not None:
        update_ema(job.ema, job.model)
    assert total is not None
    return total / micro_steps if micro_steps > 1 else total


def update_ema(ema: Any, model: Any) -> None:
    """`ema.update(model)`, or `update_parameters(model)` for torch's `AveragedModel`."""
    update = getattr(ema, "update", None)
    if not callable(update):
        update = ema.update_parameters
    update(model)


def to_device(batch: Any, device: Any) -> Any:
    """`batch` with every tensor in it on `device`: tensors, (named) tuples, lists, mappings, and
    anything with `.to(device)` (a Hugging Face `BatchEncoding`, say) move; other values stay."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (str, bytes)):
        return batch
    mover = getattr(batch, "to", None)
    if callable(mover) and not isinstance(batch, (list, tuple)):
        return mover(device)
    if isinstance(batch, Mapping):
        return _same_mapping(batch, {key: to_device(value, device) for key, value in batch.items()})
    if isinstance(batch, tuple):
        moved = [to_device(item, device) for item in batch]
        return type(batch)(*moved) if hasattr(batch, "_fields") else _same_kind(batch, moved, tuple)
    if isinstance(batch, list):
        return _same_kind(batch, [to_device(item, device) for item in batch], list)
    return batch


def _same_mapping(original: Mapping[Any, Any], moved: dict[Any, Any]) -> Mapping[Any, Any]:
    """`moved` as the same kind of mapping as `original` (an OrderedDict, a defaultdict), else a dict."""
    if type(original) is dict:
        return moved
    if isinstance(original, MutableMapping):
        try:
            clone = copy.copy(original)
            clone.update(moved)
            return clone
        except Exception:  # a mapping that cannot be copied: its values, in a dict
            return moved
    try:
        return type(original)(moved)
    except Exception:
        return moved


def _same_kind(original: Any, moved: list[Any], base: type) -> Any:
    if type(original) is base:
        return base(moved)
    try:
        return type(original)(moved)
    except Exception:  # a subclass whose constructor takes something else
        return base(moved)
