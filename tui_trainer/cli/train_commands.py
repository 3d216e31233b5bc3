"""`tui-trainer`, `tui-trainer train` and `tui-trainer resume`: start or continue training."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

from tui_trainer.cli import nproc_launch
from tui_trainer.cli.anomaly_flags import EXIT_ANOMALY, add_anomaly_flags, anomaly_guard
from tui_trainer.cli.arg_types import nonneg_int, positive_int
from tui_trainer.cli.job_options import parse_job_options
from tui_trainer.engine.loop.job import DEMO_JOB

DEFAULT_ROOT = Path("checkpoints")
# Exit codes after a signal: the conventional 128 + signal number, once the checkpoint is saved.
SIGNAL_EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
EXIT_DISK_FULL = 4
SAVE_MODES = ("sync", "background")  # the engine's SAVE_SYNC and SAVE_BACKGROUND, without importing torch
DEFAULT_SAVE_MODE = "background"


def add_parsers(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="start a new training run",
        description="Start a new training run. A run dir that already holds a run is never "
        "overwritten: continue it with `tui-trainer resume`.",
    )
    train.add_argument("--job", default=DEMO_JOB, help="the job factory, package.module:factory (default: the demo)")
    train.add_argument("--job-opt", action="append", default=[], metavar="KEY=VALUE",
                       help="an option passed to the job factory (repeatable), e.g. size=tiny")
    train.add_argument("--run-dir", type=Path, help="where the run lives (default: a new dir under checkpoints/)")
    train.add_argument("--max-iters", type=positive_int, default=2000, help="iteration target (default: 2000)")
    train.add_argument("--init-from", type=Path, metavar="CKPT",
                       help="start from this checkpoint's weights (ours, nanoGPT, Lightning, safetensors or a "
                       "Hugging Face checkpoint-N/ folder) at step 0, with a new optimizer")
    _add_policy_flags(train, defaults=True)
    add_anomaly_flags(train)
    nproc_launch.add_nproc_flags(train)
    _add_notify_flag(train)
    _add_ui_flags(train)
    train.set_defaults(handler=run_train)

    resume = commands.add_parser(
        "resume",
        help="continue a run from its newest valid checkpoint or a given one",
        description="Continue a run. PATH is a run dir (its newest valid checkpoint) or a checkpoint "
        "file of that run. --max-iters is the new total target. Policy flags override the stored ones.",
    )
    resume.add_argument("path", type=Path, metavar="PATH")
    resume.add_argument("--max-iters", type=positive_int, help="new total iteration target")
    resume.add_argument("--rewarm", type=_rewarm, metavar="FRACTION[:STEPS]",
                        help="with --max-iters, for a run that has decayed: warm the LR back up to FRACTION of its "
                        "peak over STEPS (default: 1/20 of the added steps), then decay to the new target")
    resume.add_argument("--job-opt", action="append", default=[], metavar="KEY=VALUE",
                        help="change an option passed to the job factory (repeatable), e.g. batch_size=32; "
                        "what differs from the run's stored options is printed and kept in its journal")
    resume.add_argument("--fresh-optimizer", action="store_true",
                        help="keep the weights and the step count; start a new optimizer (no saved moments) "
                        "and the LR schedule the job's options build, at the run's step")
    _add_policy_flags(resume, defaults=False)
    add_anomaly_flags(resume)
    nproc_launch.add_nproc_flags(resume)
    _add_notify_flag(resume)
    _add_ui_flags(resume)
    resume.set_defaults(handler=run_resume)


def _add_policy_flags(parser: argparse.ArgumentParser, defaults: bool) -> None:
    def default(value: Any) -> Any:
        return value if defaults else None

    group = parser.add_argument_group("checkpoint policy")
    group.add_argument("--ckpt-every", type=nonneg_int, default=default(100), metavar="N",
                       help="save every N steps (0: off)" + (" (default: 100)" if defaults else ""))
    group.add_argument("--ckpt-minutes", type=_nonneg_float, default=default(0.0), metavar="T",
                       help="also save every T minutes (0: off)")
    group.add_argument("--keep-last", type=nonneg_int, default=default(5), metavar="K",
                       help="keep the last K periodic checkpoints, plus best, latest and pinned (0: keep all)"
                       + (" (default: 5)" if defaults else ""))
    group.add_argument("--monitor", default=default("val_loss"), metavar="METRIC",
                       help="metric that picks the best checkpoint (default: val_loss)" if defaults else "metric that picks the best checkpoint")
    group.add_argument("--mode", choices=("min", "max"), default=default("min"), help="lower or higher is better")
    group.add_argument("--eval-every", type=nonneg_int, default=default(0), metavar="N",
                       help="evaluate every N steps, besides before each checkpoint (0: only then)")
    group.add_argument("--log-every", type=positive_int, default=default(1), metavar="N",
                       help="log the loss every N steps")
    group.add_argument("--save-mode", choices=SAVE_MODES, default=DEFAULT_SAVE_MODE,
                       help="background: a save copies the state and training goes on while a thread writes it; "
                       "sync: training waits for each save (default: background)")


def _add_notify_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--notify-url", type=_notify_url, default=os.environ.get("TUI_TRAINER_NOTIFY_URL"),
                        metavar="URL", help="POST a JSON message here when the run ends, fails or pauses on a full "
                        "disk (ntfy, Slack-compatible webhooks); never kept in the run dir, so give it to resume "
                        "too (default: $TUI_TRAINER_NOTIFY_URL)")


def _add_ui_flags(parser: argparse.ArgumentParser) -> None:
    add_headless_flag(parser, argparse.SUPPRESS)  # so `tui-trainer --headless train` keeps it
    add_theme_flag(parser, argparse.SUPPRESS)  # so `tui-trainer --theme X train` keeps X


def add_headless_flag(parser: argparse.ArgumentParser, default: object = False) -> None:
    parser.add_argument("--headless", action="store_true", default=default,
                        help="no dashboard: a progress bar on a terminal, plain log lines otherwise "
                        "(also the default when stdin or stdout is not a terminal)")


def add_theme_flag(parser: argparse.ArgumentParser, default: object = None) -> None:
    parser.add_argument("--theme", default=default, metavar="NAME",
                        help="dashboard theme: dark, light, mono, or a file in ~/.config/tui-trainer/themes/ "
                        "(default: the last one chosen with t)")


# The launch functions import `engine.launch` (and so torch, ~2 s) when they are called: headless
# on the main thread; under a dashboard in the detached trainer process it starts.


def run_default(args: argparse.Namespace) -> int:
    """`tui-trainer` with no command: the dashboard on the live demo run, the last unfinished one, or a new one."""

    def launch(**kw: Any) -> Any:
        from tui_trainer.engine.loop.launch import continue_or_start

        return _with_save_mode(continue_or_start(DEFAULT_ROOT, **kw), args)

    if not args.headless and on_a_screen():
        from tui_trainer.cli.attach_command import live_runs

        live = [run for run in live_runs(DEFAULT_ROOT) if run.job == DEMO_JOB]
        if live:
            from tui_trainer.cli.attach_command import attach

            return attach(live[-1].run_dir, theme=_theme(args), how=f"attaching to the live demo run in {live[-1].run_dir}")
    return _drive(launch, args)


def run_train(args: argparse.Namespace) -> int:
    from tui_trainer.engine.checkpoints.policy import CheckpointPolicy

    policy = CheckpointPolicy(
        every_steps=args.ckpt_every, every_minutes=args.ckpt_minutes, keep_last=args.keep_last,
        monitor=args.monitor, mode=args.mode,
    )
    options = parse_job_options(args.job_opt)

    def launch(**kw: Any) -> Any:
        from tui_trainer.engine.loop.launch import new_run_dir, start_run
        from tui_trainer.engine.rundir.layout import RunSettings  # argparse has checked each value already

        settings = RunSettings(max_iters=args.max_iters, eval_every=args.eval_every, log_every=args.log_every)
        run_dir = args.run_dir or new_run_dir(DEFAULT_ROOT, args.job)
        return _with_save_mode(start_run(run_dir, job=args.job, job_options=options, policy=policy,
                                         settings=settings, init_from=args.init_from, **kw), args)

    return _drive(launch, args)


def run_resume(args: argparse.Namespace) -> int:
    policy = {"every_steps": args.ckpt_every, "every_minutes": args.ckpt_minutes, "keep_last": args.keep_last,
              "monitor": args.monitor, "mode": args.mode}
    settings = {"eval_every": args.eval_every, "log_every": args.log_every}
    options = parse_job_options(args.job_opt)

    if args.rewarm is not None and args.max_iters is None:
        from tui_trainer.engine.loop.rewarm import RewarmRefused

        raise RewarmRefused("--rewarm comes with a new target: add --max-iters N")

    def launch(**kw: Any) -> Any:
        from tui_trainer.engine.loop.launch import resume_run

        trainer = resume_run(args.path, max_iters=args.max_iters, policy_overrides=policy,
                             settings_overrides=settings, job_options=options,
                             fresh_optimizer=args.fresh_optimizer, **kw)
        if args.rewarm is not None:
            trainer.rewarm_at_start(args.rewarm)  # refused in one line, before any step, if it cannot be
        return _with_save_mode(trainer, args)

    return _drive(launch, args)


def _with_save_mode(trainer: Any, args: argparse.Namespace) -> Any:
    trainer.save_mode = getattr(args, "save_mode", DEFAULT_SAVE_MODE)  # `tui-trainer` alone has no flag
    from tui_trainer.session.detached import launch_fd

    trainer.anomaly_guard = anomaly_guard(args, detached=launch_fd() is not None)
    return trainer


def _drive(launch: Any, args: argparse.Namespace) -> int:
    """Train under the dashboard, or headless when asked or when stdout is not a terminal.

    The dashboard never trains in its own process: it starts this same command headless in the
    background (`session.detached`) and attaches to it, so closing the terminal, the SSH session
    or the browser tab ends the view and never the run.
    """
    from tui_trainer.session.detached import launch_fd

    nproc_launch.check_node_flags(args)
    detached = launch_fd() is not None
    dashboard = not detached and not args.headless and on_a_screen()
    if dashboard or (getattr(args, "nproc", None) and not nproc_launch.launched_ranks()):
        from tui_trainer.cli.run_notify import hand_to_children

        hand_to_children(args)
    if nproc_launch.launched_ranks():  # one of several ranks: rank 0 owns the run dir
        from tui_trainer.cli.strategy import strategy_for
        from tui_trainer.engine.loop.distributed import on_ranks

        launch = on_ranks(launch, strategy_for(args))
    elif getattr(args, "nproc", None) and not dashboard:  # the dashboard starts this command detached
        if detached:
            return _drive_ranks_detached(args)
        return nproc_launch.run_on_ranks(args, parse_job_options(args.job_opt))
    if detached:
        return _drive_detached(launch, args)
    if dashboard:
        theme = _theme(args)
        if theme:
            from tui_trainer.tui.theme_library import check_theme_name

            check_theme_name(theme)  # before the run starts, not as a note on its dashboard
        from tui_trainer.cli.attach_command import start_and_attach

        return start_and_attach([*args.argv, "--headless"], theme=theme)
    return _drive_headless(launch, args)


def trains_here(args: argparse.Namespace) -> bool:
    """`train`, `resume` or no command, training in this process: headless, or the trainer a dashboard started."""
    from tui_trainer.session.detached import launch_fd

    return getattr(args, "command", None) in (None, "train", "resume") and (
        launch_fd() is not None or args.headless or not on_a_screen())


def on_a_screen() -> bool:
    """A terminal, or a browser tab: `tui-trainer serve` runs us with Textual's web driver and pipes."""
    web = os.environ.get("TEXTUAL_DRIVER", "").endswith((":WebDriver", ":TabDriver"))
    return web or (sys.stdin.isatty() and sys.stdout.isatty())


