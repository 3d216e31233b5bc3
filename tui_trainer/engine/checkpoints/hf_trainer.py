"""A Hugging Face Trainer's output dir, read as a run: one checkpoint per `checkpoint-N/` folder.

Everything here comes from `trainer_state.json` and file sizes; nothing is deserialized and
torch is not imported. `training_args.bin` is a pickle and is never opened.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tui_trainer.engine.checkpoints.meta import FOREIGN, CheckpointMeta
from tui_trainer.engine.checkpoints.store import StoredCheckpoint

TRAINER_STATE = "trainer_state.json"
CHECKPOINT_DIR_RE = re.compile(r"^checkpoint-(\d+)$")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "adapter_model.safetensors", "adapter_model.bin")
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
# HF's training-state files: checked where they can be, never taken for model weights.
STATE_FILES = {"optimizer.pt": "optimizer state", "scheduler.pt": "LR scheduler state",
               "scaler.pt": "grad scaler state"}
RNG_FILE_RE = re.compile(r"^rng_state(_\d+)?\.pth$")
TRAINING_ARGS = "training_args.bin"  # a pickle of TrainingArguments: listed, never loaded
VAL_LOSS = "val_loss"
# Log entries that describe the evaluation run rather than the model.
_NOT_METRICS = ("_runtime", "_samples_per_second", "_steps_per_second")


class TrainerStateProblem(ValueError):
    """trainer_state.json is damaged; the message says how."""


@dataclass(frozen=True)
class HfListing:
    """An output dir's checkpoints, and the metric (with its mode) that picked its best."""

    checkpoints: list[StoredCheckpoint]
    monitor: str
    mode: str


def is_checkpoint_dir(path: str | os.PathLike[str]) -> bool:
    """A folder that holds a model saved by `save_pretrained` or a Trainer checkpoint."""
    path = Path(path)
    return path.is_dir() and any((path / name).is_file() for name in (*WEIGHT_FILES, *SHARD_INDEXES, TRAINER_STATE))


