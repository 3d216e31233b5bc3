"""Starting from another checkpoint's weights, and resuming with some of the training state new.

`train --init-from CKPT` puts the weights of any checkpoint the product reads (its own,
nanoGPT's, Lightning's, a safetensors file, a Hugging Face `checkpoint-N/`) into a new run's
model at step 0; `resume --fresh-optimizer` keeps a run's weights and step and starts its
optimizer and LR schedule anew; `resume --job-opt` says what differs from the stored options.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

import torch

from tui_trainer.engine.checkpoints.file import load_checkpoint, model_state_of
from tui_trainer.engine.checkpoints.hf_load import folder_weights
from tui_trainer.engine.checkpoints.hf_trainer import resolve
from tui_trainer.engine.checkpoints.plain_keys import renamed_for, unwrapped
from tui_trainer.engine.errors import ArchitectureMismatch
from tui_trainer.engine.loop import lr_takeover
from tui_trainer.engine.loop.job import Job
from tui_trainer.engine.tools.tensor_summary import alias_key

# Prefixes a wrapper adds to every name, beyond torch.compile's and DDP's (plain_keys maps those):
# a LightningModule holding the network as `self.model`.
WRAPPER_PREFIXES = ("model.",)


def init_from(job: Job, source: str | os.PathLike[str]) -> str:
    """Load `source`'s model weights into the job's model (and EMA); return a note saying so.

    ArchitectureMismatch, naming the first key that differs, before any weight is changed.
    """
    path, picked = resolve(source)
    if path.is_dir():  # a checkpoint folder: its weights alone, not its optimizer state
        weights = folder_weights(path)
    else:
        weights = model_state_of(load_checkpoint(path, map_location="cpu"), path)
    model = unwrapped(job.model)
    mapped = mapped_for(model.state_dict(), weights)
    problem = first_mismatch(model.state_dict(), mapped)
    if problem is not None:
        raise ArchitectureMismatch(
            f"--init-from {path} does not fit this job's model: {problem}; "
            "pass the job options that build the model it was trained with")
    with torch.no_grad():
        model.load_state_dict(mapped, strict=False)  # only tied names are left out, filled through their twin
        ema_model = getattr(job.ema, "module", None)
        if isinstance(ema_model, torch.nn.Module):
            ema_model.load_state_dict(mapped_for(ema_model.state_dict(), weights), strict=False)
    where = f" ({picked.split(': ', 1)[1]})" if picked else ""
    return f"weights from {path}{where}: {len(mapped)} tensors; training starts at step 0"


def mapped_for(model_state: Mapping[str, Any], weights: Mapping[str, Any]) -> dict[str, Any]:
    """`weights` under the model's names: wrapper prefixes dropped where that makes the names match."""
    best = renamed_for(model_state, weights)
    for prefix in WRAPPER_PREFIXES:
        if weights and all(key.startswith(prefix) for key in weights):
            stripped = renamed_for(model_state, {key[len(prefix):]: value for key, value in weights.items()})
            if len(stripped.keys() & model_state.keys()) > len(best.keys() & model_state.keys()):
                best = stripped
    return best


def first_mismatch(model_state: Mapping[str, Any], weights: Mapping[str, Any]) -> str | None:
    """The first name or shape that differs, with how many more do; None if the weights fit.

    A name the checkpoint leaves out is no mismatch when the model ties it to one it has
    (a language model's output head, written once as Hugging Face writes it).
    """
    present = {alias_key(t) for k, t in model_state.items() if k in weights and isinstance(t, torch.Tensor)}
    problems = []
    for key, tensor in model_state.items():
        if key not in weights:
            if not (isinstance(tensor, torch.Tensor) and alias_key(tensor) in present):
                problems.append(f"{key} is not in the checkpoint (model {_shape(tensor)})")
        elif _shape(weights[key]) != _shape(tensor):
            problems.append(f"{key}: checkpoint {_shape(weights[key])} vs model {_shape(tensor)}")
    problems += [f"{key} {_shape(weights[key])} is not in the model" for key in weights if key not in model_state]
    if not problems:
        return None
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return problems[0] + more


def fresh_optimizer_state(job: Job, state: Mapping[str, Any], step: int) -> dict[str, Any]:
    """`state` with the just-built job's optimizer in place of the saved one, and its LR schedule at `step`.

    The optimizer starts with no moments; the schedule is the one the job's options build now,
    stepped to where the run is, so the LR is what those options give at this step (and a
    re-warm or a new target plan from there, as they would on any resume).
    """
    fresh = {key: value for key, value in state.items() if key not in ("scheduler", lr_takeover.STATE_KEY)}
    fresh["optimizer"] = job.optimizer.state_dict()
    scheduler = job.scheduler
    if scheduler is not None and not lr_takeover.steps_on_metric(scheduler):
        with warnings.catch_warnings():  # torch warns of a scheduler stepped before its optimizer
            warnings.simplefilter("ignore")
            for _ in range(step):
                scheduler.step()
    return fresh


def job_option_changes(stored: Mapping[str, Any], given: Mapping[str, Any], fresh_optimizer: bool) -> str | None:
    """One line naming each option that differs from the run's stored ones, or None."""
    changed = [f"{key} {stored[key]!r} -> {value!r}" if key in stored else f"{key} {value!r} (new)"
               for key, value in given.items() if key not in stored or stored[key] != value]
    if not changed:
        return None
    line = "job options differ from the run's stored ones: " + ", ".join(changed)
    if not fresh_optimizer:  # an LR option builds the optimizer, whose saved state then replaces it
        line += "; the optimizer and LR schedule continue as saved (add --fresh-optimizer to build them anew)"
    return line


def _shape(value: Any) -> tuple[int, ...] | str:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__

