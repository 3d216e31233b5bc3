"""`verify` of a Hugging Face checkpoint folder and of safetensors files.

Each file is checked as far as it can be without trusting it: safetensors by its header and
size (no torch), the torch files by loading them with weights_only. The Trainer's optimizer,
scheduler and RNG files are training state, not model checkpoints: intact, they are no
problem, and `training_args.bin`, a pickle, is listed and never loaded.
"""

from __future__ import annotations

from pathlib import Path

from tui_trainer.engine.checkpoints import hf_trainer
from tui_trainer.engine.checkpoints.safetensors_header import (
    SUFFIX,
    SafetensorsProblem,
    read_header,
)
from tui_trainer.engine.checkpoints.store import FOREIGN_SUFFIXES
from tui_trainer.engine.errors import CheckpointError, UnsafeCheckpoint
from tui_trainer.engine.sizes import human_bytes
from tui_trainer.engine.tools.verify import VerifyResult, verify_loads, zip_problem


def verify_checkpoint_folder(directory: Path, names: list[str]) -> list[VerifyResult]:
    """Every file of note in one checkpoint folder, and a folder that lacks its weights."""
    present = {name for name in names if not name.startswith(".")}
    results = []
    has_weights = any(name in present for name in (*hf_trainer.WEIGHT_FILES, *hf_trainer.SHARD_INDEXES))
    if not has_weights and (hf_trainer.TRAINER_STATE in present or hf_trainer.CHECKPOINT_DIR_RE.match(directory.name)):
        results.append(VerifyResult(directory, False, "no model weights in it (model.safetensors, pytorch_model.bin "
                                                      "or a shard index): an interrupted save?"))
    for name in sorted(present):
        result = verify_folder_file(directory / name)
        if result is not None:
            results.append(result)
    return results


def verify_folder_file(path: Path) -> VerifyResult | None:
    """One file of a checkpoint folder, or a safetensors file anywhere; None for a file of no concern."""
    name = path.name
    if name.endswith(SUFFIX):
        return verify_safetensors(path)
    if name in hf_trainer.SHARD_INDEXES:
        return _verify_shard_index(path)
    if name == hf_trainer.TRAINER_STATE:
        return _verify_trainer_state(path)
    if name == hf_trainer.TRAINING_ARGS:
        return VerifyResult(path, True, detail="training arguments: a pickle, listed and never loaded", listed=True)
    what = hf_trainer.STATE_FILES.get(name) or ("RNG state" if hf_trainer.RNG_FILE_RE.match(name) else None)
    if what is not None:
        return _verify_state_file(path, what)
    if name.endswith(FOREIGN_SUFFIXES):  # pytorch_model.bin and the like: weights, loaded safely
        return verify_loads(path)
    return None


def verify_safetensors(path: Path) -> VerifyResult:
    try:
        header = read_header(path)
    except SafetensorsProblem as exc:
        return VerifyResult(path, False, str(exc))
    detail = (f"safetensors, header and size agree ({len(header.tensors)} tensors, "
              f"{header.parameters:,} parameters), {human_bytes(header.file_bytes)}")
    return VerifyResult(path, True, detail=detail)


def _verify_state_file(path: Path, what: str) -> VerifyResult:
    damaged = zip_problem(path)
    if damaged is not None:
        return VerifyResult(path, False, f"{what}: {damaged}")
    from tui_trainer.engine.checkpoints.file import load_checkpoint  # imports torch

    try:
        load_checkpoint(path, mmap=True)
    except UnsafeCheckpoint:
        # HF's RNG state holds numpy's: intact as far as its zip says, and not opened further.
        return VerifyResult(path, True, detail=f"{what}: intact, not loaded (it holds more than tensors)", listed=True)
    except CheckpointError as exc:
        return VerifyResult(path, False, f"{what}: {exc}".replace(str(path), path.name))
    return VerifyResult(path, True, detail=f"{what}, loads safely, {human_bytes(path.stat().st_size)}")


def _verify_trainer_state(path: Path) -> VerifyResult:
    try:
        state = hf_trainer.read_trainer_state(path.parent) or {}
    except hf_trainer.TrainerStateProblem as exc:
        return VerifyResult(path, False, str(exc).replace(str(path), "it"))
    entries = len(state.get("log_history", []))
    return VerifyResult(path, True, detail=f"trainer state: step {state.get('global_step', '-')}, {entries} log entries")


def _verify_shard_index(path: Path) -> VerifyResult:
    from tui_trainer.engine.checkpoints.hf_load import shards_of  # imports torch

    try:
        shards = shards_of(path)
    except CheckpointError as exc:
        return VerifyResult(path, False, str(exc).replace(str(path), "it"))
    missing = [s for s in shards if not (path.parent / s).is_file()]
    if missing:
        return VerifyResult(path, False, f"names shards that are missing: {', '.join(missing)}")
    return VerifyResult(path, True, detail=f"shard index of {len(shards)} files, all present")