def _drive_headless(launch: Any, args: argparse.Namespace | None = None, *, detached: bool = False) -> int:
    from tui_trainer.engine.loop.signals import holding_interrupts

    with holding_interrupts():  # a Ctrl+C before the trainer's own handlers is held for them, never lost
        return _train_headless(launch, args, detached=detached)


def _train_headless(launch: Any, args: argparse.Namespace | None, *, detached: bool) -> int:
    """Start the trainer with a console reporter and signal-triggered saves; return the exit code.

    What the job prints, logs or warns still reaches the terminal (or, detached, the run's
    trainer.log), and the run's journal too.
    """
    from tui_trainer.cli.console_reporter import make_reporter
    from tui_trainer.cli.run_notify import RunNotify, notify_url
    from tui_trainer.engine.loop.events import DISK_FULL_PAUSE, DISK_FULL_STOP
    from tui_trainer.engine.loop.signals import interrupt_saves
    from tui_trainer.session.job_output import JournalOutput, capture_job_output

    # Started by a dashboard, a full disk pauses the run for its alert; headless it ends the run.
    when_disk_full = DISK_FULL_PAUSE if detached else DISK_FULL_STOP
    # Detached: plain lines, into the run's trainer.log once launched. Of several ranks, rank 0 speaks
    # (and alone reports how the start went: the others would say only that rank 0 failed).
    reporter = make_reporter() if nproc_launch.is_rank_zero() else nproc_launch.SilentReporter()
    reports = detached and nproc_launch.is_rank_zero()
    job_lines = JournalOutput()
    # Rank 0 alone tells; the bell only on a terminal of ours, once the run is over.
    tells = nproc_launch.is_rank_zero()
    notify = RunNotify(notify_url(args) if tells else None, lambda line: _report(reporter.note, line),
                       sys.stdout if tells and not detached and sys.stdout.isatty() else None)
    reporter.start()  # before the capture, so the job's lines pass on through the reporter's
    try:
        with capture_job_output(job_lines.put, passthrough=True):
            try:
                trainer = launch(on_event=lambda event: (notify.see(event), _report(reporter.handle, event)),
                                 when_disk_full=when_disk_full)
            except BaseException as exc:
                if reports:
                    from tui_trainer.engine.errors import TrainerError
                    from tui_trainer.session.detached import report_failed

                    report_failed(str(exc) if isinstance(exc, TrainerError) else f"{type(exc).__name__}: {exc}")
                raise
            if reports:
                from tui_trainer.session.detached import report_launched

                report_launched(trainer.run_dir, trainer.notes)
            job_lines.send_to(getattr(trainer, "journal", None))
            if notify.note:
                trainer.notes.append(notify.note)
            for note in trainer.notes:
                _report(reporter.note, note)
            # A trainer with no terminal (detached, nohup, a scheduler) has none to lose: it ignores SIGHUP.
            with interrupt_saves(trainer.control, hangup=not detached and _has_terminal()) as caught:
                result = trainer.run()
    except BaseException:
        _report(reporter.close, None)
        notify.close()
        raise
    finally:
        job_lines.close()  # the job's last line may come as the capture ends
    _report(reporter.close, result)
    notify.close()  # after the progress bar: the bell, and the last POST (waiting one timeout at most)
    for note in result.notes:
        _report(reporter.note, note)
    if result.reason == "disk_full":
        return EXIT_DISK_FULL
    if result.reason == "anomaly":
        return EXIT_ANOMALY
    if caught.signal is not None:
        return SIGNAL_EXIT_CODES.get(caught.signal, 1)
    return 0


