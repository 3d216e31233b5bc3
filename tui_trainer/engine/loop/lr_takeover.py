"""What the LR schedule does when the iteration target changes, whatever the job's scheduler.

Torch's schedulers break past the end they were built for: `OneCycleLR` raises one step past
its `total_steps`, `CosineAnnealingLR` climbs back to the peak, a linear `LambdaLR` sits at 0.
So on a new target, a scheduler that cannot re-anchor itself (`Retargetable`) is taken over:
the engine stops stepping it and steps a `Continuation` instead, which goes on from each
group's LR in force and decays, with the old schedule's shape, to its floor at the new target.
Every group follows the same curve, scaled by its own reference LR, so their ratios hold.

The plan itself is worked out by `lr_preview` from plain facts read off the scheduler, the same
facts the trainer publishes for dashboards in other processes, so every preview says the same.

A takeover is stored in the checkpoint (`STATE_KEY`) beside the frozen scheduler's own state,
so a resumed run continues the same continuation bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch.optim import lr_scheduler as torch_schedulers

from tui_trainer.engine.loop.job import Retargetable
from tui_trainer.engine.loop.lr_preview import (
    COSINE,
    LINEAR,
    METRIC,
    NONE,
    OWN,
    SELF,
    TAKEOVER,
    Continuation,
    LrFacts,
    decide,
    describe,
)
from tui_trainer.engine.loop.lr_schedule import WarmupCosine
from tui_trainer.engine.loop.rewarm import Rewarm, RewarmRefused

__all__ = ["STATE_KEY", "Continuation", "Rewarm", "RewarmRefused", "TakenOver", "describe", "lr_facts",
           "preview_retarget", "retarget_schedule"]
STATE_KEY = "lr_takeover"


class TakenOver:
    """Stands in for a job's scheduler once the engine owns the LR; stepped like a torch scheduler."""

    def __init__(self, original: Any, optimizer: Any, plan: Continuation, step: int) -> None:
        self.original = original
        self.optimizer = optimizer
        self.plan = plan
        self.current_step = step
        self._apply()

    def step(self) -> None:
        self.current_step += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def state(self) -> dict[str, Any]:
        return {"plan": self.plan.to_state(), "current_step": self.current_step}

    def _apply(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.plan.lrs_at(self.current_step), strict=True):
            group["lr"] = lr


# --- deciding ---------------------------------------------------------------------------------


def retarget_schedule(job: Any, step: int, old_target: int, new_target: int, rewarm: Rewarm | None = None) -> str:
    """Re-aim `job`'s LR at `new_target` (taking its scheduler over if need be); the note that says how."""
    note, plan = _decide(job.scheduler, job.optimizer, step, old_target, new_target, rewarm)
    if plan is not None:
        job.scheduler = TakenOver(original_of(job.scheduler), job.optimizer, plan, step)
    elif isinstance(job.scheduler, Retargetable) and new_target > step:
        note = job.scheduler.retarget(step, new_target)
    return note


def preview_retarget(job: Any, step: int, old_target: int, new_target: int, rewarm: Rewarm | None = None) -> str:
    """The note `retarget_schedule` would give, changing nothing; RewarmRefused for a re-warm that cannot be."""
    return _decide(job.scheduler, job.optimizer, step, old_target, new_target, rewarm)[0]


def _decide(
    scheduler: Any, optimizer: Any, step: int, old_target: int, new_target: int, rewarm: Rewarm | None
) -> tuple[str, Continuation | None]:
    return decide(facts_of(scheduler, optimizer, step, old_target), step, old_target, new_target, rewarm)


def lr_facts(job: Any, step: int, target: int) -> dict[str, Any]:
    """What a dashboard in another process needs to preview the LR on a new target (`lr_preview`)."""
    return facts_of(job.scheduler, job.optimizer, step, target).to_json()


def facts_of(scheduler: Any, optimizer: Any, step: int, target: int) -> LrFacts:
    """The plain facts `lr_preview.decide` plans from, read off the job's scheduler and optimizer."""
    groups = optimizer.param_groups
    lrs = tuple(float(group["lr"]) for group in groups)
    if scheduler is None or steps_on_metric(scheduler):
        kind = NONE if scheduler is None else METRIC
        return LrFacts(kind, type(scheduler).__name__ if scheduler else "", lrs, lrs, lrs[0], step=step, target=target)
    refs = tuple(_refs_from(groups, original_of(scheduler)))
    if isinstance(scheduler, TakenOver):
        plan = scheduler.plan
        return LrFacts(TAKEOVER, plan.source, lrs, refs, plan.floor_lrs[0], plan.shape, step, target)
    source, floor = type(scheduler).__name__, _floor_lr(scheduler, groups, target)
    if isinstance(scheduler, WarmupCosine):
        return LrFacts(OWN, source, lrs, refs, floor, COSINE, step, target, scheduler.state_dict())
    kind = SELF if isinstance(scheduler, Retargetable) else TAKEOVER
    return LrFacts(kind, source, lrs, refs, floor, _shape_of(scheduler, target), step, target)


