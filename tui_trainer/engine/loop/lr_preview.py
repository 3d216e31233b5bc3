"""What the LR will do on a new target, worked out from a few plain facts about the schedule.

The trainer decides with it (`lr_takeover` gathers the facts from the job's scheduler), and a
dashboard in another process previews with the facts the trainer publishes in its control-file
ack, so both say the same words. Plain Python (no torch): a dashboard imports it cheaply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from tui_trainer.engine.loop.lr_schedule import WarmupCosine
from tui_trainer.engine.loop.rewarm import DEFAULT_REWARM_SHARE, Rewarm, RewarmRefused

COSINE, LINEAR = "cosine", "linear"
# What the job's LR schedule is, as far as a new target goes: none, stepped on a metric, our own
# WarmupCosine, another one that re-anchors itself, or one the engine takes over (or has).
NONE, METRIC, OWN, SELF, TAKEOVER = "none", "metric", "warmup_cosine", "retargetable", "takeover"
KINDS = frozenset({NONE, METRIC, OWN, SELF, TAKEOVER})


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


@dataclass(frozen=True)
class LrFacts:
    """What a new target's LR plan depends on, at `step` of a run aiming at `target`."""

    kind: str
    source: str  # the scheduler's class name (the original's, once taken over)
    lrs: tuple[float, ...]  # each param group's LR now
    refs: tuple[float, ...]  # each group's peak LR: what a re-warm's fraction is a share of
    floor: float  # group 0's LR at the end of the schedule
    shape: str = COSINE
    step: int = 0
    target: int = 0
    schedule: Mapping[str, Any] | None = None  # a WarmupCosine's state, for its own words

    def at(self, step: int, lr_now: float) -> LrFacts:
        """The same schedule at a later `step`, with group 0's LR `lr_now` and the groups' ratios kept."""
        base = self.lrs if self.lrs[0] > 0 else self.refs
        scales = [v / base[0] if base[0] > 0 else 1.0 for v in base]
        return replace(self, step=step, lrs=tuple(lr_now * k for k in scales))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["lrs"], data["refs"] = list(self.lrs), list(self.refs)
        data["schedule"] = dict(self.schedule) if self.schedule is not None else None
        return data

    @classmethod
    def from_json(cls, data: Any) -> LrFacts | None:
        """The facts, or None for anything garbled (a viewer then shows no preview)."""
        try:
            facts = cls(
                kind=data["kind"], source=data["source"], lrs=_floats(data["lrs"]), refs=_floats(data["refs"]),
                floor=_float(data["floor"]), shape=data["shape"], step=int(data["step"]),
                target=int(data["target"]), schedule=data.get("schedule"),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        if (facts.kind not in KINDS or not isinstance(facts.source, str) or facts.shape not in (COSINE, LINEAR)
                or not facts.lrs or len(facts.refs) != len(facts.lrs)
                or (facts.kind == OWN) != isinstance(facts.schedule, Mapping)):
            return None
        if facts.kind == OWN:
            try:
                _own_schedule(facts)
            except ValueError:
                return None
        return facts


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"not an LR: {value!r}")
    return float(value)


def _floats(values: Any) -> tuple[float, ...]:
    if not isinstance(values, list):
        raise TypeError("not a list")
    return tuple(_float(v) for v in values)


class _Groups:
    """Stands in for an optimizer, so a WarmupCosine can be rebuilt from its state to speak."""

    def __init__(self, lr: float) -> None:
        self.param_groups = [{"lr": lr, "initial_lr": lr}]


def _own_schedule(facts: LrFacts) -> WarmupCosine:
    assert facts.schedule is not None
    state = facts.schedule
    try:
        schedule = WarmupCosine(_Groups(float(state["peak_lr"])), peak_lr=float(state["peak_lr"]),
                                total_steps=int(state["total_steps"]))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a WarmupCosine state: {exc!r}") from None
    schedule.load_state_dict(state)
    return schedule


# --- deciding ---------------------------------------------------------------------------------


def decide(facts: LrFacts, step: int, old_target: int, new_target: int,
           rewarm: Rewarm | None = None) -> tuple[str, Continuation | None]:
    """What the LR does on `new_target`: the note, and the continuation that takes the LR over (or None).

    RewarmRefused for a re-warm that cannot be, with what to choose instead.
    """
    lr_now = facts.lrs[0]
    if new_target <= step:
        return f"already at step {step}; the run ends here", None
    if new_target == old_target and rewarm is None:
        return f"LR schedule unchanged: LR {lr_now:.1e} now", None
    if facts.kind in (NONE, METRIC):
        if rewarm is not None:
            raise RewarmRefused("re-warm needs a step-driven LR schedule; this job's LR "
                                + ("follows its metric" if facts.kind == METRIC else "is constant"))
        if facts.kind == NONE:
            return f"LR stays at {lr_now:.1e} (the job has no LR scheduler)", None
        return (f"LR {lr_now:.1e} now; {facts.source} keeps lowering it when the monitored "
                "metric stalls, at scheduled evaluations"), None
    if rewarm is None and facts.kind == OWN:
        return _own_schedule(facts).preview(step, new_target), None
    if rewarm is None and facts.kind == SELF:
        return f"{facts.source} re-anchors itself on the new target", None
    plan = continuation(facts, step, new_target, rewarm)
    return describe(plan, lr_now), plan


def preview(facts: LrFacts, step: int, old_target: int, new_target: int, rewarm: Rewarm | None = None) -> str:
    """The note `decide` gives, for a modal; RewarmRefused for a re-warm that cannot be."""
    return decide(facts, step, old_target, new_target, rewarm)[0]


def continuation(facts: LrFacts, step: int, new_target: int, rewarm: Rewarm | None) -> Continuation:
    lrs, refs = facts.lrs, facts.refs
    # One curve for all groups, scaled per group: by the LRs now (so their ratios hold exactly),
    # or by their peaks where the LR has already reached 0.
    scales = [lr / lrs[0] for lr in lrs] if lrs[0] > 0 else [ref / refs[0] if refs[0] > 0 else 1.0 for ref in refs]
    floor = facts.floor
    if rewarm is None:
        floor = min(floor, lrs[0])  # never up: a floor above the LR now means it is already past it
        return Continuation(facts.source, step, new_target, tuple(lrs), tuple(floor * k for k in scales), facts.shape)
    peak = rewarm.fraction * refs[0]
    if peak <= lrs[0]:
        raise RewarmRefused(f"re-warm to {rewarm.fraction:g} of the peak ({peak:.1e}) is not above the LR now "
                            f"({lrs[0]:.1e}): choose a larger fraction, or extend without re-warm")
    warm_steps = rewarm.steps or max(1, (new_target - step) // DEFAULT_REWARM_SHARE)
    if warm_steps >= new_target - step:
        raise RewarmRefused(f"a re-warm of {warm_steps} steps does not fit before the new target "
                            f"({new_target - step} steps away): choose fewer steps")
    floor = min(floor, peak)
    return Continuation(facts.source, step, new_target, tuple(lrs), tuple(floor * k for k in scales), facts.shape,
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
