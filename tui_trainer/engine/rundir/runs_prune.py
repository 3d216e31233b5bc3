"""Prune every run under a root to one keep-last: plan from the sidecars, then delete under each run's lock.

The plan is what the single-run prune would delete in each run (`retention.checkpoints_to_prune`:
never the best, the latest, pinned or manual checkpoints). A run being trained is left out: its
trainer holds the run's lock and keeps its own retention, and files deleted under it would
race its saves. Deleting takes each run's lock for the moment it works there, so a trainer that
starts meanwhile either waits for the lock to be released or makes that run be skipped; and
only files that were previewed and that a prune still deletes under the store lock are removed,
so a `ckpt pin` since the preview keeps its checkpoint, and the result says so.

This module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tui_trainer.engine.checkpoints import retention
from tui_trainer.engine.checkpoints.previewed_prune import prune_previewed
from tui_trainer.engine.errors import RunDirBusy, RunDirError
from tui_trainer.engine.rundir.layout import RunLock, read_run, store_for
from tui_trainer.engine.rundir.runs_index import RunsIndex, read_sidecars

BEING_TRAINED = "being trained right now; prune it from its own dashboard"


@dataclass(frozen=True)
class DoomedCheckpoint:
    run: str  # the run's name in the index
    name: str
    step: int
    size_bytes: int

    @property
    def key(self) -> str:
        return f"{self.run}/{self.name}"


@dataclass(frozen=True)
class RunsPrunePlan:
    keep_last: int
    doomed: tuple[DoomedCheckpoint, ...]
    skipped: tuple[tuple[str, str], ...]  # run name, why it is left alone

    @property
    def freed_bytes(self) -> int:
        return sum(d.size_bytes for d in self.doomed)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(d.key for d in self.doomed)

    def runs(self) -> list[str]:
        return sorted({d.run for d in self.doomed})


@dataclass(frozen=True)
class RunsPruneResult:
    deleted: tuple[str, ...]  # keys, "run/checkpoint"
    freed_bytes: int
    skipped: tuple[tuple[str, str], ...]
    notes: tuple[str, ...] = ()  # previewed checkpoints not deleted, and why: "kept a/step_...: pinned since ..."


def doomed_in_run(run_dir: Path, keep_last: int) -> list[tuple[str, int, int]]:
    """(name, step, size) of what keep-last `keep_last` deletes in one run, from its sidecars."""
    info = read_run(run_dir)
    metas = read_sidecars(run_dir)
    doomed = retention.checkpoints_to_prune(metas, keep_last, info.run_id, info.policy.monitor, info.policy.mode)
    return [(m.name, m.step, m.size_bytes or 0) for m in doomed]


def plan_runs_prune(index: RunsIndex, keep_last: int) -> RunsPrunePlan:
    if keep_last < 1:
        raise ValueError("keep_last must be at least 1")
    doomed, skipped = [], []
    for run in index.runs:
        if run.running:
            skipped.append((run.name, BEING_TRAINED))
            continue
        try:
            found = doomed_in_run(run.path, keep_last)
        except (RunDirError, OSError) as exc:
            skipped.append((run.name, str(exc)))
            continue
        doomed += [DoomedCheckpoint(run.name, name, step, size) for name, step, size in found]
    return RunsPrunePlan(keep_last, tuple(doomed), tuple(skipped))


def prune_runs(index: RunsIndex, keep_last: int, keys: tuple[str, ...]) -> RunsPruneResult:
    """Delete the previewed `keys` ("run/checkpoint") that keep-last would still delete now.

    In each run, under its run lock, what is still due is decided and deleted under one hold of
    the store lock (`prune_previewed`), so a checkpoint pinned since the preview stays.
    """
    by_run: dict[str, set[str]] = {}
    for key in keys:
        run, _, name = key.rpartition("/")
        by_run.setdefault(run, set()).add(name)
    deleted, freed, skipped, notes = [], 0, [], []
    for run in index.runs:
        chosen = by_run.get(run.name)
        if not chosen:
            continue
        locked = False
        try:
            with RunLock(run.path):
                locked = True
                outcome = prune_previewed(store_for(run.path), keep_last, sorted(chosen))
        except RunDirBusy as exc:  # the run's lock (a trainer), or its store lock held too long
            skipped.append((run.name, str(exc) if locked else "a trainer started on it since the preview; left alone"))
            continue
        except (RunDirError, OSError) as exc:
            skipped.append((run.name, str(exc)))
            continue
        deleted += [f"{run.name}/{name}" for name in outcome.deleted_names]
        freed += outcome.freed_bytes
        notes += outcome.notes(prefix=f"{run.name}/")
    return RunsPruneResult(tuple(deleted), freed, tuple(skipped), tuple(notes))

