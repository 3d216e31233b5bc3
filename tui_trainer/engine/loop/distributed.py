"""One run trained by several processes (DDP, started by torchrun): rank 0 owns the run dir.

Rank 0 takes the lock, writes the history, the journal and run.json, polls the control file and
saves every checkpoint; the other ranks train the same steps on their share of the batches and
never write in the run dir. Rank 0's decisions (stop, pause, save now, a periodic save, a new
target or keep-last) reach every rank at the same step through `RankControl`: one broadcast of a
small int64 tensor after each step, so every rank takes the same branch of the loop and none
waits in a collective for one that went elsewhere.

Under DDP a checkpoint holds the replicated model and optimizer once, in the usual plain keys,
and under `RANKS_KEY` each rank's batch position and RNG streams, gathered to rank 0, so each rank
resumes exactly where it stood. Under FSDP (`sharding`) each rank saves its shard into a step
folder. A checkpoint saved by N processes resumes exactly on N, and on M (one included) with the
same weights and optimizer, each rank continuing the epoch where the N had reached together.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from tui_trainer.engine.checkpoints.file import load_checkpoint
from tui_trainer.engine.checkpoints.meta import SHARDED_SUFFIX, CheckpointMeta
from tui_trainer.engine.errors import NotEnoughDiskSpace, TrainerError
from tui_trainer.engine.loop import training_state
from tui_trainer.engine.loop.control import TrainingControl
from tui_trainer.engine.loop.job import Job
from tui_trainer.engine.loop.launch import build_job
from tui_trainer.engine.loop.quiet_ranks import QuietCheckpointer, QuietHistory, QuietRecords
from tui_trainer.engine.loop.rng import capture_rng_state, restore_rng_state
from tui_trainer.engine.loop.saving import SAVE_SYNC
from tui_trainer.engine.loop.trainer import Trainer
from tui_trainer.engine.loop.training_state import RANKS_KEY

# A rank that died (kill -9) must not leave the others waiting forever in a collective.
COLLECTIVE_TIMEOUT_S = 60
STOP_REASONS = ("stopped", "interrupted", "disk_full")  # a stop's reason, by its index + 1 on the wire
# Rank 0's decisions reach the others every this many steps (and at every step a save is due by
# steps): a pause or stop lands at most 3 steps later, and 3 steps of 4 pass without a collective.
SETTLE_EVERY = 4
PAUSED, PERIODIC, REWARM, ROLL_BACK = 1, 2, 4, 8  # flags of a decision


class RankZeroFailed(TrainerError):
    """Rank 0 could not start the run, or decide what an anomaly leads to; the other ranks say so and stop."""


class RankLost(TrainerError):
    """A collective failed: another rank died (kill -9, out of memory) or stopped answering."""

    exit_code = 1


def launched_ranks() -> bool:
    """True in a process that torchrun started as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", "1"))


def join() -> None:
    """Join the process group torchrun set up: gloo for the CPU (and the decisions), NCCL for GPUs."""
    if dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo",
                            timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S))