def _has_terminal() -> bool:
    return any(os.isatty(fd) for fd in (0, 1, 2))


def _drive_detached(launch: Any, args: argparse.Namespace) -> int:
    """The trainer a dashboard started: no terminal, so a hang-up means nothing to it."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    code = _drive_headless(launch, args, detached=True)
    # Nobody waits for this process: its log is where its exit status can be read. Of several
    # ranks, the process that started them says it.
    if not nproc_launch.launched_ranks():
        print(f"--- trainer pid {os.getpid()} exits with status {code}", flush=True)
    return code


def _drive_ranks_detached(args: argparse.Namespace) -> int:
    """The trainer a dashboard started for `--nproc N`: it starts torchrun and waits for the ranks."""
    from tui_trainer.engine.errors import TrainerError
    from tui_trainer.session.detached import report_failed

    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        code = nproc_launch.run_on_ranks(args, parse_job_options(args.job_opt), detached=True)
    except TrainerError as exc:  # refused before any rank started (more ranks than GPUs)
        report_failed(str(exc))
        raise
    print(f"--- trainer pid {os.getpid()} exits with status {code} (torchrun, {args.nproc} ranks)", flush=True)
    return code


def _theme(args: argparse.Namespace) -> str | None:
    return getattr(args, "theme", None)


def _report(call: Any, *args: Any) -> None:
    """Print through the reporter; once the terminal is gone (a dropped SSH session), train on silently."""
    try:
        call(*args)
    except OSError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                os.dup2(devnull, stream.fileno())


def _rewarm(text: str) -> Any:
    from tui_trainer.engine.loop.rewarm import parse_rewarm  # no torch: --help stays fast

    try:
        return parse_rewarm(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _notify_url(text: str) -> str:
    from tui_trainer.session.webhook import BadNotifyUrl, check_url

    try:
        return check_url(text)
    except BadNotifyUrl as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value

