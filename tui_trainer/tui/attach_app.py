"""The dashboard on a run trained by another process: every dashboard the CLI opens.

`tui-trainer train` starts its trainer detached (`session.detached`) and opens this app on it;
`tui-trainer attach` opens it on a run that already trains. It is the same TrainerApp, with a
`WatchRunner` that follows the run dir and a `WatchControl` that sends the keys' commands
through the run's control file, so every viewer (several terminals, browser tabs) steers the
one trainer. Leaving, by `q` or by losing the terminal, never stops the run unless asked to.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from tui_trainer.engine.atomic import pid_alive
from tui_trainer.engine.loop.lr_preview import preview
from tui_trainer.session.rank_processes import launcher_pid
from tui_trainer.session.watch_control import WatchControl
from tui_trainer.session.watch_runner import WatchRunner
from tui_trainer.tui.app import TrainerApp
from tui_trainer.tui.run_model import ENDED_STATES
from tui_trainer.tui.screens.quit_modal import DETACH, SAVE_AND_QUIT, QuitScreen
from tui_trainer.tui.widgets.status_header import StatusHeader
from tui_trainer.tui.widgets.system_panel import SystemPanel

# How long a roll-back waits for the stopped trainer to let go of the run dir.
HANDOVER_TIMEOUT_S = 120.0
EXIT_INTERRUPTED = 130  # ctrl+c, as a headless run's


def _no_launch(**kwargs: Any) -> Any:
    raise AssertionError("an attached dashboard never trains in its own process")


class AttachApp(TrainerApp):
    """Shows and steers a run trained in another process."""

    def __init__(self, run_dir: str | os.PathLike[str] | None = None, *, launching: Any = None,
                 theme: str | None = None, note: str | None = None) -> None:
        control = WatchControl(run_dir)
        super().__init__(_no_launch, control=control, theme=theme)
        self.control: WatchControl = control
        self.runner: WatchRunner = WatchRunner(run_dir, control, launching=launching)  # type: ignore[assignment]
        control.on_error = self._command_failed
        self.opening_note = note
        self.sub_title = f"attached to {run_dir}" if run_dir else "starting a run"
        self.exit_lines: list[str] = []
        self.exit_status = 0
        self._ending: str | None = None  # the end asked of the trainer: save, discard

    @property
    def run_dir(self) -> Path | None:
        return self.runner.run_dir

    def on_mount(self) -> None:
        # Textual calls TrainerApp.on_mount after this one by itself: calling it here too started
        # every timer twice (two drains at 10 Hz, and a 20 Hz first-data drain nothing stopped).
        self.query_one(SystemPanel).pid_source = self._trainer_process
        if self.opening_note:
            self.notify(self.opening_note, timeout=5)

    def _trainer_process(self) -> tuple[int | None, str | None]:
        """The trainer's pid when it runs on this machine; else why its process is not shown."""
        ack = self.control.ack
        if ack is None or ack.pid is None:
            launching = self.runner.launching
            if launching is not None and launching.pid and launching.poll_exit() is None:
                return launching.pid, None
            return None, "no trainer is running"
        if not ack.on_this_host:
            return None, f"trained on {ack.host}"
        if not pid_alive(ack.pid):
            return None, "no trainer is running (its process is gone)"
        return ack.pid, None

    def _command_failed(self, message: str) -> None:
        self.notify(message, severity="error", timeout=6)

    @property
    def live(self) -> bool:
        """A trainer listens to this run's commands now."""
        return self.control.listening and self.model.training

    def _can_steer(self, what: str) -> bool:
        if self.model.training and not self.control.listening:
            self.notify(f"cannot {what}: no trainer is listening in {self.run_dir} yet", severity="warning", timeout=4)
            return False
        return super()._can_steer(what)

    def _lr_planner(self) -> Any:
        """What the LR will do on a new target, from the facts the trainer published in its ack.

        None (no preview) while no trainer has told them yet; for an ended run whose trainer this
        dashboard never saw, the re-warm is offered all the same and checked when the run continues.
        """
        facts = self.control.lr_facts()
        if facts is None:
            return _plan_when_continued if self._can_continue() else None
        old_target = self.model.target or facts.target
        return lambda target, rewarm: preview(facts, facts.step, old_target, target, rewarm)

    # --- the bridge -------------------------------------------------------------------------

    def _drain_events(self) -> None:
        failed = self.runner.launch_error if not self.model.worker_done else None
        super()._drain_events()
        if failed is not None:
            # The run never started (a busy run dir, a job that does not import): say why on the
            # terminal, as a headless run would, rather than over a dashboard of nothing.
            self._leave([], failed.exit_code)
            return
        if self.quitting and (self.model.state in ENDED_STATES or not self.control.listening):
            self._leave(self._stopped_lines(), self.exit_status)

    # --- continuing and rolling back: a new trainer in the background --------------------------

    def _can_continue(self) -> bool:
        return (not self.quitting and self.run_dir is not None and self.model.state in ENDED_STATES
                and not self.control.listening)

    def _continue_run(self, choice: Any) -> None:  # a target_modal.NewTarget
        if choice is None or not self._can_continue():
            return
        rewarm = [] if choice.rewarm is None else ["--rewarm", f"{choice.rewarm.fraction}:{choice.rewarm.steps or ''}"
                                                   .rstrip(":")]
        self._train_again(["resume", str(self.run_dir), "--max-iters", str(choice.target), *rewarm, "--headless"])

    def _roll_back(self, run_dir: str, name: str, target: int) -> None:
        if self.quitting or self.model.state in ("loading", "stopping"):
            return
        args = ["resume", str(Path(run_dir) / name), "--max-iters", str(target), "--headless"]
        if not self.control.listening:
            self._note(f"rolling back to {name}; training on to step {target}")
            self._train_again(args)
            return
        # Everything after the checkpoint is superseded, so the trainer stops without saving; the
        # new one can start once the old one has let go of the run dir.
        if not self.control.end_run(save=False):
            return
        self.model.state = "stopping"
        self._note(f"stopping at step {self.model.step} to roll back to {name}; training on to step {target}")
        self.query_one(StatusHeader).show(self.model)
        self._in_background("roll back", lambda: _wait_for_handover(Path(run_dir)), lambda _: self._train_again(args))

    def _train_again(self, args: list[str]) -> None:  # type: ignore[override]
        if self.quitting:
            return
        self.drain_events()
        self.runner.spawn(args)
        self.model.restart()
        self.query_one(StatusHeader).show(self.model)

    # --- leaving ----------------------------------------------------------------------------

    def action_request_quit(self) -> None:
        if self.quitting:
            return
        if self.live:
            self.push_screen(QuitScreen(self._kept_on_disk(), detach=True), self._quit_choice)
        else:
            self._leave(self._left_lines(), 0)

    def action_interrupt(self) -> None:
        if self.live:
            self.exit_status = EXIT_INTERRUPTED
            self._quit_choice(SAVE_AND_QUIT)
            return
        launching = self.runner.launching
        if launching is not None and launching.pid and launching.poll_exit() is None and not self.control.listening:
            # Still starting: nothing to save yet, and ctrl+c means stop, so the run must not go on.
            os.kill(launching.pid, signal.SIGINT)
            self._leave([f"stopped the run while it was starting (pid {launching.pid}); nothing was trained"],
                        EXIT_INTERRUPTED)
            return
        if not self.quitting:  # nothing trains it: ctrl+c leaves at once, as it would leave a shell command
            self._leave(self._left_lines(), EXIT_INTERRUPTED)

    def _quit_choice(self, choice: str | None) -> None:
        if choice is None or self.quitting:
            return
        if choice == DETACH:
            self._leave(self._detached_lines(), 0)
            return
        save = choice == SAVE_AND_QUIT
        if not self.control.end_run(save=save):
            return
        self.quitting, self._ending = True, choice
        self.model.state = "stopping"
        self.notify("saving a checkpoint, then stopping" if save else "stopping without saving", timeout=10)
        self.query_one(StatusHeader).show(self.model)

    def _leave(self, lines: list[str], status: int) -> None:
        self.exit_lines, self.exit_status = lines, status
        self.quitting = True
        self.exit(status)

    def _detached_lines(self) -> list[str]:
        ack = self.control.ack
        trainer = ack.pid if ack is not None and ack.pid else None
        # Of several ranks, torchrun's launcher passes a signal on to every one (rank 0 holds the lock).
        launcher = launcher_pid(trainer) if trainer and ack is not None and ack.on_this_host else None
        pid = f" (pid {trainer})" if trainer else ""
        if launcher is not None:
            pid = f" (rank 0 pid {trainer}, torchrun pid {launcher})"
        newest = _newest_checkpoint(self.run_dir)
        return [
            f"left the dashboard; training goes on in the background{pid}, step {self.model.step} of "
            f"{self.model.target}.",
            *([f"  checkpoint: {newest}"] if newest else []),
            f"  run dir:    {self.run_dir}",
            f"  re-attach:  tui-trainer attach {self.run_dir}",
            f"  stop it:    re-attach and press q, or kill -INT {launcher or trainer or 'PID'} "
            "(saves a checkpoint first)",
        ]

    def _stopped_lines(self) -> list[str]:
        newest = _newest_checkpoint(self.run_dir)
        how = "saved a checkpoint and stopped" if self._ending == SAVE_AND_QUIT else "stopped without saving"
        lines = [f"training {how} at step {self.model.step}."]
        if newest is not None:
            lines.append(f"  checkpoint: {newest}")
        lines += [f"  run dir:    {self.run_dir}", f"  continue:   tui-trainer resume {self.run_dir}"]
        return lines

    def _left_lines(self) -> list[str]:
        if self.run_dir is None:
            return []
        newest = _newest_checkpoint(self.run_dir)
        saved = [f"  checkpoint: {newest}"] if newest else ["  no checkpoint was saved"]
        if self.model.state == "finished":
            return [f"the run in {self.run_dir} finished at step {self.model.step}.", *saved,
                    f"  train further: tui-trainer resume {self.run_dir} --max-iters N"]
        return [f"left {self.run_dir} (step {self.model.step}, nothing trains it now).", *saved,
                f"  continue:   tui-trainer resume {self.run_dir}"]


