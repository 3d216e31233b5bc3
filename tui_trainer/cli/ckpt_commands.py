"""`tui-trainer ckpt ...`: list, inspect, compare, verify, export, pin, prune and delete checkpoints.

This module only defines the arguments; each handler's module is imported when its command
runs, so that `tui-trainer --help` and the dashboard start without the checkpoint tooling.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any


def lazy_handler(module: str, name: str) -> Callable[[argparse.Namespace], Any]:
    """`tui_trainer.cli.<module>.<name>`, imported when the command runs."""

    def run(args: argparse.Namespace) -> Any:
        return getattr(importlib.import_module(f"tui_trainer.cli.{module}"), name)(args)

    return run


def add_parser(subparsers: Any) -> None:
    ckpt = subparsers.add_parser(
        "ckpt",
        help="list, inspect, verify, export and prune checkpoints",
        description="List, inspect, compare, verify, export, pin, prune and delete checkpoints.",
    )
    commands = ckpt.add_subparsers(dest="ckpt_command", metavar="SUBCOMMAND", required=True, parser_class=type(ckpt))

    p = commands.add_parser("list", help="one row per checkpoint of a run dir or folder")
    p.add_argument("dir", metavar="DIR", help="a run dir, a folder of runs (such as checkpoints/: each run's "
                   "checkpoints in turn), or a folder of checkpoint files")
    p.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    p.set_defaults(handler=lazy_handler("ckpt_list", "run_list"))

    p = commands.add_parser("show", help="everything known about one checkpoint (loads it safely)")
    p.add_argument("ckpt", metavar="CKPT", help="a checkpoint file, ours or foreign, or a Hugging Face "
                   "checkpoint folder")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=lazy_handler("ckpt_show", "run_show"))

    p = commands.add_parser("history", help="a run's training history, compactly")
    p.add_argument("path", metavar="DIR", help="a run dir, or a checkpoint file with an embedded history")
    p.add_argument("--json", action="store_true", help="print every record as JSON")
    p.set_defaults(handler=lazy_handler("ckpt_history", "run_history"))

    p = commands.add_parser("compare", help="metrics of two checkpoints and how far the weights moved")
    p.add_argument("a", metavar="A", help="the earlier checkpoint file or folder")
    p.add_argument("b", metavar="B", help="the later checkpoint file or folder")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=lazy_handler("ckpt_compare", "run_compare"))

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
    p.set_defaults(handler=lazy_handler("ckpt_maintain", "run_prune"))

    p = commands.add_parser("export", help="write a checkpoint's model weights alone")
    p.add_argument("ckpt", metavar="CKPT", help="a checkpoint file, ours or foreign, or a Hugging Face "
                   "checkpoint folder (checkpoint-N/, or an output dir: its best checkpoint)")
    p.add_argument("out", metavar="OUT", help="the output file (.safetensors, .pt or .pth)")
    p.add_argument("--format", choices=("safetensors", "pt"), help="default: from OUT's suffix, else safetensors")
    p.add_argument("--strip-prefix", metavar="PREFIX",
                   help="take PREFIX off the weight names, e.g. model. for a LightningModule's wrapped model")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.set_defaults(handler=lazy_handler("ckpt_maintain", "run_export"))

    p = commands.add_parser("verify", help="check checkpoints are complete and match their checksums")
    p.add_argument("path", metavar="PATH", help="a checkpoint file, a run dir, or a dir of run dirs")
    p.set_defaults(handler=lazy_handler("ckpt_maintain", "run_verify"))

    for name, pinned, help_text in (
        ("pin", True, "keep a checkpoint through every prune"),
        ("unpin", False, "let a pinned checkpoint be pruned again"),
    ):
        p = commands.add_parser(name, help=help_text)
        p.add_argument("ckpt", metavar="CKPT", help="a checkpoint file in a run dir")
        p.set_defaults(handler=lazy_handler("ckpt_maintain", "run_pin"), pinned=pinned)

    p = commands.add_parser("delete", help="delete one checkpoint and its sidecar")
    p.add_argument("ckpt", metavar="CKPT", help="a checkpoint file")
    p.add_argument("--force", action="store_true", help="also delete the best, latest or a pinned checkpoint")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=lazy_handler("ckpt_maintain", "run_delete"))
