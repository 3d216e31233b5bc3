"""`tui-trainer attach [RUN_DIR]` (and `watch`): the dashboard on a run that trains in the background.

Every dashboard is attached: `tui-trainer train` starts its trainer detached and attaches to it
(`start_and_attach`), and `attach` finds the same run again from any terminal. Closing a
dashboard, by `q` or by losing its terminal, never stops the run.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui_trainer.cli.train_commands import DEFAULT_ROOT, add_theme_flag, on_a_screen
from tui_trainer.engine.errors import RunDirError, TrainerError


class NotATerminal(TrainerError):
    """The dashboard needs a terminal (or a browser tab) to draw on."""


@dataclass(frozen=True)
class LiveRun:
    run_dir: Path
    job: str
    holder: Any  # engine.run_dir.LockHolder


def add_parser(commands: Any) -> None:
    for name, text in (
        ("attach", "open the dashboard on a run that trains in the background (re-attach after q or an SSH drop)"),
        ("watch", "like attach; on a run nobody trains, a read-only view"),
    ):
        parser = commands.add_parser(
            name, help=text,
            description="Open the dashboard on a run trained by another process: one started by a dashboard "
            "(and left with q, a closed terminal or a dropped SSH session), `tui-trainer train --headless`, or "
            "a run on a filesystem shared with the trainer's machine. Every key works as in the dashboard that "
            "started it; commands reach the trainer through control.json in the run dir. Leaving never stops "
            "the run. Without RUN_DIR: the live run under checkpoints/ (asks which, if there are several).",
        )
        parser.add_argument("run_dir", type=Path, nargs="?", metavar="RUN_DIR", help="the run dir")
        parser.add_argument("--read-only", action="store_true", default=name == "watch",
                            help="also open a run nobody trains now, to look at it" + (" (the default for watch)" if name == "watch" else ""))
        add_theme_flag(parser, argparse.SUPPRESS)  # so `tui-trainer --theme X attach` keeps X
        parser.set_defaults(handler=run_attach)


def run_attach(args: argparse.Namespace) -> int:
    run_dir = args.run_dir if args.run_dir is not None else pick_live_run(DEFAULT_ROOT)
    check_attachable(run_dir, read_only=args.read_only)
    if not on_a_screen():
        raise NotATerminal(f"{args.command} needs a terminal; for a plain listing use `tui-trainer ckpt list` or "
                           "`ckpt history`")
    return attach(run_dir, theme=getattr(args, "theme", None))


def check_run_dir(path: Path) -> Path:
    """The run dir, or a RunDirError saying what is wrong with the path."""
    if not path.exists():
        raise RunDirError(f"{path} does not exist; give the run dir of a `tui-trainer train` run")
    if not path.is_dir():
        raise RunDirError(f"{path} is not a directory; give the run dir, not a file in it")
    if not (path / "run.json").is_file():
        raise RunDirError(f"{path} is not a tui-trainer run dir (no run.json)")
    return path


def check_attachable(run_dir: Path, read_only: bool) -> None:
    """A live run on this machine, or (with `read_only`) any run; else one line saying what to do.

    Only the lock and `run.json` are read: the dashboard's first frame waits for this.
    """
    import json

    from tui_trainer.engine.rundir.lock import lock_holder

    check_run_dir(run_dir)
    holder = lock_holder(run_dir)
    if holder is not None and not holder.on_this_host:
        raise RunDirError(f"{run_dir} is trained on {holder.host} (pid {holder.pid}); attach from that machine")
    if holder is None and not read_only:
        try:
            state = json.loads((run_dir / "run.json").read_text()).get("state", "unknown")
        except (OSError, ValueError, AttributeError):
            state = "unreadable"
        raise RunDirError(
            f"nothing trains {run_dir} now (its run says {state}); look at it with `tui-trainer watch {run_dir}` "
            f"or continue it with `tui-trainer resume {run_dir}`"
        )


def live_runs(root: Path) -> list[LiveRun]:
    """Runs under `root` (or under a folder in it) that a live process here trains, oldest first.

    Reads the lock files and `run.json` only: `tui-trainer` asks this before its first frame.
    """
    import json

    from tui_trainer.engine.rundir.discover import find_run_dirs
    from tui_trainer.engine.rundir.lock import lock_holder

    found = []
    for run_dir in find_run_dirs(Path(root)):
        holder = lock_holder(run_dir)
        if holder is None or not holder.on_this_host:
            continue
        try:
            info = json.loads((run_dir / "run.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict):
            found.append((str(info.get("created", "")), LiveRun(run_dir, str(info.get("job", "")), holder)))
    return [run for _, run in sorted(found, key=lambda pair: pair[0])]


def pick_live_run(root: Path) -> Path:
    runs = live_runs(root)
    if not runs:
        raise RunDirError(f"no run is training under {root}/ now; name a run dir, or start one with `tui-trainer`")
    if len(runs) == 1:
        return runs[0].run_dir
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        names = ", ".join(str(r.run_dir) for r in runs)
        raise RunDirError(f"{len(runs)} runs are training under {root}/ ({names}); name the one to attach to")
    for number, run in enumerate(runs, 1):
        print(f"  {number}. {run.run_dir}  ({run.holder.describe()}, job {run.job})")
    answer = input(f"attach to which run? [1-{len(runs)}] ").strip()
    if not answer.isdigit() or not 1 <= int(answer) <= len(runs):
        raise RunDirError(f"no run numbered {answer!r}; nothing was opened")
    return runs[int(answer) - 1].run_dir


def attach(run_dir: Path, theme: str | None = None, how: str | None = None) -> int:
    if theme:
        from tui_trainer.tui.theme_library import check_theme_name

        check_theme_name(theme)
    from tui_trainer.tui.attach_app import run_attached

    return run_attached(run_dir=run_dir, theme=theme, note=how)


def start_and_attach(argv: list[str], theme: str | None = None) -> int:
    """Start `tui-trainer ARGV` as a detached trainer and open the dashboard on it at once."""
    from tui_trainer.session.detached import DetachedTrainer
    from tui_trainer.tui.attach_app import run_attached

    # The dashboard starts it on its worker once the first frame is on screen.
    return run_attached(trainer=DetachedTrainer(argv), theme=theme)
