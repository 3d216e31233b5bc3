"""`--on-anomaly` and the spike detector's flags of `train` and `resume` (the engine's `anomaly` guard)."""

from __future__ import annotations

import argparse
import math
from typing import Any

from tui_trainer.cli.arg_types import int_at_least
from tui_trainer.engine.loop import anomaly  # plain Python: --help stays free of torch

# A run that stopped on an anomaly (`--on-anomaly stop`, or a roll-back that could not be done).
EXIT_ANOMALY = 5


def add_anomaly_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("anomaly guard (a NaN or inf loss or grad norm, or a loss spike)")
    group.add_argument("--on-anomaly", choices=anomaly.ACTIONS, default=None,
                       help="what a bad step leads to (its update is never applied): pause and ask (the "
                       "dashboard's default), rollback to the last healthy checkpoint past the batches since, "
                       f"stop without saving (headless default; exit code {EXIT_ANOMALY}), or continue")
    group.add_argument("--spike-window", type=int_at_least(2), default=anomaly.SPIKE_WINDOW, metavar="N",
                       help=f"logged steps whose losses a spike is measured against (default: {anomaly.SPIKE_WINDOW})")
    group.add_argument("--spike-k", type=_spike_k, default=anomaly.SPIKE_K, metavar="K",
                       help="a loss above the window's mean by K standard deviations is a spike; 0: no spike "
                       f"detection (default: {anomaly.SPIKE_K:g})")
    group.add_argument("--max-rollbacks", type=int_at_least(0), default=anomaly.MAX_ROLLBACKS, metavar="N",
                       help="automatic roll-backs without a new healthy checkpoint in between before an anomaly "
                       f"stops the run (default: {anomaly.MAX_ROLLBACKS})")


def anomaly_guard(args: argparse.Namespace, detached: bool) -> Any:
    """The trainer's AnomalyGuard: pause under a dashboard (its detached trainer), stop headless, unless asked."""
    action = getattr(args, "on_anomaly", None) or (anomaly.PAUSE if detached else anomaly.STOP)
    window = getattr(args, "spike_window", anomaly.SPIKE_WINDOW)
    return anomaly.AnomalyGuard(
        on_anomaly=action, spike_window=window, spike_k=getattr(args, "spike_k", anomaly.SPIKE_K),
        spike_warmup=min(anomaly.SPIKE_WARMUP, window), max_rollbacks=getattr(args, "max_rollbacks", anomaly.MAX_ROLLBACKS),
    )


def _spike_k(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0 (0: off), got {text}")
    return value
