"""`ckpt show`: everything known about one checkpoint file."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui_trainer.cli import ckpt_format as fmt
from tui_trainer.cli.ckpt_list import marks_of
from tui_trainer.cli.ckpt_paths import existing_checkpoint
from tui_trainer.engine.checkpoints.meta import CheckpointMeta, read_sidecar, sidecar_path
from tui_trainer.engine.errors import CheckpointError, RunDirError
from tui_trainer.engine.rundir.layout import store_for
from tui_trainer.engine.sizes import human_bytes
from tui_trainer.engine.words import counted

if TYPE_CHECKING:
    from tui_trainer.engine.tools.inspect import CheckpointDetails

TENSORS_SHOWN = 8


def run_show(args: argparse.Namespace) -> int:
    path = existing_checkpoint(args.ckpt, "use `tui-trainer ckpt list` for a directory")
    from tui_trainer.engine.tools.inspect import inspect_checkpoint  # imports torch

    details = inspect_checkpoint(path, marks=_marks_for(path))
    if args.json:
        fmt.print_json(show_record(details))
        return 0
    for line in show_lines(details):
        print(line)
    return 0


def _marks_for(path: Path) -> tuple[str, ...]:
    """Marks come from the file's directory, which is read only if the file has a sidecar."""
    if read_sidecar(sidecar_path(path)) is None:
        return ()
    try:
        stored = next((c for c in store_for(path.parent).list() if c.meta.name == path.name), None)
    except (CheckpointError, RunDirError):
        return ()
    return tuple(marks_of(stored)) if stored is not None else ()


def show_record(d: CheckpointDetails) -> dict[str, Any]:
    from tui_trainer.engine.tools.inspect import plain

    return {
        "path": str(d.path),
        "size_bytes": d.size_bytes,
        "format": "tui-trainer" if d.own_format else "foreign",
        "meta": plain(d.meta.to_json()),
        "marks": list(d.marks),
        "sidecar": d.sidecar,
        "sidecar_differences": d.sidecar_differences,
        "checksum": d.checksum,
        "weights": {
            "tensors": d.weights.tensors,
            "parameters": d.weights.parameters,
            "bytes": d.weights.bytes,
            "dtypes": d.weights.dtypes,
            "shared_keys": list(d.weights.shared_keys),
            "shapes": {k: list(shape) for k, shape, _ in d.tensor_shapes},
        },
        "optimizer": d.optimizer,
        **d.parts,
        "rng_streams": d.rng_streams,
        "keys": d.top_level_keys,
        "has_history": d.has_history,
        "monitored": None if d.monitored is None else {
            "monitor": d.monitored.monitor, "mode": d.monitored.mode,
            "current_score": fmt.finite_or_none(d.monitored.current),
            "best_model_score": fmt.finite_or_none(d.monitored.best), "best_model_path": d.monitored.best_path,
        },
        "best_checkpoint": None if d.best_metric is None else {
            "name": d.best_metric[0], "metric": fmt.finite_or_none(d.best_metric[1])},
    }


def foreign_best_rows(d: CheckpointDetails) -> list[tuple[str, str]]:
    """Lightning's monitored score and best, or the best of a Trainer's output dir."""
    rows = []
    if d.monitored is not None:
        s = d.monitored
        mode = f", mode {s.mode}" if s.mode else ""
        rows.append(("monitor", f"{s.monitor} {fmt.format_loss(s.current)} (this checkpoint{mode})"))
        rows.append(("best", f"{s.monitor} {fmt.format_loss(s.best)} in {s.best_name or '-'}"))
    if d.best_metric is not None:
        name, value = d.best_metric
        rows.append(("best", f"{name} ({fmt.format_loss(value)}, per trainer_state.json)"))
    return rows


def show_lines(d: CheckpointDetails) -> list[str]:
    from tui_trainer.engine.tools.tensor_summary import describe_dtypes

    m: CheckpointMeta = d.meta
    kind = "tui-trainer checkpoint" if d.own_format else "foreign checkpoint"
    lines = [f"{d.path.name}  ({kind}, {human_bytes(d.size_bytes)})"]

    def row(label: str, value: Any) -> None:
        lines.append(f"  {label:<11} {value}")

    row("path", d.path)
    if d.marks:
        row("marks", ", ".join(d.marks))
    row("step", f"{fmt.or_dash(m.step if m.step >= 0 else None)}   epoch {fmt.or_dash(m.epoch)}   kind {m.kind}")
    row("train loss", fmt.format_loss(m.train_loss))
    for name, value in sorted(m.metrics.items()):
        stale = m.metric(name) is None
        row(name, fmt.format_loss(value) + (f" (evaluated at step {m.metrics_step})" if stale else ""))
    for label, value in foreign_best_rows(d):
        row(label, value)
    if m.created:
        row("created", m.created)
    if m.run_id:
        row("run", m.run_id)
    sidecar = d.sidecar if d.checksum is None else f"{d.sidecar}, checksum {d.checksum}"
    row("sidecar", sidecar)
    for difference in d.sidecar_differences:
        row("", f"differs from the file: {difference}")
    w = d.weights
    row("weights", f"{w.tensors} tensors, {w.parameters:,} parameters, {human_bytes(w.bytes)}")
    row("", f"dtypes: {describe_dtypes(w.dtypes)}")
    if w.shared_keys:
        row("", f"tied (sharing memory): {', '.join(w.shared_keys)}")
    largest = sorted(d.tensor_shapes, key=lambda t: -math.prod(t[1]))[:TENSORS_SHOWN]
    for key, shape, dtype in largest:
        row("", f"{key}  {list(shape)}  {dtype}")
    if len(d.tensor_shapes) > TENSORS_SHOWN:
        row("", f"... and {len(d.tensor_shapes) - TENSORS_SHOWN} smaller tensors")
    if d.optimizer:
        o = d.optimizer
        lrs = ", ".join(f"{lr:g}" if isinstance(lr, float) else str(lr) for lr in o["lr"])
        slots = f" ({', '.join(o['state_slots'])})" if o["state_slots"] else ""
        groups, tensors = o["param_groups"], o["parameters_with_state"]
        row("optimizer", f"{counted(groups, 'param group')}, lr {lrs or '-'}, state for {tensors} tensors{slots}")
    for name in ("data", "target", "job", "job_options", "config"):
        if name in d.parts:
            value = d.parts[name]
            row(name, json.dumps(value, sort_keys=True) if not isinstance(value, str) else value)
    if d.rng_streams:
        row("rng", ", ".join(d.rng_streams))
    if not d.own_format:
        row("keys", "")
        for key, what in d.top_level_keys.items():
            row("", f"{key}: {what}")
        if d.has_history:
            row("history", f"embedded (see `tui-trainer ckpt history {d.path}`)")
    return lines
