"""A logged step's numbers read from the device at once: loss, gradient norm and the job's scalars.

One `.tolist()` reads them all, so logging them costs the one device sync that reading the
loss alone always did. Under DDP the loss and the job's scalars are averaged over the ranks in
one all_reduce; the gradient norm is already the same on every rank. So every rank reads the same
numbers, and the anomaly guard finds the same anomaly on all at the same step: a NaN or inf on one
rank makes the mean non-finite on every rank, with no collective of the guard's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from tui_trainer.engine.loop.step import StepResult


@dataclass(frozen=True)
class StepNumbers:
    loss: float
    grad_norm: float | None = None
    scalars: dict[str, float] = field(default_factory=dict)


def read_step_numbers(result: StepResult, mean_over_ranks: Any) -> StepNumbers:
    """`result`'s numbers as floats; `mean_over_ranks` is the control's (the identity on one process)."""
    loss = result.loss.detach().float().reshape(1)
    tensors = {k: v for k, v in result.scalars.items() if isinstance(v, torch.Tensor)}
    floats = {k: float(v) for k, v in result.scalars.items() if not isinstance(v, torch.Tensor)}
    averaged = torch.cat([loss, *(v.float().reshape(1).to(loss.device) for v in tensors.values())])
    averaged = mean_over_ranks(averaged)
    norm = result.grad_norm
    if norm is not None:
        full = getattr(norm, "full_tensor", None)  # a DTensor (FSDP2): its value, the same on every rank
        norm = (full() if callable(full) else norm).detach().float().reshape(1).to(loss.device)
        averaged = torch.cat([averaged, norm])
    values = averaged.tolist()
    scalars = dict(zip(tensors, values[1 : 1 + len(tensors)]))
    for name, value in result.scalars.items():  # in the order the job gave them
        scalars[name] = floats[name] if name in floats else scalars.pop(name)
    return StepNumbers(values[0], values[-1] if norm is not None else None, scalars)