def _plan_when_continued(target: int, rewarm: Any) -> str:
    return (f"the trainer that continues the run says what the LR does up to step {target}"
            + (", and refuses a re-warm that cannot be before any step" if rewarm is not None else ""))


def _newest_checkpoint(run_dir: Path | None) -> str | None:
    if run_dir is None:
        return None
    try:
        from tui_trainer.engine.rundir.layout import store_for

        listed = store_for(run_dir).list()
    except Exception:  # the message is a courtesy; a run dir we cannot list must not hide the rest
        return None
    if not listed:
        return None
    newest = max(listed, key=lambda c: c.meta.step)
    return f"{newest.path} ({newest.meta.kind}, step {newest.meta.step})"


def _wait_for_handover(run_dir: Path, timeout: float = HANDOVER_TIMEOUT_S) -> None:
    from tui_trainer.engine.errors import TrainerError
    from tui_trainer.engine.rundir.layout import lock_holder

    deadline = time.monotonic() + timeout
    while lock_holder(run_dir) is not None:
        if time.monotonic() > deadline:
            raise TrainerError(f"the trainer of {run_dir} did not stop within {timeout:.0f} s; nothing was rolled back")
        time.sleep(0.2)


def make_attach_app(run_dir: str | os.PathLike[str] | None = None, *, launching: Any = None,
                    theme: str | None = None, note: str | None = None) -> AttachApp:
    return AttachApp(run_dir, launching=launching, theme=theme, note=note)


