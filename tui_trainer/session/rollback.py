"""Rolling a run back to one of its checkpoints: what it supersedes, said before it happens.

`launch.resume_run` on a checkpoint file moves this run's newer checkpoints to `superseded/`
and truncates the history past that step; `plan_rollback` works out the same set from the
listing alone (no torch), so the confirmation can name every file it will move.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tui_trainer.engine.errors import TrainerError
from tui_trainer.engine.sizes import human_bytes
from tui_trainer.engine.words import counted


class RollbackRefused(TrainerError):
    """The selected checkpoint cannot be resumed from; nothing was stopped or moved."""


@dataclass(frozen=True)
class Superseded:
    name: str
    step: int
    marks: tuple[str, ...]
    size_bytes: int | None


@dataclass(frozen=True)
class RollbackPlan:
    name: str
    step: int
    superseded: tuple[Superseded, ...]
    reached_step: int  # the newest step the run got to; history after `step` up to here is dropped


def plan_rollback(stored: Sequence[Any], name: str, run_id: str | None, reached_step: int) -> RollbackPlan:
    """What resuming from checkpoint `name` sets aside, as `launch.resume_run` decides it."""
    chosen = next((c for c in stored if c.meta.name == name), None)
    if chosen is None:
        raise RollbackRefused(f"no checkpoint named {name!r}; it may have been pruned or deleted")
    if chosen.meta.run_id != run_id:
        raise RollbackRefused(f"{name} was not written by this run; only its own checkpoints can be resumed here")
    step = chosen.meta.step
    own = [c for c in stored if c.meta.run_id == run_id]
    newer = sorted(
        (c for c in own if c.meta.step > step or (c.meta.step == step and c.meta.name != name)),
        key=lambda c: (c.meta.step, c.meta.name),
    )
    reached = max([reached_step, step, *(c.meta.step for c in newer)])
    moved = tuple(Superseded(c.meta.name, c.meta.step, tuple(c.marks), c.meta.size_bytes) for c in newer)
    return RollbackPlan(name, step, moved, reached)


def describe_rollback(plan: RollbackPlan, live_step: int | None) -> list[str]:
    """The confirmation's lines: what stops, what moves, what history is dropped."""
    from tui_trainer.engine.rundir.layout import SUPERSEDED_DIR  # the dashboard's first frame needs no run_dir

    lines = []
    if live_step is not None:
        lines.append(
            f"Training is running (step {live_step}). It stops first, without saving: everything after "
            f"step {plan.step} is superseded by the roll-back anyway."
        )
    if plan.superseded:
        total = sum(s.size_bytes or 0 for s in plan.superseded)
        lines.append(
            f"{counted(len(plan.superseded), 'newer checkpoint')}, {human_bytes(total)}, move to {SUPERSEDED_DIR}/ "
            "in the run dir (kept, not deleted; out of the table):"
        )
        for s in plan.superseded:
            marks = f" ({', '.join(s.marks)})" if s.marks else ""
            lines.append(f"  {s.name}  step {s.step}{marks}")
    else:
        lines.append("No newer checkpoint: nothing is moved.")
    if plan.reached_step > plan.step:
        lines.append(
            f"History of steps {plan.step + 1}-{plan.reached_step} is dropped from history.jsonl and the chart; "
            f"training goes on from step {plan.step}."
        )
    else:
        lines.append(f"No history is dropped; training goes on from step {plan.step}.")
    return lines
