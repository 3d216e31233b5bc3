"""Tiny demo jobs whose evaluation reports a custom metric, `accuracy`, to be monitored with --mode max."""

from __future__ import annotations

import tui_trainer
from tui_trainer.demo.job import make_job

MONITOR_ARGS = ("--monitor", "accuracy", "--mode", "max")


def accuracy_of(val_loss: float) -> float:
    """Rises as the loss falls, in (0, 1): a stand-in for a real accuracy, the same on every machine."""
    return round(1 / (1 + val_loss), 6)


@tui_trainer.job_factory
def accuracy_and_loss_job(**options):
    """Evaluates to {"accuracy": ..., "val_loss": ...}."""
    job = make_job(**options)
    evaluate = job.evaluate
    job.evaluate = lambda model: {"accuracy": accuracy_of(evaluate(model)["val_loss"]), **evaluate(model)}
    return job


@tui_trainer.job_factory
def accuracy_only_job(**options):
    """Evaluates to {"accuracy": ...} alone."""
    job = make_job(**options)
    evaluate = job.evaluate
    job.evaluate = lambda model: {"accuracy": accuracy_of(evaluate(model)["val_loss"])}
    return job