def run_attached(run_dir: str | os.PathLike[str] | None = None, *, trainer: Any = None,
                 theme: str | None = None, note: str | None = None) -> int:
    """Run the dashboard until the user leaves; say on the terminal what happened and what to type next."""
    app = make_attach_app(run_dir, launching=trainer, theme=theme, note=note)
    try:
        app.run()
    finally:
        app.runner.stop_and_wait(timeout=5)
    error = app.runner.launch_error
    if error is not None:
        print(f"tui-trainer: error: {' '.join(str(error).split())}", file=sys.stderr)
        return error.exit_code
    if app.run_dir is None and trainer is not None and trainer.pid and app.exit_status == 0:
        return _left_while_starting(trainer)
    for line in app.exit_lines:
        print(line)
    return app.exit_status


def _left_while_starting(trainer: Any) -> int:
    """Left before the trainer said where it trains: wait for that, to say what to type next."""
    print(f"the run is starting in the background (pid {trainer.pid}); waiting for its run dir...", flush=True)
    report = trainer.wait_launched(timeout=120)
    if report is None:
        print(f"it has not said yet; `tui-trainer attach` finds it once it trains, `kill -INT {trainer.pid}` stops it")
        return 0
    if report.error is not None:
        print(f"tui-trainer: error: {' '.join(report.error.split())}", file=sys.stderr)
        return report.exit_code or 1
    print(f"training goes on in the background (pid {report.pid}).")
    print(f"  run dir:    {report.run_dir}")
    print(f"  re-attach:  tui-trainer attach {report.run_dir}")
    return 0