def checkpoint_dirs(output_dir: str | os.PathLike[str]) -> list[Path]:
    """The `checkpoint-N/` folders of an output dir, by step."""
    try:
        with os.scandir(output_dir) as entries:
            found = [(int(m.group(1)), Path(e.path)) for e in entries
                     if (m := CHECKPOINT_DIR_RE.match(e.name)) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    return [path for _, path in sorted(found) if is_checkpoint_dir(path)]


def is_output_dir(path: str | os.PathLike[str]) -> bool:
    return bool(checkpoint_dirs(path))


def read_trainer_state(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The folder's trainer_state.json; None if it has none, TrainerStateProblem if damaged."""
    path = Path(directory) / TRAINER_STATE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainerStateProblem(f"{path} cannot be read ({exc})") from None
    try:
        state = json.loads(text)
    except ValueError as exc:
        raise TrainerStateProblem(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(state, dict) or not isinstance(state.get("log_history", []), list):
        raise TrainerStateProblem(f"{path} is not a Trainer state (no log_history list)")
    return state


def checkpoint_meta(directory: str | os.PathLike[str], state: dict[str, Any] | None = None) -> CheckpointMeta:
    """What trainer_state.json says of one checkpoint folder: step, epoch, train loss, eval metrics."""
    directory = Path(directory)
    if state is None:
        try:
            state = read_trainer_state(directory) or {}
        except TrainerStateProblem:
            state = {}
    named = CHECKPOINT_DIR_RE.match(directory.name)
    step = _int(state.get("global_step"))
    if step is None:
        step = int(named.group(1)) if named else -1
    epoch = _number(state.get("epoch"))
    history = [entry for entry in state.get("log_history", []) if isinstance(entry, dict)]
    train = _last(history, step, lambda e: _number(e.get("loss")) is not None)
    evaluation = _last(history, step, lambda e: bool(eval_metrics(e)))
    return CheckpointMeta(
        name=directory.name,
        step=step,
        epoch=None if epoch is None else math.floor(epoch),
        kind=FOREIGN,
        train_loss=_number(train.get("loss")) if train else None,
        metrics=eval_metrics(evaluation) if evaluation else {},
        metrics_step=_int(evaluation.get("step")) if evaluation else None,
        size_bytes=checkpoint_bytes(directory),
        created=_modified(directory / TRAINER_STATE if (directory / TRAINER_STATE).exists() else directory),
    )


def eval_metrics(entry: dict[str, Any]) -> dict[str, float]:
    """An evaluation log entry's metrics: `eval_loss` as val_loss, the rest under their own names."""
    metrics = {}
    for key, value in entry.items():
        number = _number(value)
        if key.startswith("eval_") and number is not None and not key.endswith(_NOT_METRICS):
            metrics[VAL_LOSS if key == "eval_loss" else key] = number
    return metrics


def list_output_dir(output_dir: str | os.PathLike[str]) -> HfListing:
    """One row per `checkpoint-N/`, the best as trainer_state.json's `best_model_checkpoint` says."""
    dirs = checkpoint_dirs(output_dir)
    states = {}
    for path in dirs:
        try:
            states[path] = read_trainer_state(path) or {}
        except TrainerStateProblem:
            states[path] = {}
    metas = [checkpoint_meta(path, states[path]) for path in dirs]
    newest = max(states.values(), key=lambda s: _int(s.get("global_step")) or -1, default={})
    best_name = Path(str(newest.get("best_model_checkpoint") or "")).name
    best = next((m for m in metas if m.name == best_name), None)
    monitor, mode = _monitor_of(best, _number(newest.get("best_metric")), metas)
    latest = max(metas, key=lambda m: m.step, default=None)
    checkpoints = [StoredCheckpoint(path, meta, best=meta is best, latest=meta is latest)
                   for path, meta in zip(dirs, metas)]
    return HfListing(checkpoints, monitor, mode)


def resolve(path: str | os.PathLike[str]) -> tuple[Path, str | None]:
    """The checkpoint folder an output dir stands for, and why; any other path as it is.

    An output dir with a saved model of its own stands for that; otherwise for its best
    checkpoint, else its newest.
    """
    path = Path(path)
    if not path.is_dir() or any((path / n).is_file() for n in (*WEIGHT_FILES, *SHARD_INDEXES)):
        return path, None
    dirs = checkpoint_dirs(path)
    if not dirs:
        return path, None
    try:
        state = read_trainer_state(dirs[-1]) or {}
    except TrainerStateProblem:
        state = {}
    best = path / Path(str(state.get("best_model_checkpoint") or "")).name
    if best in dirs:
        return best, f"{path}: using {best.name}, its best checkpoint (trainer_state.json)"
    return dirs[-1], f"{path}: using {dirs[-1].name}, its newest checkpoint"


def checkpoint_bytes(path: str | os.PathLike[str]) -> int:
    """A file's size, or the total of a checkpoint folder's files."""
    path = Path(path)
    if not path.is_dir():
        return path.stat().st_size
    total = 0
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
    return total


def _monitor_of(best: CheckpointMeta | None, best_metric: float | None, metas: list[CheckpointMeta]) -> tuple[str, str]:
    """The metric whose value at the best checkpoint is trainer_state.json's `best_metric`.

    The Trainer keeps `metric_for_best_model` and `greater_is_better` in training_args.bin,
    which is never loaded, so both are read back from the numbers.
    """
    monitor = VAL_LOSS
    if best is not None and best_metric is not None:
        monitor = next((k for k, v in best.metrics.items() if math.isclose(v, best_metric, rel_tol=1e-9)), VAL_LOSS)
    values = [m.metric(monitor) for m in metas if m.metric(monitor) is not None]
    if best is not None and best.metric(monitor) is not None and len(set(values)) > 1:
        return monitor, "max" if best.metric(monitor) == max(values) else "min"
    return monitor, "min" if "loss" in monitor else "max"


def _last(history: list[dict[str, Any]], step: int, wanted: Any) -> dict[str, Any] | None:
    """The last entry at or before `step` that is `wanted`."""
    found = None
    for entry in history:
        at = _int(entry.get("step"))
        if wanted(entry) and (step < 0 or at is None or at <= step):
            found = entry
    return found


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _int(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and math.isfinite(number) else None


def _modified(path: Path) -> str | None:
    try:
        stamp = path.stat().st_mtime
    except OSError:
        return None
    return datetime.fromtimestamp(stamp, timezone.utc).astimezone().isoformat(timespec="seconds")
