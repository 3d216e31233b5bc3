"""`tui-trainer ckpt ...`: list, inspect, compare, verify, export, pin, prune and delete checkpoints.

Every path is checked before use and every user error is a TrainerError, which `main` prints
as one line. Commands that delete ask first on a terminal, and refuse without `--yes` elsewhere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tui_trainer.cli import ckpt_compare, ckpt_history, ckpt_list, ckpt_show
from tui_trainer.cli.ckpt_paths import existing_dir, existing_file, stored_checkpoint
from tui_trainer.engine.checkpoint_store import StoredCheckpoint
from tui_trainer.engine.errors import CheckpointNotFound, TrainerError
from tui_trainer.engine.run_dir import is_locked, store_for
from tui_trainer.engine.sizes import human_bytes


class NotConfirmed(TrainerError):
    """A destructive command was not confirmed."""


class ProtectedCheckpoint(TrainerError):
    """Deleting this checkpoint needs --force."""


class BadArgument(TrainerError):
    """An argument is out of range."""


def add_parser(subparsers: Any) -> None:
    ckpt = subparsers.add_parser(
        "ckpt",
        help="list, inspect, verify, export and prune checkpoints",
        description="List, inspect, compare, verify, export, pin, prune and delete checkpoints.",
    )
    commands = ckpt.add_subparsers(dest="ckpt_command", metavar="SUBCOMMAND", required=True, parser_class=type(ckpt))

    p = commands.add_parser("list", help="one row per checkpoint of a run dir or folder")
    p.add_argument("dir", metavar="DIR", help="a run dir, or a folder of checkpoint files")
    p.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    p.set_defaults(handler=ckpt_list.run_list)

    p = commands.add_parser("show", help="everything known about one checkpoint (loads it safely)")
    p.add_argument("ckpt", metavar="CKPT", help="a checkpoint file, ours or foreign")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=ckpt_show.run_show)

    p = commands.add_parser("history", help="a run's training history, compactly")
    p.add_argument("path", metavar="DIR", help="a run dir, or a checkpoint file with an embedded history")
    p.add_argument("--json", action="store_true", help="print every record as JSON")
    p.set_defaults(handler=ckpt_history.run_history)

    p = commands.add_parser("compare", help="metrics of two checkpoints and how far the weights moved")
    p.add_argument("a", metavar="A", help="the earlier checkpoint file")
    p.add_argument("b", metavar="B", help="the later checkpoint file")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=ckpt_compare.run_compare)

    p = commands.add_parser(
        "prune",
        help="delete old checkpoints of a run, keeping the newest N",
        description="Delete a run's older rotating checkpoints, keeping the newest N. The best, the "
        "latest, pinned and manual checkpoints are never deleted.",
    )
    p.add_argument("dir", metavar="DIR", help="a tui-trainer run dir")
    p.add_argument("--keep", type=int, required=True, metavar="N", help="how many of the newest to keep (>= 1)")
    p.add_argument("--dry-run", action="store_true", help="only print what would be deleted")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=run_prune)

    p = commands.add_parser("export", help="write a checkpoint's model weights alone")
    p.add_argument("ckpt", metavar="CKPT", help="a checkpoint file, ours or foreign")
    p.add_argument("out", metavar="OUT", help="the output file (.safetensors, .pt or .pth)")
    p.add_argument("--format", choices=("safetensors", "pt"), help="default: from OUT's suffix, else safetensors")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.set_defaults(handler=run_export)

    p = commands.add_parser("verify", help="check checkpoints are complete and match their checksums")
    p.add_argument("path", metavar="PATH", help="a checkpoint file, a run dir, or a dir of run dirs")
    p.set_defaults(handler=run_verify)

    for name, pinned, help_text in (
        ("pin", True, "keep a checkpoint through every prune"),
        ("unpin", False, "let a pinned checkpoint be pruned again"),
    ):
        p = commands.add_parser(name, help=help_text)
        p.add_argument("ckpt", metavar="CKPT", help="a checkpoint file in a run dir")
        p.set_defaults(handler=run_pin, pinned=pinned)

    p = commands.add_parser("delete", help="delete one checkpoint and its sidecar")
    p.add_argument("ckpt", metavar="CKPT", help="a checkpoint file")
    p.add_argument("--force", action="store_true", help="also delete the best, latest or a pinned checkpoint")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=run_delete)


# --- prune --------------------------------------------------------------------------------------


def run_prune(args: argparse.Namespace) -> int:
    if args.keep < 1:
        raise BadArgument(
            f"--keep must be at least 1, got {args.keep} "
            "(the best, latest, pinned and manual checkpoints are kept in any case)"
        )
    directory = existing_dir(args.dir, "prune takes a run dir; use `tui-trainer ckpt delete` for one file")
    store = store_for(directory)
    doomed = store.plan_prune(args.keep)
    if not doomed:
        print(f"nothing to prune in {directory}: at most {args.keep} rotating checkpoints besides the protected ones")
        return 0
    if not args.dry_run:
        require_confirmation_possible(args.yes, "prune")
    if is_locked(directory):
        print(f"note: a trainer is running in {directory}; pruning alongside it is safe", file=sys.stderr)
    total = sum(c.meta.size_bytes or 0 for c in doomed)
    if args.dry_run or not args.yes:
        for c in doomed:
            print(f"would delete {c.meta.name} (step {c.meta.step}, {human_bytes(c.meta.size_bytes)})")
    if args.dry_run:
        print(f"would free {human_bytes(total)}; dry run, nothing deleted")
        return 0
    if not confirm(f"Delete these {len(doomed)} checkpoints ({human_bytes(total)})?", args.yes):
        print("cancelled; nothing deleted")
        return 1
    still_doomed = {c.meta.name for c in store.plan_prune(args.keep)}  # the run may have moved on
    freed = 0
    for c in doomed:
        if c.meta.name not in still_doomed:
            continue
        try:
            freed += store.delete(c.meta.name)
        except (CheckpointNotFound, FileNotFoundError):
            continue  # the trainer pruned it first
        print(f"deleted {c.meta.name} (step {c.meta.step}, {human_bytes(c.meta.size_bytes)})")
    print(f"freed {human_bytes(freed)}")
    return 0


# --- delete, pin --------------------------------------------------------------------------------


def run_delete(args: argparse.Namespace) -> int:
    store, stored = stored_checkpoint(args.ckpt)
    name = stored.meta.name
    reasons = protection_reasons(stored)
    if reasons and not args.force:
        raise ProtectedCheckpoint(f"{name} is {' and '.join(reasons)}; pass --force to delete it anyway")
    require_confirmation_possible(args.yes, "delete")
    if not confirm(f"Delete {name} ({human_bytes(stored.meta.size_bytes)})?", args.yes):
        print("cancelled; nothing deleted")
        return 1
    if stored.latest and is_locked(store.directory):
        print(f"note: a trainer is running in {store.directory}", file=sys.stderr)
    freed = store.delete(name)
    print(f"deleted {name} ({human_bytes(freed)})")
    return 0


def protection_reasons(stored: StoredCheckpoint) -> list[str]:
    marks = [m for m in ("best", "latest") if getattr(stored, m)]
    reasons = [f"the {' and '.join(marks)} checkpoint"] if marks else []
    if stored.pinned:
        reasons.append("pinned")
    return reasons


def run_pin(args: argparse.Namespace) -> int:
    store, stored = stored_checkpoint(args.ckpt)
    name, word = stored.meta.name, "pinned" if args.pinned else "unpinned"
    if stored.pinned == args.pinned:
        print(f"{name} is already {word}")
        return 0
    store.set_pinned(name, args.pinned)
    if args.pinned:
        print(f"pinned {name}: prune and retention will keep it")
    else:
        print(f"unpinned {name}: it can be pruned once it is neither the best nor the latest")
    return 0


# --- export, verify -----------------------------------------------------------------------------


def run_export(args: argparse.Namespace) -> int:
    source = existing_file(args.ckpt, "pass one checkpoint file")
    from tui_trainer.engine.weights_export import export_weights  # imports torch

    result = export_weights(source, Path(args.out), args.format, overwrite=args.force)
    print(
        f"{source.name} {human_bytes(result.checkpoint_bytes)} -> {result.out_path.name} "
        f"{human_bytes(result.weights_bytes)} of weights ({result.ratio:.0%})"
    )
    print(f"{result.tensors} tensors, {result.parameters:,} parameters, {result.fmt}")
    if result.skipped:
        print(f"note: left out {len(result.skipped)} non-tensor entries: {', '.join(result.skipped)}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from tui_trainer.engine.checkpoint_verify import verify_path

    results = verify_path(args.path)
    if not results:
        print(f"no checkpoint files under {args.path}")
        return 0
    for r in results:
        print(f"OK       {r.path}  {r.detail}" if r.ok else f"PROBLEM  {r.path}: {r.problem}")
    bad = sum(not r.ok for r in results)
    print(f"{len(results)} checked: {len(results) - bad} OK, {bad} with problems")
    return 1 if bad else 0


# --- confirmation -------------------------------------------------------------------------------


def require_confirmation_possible(assume_yes: bool, action: str) -> None:
    if not assume_yes and not sys.stdin.isatty():
        raise NotConfirmed(
            f"refusing to {action} without confirmation: stdin is not a terminal; pass --yes, or --dry-run to preview"
            if action == "prune"
            else f"refusing to {action} without confirmation: stdin is not a terminal; pass --yes"
        )


def confirm(question: str, assume_yes: bool) -> bool:
    if assume_yes:
        return True
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")
