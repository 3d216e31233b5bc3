"""Linear warm-up then cosine decay, able to re-aim at a new final step mid-run.

Changing the iteration target of a running cosine schedule has two classic failure modes:
recomputing the curve for the new total sends the LR back up towards the peak, and keeping
the old curve leaves it stuck at the floor for the rest of the run. `retarget` avoids both by
anchoring a fresh cosine at the LR in force right now, ending at `min_lr` on the new target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple


class Anchor(NamedTuple):
    """From `step` on, decay from `lr` to the floor at `total`."""

    step: int
    lr: float
    total: int


def warmup_cosine_lr(
    step: int, *, peak_lr: float, min_lr: float, warmup_steps: int, total_steps: int
) -> float:
    """The LR of one step: linear warm-up, cosine down to min_lr at total_steps, then flat."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / (warmup_steps + 1)
    return cosine_decay(step, start=warmup_steps, end=total_steps, start_lr=peak_lr, end_lr=min_lr)


def cosine_decay(step: int, *, start: int, end: int, start_lr: float, end_lr: float) -> float:
    """Half a cosine from start_lr at `start` to end_lr at `end`; end_lr from then on."""
    if step >= end:
        return end_lr
    ratio = max(0.0, (step - start) / (end - start))
    return end_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (start_lr - end_lr)


class WarmupCosine:
    """A per-step LR schedule used like a torch scheduler: call `step()` after each optimizer step.

    `current_step` is the optimizer step whose LR is set right now (0 after construction).
    Each group's LR is the schedule's LR scaled by that group's starting LR over the first
    group's, so groups set up with different LRs keep their ratios. The state is plain Python numbers, and
    `load_state_dict` restores it whole, retargets included, overriding the constructor's values.
    """

    def __init__(
        self,
        optimizer: Any,
        *,
        peak_lr: float,
        total_steps: int,
        warmup_steps: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        _check_settings(
            peak_lr=peak_lr, min_lr=min_lr, warmup_steps=warmup_steps, total_steps=total_steps
        )
        self.optimizer = optimizer
        # Ratios of the groups' starting LRs (kept in `initial_lr`, as torch's schedulers do).
        starts = [float(group.setdefault("initial_lr", group["lr"])) for group in optimizer.param_groups]
        self.group_scales = [start / starts[0] if starts[0] > 0 else 1.0 for start in starts]
        self.peak_lr = float(peak_lr)
        self.min_lr = float(min_lr)
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.anchors: list[Anchor] = []
        self.current_step = 0
        self._apply()

    @property
    def target(self) -> int:
        """The step at which the LR reaches min_lr."""
        return self.anchors[-1].total if self.anchors else self.total_steps

    def lr_at(self, step: int) -> float:
        for anchor in reversed(self.anchors):
            if step >= anchor.step:
                return cosine_decay(
                    step,
                    start=anchor.step,
                    end=anchor.total,
                    start_lr=anchor.lr,
                    end_lr=self.min_lr,
                )
        return warmup_cosine_lr(
            step,
            peak_lr=self.peak_lr,
            min_lr=self.min_lr,
            warmup_steps=self.warmup_steps,
            total_steps=self.total_steps,
        )

    def step(self) -> None:
        self.current_step += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def retarget(self, step: int, new_total: int) -> str:
        """Make the LR reach min_lr at `new_total`, continuing from its value at `step`."""
        self.anchors, self.total_steps, note = self._plan(step, new_total)
        self._apply()
        return note

    def preview(self, step: int, new_total: int) -> str:
        """What `retarget(step, new_total)` would do, in words; changes nothing."""
        return self._plan(step, new_total)[2]

    def _plan(self, step: int, new_total: int) -> tuple[list[Anchor], int, str]:
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an int >= 0, got {step!r}")
        if isinstance(new_total, bool) or not isinstance(new_total, int) or new_total <= step:
            raise ValueError(f"the new target must be an int after step {step}, got {new_total!r}")
        if new_total == self.target:
            note = f"LR schedule unchanged: it already reaches {self.min_lr:.1e} at step {new_total}"
            return self.anchors, self.total_steps, note
        lr_now = self.lr_at(step)
        earlier = [anchor for anchor in self.anchors if anchor.step < step]
        if not earlier and step < self.warmup_steps < new_total:
            note = (
                f"LR warms up to {self.peak_lr:.1e} at step {self.warmup_steps} "
                f"and decays to {self.min_lr:.1e} at step {new_total}"
            )
            return [], new_total, note
        if step >= self.target:
            note = f"LR stays at its floor {self.min_lr:.1e} until step {new_total}"
        else:
            note = f"LR continues from {lr_now:.1e} and decays to {self.min_lr:.1e} at step {new_total}"
        return [*earlier, Anchor(step, lr_now, new_total)], self.total_steps, note

    def state_dict(self) -> dict[str, Any]:
        return {
            "peak_lr": self.peak_lr,
            "min_lr": self.min_lr,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "current_step": self.current_step,
            "anchors": [list(anchor) for anchor in self.anchors],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        try:
            settings = {
                "peak_lr": float(state["peak_lr"]),
                "min_lr": float(state["min_lr"]),
                "warmup_steps": int(state["warmup_steps"]),
                "total_steps": int(state["total_steps"]),
            }
            current_step = int(state["current_step"])
            anchors = [
                Anchor(int(step), float(lr), int(total)) for step, lr, total in state["anchors"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a WarmupCosine state: {exc!r}") from None
        _check_settings(**settings)
        if current_step < 0:
            raise ValueError(f"not a WarmupCosine state: current_step is {current_step}")
        self.peak_lr = settings["peak_lr"]
        self.min_lr = settings["min_lr"]
        self.warmup_steps = settings["warmup_steps"]
        self.total_steps = settings["total_steps"]
        self.anchors = anchors
        self.current_step = current_step
        self._apply()

    def _apply(self) -> None:
        lr = self.lr_at(self.current_step)
        for group, scale in zip(self.optimizer.param_groups, self.group_scales, strict=True):
            group["lr"] = lr * scale


def _check_settings(*, peak_lr: float, min_lr: float, warmup_steps: int, total_steps: int) -> None:
    if not peak_lr > 0:
        raise ValueError(f"peak_lr must be > 0, got {peak_lr!r}")
    if not 0 <= min_lr <= peak_lr:
        raise ValueError(f"min_lr must be between 0 and peak_lr ({peak_lr}), got {min_lr!r}")
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"total_steps must be an int >= 1, got {total_steps!r}")
    if (
        isinstance(warmup_steps, bool)
        or not isinstance(warmup_steps, int)
        or not 0 <= warmup_steps < total_steps
    ):
        raise ValueError(
            f"warmup_steps must be an int from 0 to total_steps - 1 ({total_steps - 1}), "
            f"got {warmup_steps!r}"
        )
