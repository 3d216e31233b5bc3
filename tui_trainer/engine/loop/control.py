"""Commands for a running trainer, safe to call from any thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class TrainingControl:
    """Pause, resume, stop, retarget and save-now requests for a Trainer.

    Every method may be called from another thread (the dashboard's UI thread, a signal
    handler). The trainer applies requests between steps, so a step is never cut in half.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._running.set()
        self._stop_reason: str | None = None
        self._new_target: int | None = None
        self._new_rewarm: object | None = None  # an lr_takeover.Rewarm, to go with the new target
        self._new_keep_last: int | None = None
        self._save_requests = 0
        self._roll_back = False
        self._dirty = False

    # --- requests -------------------------------------------------------------------------

    def pause(self) -> None:
        with self._lock:
            self._running.clear()
            self._dirty = True

    def resume(self) -> None:
        with self._lock:
            self._running.set()
            self._dirty = True

    def toggle_pause(self) -> None:
        with self._lock:
            if self._running.is_set():
                self._running.clear()
            else:
                self._running.set()
            self._dirty = True

    def stop(self, reason: str = "stopped") -> None:
        """Stop after the current step; `reason="interrupted"` saves an interrupted checkpoint."""
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason
            self._dirty = True
            self._running.set()  # a paused trainer must wake up to stop

    def set_target(self, max_iters: int, rewarm: object | None = None) -> None:
        """Aim at `max_iters`; with `rewarm` (an `lr_takeover.Rewarm`), warm the LR back up first."""
        if isinstance(max_iters, bool) or not isinstance(max_iters, int) or max_iters < 1:
            raise ValueError(f"iteration target must be a positive integer, got {max_iters!r}")
        with self._lock:
            self._new_target = max_iters
            self._new_rewarm = rewarm
            self._dirty = True

    def save_now(self) -> None:
        with self._lock:
            self._save_requests += 1
            self._dirty = True

    def roll_back(self) -> None:
        """While paused on an anomaly: go back to the last healthy checkpoint, past the batches since."""
        with self._lock:
            self._roll_back = True
            self._dirty = True
            self._running.set()

    def set_keep_last(self, keep_last: int) -> None:
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0:
            raise ValueError(f"keep-last must be an integer >= 0, got {keep_last!r}")
        with self._lock:
            self._new_keep_last = keep_last
            self._dirty = True

    # --- read by the trainer --------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    def has_requests(self) -> bool:
        """Cheap check for the hot loop: True if anything may need handling."""
        return self._dirty

    def take_requests(self) -> tuple[int | None, int | None, int]:
        """Return and clear (new_target, new_keep_last, save_requests)."""
        with self._lock:
            requests = (self._new_target, self._new_keep_last, self._save_requests)
            self._new_target = None
            self._new_keep_last = None
            self._save_requests = 0
            self._dirty = self._stop_reason is not None or not self._running.is_set()
            return requests

    def take_roll_back(self) -> bool:
        """Return and clear a roll-back asked for."""
        with self._lock:
            asked, self._roll_back = self._roll_back, False
            return asked

    def take_rewarm(self) -> object | None:
        """Return and clear the re-warm asked for with the last new target."""
        with self._lock:
            rewarm, self._new_rewarm = self._new_rewarm, None
            return rewarm

    def wait_while_paused(self, timeout: float) -> bool:
        """Block up to `timeout` seconds while paused; return True once running again."""
        return self._running.wait(timeout)

    # --- several processes (`distributed.RankControl`); one process decides alone -------------

    def settle(self, periodic_due: bool, step: int | None = None) -> bool:
        """After each step, where the ranks of a DDP run agree on rank 0's decisions; here, `periodic_due`."""
        return periodic_due

    def gather_rank_states(self, job: Any) -> dict[str, Any] | None:
        """Each rank's resume state for rank 0's checkpoint (None on the other ranks); one process adds none."""
        return {}

    def mean_over_ranks(self, value: Any) -> Any:
        """The mean of a logged value (a tensor) over the ranks of a DDP run; here, the value itself."""
        return value

    def rank_zero_decides(self, decide: Callable[[], T]) -> T:
        """What `decide()` returns on rank 0, on every rank (the others do not call it); here, `decide()`."""
        return decide()

    def agree_on_disk_full(self, problem: Any) -> Any:
        """Whether rank 0's save did not fit (its NotEnoughDiskSpace, or None), known to every rank; here, `problem`."""
        return problem
