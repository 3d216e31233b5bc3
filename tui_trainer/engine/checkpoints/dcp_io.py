"""Reading and writing sharded step folders with torch's Distributed Checkpoint (DCP), safely.

Writing: every rank saves its shards of the model and optimizer (`torch.distributed.checkpoint
.state_dict.get_state_dict`, keyed by parameter name) into the `.partial` folder; rank 0 adds
`state.pt` and the manifest (`sharded_folder`), and the store renames the folder.

Reading never trusts the folder: the manifest is checked first (every file's size and SHA-256),
DCP's `.metadata` is read with an unpickler that builds only DCP's own record types (DCP itself
uses plain pickle, which would run code from a crafted file), and the values DCP stores as bytes
are loaded with `weights_only=True` (DCP's default planner loads them with `weights_only=False`).

`load_full` reads a folder saved by any number of ranks into whole tensors in one process,
without a process group (as torch's own `dcp_to_torch_save` does): what `resume` (on any number
of ranks, before sharding again), `ckpt export`, `show` and `compare` use.
"""

from __future__ import annotations

import builtins
import collections
import io
import pathlib
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemReader, FileSystemWriter
from torch.distributed.checkpoint.default_planner import (  # torch's own dcp_to_torch_save reads with these
    DefaultLoadPlanner,
    _EmptyStateDictLoadPlanner,
)
from torch.distributed.checkpoint.metadata import Metadata
from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

from tui_trainer.engine.checkpoints.sharded_folder import (
    DCP_METADATA,
    METADATA_GLOBALS,
    STATE_FILE,
    manifest_problem,
    metadata_problem,
)
from tui_trainer.engine.errors import CheckpointCorrupt, UnsafeCheckpoint

# The optimizer state of a sharded checkpoint is keyed by parameter name (DCP's form), not by
# index as `optimizer.state_dict()` is; `training_state.restore` reads it with `set_state_dict`.
OPTIMIZER_FORM_KEY = "optimizer_form"
BY_NAME = "by_name"



class _MetadataUnpickler(pickle.Unpickler):
    """Builds DCP's metadata records, torch sizes and dtypes; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if (module, name) in METADATA_GLOBALS:
            where = {"pathlib": pathlib, "collections": collections, "builtins": builtins}.get(module)
            return getattr(where, name) if where is not None else super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name}")


class SafeReader(FileSystemReader):
    """DCP's file reader, but `.metadata` is unpickled with `_MetadataUnpickler`."""

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        path = Path(self.path) / DCP_METADATA
        try:
            with open(path, "rb") as f:
                metadata = _MetadataUnpickler(f).load()
        except pickle.UnpicklingError as exc:
            raise UnsafeCheckpoint(f"{path} names {exc}, which a DCP checkpoint's metadata never holds; "
                                   "it was not loaded") from None
        except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, RecursionError) as exc:
            raise CheckpointCorrupt(f"{path} is damaged ({type(exc).__name__})") from None
        if not isinstance(metadata, Metadata):
            raise CheckpointCorrupt(f"{path} is not DCP metadata")
        metadata.storage_meta = metadata.storage_meta or dcp.metadata.StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


def _safe_bytes(value: io.BytesIO) -> Any:
    return torch.load(value, weights_only=True)


class _SafeFullPlanner(_EmptyStateDictLoadPlanner):
    """Loads every tensor whole; its non-tensor values with `weights_only=True`."""

    def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
        _load_bytes(self, read_item, value)


def _load_bytes(planner: DefaultLoadPlanner, read_item: Any, value: io.BytesIO) -> None:
    from torch.distributed.checkpoint._traverse import set_element

    loaded = _safe_bytes(value)
    if planner.flatten_state_dict:
        set_element(planner.original_state_dict, planner.mappings[read_item.dest_index.fqn], loaded)
    else:
        planner.state_dict[read_item.dest_index.fqn] = loaded


def check_folder(folder: Path) -> None:
    """CheckpointCorrupt unless every file of the folder matches its manifest; UnsafeCheckpoint for a
    `.metadata` naming anything but DCP's records."""
    problem = manifest_problem(folder)
    if problem is not None:
        raise CheckpointCorrupt(f"{folder}: {problem}; it was not loaded")
    unsafe = metadata_problem(folder)  # a manifest can be forged as easily as the file it describes
    if unsafe is not None:
        raise UnsafeCheckpoint(f"{folder}: {unsafe}")


def read_state_file(folder: Path) -> dict[str, Any]:
    """`state.pt`: everything but the sharded tensors (checked against the manifest first)."""
    check_folder(folder)
    from tui_trainer.engine.checkpoints.file import load_checkpoint

    state = load_checkpoint(folder / STATE_FILE, map_location="cpu")
    if not isinstance(state, dict):
        raise CheckpointCorrupt(f"{folder / STATE_FILE} is not a training state")
    return state


def load_full(folder: Path) -> dict[str, Any]:
    """The whole training state, tensors unsharded, in this process alone (no process group needed)."""
    state = read_state_file(folder)
    tensors: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "assuming the intent is to load in a single process": it is
        _load_state_dict(tensors, storage_reader=SafeReader(folder), planner=_SafeFullPlanner(), no_dist=True)
    state["model"] = tensors.get("model", {})
    state["optimizer"] = tensors.get("optimizer", {})
    state[OPTIMIZER_FORM_KEY] = BY_NAME
    return state


def save_shards(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """This rank's shards of the model and optimizer into `folder` (a collective: every rank calls it)."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state},
             storage_writer=FileSystemWriter(folder, sync_files=True, overwrite=False))
