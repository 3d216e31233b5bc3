"""`tui-trainer serve`: the dashboard in a browser, through textual-serve, one trainer per served run.

At start-up serve settles which run it serves: it starts `train ...`/`resume ...` (or the demo)
once, detached, as the dashboard would, or takes the run `attach`/`watch` names. Each browser tab
then runs `tui-trainer watch RUN_DIR`, a viewer attached to that run, so closing or reloading a
tab never stops or restarts training, and every tab shows the same run. The page is guarded by a
per-launch token (`serve_app`) and served on a loopback address only.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import secrets
import shlex
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui_trainer.engine.errors import TrainerError

INSTALL_HINT = "pip install 'tui-trainer[serve]'"
SERVED_COMMANDS = "nothing (the demo), train ..., resume ..., attach RUN_DIR or watch RUN_DIR"


class ServeUnavailable(TrainerError):
    """textual-serve is an optional dependency."""


class NotLoopback(TrainerError):
    """Anyone who can reach the page can steer and stop the run."""


class PortInUse(TrainerError):
    pass


class NotServable(TrainerError):
    """ARGS name a command without a dashboard."""


@dataclass(frozen=True)
class ServedRun:
    run_dir: Path
    trainer_pid: int | None  # the live trainer's, None once the run has ended
    started: bool  # started by this serve
    notes: tuple[str, ...] = ()


def add_parser(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve the dashboard to a browser on this machine (needs tui-trainer[serve])",
        description="Serve the dashboard to a web browser. ARGS are those of `tui-trainer` itself: none opens "
        "the demo, `train --max-iters 400 ...` or `resume RUN_DIR` starts the run once, in the background, "
        "`attach RUN_DIR` or `watch RUN_DIR` serves a run already there. Each browser tab is a viewer of that "
        "one run: closing or reloading a tab never stops training. Open the printed URL: its token is the "
        "page's password for this launch. The page is served on a loopback address only; from another "
        "machine use an SSH tunnel (ssh -L 8000:127.0.0.1:8000 HOST).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="a loopback address (default: 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="TCP port (default: 8000)")
    serve.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="the command to serve, as for tui-trainer")
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    check_loopback(args.host)
    served_args = list(args.args)
    theme = getattr(args, "theme", None)  # `tui-trainer --theme mono serve ...`
    try:
        from tui_trainer.cli.serve_app import GuardedServer, check_textual_serve
    except ImportError:
        raise ServeUnavailable(f"serving in a browser needs textual-serve: {INSTALL_HINT}") from None
    check_textual_serve()
    check_port_free(args.host, args.port)
    parsed = parse_served(served_args)
    theme = getattr(parsed, "theme", None) or theme
    if theme:
        from tui_trainer.tui.theme_library import check_theme_name

        check_theme_name(theme)
    run = settle_run(parsed, served_args)
    tab_args = [*(["--theme", theme] if theme else []), "watch", str(run.run_dir)]
    token = secrets.token_urlsafe(32)
    url = f"http://{_url_host(args.host)}:{args.port}/?token={token}"

    def started() -> None:
        for line in describe(run, tab_args, url):
            print(line, flush=True)

    server = GuardedServer(tab_args, host=args.host, port=args.port, token=token,
                           title=shlex.join(["tui-trainer", *tab_args]), on_started=started)
    server.serve()
    print(farewell(run), flush=True)
    return 0


def parse_served(argv: list[str]) -> argparse.Namespace:
    """ARGS as `tui-trainer` parses them; a command without a dashboard is refused."""
    from tui_trainer.cli.main import build_parser

    command = _command_word(argv)
    if command not in (None, "train", "resume", "attach", "watch"):
        raise NotServable(f"serve shows the dashboard, and `{command}` has none; serve {SERVED_COMMANDS}")
    return build_parser().parse_args(argv)


def _command_word(argv: list[str]) -> str | None:
    """The command in `tui-trainer` ARGS: the first word that is not a global option or its value."""
    words = iter(argv)
    for word in words:
        if word == "--theme":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def settle_run(parsed: argparse.Namespace, argv: list[str], root: Path | None = None) -> ServedRun:
    """The one run every tab will show: found, or started once in the background."""
    from tui_trainer.cli.attach_command import check_attachable, live_runs, pick_live_run
    from tui_trainer.cli.train_commands import DEFAULT_ROOT
    from tui_trainer.engine.loop.job import DEMO_JOB
    from tui_trainer.engine.rundir.layout import lock_holder

    root = DEFAULT_ROOT if root is None else root
    command = getattr(parsed, "command", None)
    if command in ("attach", "watch"):
        run_dir = parsed.run_dir if parsed.run_dir is not None else pick_live_run(root)
        check_attachable(run_dir, read_only=parsed.read_only)
        holder = lock_holder(run_dir)
        return ServedRun(run_dir.resolve(), holder.pid if holder else None, started=False)
    if command is None:
        demo = [run for run in live_runs(root) if run.job == DEMO_JOB]
        if demo:
            found = demo[-1]
            return ServedRun(found.run_dir.resolve(), found.holder.pid, started=False,
                             notes=(f"serving the live demo run (job {found.job})",))
    return start_trainer([*argv, "--headless"])


def start_trainer(argv: list[str]) -> ServedRun:
    """`tui-trainer ARGV` detached, as a dashboard starts it; its error as one line."""
    from tui_trainer.session.detached import DetachedTrainer

    print(f"starting `{shlex.join(['tui-trainer', *argv])}` in the background...", flush=True)
    trainer = DetachedTrainer(argv)
    trainer.start()
    try:
        report = trainer.wait_launched()
    except BaseException:  # ctrl+c while it starts: nothing is served, so nothing should train
        if trainer.process is not None and trainer.process.poll() is None:
            trainer.process.terminate()
        raise
    assert report is not None
    if report.error is not None or report.run_dir is None:
        raise TrainerError(report.error or "the trainer did not start")
    return ServedRun(report.run_dir, report.pid, started=True, notes=report.notes)


def describe(run: ServedRun, tab_args: list[str], url: str) -> list[str]:
    """What runs where, and the URL to open."""
    lines = list(run.notes if not run.started else [f"note: {note}" for note in run.notes])
    if run.trainer_pid is not None:
        how = "started it" if run.started else "found it"
        lines.append(f"trainer: pid {run.trainer_pid}, in the background (serve {how}); its output goes to "
                     f"{run.run_dir / 'trainer.log'}")
    else:
        lines.append(f"nothing trains {run.run_dir} now: each tab shows it read-only")
    lines.append(f"run dir: {run.run_dir}")
    lines.append(f"each browser tab runs `{shlex.join(['tui-trainer', *tab_args])}`: closing or reloading a "
                 "tab never stops the run")
    lines.append(f"open {url}")
    lines.append("(the token in that URL is this launch's password; ctrl+c stops serving, not training)")
    return lines


def farewell(run: ServedRun) -> str:
    from tui_trainer.engine.rundir.layout import lock_holder

    holder = lock_holder(run.run_dir)
    if holder is None:
        return f"stopped serving {run.run_dir}"
    return (f"stopped serving; the run goes on in the background (pid {holder.pid}): "
            f"`tui-trainer attach {run.run_dir}` to see it, `kill -INT {holder.pid}` to save and stop it")


def check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise NotLoopback(
            f"--host {host} is not a loopback address: the page steers the run, so it is served on 127.0.0.1 "
            "or ::1 only; from another machine use an SSH tunnel (ssh -L 8000:127.0.0.1:8000 HOST)"
        )


def check_port_free(host: str, port: int) -> None:
    """Before any trainer starts: a port taken by another server would leave that trainer unserved."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with contextlib.closing(socket.socket(family, socket.SOCK_STREAM)) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortInUse(f"cannot serve on {host}:{port} ({exc.strerror}); pick another with --port") from None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 1 and 65535, got {port}")
    return port

