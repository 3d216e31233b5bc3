"""How big a run's checkpoints will be when it ends, and whether that fits on the disk.

The forecast is small pure arithmetic over checkpoint metadata and the retention policy:
the size of the newest save times the number of checkpoints that will exist at the end, plus
one for the save in flight (every common trainer, this one included, writes before it rotates)
with the safety margin the store asks for before it writes, plus what `history.jsonl` will have
grown by then. The disk "fills" at the first save whose forecast does not fit; counting that
save among those already on disk errs by one save on the safe side. Sizes are as the filesystem
allocates them (whole blocks, a sidecar beside each checkpoint), which matters for small models.
Only `read_disk_state` touches the disk. This module does not import torch.

The count follows `retention.checkpoints_to_prune`: the newest `keep_last` rotating
checkpoints (periodic, final and interrupted alike; the final save is one of them), one more
for a best that may sit outside that window, and every manual or pinned one already there.
`keep_last == 0` keeps everything, so every remaining save adds one.
"""

from __future__ import annotations

import bisect
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from tui_trainer.engine.checkpoints.meta import MANUAL, ROTATING_KINDS, CheckpointMeta
from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.checkpoints.retention import own_checkpoints
from tui_trainer.engine.checkpoints.store import bytes_needed_for

BLOCK_BYTES = 4096  # the usual filesystem block: a 600-byte sidecar takes one


@dataclass(frozen=True)
class DiskState:
    """What the forecast needs, read from the run dir and its filesystem at one moment."""

    checkpoints: tuple[CheckpointMeta, ...]
    run_id: str | None
    policy: CheckpointPolicy
    target: int
    free_bytes: int
    history_bytes: int = 0  # history.jsonl, which grows with every step


@dataclass(frozen=True)
class DiskForecast:
    used_bytes: int  # this run's checkpoints (and sidecars) on disk now
    free_bytes: int
    count_now: int
    save_bytes: int | None  # the newest save: the unit of the forecast; None before the first
    saves_left: int
    count_at_end: int
    end_bytes: int | None  # at the end of the run, with the save in flight and the history's growth
    fill_step: int | None  # the step whose save would not fit; None if the run fits

    @property
    def room_bytes(self) -> int:
        """What the run's checkpoints can grow to: what they use now plus the free space."""
        return self.used_bytes + self.free_bytes

    @property
    def fits(self) -> bool:
        return self.fill_step is None


@dataclass(frozen=True)
class SaveSchedule:
    """The rotating saves still to come: periodic ones, then the final one if it is separate."""

    periodic: range
    final_step: int | None

    def __len__(self) -> int:
        return len(self.periodic) + (self.final_step is not None)

    def step_of(self, n: int) -> int:
        """The step of the `n`-th save to come (1-based)."""
        if n <= len(self.periodic):
            return self.periodic[n - 1]
        assert self.final_step is not None and n == len(self)
        return self.final_step


def save_interval(policy: CheckpointPolicy, steps_per_sec: float = 0.0) -> int:
    """Steps between periodic saves; timed saves are turned into steps at the current speed."""
    intervals = []
    if policy.every_steps:
        intervals.append(policy.every_steps)
    if policy.every_minutes and steps_per_sec > 0:
        intervals.append(max(1, round(policy.every_minutes * 60 * steps_per_sec)))
    return min(intervals) if intervals else 0


