"""`ckpt compare`: two checkpoints side by side, and how far each tensor moved."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from tui_trainer.cli import ckpt_format as fmt
from tui_trainer.cli.ckpt_paths import existing_checkpoint
from tui_trainer.engine.sizes import human_bytes

if TYPE_CHECKING:
    from tui_trainer.engine.tools.compare import CheckpointSide, Comparison

CHANGES_SHOWN = 15
KEYS_SHOWN = 20


def run_compare(args: argparse.Namespace) -> int:
    hint = "pass two checkpoint files or checkpoint folders"
    a, b = existing_checkpoint(args.a, hint), existing_checkpoint(args.b, hint)
    from tui_trainer.engine.tools.compare import compare_checkpoints  # imports torch

    comparison = compare_checkpoints(a, b)
    if args.json:
        fmt.print_json(compare_record(comparison))
        return 0
    from rich.table import Table

    side_a, side_b = comparison.a, comparison.b
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column, justify in (("", "left"), ("A", "right"), ("B", "right"), ("B - A", "right")):
        table.add_column(column, justify=justify, no_wrap=True)
    table.add_row("file", a.name, b.name, "")
    for name, delta in comparison.deltas.items():
        if name == "size_bytes":
            sizes = human_bytes(side_a.size_bytes), human_bytes(side_b.size_bytes)
            table.add_row("size", *sizes, fmt.signed_bytes(delta))
        elif name in ("step", "epoch", "parameters"):
            counts = fmt.count(getattr(side_a, name)), fmt.count(getattr(side_b, name))
            table.add_row(name, *counts, fmt.signed(delta, "{:+,.0f}"))
        else:
            value_a = side_a.train_loss if name == "train_loss" else side_a.metrics.get(name)
            value_b = side_b.train_loss if name == "train_loss" else side_b.metrics.get(name)
            table.add_row(name, fmt.format_loss(value_a), fmt.format_loss(value_b), fmt.signed(delta, "{:+.4f}"))
    console = fmt.console()
    console.print(table)
    print()
    if comparison.changes is None:
        for line in mismatch_lines(comparison):
            print(line)
        return 0
    changes = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("tensor", "shape", "|B - A|", "|A|", "relative"):
        changes.add_column(column, justify="left" if column in ("tensor", "shape") else "right")
    for c in comparison.changes[:CHANGES_SHOWN]:
        norms = f"{c.change_norm:.4g}", f"{c.base_norm:.4g}"
        changes.add_row(c.key, str(list(c.shape)), *norms, fmt.relative(c.relative))
    console.print(changes)
    if len(comparison.changes) > CHANGES_SHOWN:
        print(f"... and {len(comparison.changes) - CHANGES_SHOWN} tensors that changed less (--json lists all)")
    print(
        f"total: |B - A| {comparison.total_change_norm:.4g}, |A| {comparison.total_base_norm:.4g}, "
        f"relative {fmt.relative(comparison.total_relative)}"
    )
    return 0


def compare_record(c: Comparison) -> dict[str, Any]:
    def side(s: CheckpointSide) -> dict[str, Any]:
        return {
            "path": str(s.path),
            "format": "tui-trainer" if s.own_format else "foreign",
            "step": s.step,
            "epoch": s.epoch,
            "train_loss": fmt.finite_or_none(s.train_loss),
            "metrics": {k: fmt.finite_or_none(v) for k, v in s.metrics.items()},
            "tensors": s.tensors,
            "parameters": s.parameters,
            "size_bytes": s.size_bytes,
        }

    return {
        "a": side(c.a),
        "b": side(c.b),
        "deltas": {k: fmt.finite_or_none(v) for k, v in c.deltas.items()},
        "comparable": c.comparable,
        "changes": None
        if c.changes is None
        else [
            {
                "key": t.key,
                "shape": list(t.shape),
                "change_norm": fmt.finite_or_none(t.change_norm),
                "base_norm": fmt.finite_or_none(t.base_norm),
                "relative": fmt.finite_or_none(t.relative),
            }
            for t in c.changes
        ],
        "total": None
        if c.changes is None
        else {
            "change_norm": fmt.finite_or_none(c.total_change_norm),
            "base_norm": fmt.finite_or_none(c.total_base_norm),
            "relative": fmt.finite_or_none(c.total_relative),
        },
        "only_in_a": c.only_in_a,
        "only_in_b": c.only_in_b,
        "shape_mismatches": [{"key": k, "a": list(sa), "b": list(sb)} for k, sa, sb in c.shape_mismatches],
    }


def mismatch_lines(c: Comparison) -> list[str]:
    lines = ["the weights differ in keys or shapes, so they cannot be compared tensor by tensor:"]
    for key, shape_a, shape_b in c.shape_mismatches[:KEYS_SHOWN]:
        lines.append(f"  {key}: A {list(shape_a)}, B {list(shape_b)}")
    for label, keys in (("only in A", c.only_in_a), ("only in B", c.only_in_b)):
        for key in keys[:KEYS_SHOWN]:
            lines.append(f"  {label}: {key}")
        if len(keys) > KEYS_SHOWN:
            lines.append(f"  {label}: ... and {len(keys) - KEYS_SHOWN} more")
    if len(c.shape_mismatches) > KEYS_SHOWN:
        lines.append(f"  ... and {len(c.shape_mismatches) - KEYS_SHOWN} more shape differences")
    return lines
