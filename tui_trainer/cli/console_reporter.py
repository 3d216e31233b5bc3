"""Headless output: a Rich progress bar on a terminal, plain log lines anywhere else."""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any

from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.loop.anomaly import anomaly_line, rollback_line
from tui_trainer.engine.loop.step_rate import eta_seconds
from tui_trainer.engine.sizes import human_bytes
from tui_trainer.tui.time_format import format_duration

PLAIN_LINE_INTERVAL_S = 2.0


class PlainReporter:
    """One line per event worth keeping in a log file; step lines at most every few seconds."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self._last_step_line = 0.0
        self._held: ev.Started | None = None  # until the next event: a resume's new target comes right after

    def start(self) -> None:
        """Take the terminal; before the job's output is captured, so it passes through us."""

    def note(self, message: str) -> None:
        self._print(message)

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.Started):
            self._held = event
            return
        if self._held is not None:
            started, self._held = self._held, None
            self._print(describe_start(started, event))
            if retargets(started, event):
                return
        line = describe(event)
        if isinstance(event, ev.StepCompleted):
            now = time.monotonic()
            if now - self._last_step_line < PLAIN_LINE_INTERVAL_S and event.step != event.target:
                return
            self._last_step_line = now
        if line:
            self._print(line)

    def close(self, result: Any) -> None:
        if self._held is not None:
            self._print(describe(self._held))
            self._held = None
        self.stream.flush()

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


class RichReporter(PlainReporter):
    """A live progress bar with ETA, speed and loss (the trainer's, over training time); other events print above it."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        super().__init__()
        self.console = Console()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("ETA {task.fields[eta]}"),
            TextColumn("{task.fields[speed]}"),
            TextColumn("loss {task.fields[loss]}"),
            console=self.console,
            refresh_per_second=4,
        )
        self.task = None

    def note(self, message: str) -> None:
        self.console.print(message, markup=False, highlight=False)

    def start(self) -> None:
        # The live bar redirects stdout and stderr so prints land above it; a capture of the
        # job's output started after this passes the job's lines on to that redirect.
        self.progress.start()

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.Started):
            self.progress.start()  # a no-op once started
            self.task = self.progress.add_task(
                "training", total=event.target, completed=event.step, speed="", loss="-", eta="-"
            )
            self._held = event
            return
        started, self._held = self._held, None
        if started is not None and retargets(started, event) and self.task is not None:
            self.progress.update(self.task, total=event.new_target)
            self.note(describe_start(started, event))
        elif isinstance(event, ev.StepCompleted) and self.task is not None:
            self.progress.update(
                self.task, completed=event.step, total=event.target,
                speed=f"{event.steps_per_sec:.1f} it/s", loss=f"{event.loss:.4f}",
                eta=format_duration(eta_seconds(event.step, event.target, event.steps_per_sec)),
            )
        elif isinstance(event, ev.TargetChanged) and self.task is not None:
            self.progress.update(self.task, total=event.new_target)
            self.note(describe(event))
        elif not isinstance(event, ev.StepCompleted):
            line = describe(event)
            if line:
                self.note(line)

    def close(self, result: Any) -> None:
        self._held = None
        self.progress.stop()


def make_reporter() -> PlainReporter:
    return RichReporter() if sys.stdout.isatty() else PlainReporter()


def retargets(started: ev.Started, event: ev.Event) -> bool:
    """`event` is the new target a resume asked for, applied as training starts."""
    return isinstance(event, ev.TargetChanged) and event.step == started.step and event.old_target == started.target


def describe_start(started: ev.Started, event: ev.Event) -> str:
    """The start's line; with a resume's new target, that target only (the stored one was never trained to)."""
    if not retargets(started, event):
        return describe(started) or ""
    assert isinstance(event, ev.TargetChanged)
    line = describe(dataclasses.replace(started, target=event.new_target)) or ""
    plain = f"target {event.old_target} -> {event.new_target}"  # the trainer's note when there is no more to say
    return line if event.note == plain else f"{line}; {event.note}"


def describe(event: ev.Event) -> str | None:
    """A one-line description of an event, or None for ones not worth a line."""
    match event:
        case ev.Started(run_dir=run_dir, step=step, target=target, device=device):
            return f"training {run_dir} on {device}: step {step} -> {target}"
        case ev.StepCompleted():
            more = "".join(f" {name} {value:.4g}" for name, value in event.scalars.items())
            grad = f" grad_norm {event.grad_norm:.3g}" if event.grad_norm is not None else ""
            eta = format_duration(eta_seconds(event.step, event.target, event.steps_per_sec))
            # No speed yet (the first step, or the first after a roll-back): "-", as the ETA, not "0.0".
            speed = f"{event.steps_per_sec:.1f}" if event.steps_per_sec > 0 else "-"
            return (
                f"step {event.step}/{event.target} epoch {event.epoch} loss {event.loss:.4f}{more} "
                f"lr {event.lr:.2e}{grad} {speed} steps/s ETA {eta}"
            )
        case ev.Evaluated(step=step, metrics=metrics):
            shown = " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            return f"eval at step {step}: {shown}"
        case ev.CheckpointSaved(path=path, kind=kind, size_bytes=size, seconds=seconds):
            return f"saved {kind} checkpoint {path} ({human_bytes(size)} in {seconds:.2f}s)"
        case ev.CheckpointPruned(paths=paths, freed_bytes=freed):
            names = ", ".join(p.rsplit("/", 1)[-1] for p in paths)
            return f"pruned {names} (freed {human_bytes(freed)})"
        case ev.CheckpointFailed(step=step, reason=reason):
            return f"checkpoint at step {step} FAILED: {reason}"
        case ev.TargetChanged(old_target=old, new_target=new, note=note):
            return f"target {old} -> {new}: {note}"
        case ev.PolicyChanged(keep_last=keep):
            return f"keep-last is now {keep}"
        case ev.Paused(step=step):
            return f"paused at step {step}"
        case ev.Resumed(step=step):
            return f"resumed at step {step}"
        case ev.AnomalyFound(step=step, kind=kind, detail=detail, action=action):
            return anomaly_line(step, kind, detail, action)
        case ev.RolledBack(step=step, from_step=bad, name=name, skipped_batches=skipped):
            return rollback_line(step, bad, name, skipped)
        case ev.Finished(step=step, reason=reason):
            return f"finished at step {step} ({reason})"
        case ev.Failed(step=step, error=error):
            return f"failed at step {step}: {error}"
    return None
