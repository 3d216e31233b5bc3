"""`tui-trainer runs [ROOT]`: every run under a folder: state, last step, best monitored metric, size.

The same listing as the dashboard's runs screen, from small files only: no torch, no Rich.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui_trainer.cli import ckpt_format as fmt
from tui_trainer.cli.train_commands import DEFAULT_ROOT
from tui_trainer.engine.sizes import human_bytes

if TYPE_CHECKING:
    from tui_trainer.engine.rundir.runs_index import RunsIndex, RunSummary

COLUMNS = ("run", "state", "step", "best", "ckpts", "size", "job")
RIGHT_ALIGNED = frozenset({"step", "best", "ckpts", "size"})
GAP = "  "


def add_parser(commands: Any) -> None:
    runs = commands.add_parser(
        "runs",
        help="list every run under a folder: state, last step, best monitored metric, size, and the total",
        description="List the run dirs under ROOT (default: checkpoints/), and those one folder further down, "
        "with each run's state (running means a live process holds its lock), last step / target, the best "
        "value of its monitored metric (val_loss unless --monitor named another), number of checkpoints and size on disk, then the total. Reads only small files.",
    )
    runs.add_argument("root", type=Path, nargs="?", default=DEFAULT_ROOT, metavar="ROOT",
                      help="the folder holding the run dirs (default: checkpoints)")
    runs.add_argument("--json", action="store_true", help="print JSON for scripts")
    runs.set_defaults(handler=run_runs)


def run_runs(args: argparse.Namespace) -> int:
    from tui_trainer.engine.rundir.runs_index import list_runs

    index = list_runs(args.root)
    if args.json:
        fmt.print_json(index_record(index))
        return 0
    if not index.runs:
        print(f"no runs under {args.root}")
    else:
        print(render(index))
    for problem in index.problems:
        print(f"unreadable: {problem}")
    return 0


def row(run: RunSummary, named: bool = False) -> dict[str, str]:
    best = fmt.format_loss(run.best_value)
    return {
        "run": run.name,
        "state": run.state + (f" ({run.live})" if run.live else ""),
        "step": f"{fmt.or_dash(run.last_step)}/{run.target}",
        "best": f"{best} {run.monitor}" if named and run.best_value is not None else best,
        "ckpts": str(run.checkpoints),
        "size": human_bytes(run.disk_bytes),
        "job": run.job,
    }


def render(index: RunsIndex) -> str:
    from tui_trainer.engine.rundir.runs_index import best_label

    header = best_label(index.runs)
    rows = [row(run, named=header == "best") for run in index.runs]
    titles = {c: header if c == "best" else c for c in COLUMNS}
    widths = {c: max(len(titles[c]), *(len(r[c]) for r in rows)) for c in COLUMNS}

    def line(cells: dict[str, str]) -> str:
        return GAP.join(cells[c].rjust(widths[c]) if c in RIGHT_ALIGNED else cells[c].ljust(widths[c])
                        for c in COLUMNS).rstrip()

    return "\n".join([line(titles), *(line(r) for r in rows), index.total()])


def index_record(index: RunsIndex) -> dict[str, Any]:
    return {
        "root": str(index.root),
        "runs": [
            {
                "name": run.name,
                "path": str(run.path),
                "run_id": run.run_id,
                "job": run.job,
                "state": run.state,
                "trainer": ({"pid": run.holder.pid, "host": run.holder.host, "since": run.holder.since,
                             "detached": run.holder.terminal is False} if run.live and run.holder else None),
                "last_step": run.last_step,
                "target": run.target,
                "monitor": run.monitor,
                "best_value": fmt.finite_or_none(run.best_value),
                "best_checkpoint": run.best_checkpoint,
                "checkpoints": run.checkpoints,
                "disk_bytes": run.disk_bytes,
            }
            for run in index.runs
        ],
        "total": {"runs": len(index.runs), "checkpoints": index.checkpoints, "disk_bytes": index.disk_bytes},
        "problems": list(index.problems),
    }
