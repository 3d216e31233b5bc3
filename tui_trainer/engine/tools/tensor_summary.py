"""Counting what a state dict holds: tensors, parameters, bytes and dtypes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class TensorSummary:
    """`parameters` and `bytes` count a tensor once however many keys share it (tied weights)."""

    tensors: int
    parameters: int
    bytes: int
    dtypes: dict[str, int] = field(default_factory=dict)  # dtype name -> number of tensors
    shared_keys: tuple[str, ...] = ()  # keys whose tensor aliases an earlier key's


def summarize_tensors(state: Mapping[str, Any]) -> TensorSummary:
    seen: set[tuple[int, int, tuple[int, ...], tuple[int, ...]]] = set()
    parameters = nbytes = 0
    shared = []
    dtypes: Counter[str] = Counter()
    tensors = 0
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        tensors += 1
        dtypes[dtype_name(value.dtype)] += 1
        identity = alias_key(value)
        if identity in seen:
            shared.append(key)
            continue
        seen.add(identity)
        parameters += value.numel()
        nbytes += value.numel() * value.element_size()
    return TensorSummary(tensors, parameters, nbytes, dict(dtypes.most_common()), tuple(shared))


def alias_key(tensor: torch.Tensor) -> tuple[int, int, tuple[int, ...], tuple[int, ...]]:
    """Equal for two tensors that are views of the same memory with the same layout."""
    if tensor.is_sparse or tensor.device.type == "meta" or tensor.numel() == 0:
        return (id(tensor), 0, (), ())
    return (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tuple(tensor.stride()))


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def describe_dtypes(dtypes: Mapping[str, int]) -> str:
    return ", ".join(f"{name} x{count}" for name, count in dtypes.items()) or "-"
