"""The dashboard's answers when the trainer pauses on its own: a full disk, or an anomaly (a NaN,
a spike). Each opens its alert screen and turns the user's choice into a command for the run.

The anomaly screen is imported when it is first opened, not for the dashboard's first frame.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tui_trainer.tui.screens.disk_full_modal import EXPORT, PRUNE, RETRY, DiskFullScreen

if TYPE_CHECKING:
    from tui_trainer.session.run_source import RunControl
    from tui_trainer.tui.run_model import RunModel


class RunAlerts:
    """Mixed into the App; the drain calls `show_disk_full` and `show_anomaly` with the trainer's event."""

    model: RunModel
    control: RunControl
    _can_steer: Callable[[str], bool]
    action_prune_checkpoints: Callable[[], None]
    action_export_checkpoint: Callable[[], None]

    def show_disk_full(self, event: Any) -> None:
        """The trainer paused on a save that did not fit: alert, with the numbers and the ways out."""
        if isinstance(self.screen, DiskFullScreen):
            self.screen.show(event)
        else:
            self.push_screen(DiskFullScreen(event), self._disk_full_choice)

    def _disk_full_choice(self, choice: str | None) -> None:
        if choice == PRUNE:
            self.action_prune_checkpoints()
        elif choice == EXPORT:
            self.action_export_checkpoint()
        elif choice == RETRY and self._can_steer("resume"):
            self.control.resume()
            self.notify(f"resuming: the save at step {self.model.step} is tried again", timeout=3)
        elif choice is None:
            self.notify("still paused on a full disk: make room, then p resumes and retries the save",
                        severity="warning", timeout=5)

    def show_anomaly(self, event: Any) -> None:
        """The trainer paused on an anomaly: roll back past the batches that led there, go on, or stop."""
        from tui_trainer.tui.screens.anomaly_modal import AnomalyScreen

        self.push_screen(AnomalyScreen(event), lambda choice: self._anomaly_choice(event, choice))

    def _anomaly_choice(self, event: Any, choice: str | None) -> None:
        from tui_trainer.engine.loop.anomaly import batches
        from tui_trainer.tui.screens.anomaly_modal import CONTINUE, ROLL_BACK, STOP

        if choice == ROLL_BACK and self._can_steer("roll back"):
            self.control.roll_back()
            self.notify(f"rolling back to {event.rollback_to}, past {batches(event.skip_batches, 'the ')}", timeout=4)
        elif choice == CONTINUE and self._can_steer("resume"):
            self.control.resume()
        elif choice == STOP and self._can_steer("stop"):
            end_run = getattr(self.control, "end_run", None)  # a followed run's: stop it, saving nothing
            if callable(end_run):
                end_run(False)
            else:
                self.control.stop("stopped")
        elif choice is None:
            self.notify(f"still paused on the anomaly at step {event.step}: p goes on without its update",
                        severity="warning", timeout=5)
