"""Reading checkpoint files safely, ours and the plain PyTorch dicts users already have.

Every load goes through `torch.load(weights_only=True)`: a file that would run code, or build
arbitrary Python objects, on load is refused rather than unpickled.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from tui_trainer.engine.checkpoints import hf_trainer
from tui_trainer.engine.checkpoints.lightning_state import monitored_score
from tui_trainer.engine.checkpoints.meta import (
    FOREIGN,
    FORMAT_NAME,
    SHARDED_SUFFIX,
    CheckpointMeta,
    file_size,
)
from tui_trainer.engine.checkpoints.safetensors_header import (
    SUFFIX as SAFETENSORS_SUFFIX,
)
from tui_trainer.engine.errors import (
    CheckpointCorrupt,
    CheckpointError,
    CheckpointNotFound,
    NotACheckpoint,
    UnsafeCheckpoint,
)

MODEL_KEYS = ("model_state_dict", "model", "state_dict", "model_state")
OPTIMIZER_KEYS = ("optimizer_state_dict", "optimizer", "optimizer_state")
STEP_KEYS = ("step", "iteration", "global_step", "iter_num", "iter")
HISTORY_KEYS = ("training_history", "history")

_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")


def load_resumable(store: Any, stored: Any, run_id: str | None) -> tuple[Any, str | None]:
    """A stored checkpoint's state, with why run `run_id` must not resume from it (None: it may).

    What resume and an anomaly's roll-back both ask before they trust a checkpoint: its integrity
    check (`store.integrity_problem`), that it loads, and `resume_problem`. The state is None
    where it did not load.
    """
    from tui_trainer.engine.checkpoints.resumable import resume_problem

    problem = store.integrity_problem(stored)
    if problem is not None:
        return None, problem
    try:
        state = load_checkpoint(stored.path, map_location="cpu")
    except CheckpointError as exc:
        return None, str(exc)
    return state, resume_problem(state, stored.path.name, run_id)


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu", mmap: bool = False) -> Any:
    """Load a checkpoint without executing code from it; map failures to one clear error."""
    path = Path(path)
    if not path.exists():
        raise CheckpointNotFound(f"{path}: no such file")
    if path.name == hf_trainer.TRAINING_ARGS:  # a pickle of the Trainer's arguments: never opened at all
        raise NotACheckpoint(f"{path} holds a Trainer's training arguments (a pickle, never loaded), "
                             f"not weights; pass its folder, {path.parent}")
    if path.is_dir() and path.name.endswith(SHARDED_SUFFIX):  # several ranks' step folder (FSDP)
        from tui_trainer.engine.checkpoints.dcp_io import load_full

        return load_full(path)
    if path.is_dir():  # a Hugging Face checkpoint folder, or an output dir of them; any other is refused
        from tui_trainer.engine.checkpoints.hf_load import load_checkpoint_dir

        return load_checkpoint_dir(path, map_location, mmap)
    size = file_size(path)
    if size == 0:
        raise CheckpointCorrupt(f"{path} is empty (0 bytes): an interrupted write or a truncated copy")
    if path.name.endswith(SAFETENSORS_SUFFIX):
        from tui_trainer.engine.checkpoints.hf_load import load_safetensors

        return load_safetensors(path, map_location)
    is_zip = zipfile.is_zipfile(path)
    try:
        with warnings.catch_warnings():
            # A damaged file makes torch warn about odd pickle protocols; the error below says it all.
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap and is_zip)
    except pickle.UnpicklingError as exc:
        message = str(exc)
        if "Unsupported operand" in message:  # a byte that is no pickle opcode at all
            raise _not_loadable(path, is_zip, "its data is not a pickle") from None
        if "Weights only load failed" in message or "Unsupported global" in message:
            found = _GLOBAL_RE.search(message)
            what = f" ({found.group(1)})" if found else ""
            raise UnsafeCheckpoint(
                f"{path} was refused: loading it would run code or build arbitrary objects{what}. "
                "Only open files you trust, and re-save them as plain state dicts"
            ) from None
        raise _not_loadable(path, is_zip, message) from None
    except KeyError:
        raise _not_loadable(path, is_zip, "unrecognized data") from None
    except Exception as exc:  # garbage makes the unpickler fail in many ways (IndexError, struct.error...)
        raise _not_loadable(path, is_zip, str(exc) or type(exc).__name__) from None


def _not_loadable(path: Path, is_zip: bool, reason: str) -> Exception:
    first_line = reason.strip().splitlines()[0] if reason.strip() else "unknown error"
    with open(path, "rb") as f:
        head = f.read(4)
    if is_zip or head.startswith(b"PK"):
        return CheckpointCorrupt(f"{path} is damaged or truncated ({first_line})")
    return NotACheckpoint(f"{path} is not a PyTorch checkpoint ({first_line})")


def is_own_format(obj: Any) -> bool:
    return isinstance(obj, Mapping) and obj.get("format") == FORMAT_NAME


def model_state_of(obj: Any, path: Path | str = "checkpoint") -> dict[str, torch.Tensor]:
    """The model's state dict in our layout or in the common foreign ones."""
    if isinstance(obj, Mapping):
        for key in MODEL_KEYS:
            value = obj.get(key)
            if isinstance(value, Mapping) and value and _is_tensor_dict(value):
                return dict(value)
        if obj and _is_tensor_dict(obj):
            return dict(obj)  # a bare state_dict
    raise NotACheckpoint(
        f"{path} holds no model weights (looked for {', '.join(MODEL_KEYS)} or a plain state dict)"
    )


