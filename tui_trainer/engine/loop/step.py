"""One training step of a job, on whichever thread trains it; no run dir, no events."""

from __future__ import annotations

import copy
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import torch

from tui_trainer.engine.loop.job import Job
from tui_trainer.engine.loop.lr_takeover import steps_on_metric
from tui_trainer.engine.rundir.history import STEP_RECORD_KEYS


@dataclass(frozen=True)
class StepResult:
    """What one step leaves to read on a logged step, all still on the device (nothing synced).

    `grad_norm` is the total gradient norm before clipping: the one clipping returns, or on a
    step asked to measure it; None otherwise. `scalars` are the job's own (a `loss_fn` that
    returns a dict), each the mean over the step's micro-batches.
    """

    loss: torch.Tensor
    grad_norm: torch.Tensor | None = None
    scalars: dict[str, torch.Tensor | float] = field(default_factory=dict)


def train_step(job: Job, measure_grad_norm: bool = False) -> StepResult:
    """One optimizer step of `job` over its next `grad_accum_steps` batches; their mean loss, detached."""
    result = backward_step(job, measure_grad_norm)
    apply_update(job)
    return result


def backward_step(job: Job, measure_grad_norm: bool = False) -> StepResult:
    """The gradients of `job`'s next `grad_accum_steps` batches, clipped; nothing is updated yet.

    Each micro-batch's loss is divided by the number of micro-batches before its backward, so
    the gradients are those of their mean. `measure_grad_norm` computes the gradient norm where
    no clipping does (logged steps only). `apply_update` then steps the optimizer, or
    `skip_update` leaves the weights as they are (the anomaly guard's choice).
    """
    micro_steps = job.grad_accum_steps
    scaler = job.grad_scaler
    job.optimizer.zero_grad(set_to_none=True)
    total = None
    scalars: dict[str, Any] = {}
    for _ in range(micro_steps):
        batch = to_device(job.batches.next_batch(), job.device)
        loss, extra = split_loss(job.loss_fn(job.model, batch))
        scaled = loss / micro_steps if micro_steps > 1 else loss
        (scaler.scale(scaled) if scaler is not None else scaled).backward()
        total = loss.detach() if total is None else total + loss.detach()
        for name, value in extra.items():
            scalars[name] = value if name not in scalars else scalars[name] + value
    grad_norm = None
    if job.grad_clip or measure_grad_norm:
        if scaler is not None:
            scaler.unscale_(job.optimizer)  # the norm of the true gradients; step() then does not unscale again
        if job.grad_clip:
            grad_norm = torch.nn.utils.clip_grad_norm_(job.model.parameters(), job.grad_clip)
        else:
            grad_norm = total_grad_norm(job.model.parameters())
    assert total is not None
    if micro_steps > 1:
        total = total / micro_steps
        scalars = {name: value / micro_steps for name, value in scalars.items()}
    return StepResult(total, grad_norm, scalars)


def apply_update(job: Job) -> None:
    """The optimizer, the scheduler and the EMA, once, after `backward_step`."""
    scaler = job.grad_scaler
    if scaler is not None:
        scaler.step(job.optimizer)
        scaler.update()
    else:
        job.optimizer.step()
    _step_scheduler(job)
    if job.ema is not None:
        update_ema(job.ema, job.model)


def skip_update(job: Job) -> None:
    """A step whose update is dropped: the weights, optimizer moments and EMA stay as they were;
    the LR schedule moves on, so it stays on the step count (as a grad scaler's skipped step does)."""
    job.optimizer.zero_grad(set_to_none=True)
    if job.grad_scaler is not None:
        job.grad_scaler.update(job.grad_scaler.get_scale())  # no step() came: its per-step record is cleared
    _step_scheduler(job)


def _step_scheduler(job: Job) -> None:
    if job.scheduler is not None and not steps_on_metric(job.scheduler):  # those step at evaluations
        job.scheduler.step()


# The names a step's history record already uses: a job's own scalar may not take one.
RESERVED_SCALARS = STEP_RECORD_KEYS


def split_loss(output: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    """The loss to backpropagate and the job's named scalars (detached), from what `loss_fn` returned:
    a loss tensor, or a dict with `loss` and more."""
    if not isinstance(output, Mapping):
        return output, {}
    if "loss" not in output:
        raise ValueError(f"loss_fn returned a dict without 'loss' (keys: {', '.join(map(str, output))}); "
                         "put the tensor to backpropagate under 'loss'")
    extra = {}
    for name, value in output.items():
        if name == "loss":
            continue
        if not isinstance(name, str) or name in RESERVED_SCALARS:
            raise ValueError(f"loss_fn returned a scalar named {name!r}, which the history uses for its own; "
                             f"rename it (taken: {', '.join(sorted(RESERVED_SCALARS))})")
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ValueError(f"loss_fn returned {name!r} with {value.numel()} values; "
                                 "each extra must be one number (e.g. .mean())")
            value = value.detach().reshape(())
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        else:
            raise ValueError(f"loss_fn returned {name!r} as {type(value).__name__}; give a number or a one-value tensor")
        extra[name] = value
    return output["loss"], extra


def total_grad_norm(parameters: Any) -> torch.Tensor:
    """The 2-norm of all gradients together, as `clip_grad_norm_` computes it, without clipping (no sync)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads)


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
