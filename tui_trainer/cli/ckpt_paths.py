"""Checking the paths given to `ckpt` commands before anything reads or changes them."""

from __future__ import annotations

import sys
from pathlib import Path

from tui_trainer.engine.checkpoints import hf_trainer
from tui_trainer.engine.checkpoints.meta import (
    CHECKPOINT_SUFFIX,
    SHARDED_SUFFIX,
    SIDECAR_SUFFIX,
)
from tui_trainer.engine.checkpoints.store import CheckpointStore, StoredCheckpoint
from tui_trainer.engine.errors import CheckpointNotFound, NotACheckpoint, RunDirError
from tui_trainer.engine.rundir.layout import store_for


def existing_dir(path: str | Path, file_hint: str) -> Path:
    """`path` as a directory, or a one-line error; `file_hint` says what to do with a file."""
    directory = Path(path)
    if not directory.exists():
        raise RunDirError(f"{directory} does not exist")
    if not directory.is_dir():
        raise RunDirError(f"{directory} is a file, not a directory; {file_hint}")
    return directory


def existing_file(path: str | Path, dir_hint: str) -> Path:
    """`path` as a checkpoint file, or a one-line error; `dir_hint` says what to do with a dir."""
    file = Path(path)
    if not file.exists():
        raise CheckpointNotFound(f"{file}: no such file")
    if file.is_dir() and file.name.endswith(SHARDED_SUFFIX):  # a step folder of several ranks: one checkpoint
        return file
    if file.is_dir():
        newest = max([*file.glob(f"step_*{CHECKPOINT_SUFFIX}"), *file.glob(f"step_*{SHARDED_SUFFIX}")],
                     default=None, key=lambda p: p.name)  # names sort by step
        example = f" (its newest: {newest})" if newest is not None else ""
        raise NotACheckpoint(f"{file} is a directory, not a checkpoint file; {dir_hint}{example}")
    if file.name.endswith(SIDECAR_SUFFIX):
        checkpoint = file.name.removesuffix(SIDECAR_SUFFIX) + CHECKPOINT_SUFFIX
        raise NotACheckpoint(f"{file} is a metadata sidecar; pass its checkpoint, {file.with_name(checkpoint)}")
    return file


def existing_checkpoint(path: str | Path, dir_hint: str) -> Path:
    """A checkpoint file, or a Hugging Face checkpoint folder (`checkpoint-N/`, an output dir of them).

    An output dir stands for its best checkpoint, else its newest; stderr says which.
    """
    folder = Path(path)
    if folder.is_dir():
        chosen, why = hf_trainer.resolve(folder)
        if hf_trainer.is_checkpoint_dir(chosen):
            if why:
                print(why, file=sys.stderr)
            return chosen
    return existing_file(path, dir_hint)


def stored_checkpoint(path: str | Path) -> tuple[CheckpointStore, StoredCheckpoint]:
    """The store of the file's own directory and the file's entry in it.

    The name acted on is the file's own name in that directory, never a name read from
    metadata, so nothing outside the directory can be touched.
    """
    file = existing_file(path, "pass one checkpoint file of it")
    store = store_for(file.parent)
    try:
        return store, store.get(file.name)
    except CheckpointNotFound:
        raise NotACheckpoint(
            f"{file} is not a checkpoint tui-trainer can read (see `tui-trainer ckpt verify {file}`)"
        ) from None
