"""The metadata sidecar written beside each checkpoint, readable without torch.

`step_00000300.pt` has `step_00000300.meta.json` beside it. Listing reads only sidecars, so it
never deserializes a checkpoint; the checkpoint file also carries the same facts, so a lost
sidecar can be rebuilt from it.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tui_trainer.engine.atomic import read_regular

FORMAT_NAME = "tui-trainer"
FORMAT_VERSION = 1
CHECKPOINT_SUFFIX = ".pt"
SHARDED_SUFFIX = ".dcp"  # a step folder written by several ranks (engine.checkpoints.sharded_folder)
SIDECAR_SUFFIX = ".meta.json"

# Kinds of checkpoint. Rotating kinds count toward keep-last; a manual save stays until deleted.
PERIODIC, FINAL, INTERRUPTED, MANUAL, FOREIGN = "periodic", "final", "interrupted", "manual", "foreign"
ROTATING_KINDS = frozenset({PERIODIC, FINAL, INTERRUPTED})


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}{CHECKPOINT_SUFFIX}"


def sharded_checkpoint_name(step: int) -> str:
    return f"step_{step:08d}{SHARDED_SUFFIX}"


_NAME_RE = re.compile(r"^step_(\d{8,})\.(pt|dcp)$")


def step_of_name(name: str) -> int | None:
    """The step a checkpoint's file name says (`step_00000300.pt`: 300), or None for another name."""
    found = _NAME_RE.match(name)
    return int(found.group(1)) if found else None


def file_disagrees(name: str, embedded: Any) -> str | None:
    """Why a checkpoint file contradicts itself: its name says one step, its own metadata another."""
    named, inside = step_of_name(name), embedded.get("step") if isinstance(embedded, dict) else None
    if isinstance(inside, int) and not isinstance(inside, bool) and named is not None and inside != named:
        return f"its name says step {named} but it holds step {inside} (renamed?)"
    return None


def sidecar_disagrees(sidecar: CheckpointMeta, name: str, embedded: Any = None) -> str | None:
    """Why a sidecar cannot be believed: it says another step or run than the file it describes.

    The file is the truth: its own metadata (`embedded`, when it has been read) and its name.
    """
    inside = embedded if isinstance(embedded, dict) else {}
    step = inside.get("step") if isinstance(inside.get("step"), int) else step_of_name(name)
    if step is not None and sidecar.step != step:
        return f"its sidecar says step {sidecar.step} but the file holds step {step}"
    run_id = inside.get("run_id")
    if isinstance(run_id, str) and sidecar.run_id and sidecar.run_id != run_id:
        return f"its sidecar says run {sidecar.run_id} but the file was written by run {run_id}"
    return None


def sidecar_path(checkpoint: Path) -> Path:
    """`step_N.meta.json` beside `step_N.pt` (a file) or `step_N.dcp` (a sharded step folder)."""
    name = checkpoint.name
    stem = name.removesuffix(SHARDED_SUFFIX) if name.endswith(SHARDED_SUFFIX) else name.removesuffix(CHECKPOINT_SUFFIX)
    return checkpoint.with_name(stem + SIDECAR_SUFFIX)


def checkpoint_names_of(sidecar_name: str) -> tuple[str, str]:
    """The names a sidecar can describe: the checkpoint file, or the sharded folder of that step."""
    stem = sidecar_name.removesuffix(SIDECAR_SUFFIX)
    return stem + CHECKPOINT_SUFFIX, stem + SHARDED_SUFFIX


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


@dataclass
class CheckpointMeta:
    """What is known about one checkpoint without opening it."""

    name: str
    step: int
    epoch: int | None = None
    kind: str = PERIODIC
    train_loss: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    metrics_step: int | None = None
    size_bytes: int | None = None
    sha256: str | None = None  # as older sidecars recorded it; new saves fill `checksum`
    checksum: str | None = None  # `algorithm:hex`, e.g. `xxh3_128:...` (hashing_writer)
    created: str | None = None
    run_id: str | None = None
    pinned: bool = False
    format_version: int = FORMAT_VERSION
    # The anomaly guard found the state sound when it was saved (True); None in older checkpoints.
    healthy: bool | None = None

    @property
    def recorded_checksum(self) -> str | None:
        """The checksum to check the file against, `algorithm:hex`, from either field."""
        if self.checksum is not None:
            return self.checksum
        return None if self.sha256 is None else f"sha256:{self.sha256}"

    @property
    def val_loss(self) -> float | None:
        return self.metrics.get("val_loss")

    def metric(self, name: str) -> float | None:
        """The metric's value if it was evaluated on exactly this checkpoint's weights."""
        if name == "train_loss":
            return self.train_loss
        if self.metrics_step is not None and self.metrics_step != self.step:
            return None
        return self.metrics.get(name)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckpointMeta:
        if not isinstance(data, dict):
            raise ValueError("sidecar is not a JSON object")
        known = _FIELD_NAMES if cls is CheckpointMeta else frozenset(f.name for f in fields(cls))
        meta = cls(**(data if data.keys() <= known else {k: v for k, v in data.items() if k in known}))
        if not isinstance(meta.step, int) or not isinstance(meta.name, str):
            raise ValueError("sidecar lacks a step or a name")
        if not isinstance(meta.metrics or {}, dict):
            raise ValueError("sidecar metrics are not a JSON object")
        for name in ("epoch", "metrics_step", "size_bytes"):
            value = getattr(meta, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"sidecar {name} is not an integer")
        for name in ("kind", "created", "run_id", "sha256", "checksum"):
            if not isinstance(getattr(meta, name), (str, type(None))):
                raise ValueError(f"sidecar {name} is not a string")
        meta.metrics = {k: _as_float(v) for k, v in (meta.metrics or {}).items()}
        meta.train_loss = None if meta.train_loss is None else _as_float(meta.train_loss)
        meta.pinned = meta.pinned is True
        meta.healthy = meta.healthy if isinstance(meta.healthy, bool) else None
        return meta


# Computed once: `fields()` per sidecar was a large share of listing a thousand checkpoints.
_FIELD_NAMES = frozenset(f.name for f in fields(CheckpointMeta))


def read_sidecar(path: str | os.PathLike[str]) -> CheckpointMeta | None:
    """The sidecar's metadata, or None if it is missing, unreadable or describes another file.

    Every name read from a sidecar enters here, and it must be the name of the checkpoint the
    sidecar sits beside: one edited to `../../x.pt` or `/x.pt` can never steer a delete, a
    rewrite or a load out of the directory.
    """
    try:
        meta = CheckpointMeta.from_json(json.loads(read_regular(path)))
    except (OSError, ValueError, TypeError, RecursionError):
        return None
    return meta if meta.name in checkpoint_names_of(os.path.basename(os.fspath(path))) else None


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def file_size(path: Path) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None
