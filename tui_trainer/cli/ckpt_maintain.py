"""`tui-trainer ckpt prune|delete|pin|unpin|export|verify`: the commands that maintain checkpoints.

Every path is checked before use and every user error is a TrainerError, which `main` prints
as one line. Commands that delete ask first on a terminal, and refuse without `--yes` elsewhere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tui_trainer.cli.ckpt_paths import (
    existing_checkpoint,
    existing_dir,
    stored_checkpoint,
)
from tui_trainer.engine.checkpoints.previewed_prune import prune_previewed
from tui_trainer.engine.checkpoints.store import StoredCheckpoint
from tui_trainer.engine.errors import TrainerError
from tui_trainer.engine.rundir.layout import is_locked, store_for
from tui_trainer.engine.sizes import human_bytes
from tui_trainer.engine.words import counted


class NotConfirmed(TrainerError):
    """A destructive command was not confirmed."""


class ProtectedCheckpoint(TrainerError):
    """Deleting this checkpoint needs --force."""


class BadArgument(TrainerError):
    """An argument is out of range."""


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
    # Only what was listed, and only what keep-last still deletes under the store lock: a pin,
    # a save or the trainer's retention since the listing changes what goes, and the output says so.
    outcome = prune_previewed(store, args.keep, [c.meta.name for c in doomed])
    for stored, size in outcome.deleted:
        print(f"deleted {stored.meta.name} (step {stored.meta.step}, {human_bytes(size)})")
    for note in outcome.notes():
        print(note)
    print(f"freed {human_bytes(outcome.freed_bytes)}")
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
    source = existing_checkpoint(args.ckpt, "pass one checkpoint file or checkpoint folder")
    from tui_trainer.engine.tools.export import export_weights  # imports torch

    result = export_weights(source, Path(args.out), args.format, overwrite=args.force, strip_prefix=args.strip_prefix)
    print(
        f"{source.name} {human_bytes(result.checkpoint_bytes)} -> {result.out_path.name} "
        f"{human_bytes(result.weights_bytes)} of weights ({result.ratio:.0%})"
    )
    print(f"{result.tensors} tensors, {result.parameters:,} parameters, {result.fmt}")
    if result.stripped:
        print(f"took {args.strip_prefix!r} off {result.stripped} of {result.tensors} names")
    if result.tied:
        pairs = ", ".join(f"{left} = {kept}" for left, kept in result.tied)
        print(f"tied weights written once ({pairs}); safetensors.torch.load_model restores the tie")
    if result.skipped:
        print(f"note: left out {len(result.skipped)} non-tensor entries: {', '.join(result.skipped)}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from tui_trainer.engine.tools.verify import verify_path

    results = verify_path(args.path)
    if not results:
        print(f"no checkpoint files under {args.path}")
        return 0
    for r in results:
        label = "LISTED " if r.listed else "OK     "
        print(f"{label}  {r.path}  {r.detail}" if r.ok else f"PROBLEM  {r.path}: {r.problem}")
    bad = sum(not r.ok for r in results)
    listed = sum(r.ok and r.listed for r in results)
    checked = len(results) - listed
    also = f"; {counted(listed, 'training-state file')} listed, not loaded" if listed else ""
    print(f"{checked} checked: {checked - bad} OK, {bad} with problems{also}")
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
