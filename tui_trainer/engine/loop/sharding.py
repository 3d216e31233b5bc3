"""`--strategy fsdp`: each rank holds a shard of the model (FSDP2), and saves its shard with DCP.

`wrap` shards a job's model with `fully_shard` (each block of a `ModuleList` as its own unit,
then the whole model) after rank 0's state reached every rank, and points the job's optimizer at
the sharded parameters, carrying over its state; the scheduler keeps the same optimizer object.

`ShardedSaves.checkpoint` replaces the one-file save under FSDP. Every rank takes part: all
evaluate together (a sharded forward needs every rank), all write their shards into
`step_N.dcp.partial/`, each describes the files it wrote (size, SHA-256); rank 0 adds
`state.pt` (data positions, RNG streams of every rank, schedule, metadata), writes the manifest
last and renames the folder to `step_N.dcp`. A kill at any point leaves a `.partial` folder,
which is never loaded and which `resume` removes; a full disk on any rank stops (or pauses)
every rank at the same step, as a one-file save does.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from tui_trainer.engine.checkpoints import sharded_folder
from tui_trainer.engine.checkpoints.meta import CheckpointMeta, sharded_checkpoint_name
from tui_trainer.engine.errors import NotEnoughDiskSpace, TrainerError, is_disk_full
from tui_trainer.engine.loop import training_state

if TYPE_CHECKING:
    from tui_trainer.engine.loop.job import Job
    from tui_trainer.engine.loop.trainer import Trainer


class CannotShard(TrainerError):
    """The job cannot be trained with --strategy fsdp (said before any step, nothing written)."""

    exit_code = 2


def check_shardable(job: Job) -> None:
    """CannotShard, in one line, for what FSDP here does not take."""
    model = job.model
    if isinstance(model, torch._dynamo.eval_frame.OptimizedModule):
        raise CannotShard("--strategy fsdp does not take a torch.compile'd model yet; return the plain model "
                          "from the job factory, or use --strategy ddp")
    if job.ema is not None:
        raise CannotShard("--strategy fsdp does not shard the job's EMA copy of the model; use --strategy ddp")
    if job.grad_scaler is not None:
        raise CannotShard("--strategy fsdp does not take the job's GradScaler (FSDP needs its sharded one); "
                          "use --strategy ddp, or bf16 without a scaler")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise CannotShard("--strategy fsdp has nothing to shard: the model has no trainable parameters")
    odd = sorted({str(p.dtype) for p in params if not p.is_floating_point()})
    if odd:
        raise CannotShard(f"--strategy fsdp cannot shard parameters of type {', '.join(odd)}")


def wrap(job: Job) -> None:
    """Shard `job.model` in place with FSDP2 and move the optimizer (and its state) onto the shards."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_optimizer_state_dict,
        set_optimizer_state_dict,
    )
    from torch.distributed.fsdp import fully_shard

    check_shardable(job)
    model, optimizer = job.model, job.optimizer
    names = {id(p): n for n, p in model.named_parameters()}
    try:
        groups = [[names[id(p)] for p in group["params"]] for group in optimizer.param_groups]
    except KeyError:
        raise CannotShard("--strategy fsdp: the optimizer holds tensors that are not the model's parameters") from None
    carried = None
    if optimizer.state:  # a resumed state, whole on every rank: sharded again below
        carried = get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True))
    try:
        for module in list(model.modules()):
            if isinstance(module, torch.nn.ModuleList):
                for block in module:
                    if any(p.requires_grad for p in block.parameters()):
                        fully_shard(block)
        fully_shard(model)
    except (RuntimeError, ValueError, TypeError, AssertionError) as exc:
        raise CannotShard(f"FSDP cannot shard this model: {exc}") from None
    sharded = dict(model.named_parameters())
    for group, group_names in zip(optimizer.param_groups, groups):
        group["params"] = [sharded[name] for name in group_names]
    optimizer.state.clear()
    if carried is not None:
        set_optimizer_state_dict(model, optimizer, carried, options=StateDictOptions(full_state_dict=True))


