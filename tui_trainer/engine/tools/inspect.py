"""Everything known about one checkpoint file: sidecar, contents, weights, optimizer and config.

The file is opened through `checkpoint_file.load_checkpoint`, so a file that would run code is
refused rather than inspected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tui_trainer.engine.checkpoints import hf_trainer
from tui_trainer.engine.checkpoints.file import (
    foreign_history,
    foreign_meta,
    is_own_format,
    load_checkpoint,
    model_state_of,
    optimizer_state_of,
)
from tui_trainer.engine.checkpoints.hashing_writer import UnknownChecksum, file_matches
from tui_trainer.engine.checkpoints.lightning_state import (
    MonitoredScore,
    monitored_score,
)
from tui_trainer.engine.checkpoints.meta import (
    CheckpointMeta,
    read_sidecar,
    sidecar_path,
)
from tui_trainer.engine.tools.tensor_summary import (
    TensorSummary,
    dtype_name,
    summarize_tensors,
)

# Facts the sidecar and the file's embedded copy should agree on (pins and checksums are
# recorded only in the sidecar, after the file was written).
COMPARED_FIELDS = ("name", "step", "epoch", "kind", "train_loss", "metrics", "metrics_step", "run_id")
PLAIN_PARTS = ("config", "data", "target", "job", "job_options")


@dataclass
class CheckpointDetails:
    path: Path
    size_bytes: int
    own_format: bool
    meta: CheckpointMeta
    sidecar: str  # "present", "missing" or "damaged"
    sidecar_differences: list[str] = field(default_factory=list)
    checksum: str | None = None  # "matches", "MISMATCH", "not recorded"; None without a sidecar
    marks: tuple[str, ...] = ()
    weights: TensorSummary | None = None
    tensor_shapes: list[tuple[str, tuple[int, ...], str]] = field(default_factory=list)
    optimizer: dict[str, Any] | None = None
    parts: dict[str, Any] = field(default_factory=dict)  # config, data position, target, job
    rng_streams: list[str] = field(default_factory=list)
    top_level_keys: dict[str, str] = field(default_factory=dict)  # key -> what it holds
    has_history: bool = False
    monitored: MonitoredScore | None = None  # a Lightning ModelCheckpoint's score and best
    best_metric: tuple[str, float] | None = None  # a Trainer output's best, from trainer_state.json


def inspect_checkpoint(path: str | Path, marks: tuple[str, ...] = ()) -> CheckpointDetails:
    path = Path(path)
    obj = load_checkpoint(path, mmap=True)
    own = is_own_format(obj)
    sidecar_file = sidecar_path(path)
    has_sidecar = sidecar_file.exists() and path.suffix in (".pt", ".dcp")
    sidecar_meta = read_sidecar(sidecar_file) if has_sidecar else None
    embedded = _embedded_meta(obj) if own else None
    if sidecar_meta is not None:
        meta, sidecar = sidecar_meta, "present"
    else:
        sidecar = "damaged" if has_sidecar else "missing"
        meta = embedded or (foreign_meta(obj, path) if isinstance(obj, Mapping) else CheckpointMeta(path.name, -1))
        meta.name = path.name
    details = CheckpointDetails(
        path=path, size_bytes=hf_trainer.checkpoint_bytes(path), own_format=own, meta=meta, sidecar=sidecar,
        marks=marks,
    )
    if not own:
        _add_foreign_best(details, obj)
    if sidecar_meta is not None:
        details.checksum = _checksum_state(path, sidecar_meta)
        if embedded is not None:
            details.sidecar_differences = [
                f"{name}: sidecar {getattr(sidecar_meta, name)!r}, file {getattr(embedded, name)!r}"
                for name in COMPARED_FIELDS
                if not _same(getattr(sidecar_meta, name), getattr(embedded, name))
            ]
    weights = model_state_of(obj, path)
    details.weights = summarize_tensors(weights)
    details.tensor_shapes = [
        (k, tuple(v.shape), dtype_name(v.dtype)) for k, v in weights.items() if isinstance(v, torch.Tensor)
    ]
    details.optimizer = describe_optimizer(optimizer_state_of(obj))
    if isinstance(obj, Mapping):
        details.parts = {k: plain(obj[k]) for k in PLAIN_PARTS if k in obj}
        if isinstance(obj.get("rng"), Mapping):
            details.rng_streams = sorted(str(k) for k in obj["rng"])
        details.top_level_keys = {str(k): describe_value(v) for k, v in obj.items()}
        details.has_history = foreign_history(obj) is not None or isinstance(obj.get("history"), list)
    return details


def _add_foreign_best(details: CheckpointDetails, obj: Any) -> None:
    """What a foreign checkpoint says of the best: Lightning's callback state, or the Trainer's."""
    details.monitored = monitored_score(obj)
    best_name = details.monitored.best_name if details.monitored else None
    if details.path.is_dir():
        state = _trainer_state(details.path)
        best_name = Path(str(state.get("best_model_checkpoint") or "")).name or None
        best_metric = state.get("best_metric")
        if best_name and isinstance(best_metric, (int, float)):
            details.best_metric = (best_name, float(best_metric))
    if best_name == details.path.name and "best" not in details.marks:
        details.marks = ("best", *details.marks)


def _trainer_state(path: Path) -> dict[str, Any]:
    try:
        return hf_trainer.read_trainer_state(path) or {}
    except hf_trainer.TrainerStateProblem:
        return {}


def describe_optimizer(state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if state is None:
        return None
    groups = state.get("param_groups") or []
    per_param = state.get("state") or {}
    slots = sorted({str(k) for entry in per_param.values() if isinstance(entry, Mapping) for k in entry})
    return {
        "param_groups": len(groups),
        "lr": [plain(g.get("lr")) for g in groups if isinstance(g, Mapping)],
        "parameters_with_state": len(per_param),
        "state_slots": slots,
    }


def describe_value(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor {tuple(value.shape)} {dtype_name(value.dtype)}"
    if isinstance(value, Mapping):
        tensors = sum(isinstance(v, torch.Tensor) for v in value.values())
        return f"dict of {len(value)}" + (f" ({tensors} tensors)" if tensors else "")
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of {len(value)}"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"str of {len(value)} chars"
    return repr(value)


def plain(value: Any) -> Any:
    """A JSON-ready copy: tensors become short descriptions, NaN becomes None."""
    if isinstance(value, torch.Tensor):
        return plain(value.item()) if value.numel() == 1 else describe_value(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _checksum_state(path: Path, meta: CheckpointMeta) -> str:
    checksum = meta.recorded_checksum
    if checksum is None:
        return "not recorded"
    if path.is_dir():  # a sharded step folder: every file against its manifest, the manifest against the sidecar
        from tui_trainer.engine.checkpoints import sharded_folder

        same = sharded_folder.manifest_problem(path) is None and sharded_folder.manifest_digest(path) == meta.sha256
        return "matches" if same else "MISMATCH"
    if meta.size_bytes is not None and path.stat().st_size != meta.size_bytes:
        return "MISMATCH"
    try:
        return "matches" if file_matches(path, checksum) else "MISMATCH"
    except UnknownChecksum:
        return f"unknown algorithm ({checksum.partition(':')[0]})"


def _embedded_meta(obj: Mapping[str, Any]) -> CheckpointMeta | None:
    try:
        return CheckpointMeta.from_json(dict(obj["meta"]))
    except (KeyError, ValueError, TypeError, AttributeError):
        return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b
