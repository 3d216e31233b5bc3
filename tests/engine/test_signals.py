"""Real `tui-trainer train` processes, stopped by the signals a user or a dropped session sends."""

import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from tiny_runs import PYTHON, checkpoint_kinds, child_env, step_records

from tui_trainer.engine.checkpoints.file import load_checkpoint
from tui_trainer.engine.checkpoints.hashing_writer import checksum_of_file
from tui_trainer.engine.checkpoints.meta import INTERRUPTED, checkpoint_name, read_sidecar, sidecar_path
from tui_trainer.engine.rundir.history import read_history
from tui_trainer.engine.rundir.layout import HISTORY_FILE, read_run

SIGNALS = {
    "SIGINT": [signal.SIGINT],
    "SIGTERM": [signal.SIGTERM],
    "SIGHUP": [signal.SIGHUP],
    "SIGINT-twice": [signal.SIGINT, signal.SIGINT],
}
# A dropped SSH session: the terminal is gone before SIGHUP arrives, so every later print fails.
TERMINAL_GONE = {"SIGHUP"}


@dataclass
class Outcome:
    run_dir: Path
    exit_code: int
    stdout: str
    stderr: str


def start_training(run_dir: Path, terminal: bool = True) -> subprocess.Popen:
    """A headless run; with `terminal`, its stdin is a terminal's (a pty), as when started from a shell."""
    command = [
        PYTHON, "-m", "tui_trainer", "train", "--headless", "--run-dir", str(run_dir),
        "--max-iters", "100000", "--ckpt-every", "1000", "--job-opt", "size=tiny", "--job-opt", "device=cpu",
    ]
    stdin = subprocess.DEVNULL
    if terminal:
        import pty

        _, stdin = pty.openpty()
    return subprocess.Popen(command, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env())


def steps_logged(run_dir: Path) -> int:
    try:
        return (run_dir / HISTORY_FILE).read_bytes().count(b'"loss"')
    except FileNotFoundError:
        return 0


@pytest.fixture(scope="module")
def signalled(tmp_path_factory) -> dict[str, Outcome]:
    """One training process per case, started together (importing torch is the slow part), then signalled."""
    root = tmp_path_factory.mktemp("signals")
    children = {name: (start_training(root / name), root / name) for name in SIGNALS}
    try:
        ready = set()
        while len(ready) < len(children):
            for name, (child, run_dir) in children.items():
                assert child.poll() is None, child.communicate()
                # Steps in history.jsonl mean the loop runs, so the signal handlers are in place.
                if name not in ready and steps_logged(run_dir) >= 3:
                    child.send_signal(signal.SIGSTOP)  # leave the cores to those still starting
                    ready.add(name)
            time.sleep(0.05)
        for name, signals in SIGNALS.items():
            child = children[name][0]
            if name in TERMINAL_GONE:
                child.stdout.close()
                child.stderr.close()
            child.send_signal(signal.SIGCONT)
            for i, sig in enumerate(signals):
                time.sleep(0.005 if i else 0)
                child.send_signal(sig)
        outcomes = {}
        for name, (child, run_dir) in children.items():
            out, err = ("", "") if name in TERMINAL_GONE else child.communicate(timeout=60)
            outcomes[name] = Outcome(run_dir, child.wait(timeout=60), out, err)
        return outcomes
    finally:
        for child, _ in children.values():
            if child.poll() is None:
                child.kill()
                child.wait()


def assert_interrupted_checkpoint(run_dir: Path) -> int:
    """The run's one checkpoint is the interrupted one, complete and matching its sidecar; return its step."""
    kinds = checkpoint_kinds(run_dir)
    assert list(kinds.values()) == [INTERRUPTED]
    step = next(iter(kinds))
    path = run_dir / checkpoint_name(step)
    assert read_sidecar(sidecar_path(path)).checksum == checksum_of_file(path)
    assert load_checkpoint(path)["meta"]["step"] == step
    assert not [p for p in run_dir.iterdir() if ".tmp-" in p.name]
    assert read_run(run_dir).state == "interrupted"
    assert [r["step"] for r in step_records(read_history(run_dir / HISTORY_FILE))] == list(range(1, step + 1))
    return step


@pytest.mark.parametrize(("name", "exit_code"), [("SIGINT", 130), ("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_signal_saves_an_interrupted_checkpoint_that_resume_continues(signalled, resume, name, exit_code):
    outcome = signalled[name]
    assert outcome.exit_code == exit_code, outcome.stderr
    step = assert_interrupted_checkpoint(outcome.run_dir)
    if name not in TERMINAL_GONE:
        assert f"{name}: saving a checkpoint after this step" in outcome.stderr
        assert "Traceback" not in outcome.stderr
        assert f"saved interrupted checkpoint {outcome.run_dir / checkpoint_name(step)}" in outcome.stdout

    resumed = resume(outcome.run_dir, max_iters=step + 3)
    assert resumed.trainer.step == step
    assert resumed.run().step == step + 3


def test_a_second_ctrl_c_right_after_the_first_corrupts_nothing(signalled, resume):
    outcome = signalled["SIGINT-twice"]
    assert outcome.exit_code == 130, outcome.stderr
    assert "Traceback" not in outcome.stderr
    step = assert_interrupted_checkpoint(outcome.run_dir)
    assert resume(outcome.run_dir, max_iters=step + 2).run().step == step + 2


def test_a_headless_trainer_with_no_terminal_ignores_a_hang_up(tmp_path):
    child = start_training(tmp_path / "run", terminal=False)  # e.g. started by nohup, cron or a scheduler
    try:
        deadline = time.monotonic() + 120
        while steps_logged(tmp_path / "run") < 3:
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()
            time.sleep(0.05)
        child.send_signal(signal.SIGHUP)
        steps = steps_logged(tmp_path / "run")
        while steps_logged(tmp_path / "run") < steps + 50:
            assert child.poll() is None, child.communicate()
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=60) == 130
    finally:
        if child.poll() is None:
            child.kill()
    assert_interrupted_checkpoint(tmp_path / "run")
