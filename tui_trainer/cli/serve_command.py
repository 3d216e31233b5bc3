"""`tui-trainer serve`: the same dashboard in a browser, through textual-serve.

Each browser tab runs its own `tui-trainer ...` process with the arguments that follow the
serve options. The page has no authentication, so it is only ever served on a loopback address;
reach it from another machine through an SSH tunnel.
"""

from __future__ import annotations

import argparse
import ipaddress
import shlex
import sys
from typing import Any

from tui_trainer.engine.errors import TrainerError

INSTALL_HINT = "pip install 'tui-trainer[serve]'"


class ServeUnavailable(TrainerError):
    """textual-serve is an optional dependency."""


class NotLoopback(TrainerError):
    """Anyone who can reach the page can steer and stop the run."""


def add_parser(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve the dashboard to a browser on this machine (needs tui-trainer[serve])",
        description="Serve the dashboard to a web browser. ARGS are those of `tui-trainer` itself: none opens "
        "the demo, `train --max-iters 400 ...` starts a run, `watch RUN_DIR` follows one. Each browser tab "
        "runs its own process. The page has no login, so it is served on a loopback address only; from "
        "another machine use an SSH tunnel (ssh -L 8000:127.0.0.1:8000 HOST).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="a loopback address (default: 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="TCP port (default: 8000)")
    serve.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="the command to serve, as for tui-trainer")
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    check_loopback(args.host)
    theme = getattr(args, "theme", None)  # `tui-trainer --theme mono serve ...`
    served = (["--theme", theme] if theme else []) + args.args
    command = shlex.join([sys.executable, "-m", "tui_trainer", *served])
    try:
        from textual_serve.server import Server
    except ImportError:
        raise ServeUnavailable(f"serving in a browser needs textual-serve: {INSTALL_HINT}") from None
    Server(command, host=args.host, port=args.port, title=shlex.join(["tui-trainer", *served])).serve()
    return 0


def check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise NotLoopback(
            f"--host {host} is not a loopback address: the page has no login, so it is served on 127.0.0.1 "
            "or ::1 only; from another machine use an SSH tunnel (ssh -L 8000:127.0.0.1:8000 HOST)"
        )


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 1 and 65535, got {port}")
    return port
