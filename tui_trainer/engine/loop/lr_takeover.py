"""What the LR schedule does when the iteration target changes, whatever the job's scheduler.

Torch's schedulers break past the end they were built for: `OneCycleLR` raises one step past
its `total_steps`, `CosineAnnealingLR` climbs back to the peak, a linear `LambdaLR` sits at 0.
So on a new target, a scheduler that cannot re-anchor itself (`Retargetable`) is taken over:
the engine stops stepping it and steps a `Continuation` instead, which goes on from each
group's LR in force and decays, with the old schedule's shape, to its floor at the new target.
Every group follows the same curve, scaled by its own reference LR, so their ratios hold.

A takeover is stored in the checkpoint (`STATE_KEY`) beside the frozen scheduler's own state,
so a resumed run continues the same continuation bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from torch.optim import lr_scheduler as torch_schedulers

from tui_trainer.engine.loop.job import Retargetable
from tui_trainer.engine.loop.lr_schedule import WarmupCosine
from tui_trainer.engine.loop.rewarm import DEFAULT_REWARM_SHARE, Rewarm, RewarmRefused

STATE_KEY = "lr_takeover"
COSINE, LINEAR = "cosine", "linear"


@dataclass(frozen=True)
class Continuation:
    """Per-group LRs from `start` to `end`: optionally warm up to `peak_lrs`, then decay to `floor_lrs`."""

    source: str
    start: int
    end: int
    start_lrs: tuple[float, ...]
    floor_lrs: tuple[float, ...]
    shape: str = COSINE
    warm_steps: int = 0
    peak_lrs: tuple[float, ...] = ()

    def lrs_at(self, step: int) -> list[float]:
        warm_end = self.start + self.warm_steps
        if self.warm_steps and step < warm_end:
            done = (step - self.start) / self.warm_steps
            return [a + (b - a) * done for a, b in zip(self.start_lrs, self.peak_lrs, strict=True)]
        top = self.peak_lrs if self.warm_steps else self.start_lrs
        done = min(1.0, max(0.0, (step - warm_end) / (self.end - warm_end)))
        kept = 0.5 * (1.0 + math.cos(math.pi * done)) if self.shape == COSINE else 1.0 - done
        return [floor + (high - floor) * kept for high, floor in zip(top, self.floor_lrs, strict=True)]

    def to_state(self) -> dict[str, Any]:
        state = asdict(self)
        for key in ("start_lrs", "floor_lrs", "peak_lrs"):
            state[key] = list(state[key])
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Continuation:
        try:
            return cls(
                source=str(state["source"]), start=int(state["start"]), end=int(state["end"]),
                start_lrs=tuple(float(v) for v in state["start_lrs"]),
                floor_lrs=tuple(float(v) for v in state["floor_lrs"]),
                shape=str(state["shape"]), warm_steps=int(state["warm_steps"]),
                peak_lrs=tuple(float(v) for v in state["peak_lrs"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an LR takeover state: {exc!r}") from None


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
    lr_now = float(optimizer.param_groups[0]["lr"])
    if new_target <= step:
        return f"already at step {step}; the run ends here", None
    if new_target == old_target and rewarm is None:
        return f"LR schedule unchanged: LR {lr_now:.1e} now", None
    if scheduler is None or steps_on_metric(scheduler):
        if rewarm is not None:
            raise RewarmRefused("re-warm needs a step-driven LR schedule; this job's LR "
                             + ("follows its metric" if scheduler is not None else "is constant"))
        if scheduler is None:
            return f"LR stays at {lr_now:.1e} (the job has no LR scheduler)", None
        return (f"LR {lr_now:.1e} now; {type(scheduler).__name__} keeps lowering it when the monitored "
                "metric stalls, at scheduled evaluations"), None
    if rewarm is None and isinstance(scheduler, Retargetable) and not isinstance(scheduler, TakenOver):
        if isinstance(scheduler, WarmupCosine):
            return scheduler.preview(step, new_target), None
        return f"{type(scheduler).__name__} re-anchors itself on the new target", None
    plan = _continuation(scheduler, optimizer, step, old_target, new_target, rewarm)
    return describe(plan, lr_now), plan


def _continuation(
    scheduler: Any, optimizer: Any, step: int, old_target: int, new_target: int, rewarm: Rewarm | None
) -> Continuation:
    lrs = [float(group["lr"]) for group in optimizer.param_groups]
    refs = _refs_from(optimizer.param_groups, original_of(scheduler))
    # One curve for all groups, scaled per group: by the LRs now (so their ratios hold exactly),
    # or by their peaks where the LR has already reached 0.
    scales = [lr / lrs[0] for lr in lrs] if lrs[0] > 0 else [ref / refs[0] if refs[0] > 0 else 1.0 for ref in refs]
    if isinstance(scheduler, TakenOver):
        source, shape, floor = scheduler.plan.source, scheduler.plan.shape, scheduler.plan.floor_lrs[0]
    else:
        source, shape = type(scheduler).__name__, _shape_of(scheduler, old_target)
        floor = _floor_lr(scheduler, optimizer.param_groups, old_target)
    if rewarm is None:
        floor = min(floor, lrs[0])  # never up: a floor above the LR now means it is already past it
        return Continuation(source, step, new_target, tuple(lrs), tuple(floor * k for k in scales), shape)
    peak = rewarm.fraction * refs[0]
    if peak <= lrs[0]:
        raise RewarmRefused(f"re-warm to {rewarm.fraction:g} of the peak ({peak:.1e}) is not above the LR now "
                            f"({lrs[0]:.1e}): choose a larger fraction, or extend without re-warm")
    warm_steps = rewarm.steps or max(1, (new_target - step) // DEFAULT_REWARM_SHARE)
    if warm_steps >= new_target - step:
        raise RewarmRefused(f"a re-warm of {warm_steps} steps does not fit before the new target "
                            f"({new_target - step} steps away): choose fewer steps")
    floor = min(floor, peak)
    return Continuation(source, step, new_target, tuple(lrs), tuple(floor * k for k in scales), shape,
                        warm_steps, tuple(peak * k for k in scales))


def describe(plan: Continuation, lr_now: float) -> str:
    """The plan in words and numbers, for the log, the CLI and the `r` modal."""
    floor = plan.floor_lrs[0]
    if plan.warm_steps:
        line = (f"LR warms up from {lr_now:.1e} to {plan.peak_lrs[0]:.1e} by step {plan.start + plan.warm_steps}, "
                f"then decays ({plan.shape}) to {floor:.1e} at step {plan.end}")
    else:
        line = f"LR continues from {lr_now:.1e} and decays ({plan.shape}) to {floor:.1e} at step {plan.end}"
    if lr_now == 0 and not plan.warm_steps:
        return f"LR stays at 0 until step {plan.end}: {plan.source} has ended at 0 (re-warm to train on)"
    groups = len(plan.start_lrs)
    tail = f"; all {groups} param groups keep their ratios" if groups > 1 else ""
    return f"{line}, taken over from {plan.source}{tail}"


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
