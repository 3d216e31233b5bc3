"""Entry point: parse arguments, run one command, turn known errors into one-line messages."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from tui_trainer import __version__
from tui_trainer.cli import attach_command, ckpt_commands, runs_command, serve_command, train_commands
from tui_trainer.engine.errors import TrainerError, WriteDidNotFit, is_disk_full
from tui_trainer.engine.loop.signals import release_interrupts

PROG = "tui-trainer"


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports bad input on one line (usage stays available through --help)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Train PyTorch models and manage their checkpoints from the terminal. "
        "With no command, opens the dashboard on the embedded demo job (continuing the last unfinished "
        "demo run, or starting a new one beside it).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    train_commands.add_theme_flag(parser)
    train_commands.add_headless_flag(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    train_commands.add_parsers(commands)
    ckpt_commands.add_parser(commands)
    attach_command.add_parser(commands)
    runs_command.add_parser(commands)
    serve_command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # a dashboard starts the same command again, headless, in the background
    handler = getattr(args, "handler", None) or train_commands.run_default
    try:
        if not train_commands.trains_here(args):
            release_interrupts()  # `python -m` held a Ctrl+C for a run; anything else stops at once
        return int(handler(args) or 0)
    except TrainerError as exc:
        _fail(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130
    except BrokenPipeError:
        # `tui-trainer ckpt list | head` closed the pipe early: not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        if is_disk_full(exc):
            # Wherever it struck (an export, a lock, run.json), the write left nothing partial behind.
            said = WriteDidNotFit(exc.filename, exc) if exc.filename else f"the disk is full ({exc.strerror})"
            _fail(f"{said}; make room, then run it again")
            return WriteDidNotFit.exit_code
        _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
        return 1


def _fail(message: str) -> None:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
