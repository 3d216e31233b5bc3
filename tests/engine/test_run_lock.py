import os
import signal
import subprocess

import pytest
from tiny_runs import PYTHON, TINY, child_env

from tui_trainer.engine.errors import RunDirBusy, RunDirError
from tui_trainer.engine.loop import launch
from tui_trainer.engine.rundir.layout import RUN_FILE, RunLock, RunSettings, is_locked

HOLD_LOCK = """
import sys, time
from tui_trainer.engine.rundir.layout import RunLock
RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture
def lock_holder():
    """Start another process that takes a run dir's lock and keeps it until killed."""
    children = []

    def hold(run_dir):
        command = [PYTHON, "-c", HOLD_LOCK, str(run_dir)]
        child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=child_env())
        children.append(child)
        assert child.stdout.readline().strip() == "locked"
        return child

    yield hold
    for child in children:
        child.kill()
        child.wait()
        child.stdout.close()


def start(run_dir, **kwargs):
    return launch.start_run(run_dir, job_options=TINY, settings=RunSettings(max_iters=5), **kwargs)


def test_start_run_in_a_dir_locked_by_another_process_is_refused(tmp_path, lock_holder):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = lock_holder(run_dir)
    with pytest.raises(RunDirBusy, match=rf"another process \(pid {holder.pid} on "):
        start(run_dir)
    assert not (run_dir / RUN_FILE).exists()


def test_resume_in_a_locked_dir_is_refused_until_the_holder_dies(tmp_path, lock_holder):
    run_dir = tmp_path / "run"
    start(run_dir).run()
    holder = lock_holder(run_dir)
    assert is_locked(run_dir)
    with pytest.raises(RunDirBusy, match=rf"pid {holder.pid} .*stop that process first"):
        launch.resume_run(run_dir, max_iters=8)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert not is_locked(run_dir)  # flock dies with its holder: no stale lock to clean up
    resumed = launch.resume_run(run_dir, max_iters=8)
    assert resumed.run().step == 8


def test_a_trainer_holds_the_lock_until_its_run_returns(tmp_path):
    run_dir = tmp_path / "run"
    trainer = start(run_dir)
    assert is_locked(run_dir)
    with pytest.raises(RunDirBusy, match=f"pid {os.getpid()}"):
        launch.resume_run(run_dir, max_iters=8)
    trainer.run()
    assert not is_locked(run_dir)
    launch.resume_run(run_dir, max_iters=8).run()


def test_a_job_that_fails_to_build_leaves_no_run_dir_and_no_lock(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(Exception, match="unknown demo size"):
        launch.start_run(run_dir, job_options={"size": "huge"})
    assert not run_dir.exists() and not is_locked(run_dir)
    run_dir.mkdir()
    with RunLock(run_dir):
        assert is_locked(run_dir)


def test_start_run_in_a_dir_that_holds_a_run_points_at_resume(tmp_path):
    run_dir = tmp_path / "run"
    start(run_dir).run()
    with pytest.raises(RunDirError, match=r"already holds a run; continue it with `tui-trainer resume "):
        start(run_dir)


def test_start_run_in_a_dir_of_loose_checkpoints_is_refused(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"weights")
    with pytest.raises(RunDirError, match="already holds checkpoint files"):
        start(tmp_path)
    assert (tmp_path / "model.pt").read_bytes() == b"weights"


def test_start_run_on_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="not a directory"):
        start(tmp_path / "file")
