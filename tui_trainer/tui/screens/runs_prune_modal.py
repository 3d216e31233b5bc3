"""Prune across runs: the single-run prune modal, previewing every run under the root at once.

The preview lists exactly which checkpoint of which run goes and the space freed, and which
runs are left alone (those being trained); the modal returns the previewed "run/checkpoint"
keys, and only those are ever deleted (`runs_prune.prune_runs`).
"""

from __future__ import annotations

from pathlib import Path

from tui_trainer.engine.rundir.runs_prune import RunsPrunePlan
from tui_trainer.engine.sizes import human_bytes
from tui_trainer.engine.words import counted
from tui_trainer.tui.screens.prune_modal import PruneScreen


def plan_lines(plan: RunsPrunePlan) -> list[str]:
    if not plan.doomed:
        lines = [f"keep-last {plan.keep_last}: nothing to delete in any run."]
    else:
        runs = plan.runs()
        lines = [f"keep-last {plan.keep_last} deletes {counted(len(plan.doomed), 'checkpoint')} in {counted(len(runs), 'run')}, "
                 f"freeing {human_bytes(plan.freed_bytes)}:"]
        lines += [f"  {d.key}  step {d.step}  {human_bytes(d.size_bytes)}" for d in plan.doomed]
    lines += [f"left alone: {run} ({why})" for run, why in plan.skipped]
    lines.append("kept in every run: the best, the latest, pinned and manual checkpoints.")
    return lines


class RunsPruneScreen(PruneScreen):
    """Dismissed with the keep-last value and the previewed "run/checkpoint" keys, or None."""

    INTRO = "In every run: keep the newest N rotating checkpoints, delete older ones."

    def __init__(self, root: str | Path, keep_last: int) -> None:
        super().__init__(root, keep_last, live=False)
        self.root = Path(root)

    def compute_preview(self, keep: int) -> RunsPrunePlan:
        from tui_trainer.engine.rundir.runs_index import list_runs
        from tui_trainer.engine.rundir.runs_prune import plan_runs_prune

        return plan_runs_prune(list_runs(self.root), keep)

    def preview_text(self, preview: RunsPrunePlan) -> str:
        return "\n".join(plan_lines(preview))

    def preview_names(self, preview: RunsPrunePlan) -> tuple[str, ...]:
        return preview.keys
