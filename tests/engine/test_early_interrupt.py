"""Ctrl+C in a run's first instants (the interpreter starting, torch importing, the job being built) is never lost.

Raised as a KeyboardInterrupt it once landed in code that swallowed it, and the run trained on
to its target with exit status 0. It is held now, and the run stops before its first step.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from tiny_runs import PYTHON, child_env

from tui_trainer.engine.loop.control import TrainingControl
from tui_trainer.engine.loop.signals import holding_interrupts, interrupt_saves, release_interrupts

# Seconds from the start of the process: in the interpreter's start, our imports, torch's, the job's build.
DELAYS_S = (0.05, 0.2, 0.5, 0.9, 1.5)


def test_a_ctrl_c_at_any_instant_of_the_start_stops_the_run_with_130(tmp_path):
    env = {**child_env(), "OMP_NUM_THREADS": "1"}
    command = [PYTHON, "-m", "tui_trainer", "train", "--headless", "--max-iters", "100000000",
               "--job-opt", "size=tiny", "--job-opt", "device=cpu"]
    started = time.monotonic()
    children = {}
    for delay in DELAYS_S:  # all at once: torch's import is the slow part
        children[delay] = subprocess.Popen([*command, "--run-dir", str(tmp_path / f"run-{delay}")], env=env,
                                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True)
    try:
        for delay, child in children.items():
            time.sleep(max(0.0, started + delay - time.monotonic()))
            child.send_signal(signal.SIGINT)
        outcomes = {delay: (child.wait(timeout=30), *child.communicate()) for delay, child in children.items()}
    finally:
        for child in children.values():
            if child.poll() is None:
                child.kill()
                child.wait()
    for delay, (code, _out, err) in outcomes.items():
        if code != 130:  # Python's own start, before tui-trainer's first line could hold it: still no run
            # Killed by the signal itself before the interpreter had a handler for it, or Python's KeyboardInterrupt.
            killed = code == -signal.SIGINT and not err
            assert killed or code != 0 and "KeyboardInterrupt" in err and "tui_trainer/cli" not in err, (delay, code, err)
            assert not (tmp_path / f"run-{delay}").exists()
            continue
        assert "Traceback" not in err, err
        history = tmp_path / f"run-{delay}" / "history.jsonl"
        assert not history.exists() or b'"loss"' not in history.read_bytes()  # not one step trained
    assert sum(code == 130 for code, _, _ in outcomes.values()) >= 2  # a loaded machine starts Python slowly


def test_a_held_ctrl_c_is_the_first_signal_of_the_trainer():
    control = TrainingControl()
    with holding_interrupts():
        os.kill(os.getpid(), signal.SIGINT)  # lands here, not as a KeyboardInterrupt
        time.sleep(0.01)
        with interrupt_saves(control) as caught:
            assert caught.signal == signal.SIGINT
            assert control.stop_reason == "interrupted"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_while_held_aborts_at_once():
    with holding_interrupts(), pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
    with interrupt_saves(TrainingControl()) as caught:  # nothing left held for the next run in this process
        assert caught.signal is None


def test_a_command_that_trains_nothing_raises_a_held_ctrl_c_when_it_lets_go():
    with holding_interrupts():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        with pytest.raises(KeyboardInterrupt):
            release_interrupts()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