def optimizer_state_of(obj: Any) -> Mapping[str, Any] | None:
    if isinstance(obj, Mapping):
        for key in OPTIMIZER_KEYS:
            value = obj.get(key)
            if isinstance(value, Mapping) and "state" in value:
                return value
    return None


def read_meta(path: str | os.PathLike[str]) -> CheckpointMeta:
    """Metadata from inside a checkpoint file (used when it has no sidecar)."""
    path = Path(path)
    if path.is_dir() and path.name.endswith(SHARDED_SUFFIX):
        from tui_trainer.engine.checkpoints.dcp_io import read_state_file
        from tui_trainer.engine.checkpoints.sharded_folder import folder_size

        obj: Any = read_state_file(path)  # its metadata, without the sharded tensors
        size = folder_size(path)
    else:
        obj = load_checkpoint(path, mmap=True)
        size = file_size(path)
    if is_own_format(obj):
        try:
            meta = CheckpointMeta.from_json(dict(obj["meta"]))
        except (KeyError, TypeError, ValueError):
            raise CheckpointCorrupt(f"{path} has damaged metadata; it cannot be listed or resumed") from None
        meta.name = path.name
        meta.size_bytes = size
        meta.sha256 = meta.checksum = None  # the sidecar held it; `verify` reports the loss
        return meta
    model_state_of(obj, path)  # refuse files that hold no weights at all
    return foreign_meta(obj, path)


def foreign_meta(obj: Mapping[str, Any], path: Path) -> CheckpointMeta:
    if path.is_dir():  # a Trainer checkpoint folder: its trainer_state.json says it all
        return hf_trainer.checkpoint_meta(hf_trainer.resolve(path)[0])
    step = _first_int(obj, STEP_KEYS)
    epoch = _first_int(obj, ("epoch",))
    metrics = {}
    val_loss = _as_float(obj.get("val_loss", obj.get("best_val_loss")))
    if val_loss is not None:
        metrics["val_loss"] = val_loss
    score = monitored_score(obj)  # Lightning's ModelCheckpoint: this checkpoint's monitored score
    if score is not None and score.current is not None:
        metrics[score.monitor] = score.current
    stat = os.stat(path)
    created = datetime.fromtimestamp(stat.st_mtime, timezone.utc).astimezone().isoformat(timespec="seconds")
    return CheckpointMeta(
        name=path.name,
        step=step if step is not None else -1,
        epoch=epoch,
        kind=FOREIGN,
        train_loss=_as_float(obj.get("train_loss", obj.get("loss"))),
        metrics=metrics,
        size_bytes=stat.st_size,
        created=created,
    )


def foreign_history(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for key in HISTORY_KEYS:
        value = obj.get(key)
        if isinstance(value, Mapping):
            return value
    return None


def _is_tensor_dict(mapping: Mapping[Any, Any]) -> bool:
    return all(isinstance(k, str) for k in mapping) and any(isinstance(v, torch.Tensor) for v in mapping.values())


def _first_int(obj: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return int(value)
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None
