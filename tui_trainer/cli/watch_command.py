"""`tui-trainer watch RUN_DIR`: the dashboard on a run trained by another process."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tui_trainer.cli.train_commands import add_theme_flag, on_a_screen
from tui_trainer.engine.errors import RunDirError, TrainerError


class NotATerminal(TrainerError):
    """`watch` draws a dashboard and needs a terminal to draw it on."""


def add_parser(commands: Any) -> None:
    watch = commands.add_parser(
        "watch",
        help="open the dashboard on a run another process trains (e.g. a headless one)",
        description="Open the dashboard on a run trained by another process: `tui-trainer train "
        "--headless`, a run on another machine writing to a shared filesystem. It shows the run from "
        "its history and checkpoints; pause, resume, a new target and save-now reach the trainer "
        "through control.json in the run dir. Quitting never stops the run.",
    )
    watch.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the run dir to watch")
    add_theme_flag(watch)
    watch.set_defaults(handler=run_watch)


def check_run_dir(path: Path) -> Path:
    """The run dir, or a RunDirError saying what is wrong with the path."""
    from tui_trainer.engine.run_dir import is_run_dir

    if not path.exists():
        raise RunDirError(f"{path} does not exist; give the run dir of a `tui-trainer train` run")
    if not path.is_dir():
        raise RunDirError(f"{path} is not a directory; give the run dir, not a file in it")
    if not is_run_dir(path):
        raise RunDirError(f"{path} is not a tui-trainer run dir (no run.json)")
    return path


def run_watch(args: argparse.Namespace) -> int:
    run_dir = check_run_dir(args.run_dir)
    if not on_a_screen():
        raise NotATerminal("watch needs a terminal; for a plain listing use `tui-trainer ckpt list` or `ckpt history`")
    if args.theme:
        from tui_trainer.tui.theme_library import check_theme_name

        check_theme_name(args.theme)
    from tui_trainer.tui.watch_app import run_watch as run_watch_app

    return run_watch_app(run_dir, theme=args.theme)
