"""Background saves (`--save-mode background`): training goes on while a thread writes the checkpoint.

What a save writes is the state at its step, whatever the loop did meanwhile; its events, a full
disk and a signal are handled on the training thread as a sync save's are.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import threading

import pytest
from test_resume import TARGET, assert_same_tensors, assert_same_training, noisy_tiny_job
from tiny_runs import Gate, at_step, checkpoint_kinds, stop_at, wait_until

from tests.full_disk import FullDisk
from tui_trainer.cli.main import main
from tui_trainer.engine.checkpoints import store as checkpoint_store
from tui_trainer.engine.checkpoints.file import load_checkpoint
from tui_trainer.engine.checkpoints.hashing_writer import HashingWriter, checksum_of_file
from tui_trainer.engine.checkpoints.meta import INTERRUPTED, PERIODIC, checkpoint_name, read_sidecar, sidecar_path
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.loop.control import TrainingControl
from tui_trainer.engine.loop.trainer import SAVE_BACKGROUND
from tui_trainer.engine.rundir.layout import read_run

TINY = ["--job-opt", "size=tiny", "--job-opt", "device=cpu"]
NEARLY_FULL = 1000
STATE_KEYS = ("model", "optimizer", "scheduler", "data", "rng", "target", "history_summary")


def background(run):
    run.trainer.save_mode = SAVE_BACKGROUND
    return run


class SlowWriter:
    """Holds the first checkpoint write at its end (written, not yet renamed) until `release()`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.writing = threading.Event()
        self.released = threading.Event()
        slow = self

        class HeldWriter(HashingWriter):
            def finish(self) -> str:
                if not slow.released.is_set():
                    slow.writing.set()
                    assert slow.released.wait(30), "the test never released the save"
                return super().finish()

        monkeypatch.setattr(checkpoint_store, "HashingWriter", HeldWriter)

    def wait_writing(self) -> None:
        assert self.writing.wait(30), "no save started"

    def release(self) -> None:
        self.released.set()


def temp_files(run_dir):
    return [p.name for p in run_dir.iterdir() if ".tmp-" in p.name]


def test_training_goes_on_while_a_save_is_written_and_a_second_save_waits(tiny_run, monkeypatch):
    slow = SlowWriter(monkeypatch)
    run = background(tiny_run(max_iters=30, every_steps=10))
    run.start_thread()
    slow.wait_writing()
    wait_until(lambda: run.last_step() >= 15)  # the save of step 10 is still being written
    assert run.of(ev.CheckpointSaved) == [] and temp_files(run.run_dir)
    wait_until(lambda: any("waiting for the save of step_00000010" in n for n in run.trainer.notes))
    assert run.last_step() == 20  # the save at 20 waits for the one in flight, not training past it
    slow.release()
    result = run.join()
    assert (result.reason, result.step) == ("target", 30)
    saved = run.of(ev.CheckpointSaved)
    assert [(s.step, s.kind) for s in saved] == [(10, PERIODIC), (20, PERIODIC), (30, PERIODIC)]
    assert run.events.index(saved[0]) > run.events.index(run.wait_for(ev.StepCompleted, lambda e: e.step == 15))
    assert load_checkpoint(run.run_dir / checkpoint_name(10))["meta"]["step"] == 10
    assert sum("waiting for the save" in n for n in run.trainer.notes) == 1
    assert isinstance(run.events[-1], ev.Finished) and temp_files(run.run_dir) == []


def test_a_final_save_on_a_periodic_step_amends_that_save_without_saying_it_waits_for_another(tiny_run, monkeypatch):
    slow = SlowWriter(monkeypatch)
    run = background(tiny_run(max_iters=10, every_steps=10))
    run.start_thread()
    slow.wait_writing()  # the periodic save of step 10, the last step, is in flight at the end
    threading.Timer(0.3, slow.release).start()
    result = run.join()
    assert (result.reason, result.step) == ("target", 10)
    assert not [n for n in run.trainer.notes if "waiting for the save" in n], run.trainer.notes
    assert checkpoint_kinds(run.run_dir) == {10: PERIODIC}


def test_a_background_saved_checkpoint_holds_the_state_at_its_step(tiny_run, monkeypatch):
    straight = tiny_run("straight", job=noisy_tiny_job, max_iters=30, every_steps=10)
    straight.run()
    slow = SlowWriter(monkeypatch)
    run = background(tiny_run("background", job=noisy_tiny_job, max_iters=30, every_steps=10))
    run.start_thread()
    slow.wait_writing()
    wait_until(lambda: run.last_step() >= 15)  # the weights have moved on since the snapshot
    slow.release()
    run.join()
    for step in (10, 20, 30):
        ours = load_checkpoint(run.run_dir / checkpoint_name(step))
        theirs = load_checkpoint(straight.run_dir / checkpoint_name(step))
        for key in STATE_KEYS:
            if key == "history_summary":  # its byte offset follows the timestamps' printed length
                ours[key], theirs[key] = ({k: v for k, v in d[key].items() if k != "history_end"}
                                          for d in (ours, theirs))
            assert_same_tensors(ours[key], theirs[key], f"step {step}: {key}")


def test_a_background_saved_run_resumes_exactly(tiny_run, resume):
    straight = tiny_run("straight", job=noisy_tiny_job, max_iters=TARGET, every_steps=10)
    straight.run()
    control = TrainingControl()
    first = background(tiny_run("resumed", job=noisy_tiny_job, max_iters=TARGET, every_steps=10, control=control,
                                on_event=stop_at(37, control, "interrupted")))
    assert first.run().reason == "interrupted"
    assert checkpoint_kinds(first.run_dir) == {10: PERIODIC, 20: PERIODIC, 30: PERIODIC, 37: INTERRUPTED}
    resumed = background(resume(first.run_dir))
    assert resumed.trainer.step == 37
    resumed.run()
    assert_same_training(straight, resumed)
    rolled_back = background(resume(first.run_dir / checkpoint_name(30)))  # a periodic one, saved mid-training
    rolled_back.run()
    assert_same_training(straight, rolled_back)