def saves_to_come(step: int, target: int, policy: CheckpointPolicy, steps_per_sec: float = 0.0) -> SaveSchedule:
    """The periodic saves in (step, target], and the final save if it lands on another step."""
    interval = save_interval(policy, steps_per_sec)
    if interval and step < target:
        first = (step // interval + 1) * interval if policy.every_steps == interval else step + interval
        periodic = range(first, target + 1, interval)
    else:
        periodic = range(0)
    final_separate = policy.save_final and step < target and (not periodic or periodic[-1] != target)
    return SaveSchedule(periodic, target if final_separate else None)


def on_disk(size_bytes: int | None) -> int:
    """What a checkpoint of `size_bytes` and its sidecar take on the filesystem."""
    size = size_bytes or 0
    return -(-size // BLOCK_BYTES) * BLOCK_BYTES + BLOCK_BYTES


def space_needed(save_bytes: int) -> int:
    """Free space a save of `save_bytes` needs before it starts, as `CheckpointStore.check_space` asks."""
    return bytes_needed_for(save_bytes)


def is_kept_for_good(meta: CheckpointMeta) -> bool:
    """Manual and pinned checkpoints stay until someone deletes them."""
    return meta.pinned or meta.kind == MANUAL


def is_rotating(meta: CheckpointMeta) -> bool:
    return not is_kept_for_good(meta) and meta.kind in ROTATING_KINDS


def count_after(saves: int, kept_for_good: int, rotating: int, keep_last: int, has_best: bool) -> int:
    """Checkpoints on disk once `saves` more rotating saves have been made and pruned."""
    total_rotating = rotating + saves
    if keep_last <= 0:
        return kept_for_good + total_rotating
    # The best is protected; once rotation passes it, it stays beside the window.
    best_outside = 1 if has_best and total_rotating > keep_last else 0
    return kept_for_good + min(keep_last, total_rotating) + best_outside


def forecast(state: DiskState, step: int, target: int | None = None, steps_per_sec: float = 0.0) -> DiskForecast:
    """The run's checkpoint size at its end (`target`, else the stored one) and the step the disk fills."""
    target = state.target if target is None else target
    own = own_checkpoints(state.checkpoints, state.run_id)
    used = sum(on_disk(m.size_bytes) for m in own)
    newest = max(own, key=lambda m: (m.step, m.created or ""), default=None)
    save_bytes = newest.size_bytes if newest is not None and newest.size_bytes else None
    schedule = saves_to_come(step, target, state.policy, steps_per_sec)
    if save_bytes is None or not len(schedule):
        end = used if save_bytes is not None else None
        return DiskForecast(used, state.free_bytes, len(own), save_bytes, len(schedule), len(own), end, None)

    kept = sum(1 for m in own if is_kept_for_good(m))
    rotating = sum(1 for m in own if is_rotating(m))
    monitor = state.policy.monitor
    has_best = any(m.metric(monitor) is not None for m in own)
    unit = on_disk(save_bytes)
    history_per_step = state.history_bytes / step if step > 0 else 0.0

    def peak(saves: int) -> int:
        # The save in flight is written before rotation deletes anything.
        files = unit * count_after(saves, kept, rotating, state.policy.keep_last, has_best)
        history = int(history_per_step * (schedule.step_of(saves) - step)) if saves else 0
        return files + space_needed(save_bytes) + history

    n = len(schedule)
    room = used + state.free_bytes
    # `peak` never decreases as saves are made, so the first save that does not fit is a bisection.
    first_over = bisect.bisect_right(range(1, n + 1), room, key=peak) + 1
    fill_step = schedule.step_of(first_over) if first_over <= n else None
    end_count = count_after(n, kept, rotating, state.policy.keep_last, has_best)
    return DiskForecast(used, state.free_bytes, len(own), save_bytes, n, end_count, peak(n), fill_step)


def read_disk_state(run_dir: str | os.PathLike[str]) -> DiskState:
    """The run's checkpoints, policy and target, and the free space of its filesystem."""
    from tui_trainer.engine.checkpoints.store import CheckpointStore
    from tui_trainer.engine.rundir.layout import HISTORY_FILE, is_run_dir, read_run

    if is_run_dir(run_dir):
        info = read_run(run_dir)
        run_id, policy, target = info.run_id, info.policy, info.settings.max_iters
    else:
        run_id, policy, target = None, CheckpointPolicy(), 0
    metas: Sequence[CheckpointMeta] = CheckpointStore(run_dir, run_id, policy.monitor, policy.mode).scan()
    try:
        history = os.stat(os.path.join(run_dir, HISTORY_FILE)).st_size
    except OSError:
        history = 0
    return DiskState(tuple(metas), run_id, policy, target, shutil.disk_usage(run_dir).free, history)
