"""Which way several processes share a run (`--strategy`), and what FSDP refuses before anything starts.

`resume` without `--strategy` continues the way the run was trained: FSDP if its newest
checkpoint is a sharded step folder (`step_N.dcp`), else DDP. Every rank asks the same run dir,
so every rank reaches the same answer.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from tui_trainer.engine.checkpoints.meta import SHARDED_SUFFIX, step_of_name

DDP, FSDP = "ddp", "fsdp"


def strategy_for(args: argparse.Namespace) -> str:
    chosen = getattr(args, "strategy", None)
    if chosen:
        return chosen
    path = getattr(args, "path", None)
    if getattr(args, "command", None) != "resume" or path is None:
        return DDP
    run_dir = Path(path) if Path(path).is_dir() else Path(path).parent
    if Path(path).name.endswith(SHARDED_SUFFIX):
        return FSDP
    try:
        names = [name for name in os.listdir(run_dir) if step_of_name(name) is not None]
    except OSError:
        return DDP
    newest = max(names, key=lambda name: (step_of_name(name), name), default="")
    return FSDP if newest.endswith(SHARDED_SUFFIX) else DDP


def preflight(args: argparse.Namespace, job_options: dict[str, Any]) -> None:
    """With FSDP: build the job here and refuse, in one line, what FSDP cannot take, before any rank starts.

    `sharding.CannotShard` (exit 2) otherwise reaches the user only after rank 0 made the run dir.
    """
    if strategy_for(args) != FSDP:
        return
    from tui_trainer.engine.loop.launch import build_job
    from tui_trainer.engine.loop.sharding import check_shardable

    if getattr(args, "command", None) == "resume":
        from tui_trainer.engine.rundir.layout import read_run

        path = Path(args.path)
        info = read_run(path if path.is_dir() else path.parent)
        job = build_job(info.job, {**info.job_options, **job_options}, info.settings.max_iters, run_dir=path)
    else:
        job = build_job(args.job, job_options, args.max_iters)
    check_shardable(job)
