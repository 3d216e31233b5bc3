"""Comparing two checkpoints: their progress and metrics, and how far the weights moved."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tui_trainer.engine.checkpoints.hf_trainer import checkpoint_bytes
from tui_trainer.engine.checkpoints.file import foreign_meta, is_own_format, load_checkpoint, model_state_of
from tui_trainer.engine.checkpoints.meta import CheckpointMeta, read_sidecar, sidecar_path
from tui_trainer.engine.tools.tensor_summary import summarize_tensors


@dataclass(frozen=True)
class CheckpointSide:
    path: Path
    own_format: bool
    step: int | None
    epoch: int | None
    train_loss: float | None
    metrics: dict[str, float]
    tensors: int
    parameters: int
    size_bytes: int

    @property
    def val_loss(self) -> float | None:
        return self.metrics.get("val_loss")


@dataclass(frozen=True)
class TensorChange:
    key: str
    shape: tuple[int, ...]
    change_norm: float  # ||b - a||
    base_norm: float  # ||a||

    @property
    def relative(self) -> float:
        return relative_change(self.change_norm, self.base_norm)


@dataclass(frozen=True)
class Comparison:
    """`changes` is None when the two hold different keys or shapes; then the `only_in_*`
    and `shape_mismatches` fields say how they differ."""

    a: CheckpointSide
    b: CheckpointSide
    deltas: dict[str, float | None]  # b - a
    changes: list[TensorChange] | None
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)
    shape_mismatches: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def comparable(self) -> bool:
        return self.changes is not None

    @property
    def total_change_norm(self) -> float | None:
        return math.sqrt(sum(c.change_norm**2 for c in self.changes)) if self.changes is not None else None

    @property
    def total_base_norm(self) -> float | None:
        return math.sqrt(sum(c.base_norm**2 for c in self.changes)) if self.changes is not None else None

    @property
    def total_relative(self) -> float | None:
        if self.changes is None:
            return None
        return relative_change(self.total_change_norm or 0.0, self.total_base_norm or 0.0)


def compare_checkpoints(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> Comparison:
    path_a, path_b = Path(a), Path(b)
    obj_a = load_checkpoint(path_a, mmap=True)
    obj_b = load_checkpoint(path_b, mmap=True)
    state_a, state_b = model_state_of(obj_a, path_a), model_state_of(obj_b, path_b)
    side_a, side_b = describe_side(path_a, obj_a, state_a), describe_side(path_b, obj_b, state_b)
    tensors_a = {k: v for k, v in state_a.items() if isinstance(v, torch.Tensor)}
    tensors_b = {k: v for k, v in state_b.items() if isinstance(v, torch.Tensor)}
    only_a = sorted(tensors_a.keys() - tensors_b.keys())
    only_b = sorted(tensors_b.keys() - tensors_a.keys())
    mismatched = [
        (k, tuple(tensors_a[k].shape), tuple(tensors_b[k].shape))
        for k in tensors_a
        if k in tensors_b and tensors_a[k].shape != tensors_b[k].shape
    ]
    changes = None
    if not (only_a or only_b or mismatched):
        changes = sorted(
            (tensor_change(k, tensors_a[k], tensors_b[k]) for k in tensors_a),
            key=lambda c: (-_sortable(c.relative), -c.change_norm, c.key),
        )
    return Comparison(side_a, side_b, side_deltas(side_a, side_b), changes, only_a, only_b, mismatched)


def describe_side(path: Path, obj: Any, state: Mapping[str, Any]) -> CheckpointSide:
    meta = _meta_of(path, obj)
    summary = summarize_tensors(state)
    return CheckpointSide(
        path=path,
        own_format=is_own_format(obj),
        step=meta.step if meta.step >= 0 else None,
        epoch=meta.epoch,
        train_loss=meta.train_loss,
        metrics={k: v for k, v in meta.metrics.items() if meta.metric(k) is not None},
        tensors=summary.tensors,
        parameters=summary.parameters,
        size_bytes=checkpoint_bytes(path),
    )


def side_deltas(a: CheckpointSide, b: CheckpointSide) -> dict[str, float | None]:
    deltas: dict[str, float | None] = {
        "step": _delta(a.step, b.step),
        "epoch": _delta(a.epoch, b.epoch),
        "train_loss": _delta(a.train_loss, b.train_loss),
    }
    for name in sorted(a.metrics.keys() | b.metrics.keys()):
        deltas[name] = _delta(a.metrics.get(name), b.metrics.get(name))
    deltas["parameters"] = _delta(a.parameters, b.parameters)
    deltas["size_bytes"] = _delta(a.size_bytes, b.size_bytes)
    return deltas


@torch.no_grad()
def tensor_change(key: str, a: torch.Tensor, b: torch.Tensor) -> TensorChange:
    """L2 norms of `b - a` and of `a`, computed in float64 whatever the stored dtype."""
    wide_a, wide_b = _wide(a), _wide(b)
    return TensorChange(
        key=key,
        shape=tuple(a.shape),
        change_norm=float(torch.linalg.vector_norm(wide_b - wide_a)),
        base_norm=float(torch.linalg.vector_norm(wide_a)),
    )


def relative_change(change: float, base: float) -> float:
    """change / base; a change from all zeros is infinite, no change at all is zero."""
    if base > 0:
        return change / base
    return 0.0 if change == 0 else math.inf


def _wide(tensor: torch.Tensor) -> torch.Tensor:
    if tensor.is_complex():
        return tensor.to(torch.complex128)
    return tensor.to(torch.float64)


def _meta_of(path: Path, obj: Any) -> CheckpointMeta:
    if is_own_format(obj):
        sidecar = read_sidecar(sidecar_path(path))
        if sidecar is not None:
            return sidecar
        try:
            meta = CheckpointMeta.from_json(dict(obj["meta"]))
        except (ValueError, TypeError):
            return CheckpointMeta(name=path.name, step=-1)
        meta.name = path.name  # a copied or renamed file keeps its old name inside
        return meta
    if isinstance(obj, Mapping):
        return foreign_meta(obj, path)
    return CheckpointMeta(name=path.name, step=-1)


def _delta(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return b - a


def _sortable(value: float) -> float:
    return -math.inf if math.isnan(value) else value
