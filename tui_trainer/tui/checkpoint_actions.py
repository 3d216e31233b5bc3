"""The checkpoint keys of the dashboard: export, prune, delete, pin, details, compare, roll back, help.

A mixin of `TrainerApp`. Each action takes the checkpoint under the table's cursor, does its
disk or torch work in a thread worker (or in the modal it opens), and refreshes the table
afterwards; the table keeps its cursor on the same checkpoint by name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.binding import Binding
from textual.worker import get_current_worker

from tui_trainer.engine.loop.control import TrainingControl
from tui_trainer.engine.sizes import human_bytes
from tui_trainer.engine.words import counted
from tui_trainer.session.rollback import RollbackPlan, RollbackRefused, plan_rollback
from tui_trainer.session.runner import TrainingRunner
from tui_trainer.tui.error_text import describe_error
from tui_trainer.tui.widgets.checkpoint_table import CheckpointTable
from tui_trainer.tui.widgets.event_log import EventLog
from tui_trainer.tui.widgets.status_header import StatusHeader

if TYPE_CHECKING:
    from textual.app import App

    from tui_trainer.engine.checkpoints.previewed_prune import PrunedPreview
    from tui_trainer.engine.checkpoints.store import StoredCheckpoint
    from tui_trainer.tui.run_model import RunModel
    from tui_trainer.tui.screens.prune_modal import PruneRequest
    from tui_trainer.tui.widgets.checkpoint_table import CheckpointRow

    _App = App[int]
else:
    _App = object  # at run time TrainerApp supplies App; the mixin adds no base of its own

# The footer shows these in order where room allows; help first, since it lists the rest.
CHECKPOINT_BINDINGS = [
    Binding("question_mark", "show_help", "Help", tooltip="Help: every key and what it does",
            id="dashboard.help"),
    Binding("e", "export_checkpoint", "Export", tooltip="Export the selected checkpoint's weights",
            id="checkpoints.export"),
    Binding("x", "prune_checkpoints", "Prune", tooltip="Prune old checkpoints (shows what it deletes first)",
            id="checkpoints.prune"),
    Binding("d", "delete_checkpoint", "Delete", tooltip="Delete the selected checkpoint",
            id="checkpoints.delete"),
    Binding("space", "toggle_pin", "Pin", tooltip="Pin or unpin the selected checkpoint (prune keeps it)",
            id="checkpoints.pin"),
    # Priority: the focused table binds enter itself. Under a modal the app's check_action turns
    # it off, so enter reaches the modal's inputs and buttons. Enter on a row needs no footer room.
    Binding("enter", "checkpoint_details", "Details", tooltip="Details of the selected checkpoint",
            show=False, priority=True, id="checkpoints.details"),
    Binding("c", "compare_checkpoints", "Compare", tooltip="Compare the selected checkpoint with another",
            id="checkpoints.compare"),
    Binding("b", "roll_back", "Roll back", tooltip="Roll back: resume training from the selected checkpoint",
            id="checkpoints.roll_back"),
]
CHECKPOINT_ACTIONS = frozenset(b.action for b in CHECKPOINT_BINDINGS)


def protection_reasons(stored: StoredCheckpoint, monitor: str) -> list[str]:
    """Why deleting this checkpoint deserves a second thought, one phrase per reason."""
    reasons = []
    if stored.best:
        value = stored.meta.metric(monitor)
        reasons.append(f"it is the best checkpoint ({monitor} {value:.4f})" if value is not None
                       else "it is the best checkpoint")
    if stored.latest:
        reasons.append("it is the latest checkpoint, the one a resume starts from")
    if stored.pinned:
        reasons.append("it is pinned, to be kept through every prune")
    return reasons


class CheckpointActions(_App):
    """Mixed into TrainerApp; uses its model, control, runner, table and event log.

    Each modal screen is imported when it is first opened: together they would delay the
    dashboard's first frame by tens of milliseconds.
    """

    model: RunModel
    control: TrainingControl
    runner: TrainingRunner
    checkpoints: list[CheckpointRow]
    quitting: bool
    refresh_checkpoints: Callable[[], None]
    drain_events: Callable[[], None]
    _start_training: Callable[[], None]

    # --- plumbing -------------------------------------------------------------------------------

    def _selected(self, what: str) -> tuple[str, str] | None:
        """(run dir, checkpoint name) under the table's cursor, or None after saying why not."""
        name = self.query_one(CheckpointTable).selected_name
        if self.model.run_dir is None or name is None:
            self.notify(f"no checkpoint selected to {what}", severity="warning", timeout=3)
            return None
        return self.model.run_dir, name

    def _in_background(self, what: str, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Run `work()` on a thread; hand its result to `done` on the UI thread, or log the error."""

        def run() -> None:
            try:
                result = work()
            except Exception as exc:
                if not get_current_worker().is_cancelled:
                    self.call_from_thread(self._action_failed, what, exc)
                return
            if not get_current_worker().is_cancelled:
                self.call_from_thread(done, result)

        self.run_worker(run, name=what, group="checkpoint-actions", thread=True, exit_on_error=False)

    def _action_failed(self, what: str, exc: BaseException) -> None:
        text = f"could not {what}: {describe_error(exc)}"
        self._note(text, "error")
        self.notify(text, severity="error", timeout=6)
        self.refresh_checkpoints()

    def _note(self, text: str, level: str = "info") -> None:
        self.model.note(text, level)
        self.query_one(EventLog).add(self.model.take_log())

    def _done(self, text: str) -> None:
        """An action finished: say so, and show the table as it is now."""
        self._note(text)
        self.notify(text, timeout=4)
        self.refresh_checkpoints()

    @staticmethod
    def _store(run_dir: str) -> Any:
        from tui_trainer.engine.rundir.layout import store_for

        return store_for(run_dir)

    # --- e: export ------------------------------------------------------------------------------

    def action_export_checkpoint(self) -> None:
        from tui_trainer.tui.screens.export_modal import ExportScreen

        picked = self._selected("export")
        if picked is not None:
            run_dir, name = picked
            self.push_screen(ExportScreen(Path(run_dir) / name, Path(run_dir)), self._exported)

    def _exported(self, result: Any) -> None:
        from tui_trainer.tui.screens.export_modal import result_lines

        if result is not None:
            self._done(f"exported {result.out_path}: " + "; ".join(result_lines(result)[:1]))

    # --- x: prune -------------------------------------------------------------------------------

    def action_prune_checkpoints(self) -> None:
        run_dir = self.model.run_dir
        if run_dir is None:
            self.notify("no run to prune yet", severity="warning", timeout=3)
            return

        def keep_last() -> int:
            from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
            from tui_trainer.engine.rundir.layout import read_run

            keep = read_run(run_dir).policy.keep_last
            return keep if keep >= 1 else CheckpointPolicy().keep_last  # 0 keeps all: offer the default

        def ask(keep: int) -> None:
            from tui_trainer.tui.screens.prune_modal import PruneScreen

            self.push_screen(PruneScreen(run_dir, keep, live=self.model.training),
                             lambda request: self._prune_chosen(run_dir, request))

        self._in_background("read the run's keep-last", keep_last, ask)

    def _prune_chosen(self, run_dir: str, request: PruneRequest | None) -> None:
        if request is None:
            return
        if self.model.training:
            # Otherwise the trainer's own retention would let the checkpoints grow back.
            self.control.set_keep_last(request.keep_last)
            self._note(f"keep-last {request.keep_last} applies to the running trainer from now on")

        def prune() -> PrunedPreview:
            from tui_trainer.engine.checkpoints.previewed_prune import prune_previewed

            # Only what the preview showed, and only what keep-last still deletes under the store
            # lock: a checkpoint pinned since the preview stays, and the log says so.
            return prune_previewed(self._store(run_dir), request.keep_last, request.names)

        def pruned(outcome: PrunedPreview) -> None:
            for note in outcome.notes():
                self._note(note, "warning")
                self.notify(note, severity="warning", timeout=6)
            deleted = outcome.deleted_names
            if deleted:
                self._done(f"pruned {counted(len(deleted), 'checkpoint')}: {', '.join(deleted)}; "
                           f"freed {human_bytes(outcome.freed_bytes)}")
            else:
                self._done("prune: nothing left to delete")

        if request.names:
            self._in_background("prune", prune, pruned)

    # --- d: delete ------------------------------------------------------------------------------

    def action_delete_checkpoint(self) -> None:
        picked = self._selected("delete")
        if picked is None:
            return
        run_dir, name = picked

        def look_up() -> tuple[Any, str]:
            store = self._store(run_dir)
            return store.get(name), store.monitor

        def ask(found: tuple[Any, str]) -> None:
            from tui_trainer.tui.screens.confirm_modal import ConfirmScreen

            stored, monitor = found
            size = human_bytes(stored.meta.size_bytes)
            lines = [f"step {stored.meta.step}, {size}; the file and its metadata are removed for good."]
            self.push_screen(ConfirmScreen(f"Delete {name}?", lines, "Delete"),
                             lambda yes: yes and self._confirm_protected(run_dir, stored, monitor))

        self._in_background("delete", look_up, ask)

    def _confirm_protected(self, run_dir: str, stored: Any, monitor: str) -> None:
        reasons = protection_reasons(stored, monitor)
        name = stored.meta.name
        if not reasons:
            self._delete(run_dir, name)
            return
        from tui_trainer.tui.screens.confirm_modal import ConfirmScreen

        lines = [f"{reason}." for reason in reasons] + ["Delete it anyway?"]
        self.push_screen(ConfirmScreen(f"{name} is protected", lines, "Delete anyway"),
                         lambda yes: yes and self._delete(run_dir, name))

    def _delete(self, run_dir: str, name: str) -> None:
        self._in_background("delete", lambda: self._store(run_dir).delete(name),
                            lambda freed: self._done(f"deleted {name}, freed {human_bytes(freed)}"))

    # --- space: pin -----------------------------------------------------------------------------

    def action_toggle_pin(self) -> None:
        picked = self._selected("pin")
        if picked is None:
            return
        run_dir, name = picked

        def toggle() -> bool:
            store = self._store(run_dir)
            return store.set_pinned(name, not store.get(name).pinned).pinned

        def toggled(pinned: bool) -> None:
            self._done(f"pinned {name}: prune and retention keep it" if pinned
                       else f"unpinned {name}: it can be pruned once it is neither best nor latest")

        self._in_background("pin", toggle, toggled)

    # --- enter: details, c: compare -------------------------------------------------------------

    def action_checkpoint_details(self) -> None:
        from tui_trainer.tui.screens.details_screen import DetailsScreen

        picked = self._selected("show")
        if picked is not None:
            self.push_screen(DetailsScreen(*picked))

    def action_compare_checkpoints(self) -> None:
        from tui_trainer.tui.screens.compare_pick import ComparePickScreen
        from tui_trainer.tui.screens.compare_screen import CompareScreen

        picked = self._selected("compare")
        if picked is None:
            return
        run_dir, name = picked
        steps = {row.name: int(row.cells[0]) for row in self.checkpoints}
        metric = self.query_one(CheckpointTable).metric  # the monitored metric, named as the table heads it
        label = "val" if metric == "val_loss" else metric
        others = [(row.name, f"{row.name}  step {row.cells[0]}  {label} {row.cells[3]}  {row.cells[6]}".rstrip())
                  for row in self.checkpoints if row.name != name]
        if not others:
            self.notify("compare needs a second checkpoint", severity="warning", timeout=3)
            return

        def compare(other: str | None) -> None:
            if other is None:
                return
            # A is the earlier one, so every delta reads as "what training did since".
            a, b = sorted((name, other), key=lambda n: (steps.get(n, 0), n))
            self.push_screen(CompareScreen(Path(run_dir) / a, Path(run_dir) / b))

        self.push_screen(ComparePickScreen(name, others), compare)

    # --- b: roll back ---------------------------------------------------------------------------

    def action_roll_back(self) -> None:
        if self.quitting or self.model.state in ("loading", "stopping"):
            self.notify(f"cannot roll back while the run is {self.model.state}", severity="warning", timeout=3)
            return
        picked = self._selected("roll back to")
        if picked is None:
            return
        run_dir, name = picked

        def plan() -> RollbackPlan:
            store = self._store(run_dir)
            rollback = plan_rollback(store.list(), name, store.run_id, self.model.step)
            # Checked before anything stops: a live run must not end for a file that cannot load.
            problem = store.integrity_problem(store.get(name))
            if problem is not None:
                raise RollbackRefused(f"{name} cannot be resumed from: {problem}")
            return rollback

        def ask(rollback: RollbackPlan) -> None:
            from tui_trainer.tui.screens.rollback_modal import RollbackScreen

            live_step = self.model.step if self.model.training else None
            target = self.model.target or rollback.step
            self.push_screen(RollbackScreen(rollback, target, live_step),
                             lambda chosen: chosen is not None and self._roll_back(run_dir, name, chosen))

        self._in_background("roll back", plan, ask)

    def _roll_back(self, run_dir: str, name: str, target: int) -> None:
        if self.quitting or self.model.state in ("loading", "stopping"):
            return
        path = str(Path(run_dir) / name)

        def resume(**kwargs: Any) -> Any:
            from tui_trainer.engine.loop.launch import resume_run

            return resume_run(path, max_iters=target, **kwargs)

        if not self.runner.active:
            self._note(f"rolling back to {name}; training on to step {target}")
            self._train_again(resume)
            return
        # A stop request is final for a control, so the next trainer gets a fresh one; the old
        # trainer stops without saving, since everything after the checkpoint is superseded.
        old_runner = self.runner
        self.control = TrainingControl()
        self.model.state = "stopping"
        self._note(f"stopping at step {self.model.step} to roll back to {name}; training on to step {target}")
        self.query_one(StatusHeader).show(self.model)
        self._in_background("roll back", lambda: old_runner.stop_and_wait("stopped"),
                            lambda _: self._train_again(resume))

    def _train_again(self, launch_fn: Callable[..., Any]) -> None:
        """Start a new trainer on this run in the same dashboard, as `r` does for a finished run."""
        if self.quitting or self.control.stop_reason is not None:
            return
        self.drain_events()  # nothing of the old trainer may arrive after the new one starts
        self.runner = TrainingRunner(launch_fn, self.control)
        self.model.restart()
        self.query_one(StatusHeader).show(self.model)
        self._start_training()

    # --- ?: help --------------------------------------------------------------------------------

    def action_show_help(self) -> None:
        from tui_trainer.tui.screens.help_screen import HelpScreen, key_help

        self.push_screen(HelpScreen(key_help(self)))