@pytest.fixture
def disk(monkeypatch):
    return FullDisk(monkeypatch)


def test_a_full_disk_during_a_background_save_pauses_and_the_retry_writes_that_step(tiny_run, disk):
    straight = tiny_run("straight", max_iters=30, every_steps=10)
    straight.run()
    gate = Gate(at_step(10, ev.CheckpointSaved))
    run = background(tiny_run(max_iters=30, every_steps=10, on_event=gate.on_event,
                              when_disk_full=ev.DISK_FULL_PAUSE))
    run.start_thread()
    gate.reached()
    disk.free = NEARLY_FULL
    gate.release()

    full = run.wait_for(ev.DiskFull)
    assert (full.step, full.kind, full.name) == (20, PERIODIC, checkpoint_name(20))
    assert "prune" in full.reason and full.free_bytes == NEARLY_FULL
    assert [(f.step, f.kind) for f in run.of(ev.CheckpointFailed)] == [(20, PERIODIC)]
    paused_at = run.last_step()
    wait_until(lambda: read_run(run.run_dir).state == "paused")
    assert run.control.paused and run.last_step() == paused_at
    assert run.checkpoints() == {10: PERIODIC} and temp_files(run.run_dir) == []

    run.control.resume()  # still no room: paused again, with a fresh event
    wait_until(lambda: len(run.of(ev.DiskFull)) == 2)
    assert run.last_step() == paused_at and run.checkpoints() == {10: PERIODIC}

    disk.free = None
    run.control.resume()
    result = run.join()
    assert (result.reason, result.step) == ("target", 30)
    assert run.checkpoints() == {10: PERIODIC, 20: PERIODIC, 30: PERIODIC}
    retried = load_checkpoint(run.run_dir / checkpoint_name(20))
    assert retried["meta"]["step"] == 20  # the snapshot taken at 20, though the loop had gone on
    assert_same_tensors(retried["model"], load_checkpoint(straight.run_dir / checkpoint_name(20))["model"])
    assert [e.step for e in run.of(ev.StepCompleted)] == list(range(1, 31))


def test_a_full_disk_during_a_background_save_ends_a_headless_run(tiny_run, disk):
    disk.enospc = True
    run = background(tiny_run(max_iters=40, every_steps=10))
    result = run.run()
    assert result.reason == "disk_full" and result.step >= 10
    assert any("disk full" in note and "prune" in note for note in result.notes)
    assert [(f.step, f.kind) for f in run.of(ev.CheckpointFailed)] == [(10, PERIODIC)]
    assert run.of(ev.DiskFull) == [] and run.checkpoints() == {} and temp_files(run.run_dir) == []
    assert read_run(run.run_dir).state == "disk_full"


def train_in_process(run_dir, *extra):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["train", "--headless", "--run-dir", str(run_dir), *TINY, *extra])
    return code, out.getvalue() + err.getvalue()


def test_headless_exit_code_4_on_a_full_disk_in_background_mode(tmp_path, disk):
    disk.enospc = True
    code, output = train_in_process(tmp_path / "run", "--max-iters", "40", "--ckpt-every", "10",
                                     "--save-mode", "background")
    assert code == 4, output
    assert "Traceback" not in output


def test_sigint_during_a_background_save_waits_for_it_then_exits_130(tmp_path, monkeypatch):
    slow = SlowWriter(monkeypatch)
    run_dir = tmp_path / "run"
    order = []

    def interrupt_mid_save() -> None:
        slow.wait_writing()
        os.kill(os.getpid(), signal.SIGINT)
        threading.Event().wait(0.3)  # the loop has seen the signal by now, and waits for the save
        order.append("released")
        slow.release()

    helper = threading.Thread(target=interrupt_mid_save)
    helper.start()
    code, output = train_in_process(run_dir, "--max-iters", "100000", "--ckpt-every", "10")  # background: the default
    order.append("returned")
    helper.join()
    assert code == 130, output
    assert order == ["released", "returned"]
    kinds = checkpoint_kinds(run_dir)
    assert kinds.pop(10) == PERIODIC and list(kinds.values()) == [INTERRUPTED]
    for step in (10, *kinds):
        path = run_dir / checkpoint_name(step)
        assert read_sidecar(sidecar_path(path)).checksum == checksum_of_file(path)
        assert load_checkpoint(path)["meta"]["step"] == step
    assert temp_files(run_dir) == [] and read_run(run_dir).state == "interrupted"


def test_an_unknown_save_mode_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["train", "--headless", "--run-dir", str(tmp_path / "run"), "--save-mode", "later"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'later'" in err and "Traceback" not in err


def test_the_events_and_checkpoints_are_those_of_a_sync_run(tiny_run):
    sync = tiny_run("sync", max_iters=30, every_steps=10, keep_last=1)
    sync.run()
    run = background(tiny_run("background", max_iters=30, every_steps=10, keep_last=1))
    assert run.run().reason == "target"
    assert run.checkpoints() == sync.checkpoints()

    def saves(events):
        return [(type(e).__name__, getattr(e, "step", None), len(getattr(e, "paths", ()))) for e in events
                if isinstance(e, (ev.CheckpointSaved, ev.CheckpointPruned, ev.Finished))]

    assert saves(run.events) == saves(sync.events)
