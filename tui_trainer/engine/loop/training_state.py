"""What a checkpoint captures of a job, and how it is put back.

A checkpoint is a plain dict (as in nanoGPT) of tensors and plain values, so it loads with
`torch.load(weights_only=True)`: model, optimizer, scheduler, grad scaler, EMA, data position,
RNG streams, config, metadata and the history summary (`HISTORY_KEY`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from tui_trainer.engine.checkpoints.file import is_own_format, model_state_of
from tui_trainer.engine.checkpoints.meta import (
    FORMAT_NAME,
    FORMAT_VERSION,
    CheckpointMeta,
)
from tui_trainer.engine.checkpoints.plain_keys import (
    model_state,
    renamed_for,
    unwrapped,
)
from tui_trainer.engine.errors import ArchitectureMismatch, CheckpointCorrupt
from tui_trainer.engine.loop import lr_takeover
from tui_trainer.engine.loop.job import Job
from tui_trainer.engine.loop.rng import capture_rng_state, restore_rng_state
from tui_trainer.engine.words import counted

MAX_MISMATCHES_SHOWN = 3
# The history's per-epoch summary and how much of history.jsonl it covers (plain lists and
# ints), so a resume need not re-read the history; absent from older checkpoints.
HISTORY_KEY = "history_summary"
# Each process's batch position and RNG streams, in rank order, when several trained the run (DDP).
RANKS_KEY = "ranks"


def capture(job: Job, meta: CheckpointMeta, extra: Mapping[str, Any], sharded: bool = False) -> dict[str, Any]:
    """The job's state now. `sharded`: all but the model and optimizer, which the ranks save with DCP."""
    weights: dict[str, Any] = (
        {"optimizer_form": "by_name"} if sharded else {"model": model_state(job.model), "optimizer": job.optimizer.state_dict()}
    )
    state: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "meta": meta.to_json(),
        **weights,
        "data": job.batches.state_dict(),
        "rng": capture_rng_state(),
        "config": job.config,
        **extra,
    }
    for key, part in (("scheduler", lr_takeover.original_of(job.scheduler)), ("grad_scaler", job.grad_scaler),
                      ("ema", job.ema)):
        if part is not None:
            state[key] = part.state_dict()
    takeover = lr_takeover.takeover_state(job.scheduler)  # the engine's continuation of a scheduler past its end
    if takeover is not None:
        state[lr_takeover.STATE_KEY] = takeover
    return state


def check_model_fits(model: torch.nn.Module, weights: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise ArchitectureMismatch naming the first differing keys and shapes."""
    expected = model.state_dict()
    problems = []
    for key, tensor in expected.items():
        if key not in weights:
            problems.append(f"{key} missing from the checkpoint")
        elif tuple(weights[key].shape) != tuple(tensor.shape):
            problems.append(f"{key}: checkpoint {tuple(weights[key].shape)} vs model {tuple(tensor.shape)}")
    problems += [f"{key} not in the model" for key in weights if key not in expected]
    if problems:
        shown = "; ".join(problems[:MAX_MISMATCHES_SHOWN])
        more = f" (and {len(problems) - MAX_MISMATCHES_SHOWN} more)" if len(problems) > MAX_MISMATCHES_SHOWN else ""
        raise ArchitectureMismatch(
            f"{source} does not fit this model: {shown}{more}. Resume with the job and options it was trained with"
        )


def restore(job: Job, state: Mapping[str, Any], source: str) -> None:
    """Load a full training state into `job`, exactly as it was saved."""
    if not is_own_format(state):
        raise CheckpointCorrupt(f"{source} was not written by tui-trainer; it cannot be resumed exactly")
    model = unwrapped(job.model)  # checkpoints hold plain keys, whether or not either run compiled
    weights = renamed_for(model.state_dict(), model_state_of(state, source))
    check_model_fits(model, weights, source)
    _load_weights(job, model, weights, state)
    job.scheduler = lr_takeover.original_of(job.scheduler)
    for key, part in (("scheduler", job.scheduler), ("grad_scaler", job.grad_scaler), ("ema", job.ema)):
        if part is not None and key in state:
            part.load_state_dict(state[key])
    job.scheduler = lr_takeover.resume_takeover(job.scheduler, job.optimizer, state.get(lr_takeover.STATE_KEY))
    saved_ranks = saved_rank_count(state)
    job.batches.load_state_dict(data_state_for(state["data"], saved_ranks, world_size_here()))
    restore_rng_state(state["rng"])


def _load_weights(job: Job, model: torch.nn.Module, weights: Mapping[str, Any], state: Mapping[str, Any]) -> None:
    """The model's and the optimizer's state: whole, or under FSDP in training (a roll-back) each rank its shards."""
    if is_sharded(model):
        from tui_trainer.engine.loop.sharding import load_whole

        load_whole(job, weights, state["optimizer"])
        return
    model.load_state_dict(weights)
    if state.get("optimizer_form") == "by_name":  # a sharded checkpoint's (DCP's form), read whole
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_optimizer_state_dict,
        )

        set_optimizer_state_dict(model, job.optimizer, dict(state["optimizer"]),
                                 options=StateDictOptions(full_state_dict=True))
    else:
        job.optimizer.load_state_dict(state["optimizer"])


def is_sharded(model: torch.nn.Module) -> bool:
    """True for a model FSDP has sharded (its parameters are DTensors)."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def data_state_for(data: Mapping[str, Any], saved_ranks: int, ranks: int) -> Mapping[str, Any]:
    """A rank's saved batch position, for a run of `ranks` processes resuming one of `saved_ranks`.

    Each of N ranks drew every N-th batch of an epoch's order, so N ranks at position p have used
    the first p*N batches together; M ranks continue at p*N // M each (less than M batches of the
    epoch are seen twice or skipped at the seam).
    """
    if saved_ranks == ranks or "position" not in data or not isinstance(data.get("position"), int):
        return data
    return {**data, "position": data["position"] * saved_ranks // ranks}


def saved_rank_count(state: Mapping[str, Any]) -> int:
    ranks = state.get(RANKS_KEY)
    return len(ranks) if isinstance(ranks, list) and ranks else 1


def world_size_here() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def history_summary_of(state: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The history summary a checkpoint carried, for `HistoryWriter(summary_state=...)`."""
    value = state.get(HISTORY_KEY)
    return value if isinstance(value, Mapping) else None


def rank_count_note(state: Mapping[str, Any], source: str) -> str | None:
    """What changes when `state`, saved by N processes, resumes on another number of them."""
    saved, here = saved_rank_count(state), world_size_here()
    if saved == here:
        return None
    return (f"{source} was saved by {counted(saved, 'process', 'processes')} and resumes on {here}: the weights and optimizer are "
            f"the same, each process continues the epoch at the batches the {saved} had reached together, and "
            f"the random streams of rank r come from rank r mod {saved}; so the run from here is not bit-identical "
            f"to one that stayed on {saved} (resume with {'--nproc ' + str(saved) if saved > 1 else 'no --nproc'} for that)")
