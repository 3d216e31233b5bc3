"""A model's own parameter names, without the prefixes its wrappers add.

`torch.compile` names a model's state `_orig_mod.<name>`, DataParallel and DDP `module.<name>`.
Checkpoints and exports hold the plain names, so a run trained compiled resumes uncompiled (and
the other way round) and an export loads into the plain model with `strict=True`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import torch

COMPILED_CHILD = "_orig_mod"  # the one child of torch.compile's OptimizedModule
WRAPPER_PREFIX = "module."

V = TypeVar("V")


def unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside any torch.compile, DataParallel or DDP wrappers around `model`."""
    while True:
        inner = getattr(model, COMPILED_CHILD, None)
        if isinstance(inner, torch.nn.Module):
            model = inner
        elif isinstance(model, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


def plain_names(keys: Iterable[str]) -> dict[str, str]:
    """Each key -> the key without `_orig_mod` parts, and without `module.` when every key has it.

    `_orig_mod` is dropped anywhere, as a submodule compiled on its own puts it mid-name. The
    `module.` prefix only goes when all keys share it, so a model's own child called `module`
    beside others keeps its name.
    """
    names = {key: _without_compiled(key) for key in keys}
    if names and all(name.startswith(WRAPPER_PREFIX) for name in names.values()):
        names = {key: name[len(WRAPPER_PREFIX):] for key, name in names.items()}
    return names


def plain_state(state: Mapping[str, V]) -> dict[str, V]:
    """`state` under its plain names (for exports, which must load into the bare model)."""
    names = plain_names(state)
    return {names[key]: value for key, value in state.items()}


def model_state(model: torch.nn.Module) -> dict[str, Any]:
    """The state a checkpoint stores: the unwrapped model's, with no `_orig_mod` in any name."""
    state = unwrapped(model).state_dict()
    return {_without_compiled(key): value for key, value in state.items()}


def renamed_for(model_keys: Iterable[str], weights: Mapping[str, V]) -> dict[str, V]:
    """`weights` under the model's own keys wherever the two differ only by wrapper prefixes.

    A key with no counterpart keeps its name, so a mismatch is still reported by what it is.
    """
    by_plain = {plain: key for key, plain in plain_names(model_keys).items()}
    theirs = plain_names(weights)
    return {by_plain.get(theirs[key], key): value for key, value in weights.items()}


def _without_compiled(key: str) -> str:
    return ".".join(part for part in key.split(".") if part != COMPILED_CHILD)
