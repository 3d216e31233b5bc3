"""Jobs written the way users write them, each with one of torch's LR schedulers, for the LR tests.

A tiny regression model with two param groups at different LRs (ratio 5), so a schedule that
flattened the groups to one LR would show.
"""

from __future__ import annotations

import torch
from torch import nn

import tui_trainer
from tui_trainer.engine.loop.batches import EpochBatches
from tui_trainer.engine.loop.job import Job

LRS = (0.1, 0.02)


def _job(name: str, make_scheduler, *, evaluate=None) -> Job:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    inputs = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    data = [(x, x.sum(dim=0, keepdim=True)) for x in inputs]
    optimizer = torch.optim.SGD(
        [{"params": model[0].parameters(), "lr": LRS[0]}, {"params": model[2].parameters(), "lr": LRS[1]}],
        momentum=0.9,
    )

    def loss_fn(model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(model(x), y)

    def val_loss(model: nn.Module) -> dict[str, float]:
        x = inputs[:16]
        return {"val_loss": float(nn.functional.mse_loss(model(x), x.sum(dim=1, keepdim=True)))}

    return Job(model=model, optimizer=optimizer, batches=EpochBatches(data, 8, seed=3), loss_fn=loss_fn,
               name=name, scheduler=make_scheduler(optimizer), evaluate=evaluate or val_loss, batch_size=8)


@tui_trainer.job_factory
def one_cycle(max_iters: int = 40) -> Job:
    return _job("one_cycle", lambda opt: torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=list(LRS), total_steps=max_iters))


@tui_trainer.job_factory
def cosine(max_iters: int = 40) -> Job:
    return _job("cosine", lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max_iters))


@tui_trainer.job_factory
def linear(max_iters: int = 40) -> Job:
    return _job("linear", lambda opt: torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: max(0.0, 1.0 - step / max_iters)))


@tui_trainer.job_factory
def plateau() -> Job:
    """ReduceLROnPlateau on a val_loss that never improves, so each scheduled evaluation counts."""
    return _job("plateau", lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=0.5, patience=1), evaluate=lambda model: {"val_loss": 1.0})
