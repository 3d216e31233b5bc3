"""Loading the weights of safetensors files and Hugging Face checkpoint folders, safely.

safetensors holds tensors and nothing else, so reading it runs no code; a folder's torch
files go through `load_checkpoint` (weights_only) like any other, and `training_args.bin`,
a pickle, is never opened.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tui_trainer.engine.checkpoints import hf_trainer
from tui_trainer.engine.checkpoints.safetensors_header import (
    SUFFIX,
    SafetensorsProblem,
    read_header,
)
from tui_trainer.engine.errors import CheckpointCorrupt, CheckpointError, NotACheckpoint


def load_safetensors(path: Path, map_location: Any = "cpu") -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; its header is checked first, so a cut file is named as such."""
    try:
        read_header(path)
    except SafetensorsProblem as exc:
        raise CheckpointCorrupt(f"{path} is damaged or truncated ({exc})") from None
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    device = str(map_location) if isinstance(map_location, (str, torch.device)) else "cpu"
    try:
        return load_file(path, device=device)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointCorrupt(f"{path} is damaged ({exc})") from None


def load_checkpoint_dir(path: Path, map_location: Any = "cpu", mmap: bool = False) -> dict[str, Any]:
    """A checkpoint folder as a plain checkpoint dict: its weights, optimizer state and progress.

    An output dir stands for its best checkpoint (else its newest), as `hf_trainer.resolve` says.
    """
    path, _ = hf_trainer.resolve(path)
    if not hf_trainer.is_checkpoint_dir(path):
        raise NotACheckpoint(f"{path} is a directory, not a checkpoint file or a Hugging Face checkpoint folder")
    checkpoint: dict[str, Any] = {"model": folder_weights(path, map_location, mmap)}
    optimizer = path / "optimizer.pt"
    if optimizer.is_file():
        try:
            checkpoint["optimizer"] = _torch_file(optimizer, map_location, mmap)
        except CheckpointError:
            pass  # `ckpt verify` says what is wrong with it; the weights are what was asked for
    meta = hf_trainer.checkpoint_meta(path)
    checkpoint["global_step"] = meta.step
    if meta.epoch is not None:
        checkpoint["epoch"] = meta.epoch
    return checkpoint


def folder_weights(path: Path, map_location: Any = "cpu", mmap: bool = False) -> dict[str, torch.Tensor]:
    """The model weights in a folder: one file, or the shards its index names."""
    for name in hf_trainer.WEIGHT_FILES:
        if (path / name).is_file():
            return _weights_file(path / name, map_location, mmap)
    for name in hf_trainer.SHARD_INDEXES:
        index = path / name
        if index.is_file():
            weights: dict[str, torch.Tensor] = {}
            for shard in shards_of(index):
                weights.update(_weights_file(path / shard, map_location, mmap))
            return weights
    raise NotACheckpoint(f"{path} holds no model weights ({', '.join(hf_trainer.WEIGHT_FILES)} or a shard index)")


def shards_of(index: Path) -> list[str]:
    """The shard files a `*.index.json` names, each a plain file name in its folder."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise CheckpointCorrupt(f"{index} is not a readable shard index") from None
    if not all(isinstance(s, str) and s and "/" not in s and "\\" not in s and not s.startswith(".") for s in shards):
        raise CheckpointCorrupt(f"{index} names shards outside its folder; refusing it")
    return shards


def _weights_file(path: Path, map_location: Any, mmap: bool) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointCorrupt(f"{path} is missing")
    if path.name.endswith(SUFFIX):
        return load_safetensors(path, map_location)
    from tui_trainer.engine.checkpoints.file import model_state_of

    return model_state_of(_torch_file(path, map_location, mmap), path)


def _torch_file(path: Path, map_location: Any, mmap: bool) -> Any:
    from tui_trainer.engine.checkpoints.file import load_checkpoint

    return load_checkpoint(path, map_location=map_location, mmap=mmap)