class RankControl(TrainingControl):
    """A rank's control: requests wait in `inbox`; what rank 0 decided takes effect on every rank at once.

    On rank 0 the signals, the dashboard and the control file ask through `inbox`; on the other
    ranks what is asked there is dropped (torchrun sends a signal to every rank; rank 0 decides).
    The trainer reads only the decided state, which changes in `settle` alone, so every rank
    sees the same state at the same step. `gather_rank_states` collects each rank's resume state
    for rank 0's checkpoint.
    """

    def __init__(self, rank_: int) -> None:
        super().__init__()
        self.rank = rank_
        self.save_every_steps = 0  # the run's periodic saves by steps, due at the same steps on every rank
        self.inbox = TrainingControl()
        self._outgoing_rewarm: object | None = None

    def pause(self) -> None:
        self.inbox.pause()

    def resume(self) -> None:
        self.inbox.resume()

    def toggle_pause(self) -> None:
        self.inbox.toggle_pause()

    def stop(self, reason: str = "stopped") -> None:
        self.inbox.stop(reason)

    def set_target(self, max_iters: int, rewarm: object | None = None) -> None:
        self.inbox.set_target(max_iters, rewarm)

    def save_now(self) -> None:
        self.inbox.save_now()

    def roll_back(self) -> None:
        self.inbox.roll_back()

    def take_roll_back(self) -> bool:
        self.inbox.take_roll_back()  # one not yet settled came after the answer taken here
        return super().take_roll_back()

    def set_keep_last(self, keep_last: int) -> None:
        self.inbox.set_keep_last(keep_last)

    def settle(self, periodic_due: bool, step: int | None = None) -> bool:
        """Broadcast rank 0's decisions and apply them here; True if rank 0 says a periodic save is due.

        After a step (`step` given) only every `SETTLE_EVERY` steps, or where a save by steps is
        due: steps every rank knows alike, so all meet in the broadcast or none do. A save every
        T minutes, which rank 0's clock alone decides, waits for the next of those steps.
        """
        every = self.save_every_steps
        if step is not None and step % SETTLE_EVERY and not (every and step % every == 0):
            return False
        decision = self._decide(periodic_due) if self.rank == 0 else torch.zeros(5, dtype=torch.int64)
        dist.broadcast(decision, src=0)
        flags, stop, target, keep_last, saves = (int(v) for v in decision)
        rewarm = [self._outgoing_rewarm if self.rank == 0 else None]
        if flags & REWARM:
            dist.broadcast_object_list(rewarm, src=0)
        if stop:
            super().stop(STOP_REASONS[stop - 1])
        if flags & ROLL_BACK:
            super().roll_back()
        if flags & PAUSED and not self.paused and self.stop_reason is None:
            super().pause()
        elif not flags & PAUSED and self.paused:
            super().resume()
        if target:
            super().set_target(target, rewarm[0] if flags & REWARM else None)
        if keep_last >= 0:
            super().set_keep_last(keep_last)
        for _ in range(saves):
            super().save_now()
        return bool(flags & PERIODIC)

    def _decide(self, periodic_due: bool) -> torch.Tensor:
        inbox = self.inbox
        target, keep_last, saves = inbox.take_requests()
        reason = inbox.stop_reason
        stop = STOP_REASONS.index(reason) + 1 if reason in STOP_REASONS else (1 if reason else 0)
        rewarm = inbox.take_rewarm()
        self._outgoing_rewarm = rewarm if target is not None else None  # an object: sent in `settle` after the flags
        flags = (PAUSED if inbox.paused else 0) | (PERIODIC if periodic_due else 0)
        flags |= REWARM if self._outgoing_rewarm is not None else 0
        flags |= ROLL_BACK if inbox.take_roll_back() else 0
        return torch.tensor([flags, stop, target or 0, -1 if keep_last is None else keep_last, saves],
                            dtype=torch.int64)

    def wait_while_paused(self, timeout: float) -> bool:
        """While paused every rank waits here, settling on each wake-up, so a resume reaches them all."""
        self.settle(False)
        return super().wait_while_paused(timeout)

    def mean_over_ranks(self, value: torch.Tensor) -> torch.Tensor:
        """The mean over every rank (one all_reduce, on log steps only): the loss of the global batch."""
        total = value.detach().clone()
        dist.all_reduce(total)
        return total / dist.get_world_size()

    def rank_zero_decides(self, decide: Callable[[], Any]) -> Any:
        """Rank 0's `decide()`, on every rank: what an anomaly leads to (rank 0 alone reads the run dir's
        checkpoints and counts the roll-backs since a save). Only at an anomaly: no step pays for it."""
        box: list[Any] = [None]
        failed: BaseException | None = None
        if self.rank == 0:
            try:
                box = [("decided", decide())]
            except BaseException as exc:  # the others must not wait for a decision that never comes
                failed, box = exc, [("failed", str(exc) if isinstance(exc, TrainerError) else type(exc).__name__)]
        dist.broadcast_object_list(box, src=0)
        if failed is not None:
            raise failed
        outcome, value = box[0]
        if outcome == "failed":
            raise RankZeroFailed(f"rank {self.rank}: rank 0 could not decide what the anomaly leads to ({value})")
        return value

    def agree_on_disk_full(self, problem: NotEnoughDiskSpace | None) -> NotEnoughDiskSpace | None:
        """After every save, rank 0's outcome to all ranks, so all stop or all wait for room at the same step."""
        said = None if problem is None else (str(problem), problem.needed_bytes, problem.free_bytes, problem.directory)
        box = [said if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        if self.rank == 0 or box[0] is None:
            return problem
        message, needed, free, directory = box[0]
        return NotEnoughDiskSpace(message, needed_bytes=needed, free_bytes=free, directory=directory)

    def gather_rank_states(self, job: Job) -> dict[str, Any] | None:
        """Every rank's batch position and RNG streams, to rank 0: `{RANKS_KEY: [...]}` there, None elsewhere."""
        mine = {"data": job.batches.state_dict(), "rng": capture_rng_state()}
        states: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(states, mine)
        return {RANKS_KEY: states} if self.rank == 0 else None


def restore_rank_state(job: Job, state: Mapping[str, Any]) -> None:
    """This rank's own batch position and RNG streams, from a checkpoint with `RANKS_KEY`.

    Saved by another number of processes: rank 0's position mapped to this world
    (`training_state.data_state_for`), the RNG streams of rank `rank mod N`.
    """
    saved = state[RANKS_KEY]
    here, world = rank(), world_size()
    if len(saved) == world:
        job.batches.load_state_dict(saved[here]["data"])
        restore_rng_state(saved[here]["rng"])
        return
    job.batches.load_state_dict(training_state.data_state_for(saved[0]["data"], len(saved), world))
    restore_rng_state(saved[here % len(saved)]["rng"])


def on_ranks(launch: Callable[..., Trainer], strategy: str = "ddp") -> Callable[..., Trainer]:
    """`launch` (a new run or a resume) as rank 0; the other ranks follow the run it started.

    `strategy`: "ddp" (each rank a whole copy of the model) or "fsdp" (each rank a shard of it).
    """

    def launch_here(**kw: Any) -> Trainer:
        join()
        here = rank()
        control = RankControl(here)
        if here == 0:
            try:
                trainer = launch(control=control, **kw)
            except BaseException as exc:
                _announce({"failed": str(exc) if isinstance(exc, TrainerError) else type(exc).__name__})
                raise
            _announce(_started(trainer))
        else:
            started = _announce(None)
            if "failed" in started:
                raise RankZeroFailed(f"rank {here}: rank 0 did not start the run ({started['failed']})")
            trainer = _follow(started, control, kw)
        _share_work(trainer, here, world_size(), strategy)
        control.save_every_steps = trainer.policy.every_steps or 0
        if trainer.save_mode != SAVE_SYNC:  # a background save's full disk would surface on rank 0 alone, any step
            trainer.save_mode = SAVE_SYNC
            trainer.notes.append("saves run in the foreground on several processes, so that a full disk stops "
                                 "(or pauses) every rank at the same step")
        _stop_quietly_when_a_rank_dies(trainer, here)
        return trainer

    return launch_here


def _stop_quietly_when_a_rank_dies(trainer: Trainer, here: int) -> None:
    """`trainer.run` raising RankLost, one line, where a collective fails because another rank is gone.

    Gloo sees a dead peer's closed socket at once, so the survivors stop within a step; nothing
    is saved, since a checkpoint needs every rank's part, and the last one saved stays the newest.
    """
    run = trainer.run

    def run_or_lost() -> Any:
        try:
            result = run()
        except RuntimeError as exc:
            if not _lost_a_rank(exc):
                raise
            raise RankLost(f"rank {here} stopped at step {trainer.step}: another process of the run is gone "
                           f"({_what_failed(exc)})") from None
        _leave()
        return result

    trainer.run = run_or_lost  # type: ignore[method-assign]


def _leave() -> None:
    """Wait for every rank to finish its run, then take the process group down. A rank that simply
    exits instead can be aborted by the group's own threads ("terminate called without an active
    exception") while another rank is still saving."""
    try:
        dist.barrier()
    except RuntimeError as exc:
        if not _lost_a_rank(exc):
            raise
        return  # another rank is already gone: nothing left to agree on
    dist.destroy_process_group()


def _lost_a_rank(exc: RuntimeError) -> bool:
    return isinstance(exc, dist.DistError) or "gloo" in str(exc).lower() or "nccl" in str(exc).lower()


def _what_failed(exc: RuntimeError) -> str:
    """The gist of a backend's message (`[pair.cc:537] Read error [host]:port: Connection reset by peer. ...`)."""
    found = re.search(r"(connection (reset|closed)[^.]*|timed out[^.]*)", str(exc), re.IGNORECASE)
    return found.group(1) if found else type(exc).__name__


def _announce(payload: dict[str, Any] | None) -> dict[str, Any]:
    box = [payload]
    dist.broadcast_object_list(box, src=0)
    assert box[0] is not None
    return box[0]


def _started(trainer: Trainer) -> dict[str, Any]:
    """What the other ranks need to train the run rank 0 started: where, from which state, to which target."""
    meta = CheckpointMeta(name="", step=trainer.step, epoch=trainer.job.batches.epoch, kind="", run_id=trainer.info.run_id)
    return {
        "run_dir": str(trainer.run_dir), "info": trainer.info, "step": trainer.step, "resumed_from": trainer.resumed_from,
        "target": trainer._requested_target, "rewarm": trainer._requested_rewarm,
        "state": training_state.capture(trainer.job, meta, {}),
    }


def _follow(started: dict[str, Any], control: RankControl, kw: Mapping[str, Any]) -> Trainer:
    """A trainer for a rank other than 0: rank 0's job and state, its own share and resume state, no writes."""
    info, run_dir = started["info"], Path(started["run_dir"])
    job = build_job(info.job, info.job_options, info.settings.max_iters, run_dir=run_dir)
    training_state.restore(job, started["state"], "rank 0's state")
    if started["resumed_from"]:
        source = Path(started["resumed_from"])
        if source.name.endswith(SHARDED_SUFFIX):  # its state.pt is enough: the weights came from rank 0
            from tui_trainer.engine.checkpoints.dcp_io import read_state_file

            saved = read_state_file(source)
        else:
            saved = load_checkpoint(source, map_location="cpu")
        if RANKS_KEY in saved:
            restore_rank_state(job, saved)
    history = QuietHistory()
    trainer = Trainer(job, run_dir, info, step=started["step"], target=started["target"], control=control,
                      resumed_from=started["resumed_from"], history=history,  # type: ignore[arg-type]
                      when_disk_full=kw.get("when_disk_full", "stop"))
    if started["rewarm"] is not None:
        trainer.rewarm_at_start(started["rewarm"])
    trainer.records = QuietRecords(run_dir, info, history)  # type: ignore[arg-type]
    trainer.checkpoints = QuietCheckpointer(run_dir, info.run_id, info.policy, trainer._emit, trainer.notes)
    return trainer


def _share_work(trainer: Trainer, here: int, world: int, strategy: str = "ddp") -> None:
    """Give this rank its share of the batches and wrap its model: in DDP (which syncs rank 0's
    weights), or sharded with FSDP, every rank starting from the same whole state."""
    job = trainer.job
    if not callable(getattr(job.batches, "shard", None)):
        raise TrainerError(
            f"training on {world} processes shards EpochBatches and LoaderBatches, and this job's batches are "
            f"{type(job.batches).__name__}; train it in one process (without --nproc)"
        )
    try:
        job.batches.shard(here, world)
    except ValueError as exc:
        raise TrainerError(f"cannot share this job's batches between {world} processes: {exc}") from None
    if strategy == "fsdp":
        from tui_trainer.engine.loop import sharding

        sharding.wrap(job)
        trainer.sharded_saves = sharding.ShardedSaves(here, world)
        if here == 0:
            trainer.notes.append(f"training on {world} processes (FSDP, each holds a shard of the model; "
                                 f"{dist.get_backend()}); every rank writes its shard of each checkpoint, rank 0 "
                                 "the rest of the run dir")
        return
    device = torch.device(job.device)
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    job.model = torch.nn.parallel.DistributedDataParallel(job.model, device_ids=ids)
    if here == 0:
        trainer.notes.append(f"training on {world} processes (DDP, {dist.get_backend()}); rank 0 writes the run dir")
