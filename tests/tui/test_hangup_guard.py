"""After SIGHUP the process ends once the trainer has saved, even if the app cannot return."""

from __future__ import annotations

import threading

from tui_trainer.tui.hangup_guard import HangupGuard


def _guard(signal_box, active_box, exited):
    return HangupGuard(lambda: signal_box[0], lambda: active_box[0], grace_s=0.3, exit_fn=exited.append)


def test_waits_for_the_trainer_then_exits_with_128_plus_the_signal():
    signal_box, active_box, exited = [None], [True], []
    with _guard(signal_box, active_box, exited):
        threading.Event().wait(0.5)
        assert exited == []  # no signal
        signal_box[0] = 1  # SIGHUP
        threading.Event().wait(0.8)
        assert exited == []  # the trainer is still saving
        active_box[0] = False
        threading.Event().wait(1.0)
    assert exited == [129]


def test_does_nothing_once_the_app_has_returned():
    signal_box, active_box, exited = [1], [False], []
    guard = _guard(signal_box, active_box, exited)
    with guard:
        pass
    threading.Event().wait(0.6)
    assert exited == []