# --- what a scheduler says about itself -------------------------------------------------------


def steps_on_metric(scheduler: Any) -> bool:
    """Stepped with a metric at evaluations, not once per optimizer step."""
    return isinstance(scheduler, torch_schedulers.ReduceLROnPlateau)


def step_on_metric(scheduler: Any, metrics: Mapping[str, float], monitor: str) -> str | None:
    """Step a metric-driven scheduler with the monitored metric; a note instead if the evaluation lacks it."""
    if not steps_on_metric(scheduler) or not metrics:
        return None
    value = metrics.get(monitor)
    if value is None and len(metrics) == 1:
        value = next(iter(metrics.values()))
    if value is None:
        return (f"{type(scheduler).__name__} is not stepped: the evaluation gives no {monitor!r} "
                f"(it gives {', '.join(metrics)}); set --monitor to the metric it should follow")
    scheduler.step(value)
    return None


def original_of(scheduler: Any) -> Any:
    """The job's own scheduler, taken over or not."""
    return scheduler.original if isinstance(scheduler, TakenOver) else scheduler


def takeover_state(scheduler: Any) -> dict[str, Any] | None:
    return scheduler.state() if isinstance(scheduler, TakenOver) else None


def resume_takeover(scheduler: Any, optimizer: Any, state: Mapping[str, Any] | None) -> Any:
    """The job's scheduler, taken over again if the checkpoint says it was."""
    if state is None:
        return scheduler
    try:
        step = int(state["current_step"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not an LR takeover state: {exc!r}") from None
    return TakenOver(scheduler, optimizer, Continuation.from_state(state["plan"]), step)


def _refs_from(groups: list[dict[str, Any]], scheduler: Any) -> list[float]:
    if isinstance(scheduler, WarmupCosine):
        return [scheduler.peak_lr * scale for scale in scheduler.group_scales]
    key = "max_lr" if isinstance(scheduler, torch_schedulers.OneCycleLR) else "initial_lr"
    return [float(group.get(key, group["lr"])) for group in groups]


def _floor_lr(scheduler: Any, groups: list[dict[str, Any]], old_target: int) -> float:
    """Group 0's LR at the end of the old schedule (its floor); 0 where it cannot be known."""
    first = groups[0]
    initial = float(first.get("initial_lr", first["lr"]))
    if isinstance(scheduler, WarmupCosine):
        return scheduler.min_lr * scheduler.group_scales[0]
    if isinstance(scheduler, torch_schedulers.OneCycleLR):
        return float(first.get("min_lr", 0.0))
    if isinstance(scheduler, torch_schedulers.LinearLR):
        return initial * float(scheduler.end_factor)
    if isinstance(scheduler, torch_schedulers.LambdaLR):
        try:
            return max(0.0, initial * float(scheduler.lr_lambdas[0](old_target)))
        except Exception:  # a user's lambda: any failure means its floor is unknown
            return 0.0
    for name in ("eta_min", "min_lr"):
        value = getattr(scheduler, name, None)
        if isinstance(value, (int, float)):
            return float(value)
    return 0.0


def _shape_of(scheduler: Any, old_target: int) -> str:
    if isinstance(scheduler, (torch_schedulers.LinearLR,)):
        return LINEAR
    if isinstance(scheduler, torch_schedulers.PolynomialLR):
        return LINEAR if float(scheduler.power) == 1.0 else COSINE
    if isinstance(scheduler, torch_schedulers.OneCycleLR):
        # torch keeps the strategy only in a private attribute; cosine is its default
        return LINEAR if getattr(scheduler, "_anneal_func_type", "cos") == "linear" else COSINE
    if isinstance(scheduler, torch_schedulers.LambdaLR):
        return _lambda_shape(scheduler, old_target)
    return COSINE


def _lambda_shape(scheduler: Any, old_target: int) -> str:
    """Linear if the lambda's rest of the decay lies on a straight line, else cosine."""
    # The rest of the decay; past its end (flat), the second half of the old schedule.
    start = int(scheduler.last_epoch)
    if old_target - start < 4:
        start = old_target // 2
    if old_target - start < 4:
        return COSINE
    xs = [start + (old_target - start) * k // 4 for k in range(5)]
    try:
        ys = [float(scheduler.lr_lambdas[0](x)) for x in xs]
    except Exception:  # a user's lambda: any failure means its shape is unknown
        return COSINE
    span = abs(ys[0] - ys[4])
    if span == 0:
        return COSINE
    slope = (ys[4] - ys[0]) / (xs[4] - xs[0])
    straight = all(abs(ys[0] + slope * (x - xs[0]) - y) <= 1e-3 * span for x, y in zip(xs, ys, strict=True))
    return LINEAR if straight else COSINE