def load_whole(job: Job, weights: Any, optimizer_state: Any) -> None:
    """A whole model and optimizer state (a step folder read in full) into the sharded model and optimizer:
    each rank keeps its shards. Every rank calls it, with the same state."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    whole = StateDictOptions(full_state_dict=True)
    set_model_state_dict(job.model, dict(weights), options=whole)
    set_optimizer_state_dict(job.model, job.optimizer, dict(optimizer_state), options=whole)


class ShardedSaves:
    """The trainer's saves under FSDP (`Saving._checkpoint` hands them here); every rank calls `checkpoint`."""

    def __init__(self, here: int, world: int) -> None:
        self.here, self.world = here, world

    def checkpoint(self, trainer: Trainer, kind: str, evaluate: bool | None) -> Path | None:
        if trainer.step == 0:
            return None
        step, job = trainer.step, trainer.job
        ranks = trainer.control.gather_rank_states(job)
        if evaluate is None:
            evaluate = trainer.policy.eval_before_save
        name = sharded_checkpoint_name(step)
        saved = trainer.checkpoints.saved_at(step, name) if self.here == 0 else None
        already = [saved is not None]
        dist.broadcast_object_list(already, src=0)
        if evaluate and trainer._metrics_step != step:
            trainer._evaluate()  # every rank: a sharded forward needs them all
        if already[0]:
            return trainer._amend(saved, kind, evaluate) if saved is not None else None
        started = time.perf_counter()
        final = trainer.run_dir / name
        partial = sharded_folder.partial_path(final)
        problem = self._prepare(trainer, partial) if self.here == 0 else None
        problem = trainer.control.agree_on_disk_full(problem)
        if problem is not None:
            raise problem
        try:
            from tui_trainer.engine.checkpoints.dcp_io import save_shards

            save_shards(partial, job.model, job.optimizer)
            mine = sharded_folder.describe_files(partial, sharded_folder.files_of_rank(partial, self.here))
        except Exception as exc:
            if self.here == 0:
                shutil.rmtree(partial, ignore_errors=True)
            if _full(exc):
                raise NotEnoughDiskSpace(f"disk full while writing {name}; nothing was overwritten. Free space "
                                         f"under {trainer.run_dir} (e.g. `tui-trainer ckpt prune`) and resume.",
                                         directory=str(trainer.run_dir)) from None
            raise
        described: list[Any] = [None] * self.world
        dist.all_gather_object(described, mine)
        if self.here != 0:
            return None
        return self._finish(trainer, kind, partial, described, ranks or {}, started)

    def _prepare(self, trainer: Trainer, partial: Path) -> NotEnoughDiskSpace | None:
        """Rank 0: a fresh `.partial` folder (one a kill left is never reused), if the disk has room."""
        try:
            if partial.exists() or partial.is_symlink():
                if partial.is_symlink():
                    partial.unlink()
                else:
                    shutil.rmtree(partial)
            last = trainer.checkpoints._last_size
            if last:
                trainer.checkpoints.store.check_space(last)
            partial.mkdir(mode=0o700)
        except NotEnoughDiskSpace as exc:
            return exc
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            return NotEnoughDiskSpace(f"the disk is full: {partial.name} could not be made under {trainer.run_dir}",
                                      directory=str(trainer.run_dir))
        return None

    def _finish(self, trainer: Trainer, kind: str, partial: Path, described: list[Any], ranks: dict[str, Any],
                started: float) -> Path:
        """Rank 0: `state.pt`, the manifest (last), the rename to the final name, events and retention."""
        step, job = trainer.step, trainer.job
        fresh = trainer._metrics_step == step
        meta = CheckpointMeta(
            name=partial.name.removesuffix(sharded_folder.PARTIAL_SUFFIX), step=step, epoch=job.batches.epoch,
            kind=kind, train_loss=trainer._last_loss, metrics=dict(trainer._last_metrics) if fresh else {},
            metrics_step=step if fresh else None, run_id=trainer.info.run_id,
            healthy=True,  # `Saving._state_healthy` said so, and an anomaly's update is never applied
        )
        trainer._rollbacks = 0  # a new healthy checkpoint: automatic roll-backs count afresh
        trainer.history.sync()  # a checkpoint's history_end never points past what is on disk
        state = training_state.capture(
            job, meta, {"target": trainer.target, "job": trainer.info.job, "job_options": trainer.info.job_options,
                        training_state.HISTORY_KEY: trainer.history.summary_state(), **ranks},
            sharded=True,
        )
        try:
            fd = os.open(partial / sharded_folder.STATE_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            files: dict[str, Any] = {}
            for part in described:
                files.update(part)
            files.update(sharded_folder.describe_files(partial, [sharded_folder.DCP_METADATA, sharded_folder.STATE_FILE]))
            sharded_folder.write_manifest(partial, files, self.world, step)
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            if is_disk_full(exc):
                raise NotEnoughDiskSpace(f"disk full while writing {meta.name}; nothing was overwritten. Free space "
                                         f"under {trainer.run_dir} (e.g. `tui-trainer ckpt prune`) and resume.",
                                         directory=str(trainer.run_dir)) from None
            raise
        stored = trainer.checkpoints.commit_sharded(partial, meta, time.perf_counter() - started)
        return stored.path


def _full(exc: BaseException) -> bool:
    """A DCP failure on any rank that was a full disk (DCP wraps each rank's error in its own)."""
    if isinstance(exc, OSError) and is_disk_full(exc):
        return True
    text = str(exc)
    return "No space left on device" in text or "Disk quota exceeded" in text
