"""Rolling a run back after an anomaly, inside the trainer: the PaLM recipe.

The last healthy checkpoint of the run at or before the bad step is loaded into the job, newer
checkpoints are set aside (as `launch.resume_run` on a checkpoint does), the history is cut at
its step, and the data moves on past the batches of the steps since, so the same batches do not
lead to the same blow-up. Everything else resumes exactly as that checkpoint left it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tui_trainer.engine.checkpoints.file import load_checkpoint, load_resumable
from tui_trainer.engine.checkpoints.meta import CHECKPOINT_SUFFIX, SHARDED_SUFFIX, CheckpointMeta
from tui_trainer.engine.loop import training_state
from tui_trainer.engine.rundir.history_writer import HistoryWriter
from tui_trainer.engine.rundir.layout import set_aside
from tui_trainer.engine.words import counted

if TYPE_CHECKING:
    from tui_trainer.engine.loop.trainer import Trainer


@dataclass(frozen=True)
class RollbackDone:
    name: str
    step: int
    skipped_batches: int
    superseded: int
    notes: tuple[str, ...] = ()


def healthy_candidates(trainer: Trainer, bad_step: int) -> list[CheckpointMeta]:
    """This run's checkpoints (files or step folders) at or before `bad_step` not marked unhealthy, newest first."""
    metas = [m for m in trainer.checkpoints.store.scan()
             if m.run_id == trainer.info.run_id and m.step <= bad_step and m.healthy is not False
             and m.name.endswith((CHECKPOINT_SUFFIX, SHARDED_SUFFIX))]
    return sorted(metas, key=lambda m: m.step, reverse=True)


def batches_to_skip(trainer: Trainer, rollback_step: int, bad_step: int) -> int:
    """The batches of steps rollback_step+1 .. bad_step: those that led to the anomaly."""
    return (bad_step - rollback_step) * trainer.job.grad_accum_steps


def roll_back(trainer: Trainer, bad_step: int) -> RollbackDone | None:
    """Load the last healthy checkpoint and skip past the batches since; None if there is none to load.

    On several processes rank 0, which owns the run dir, picks and checks the checkpoint; every
    rank then loads that one (its own part of it) and skips its own batches.
    """
    notes: list[str] = []
    picked: dict[str, Any] = {}

    def pick() -> tuple[str, int] | None:
        found = _sound_checkpoint(trainer, bad_step, notes)
        if found is None:
            return None
        picked["meta"], picked["state"] = found
        return found[0].name, found[0].step

    agreed = trainer.control.rank_zero_decides(pick)
    if agreed is None:
        trainer.notes.extend(notes)  # why each candidate was passed over
        return None
    if picked:
        return _load(trainer, picked["meta"], picked["state"], bad_step, notes)
    return _follow(trainer, *agreed, bad_step)


def _sound_checkpoint(trainer: Trainer, bad_step: int, notes: list[str]) -> tuple[CheckpointMeta, Any] | None:
    """The newest healthy checkpoint that passes its integrity check and resumes, with its state."""
    store = trainer.checkpoints.store
    for meta in healthy_candidates(trainer, bad_step):
        state, problem = load_resumable(store, store.get(meta.name), trainer.info.run_id)
        if problem is None and training_state.is_sharded(trainer.job.model) and state.get("optimizer_form") != "by_name":
            problem = "a one-file checkpoint does not load into the sharded model of a run in training (resume from it)"
        if problem is not None:
            notes.append(f"not rolling back to {meta.name}: {problem}")
            continue
        return meta, state
    return None


def _restore(trainer: Trainer, state: Any, name: str) -> None:
    """`state` into the job; saved by several processes, each rank takes its own batch position and RNG."""
    training_state.restore(trainer.job, state, name)
    if training_state.RANKS_KEY in state:
        from tui_trainer.engine.loop.distributed import restore_rank_state

        restore_rank_state(trainer.job, state)


def _follow(trainer: Trainer, name: str, step: int, bad_step: int) -> RollbackDone:
    """A rank other than 0: the checkpoint rank 0 picked (and checked), read but nothing written.

    A step folder is read whole here too (its files checked again): every rank then takes its
    shards of it, in `training_state.restore`.
    """
    _restore(trainer, load_checkpoint(trainer.run_dir / name, map_location="cpu"), name)
    skipped = batches_to_skip(trainer, step, bad_step)
    skip_batches(trainer.job.batches, skipped)
    trainer.step = step
    return RollbackDone(name, step, skipped, 0)


def _load(trainer: Trainer, meta: CheckpointMeta, state: Any, bad_step: int, notes: list[str]) -> RollbackDone:
    job = trainer.job
    _restore(trainer, state, meta.name)
    skipped = batches_to_skip(trainer, meta.step, bad_step)
    skip_batches(job.batches, skipped)
    newer = [m for m in trainer.checkpoints.store.scan()
             if m.run_id == trainer.info.run_id and (m.step > meta.step or m.step == meta.step and m.name != meta.name)]
    if newer:
        moved = set_aside(trainer.run_dir, [trainer.run_dir / m.name for m in newer])
        notes.append(f"moved {counted(len(newer), 'newer checkpoint')} to {moved.relative_to(trainer.run_dir)}/: they are superseded")
    trainer.history.close()
    history = HistoryWriter(trainer.run_dir, resume_step=meta.step,
                            summary_state=training_state.history_summary_of(state))
    trainer.history = trainer.records.history = history
    notes.extend(history.notes)
    trainer.step = meta.step
    return RollbackDone(meta.name, meta.step, skipped, len(newer), tuple(notes))


def skip_batches(batches: Any, count: int) -> None:
    """Move `batches` on by `count` batches: at once where it can (`skip`), else by drawing them."""
    skip = getattr(batches, "skip", None)
    if callable(skip):
        skip(count)
        return
    for _ in range(count):
        batches.next_batch()
