"""A save that does not fit: a run asked to pause waits for room and retries; by default it ends."""

import time

import pytest
from tiny_runs import Gate, at_step, wait_until

from tests.full_disk import FullDisk
from tui_trainer.engine.checkpoints.file import load_checkpoint
from tui_trainer.engine.checkpoints.meta import FINAL, INTERRUPTED, PERIODIC, checkpoint_name
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.rundir.layout import read_run

NEARLY_FULL = 1000  # bytes free: less than any checkpoint


@pytest.fixture
def disk(monkeypatch):
    return FullDisk(monkeypatch)


def temp_files(run_dir):
    return [p.name for p in run_dir.iterdir() if p.name.startswith(".step")]


def still_at(run, step: int, seconds: float = 0.3) -> bool:
    """True if the trainer stays at `step` for a while (paused, not training on)."""
    time.sleep(seconds)
    return run.last_step() == step and run.control.paused


def test_a_full_disk_pauses_and_resume_retries_until_the_save_fits(tiny_run, disk):
    gate = Gate(at_step(10, ev.CheckpointSaved))
    run = tiny_run(max_iters=30, every_steps=10, on_event=gate.on_event, when_disk_full=ev.DISK_FULL_PAUSE)
    run.start_thread()
    gate.reached()
    first = run.run_dir / checkpoint_name(10)
    saved = first.read_bytes()
    disk.free = NEARLY_FULL
    gate.release()

    full = run.wait_for(ev.DiskFull)
    assert (full.step, full.kind, full.name) == (20, PERIODIC, checkpoint_name(20))
    assert full.free_bytes == NEARLY_FULL and full.needed_bytes > len(saved)
    assert full.directory == str(run.run_dir) and "prune" in full.reason
    assert still_at(run, 20), "training went on past a save that did not fit"
    assert read_run(run.run_dir).state == "paused"
    assert run.checkpoints() == {10: PERIODIC} and temp_files(run.run_dir) == []

    run.control.resume()  # still no room: paused again, with a fresh event
    wait_until(lambda: len(run.of(ev.DiskFull)) == 2)
    assert still_at(run, 20)
    assert run.checkpoints() == {10: PERIODIC}

    disk.free = None  # the user made room
    run.control.resume()
    result = run.join()
    assert (result.reason, result.step) == ("target", 30)
    assert run.checkpoints() == {10: PERIODIC, 20: PERIODIC, 30: PERIODIC}  # 30: a final save on a periodic step
    assert load_checkpoint(run.run_dir / checkpoint_name(20))["meta"]["step"] == 20
    assert first.read_bytes() == saved
    assert [e.step for e in run.of(ev.StepCompleted)] == list(range(1, 31))  # no step lost or repeated
    assert len(run.of(ev.Resumed)) == 2
    assert read_run(run.run_dir).state == "finished"


def test_enospc_during_the_final_save_pauses_and_the_retry_lands(tiny_run, disk):
    disk.enospc = True
    run = tiny_run(max_iters=20, when_disk_full=ev.DISK_FULL_PAUSE)
    run.start_thread()
    full = run.wait_for(ev.DiskFull)
    assert (full.step, full.kind) == (20, FINAL)
    assert full.needed_bytes is not None and full.needed_bytes > 0 and full.free_bytes is not None
    assert "disk full while writing" in full.reason and checkpoint_name(20) in full.reason
    assert [(f.step, f.kind) for f in run.of(ev.CheckpointFailed)] == [(20, FINAL)]
    assert temp_files(run.run_dir) == [] and run.checkpoints() == {}
    assert still_at(run, 20)

    disk.enospc = False
    run.control.resume()
    result = run.join()
    assert result.reason == "target"
    assert run.checkpoints() == {20: FINAL}
    assert load_checkpoint(run.run_dir / checkpoint_name(20))["meta"]["kind"] == FINAL


@pytest.mark.parametrize("room_before_stop", [False, True], ids=["still-full", "room-made"])
def test_save_and_quit_while_paused_on_a_full_disk(tiny_run, disk, room_before_stop):
    disk.enospc = True  # the first save has no earlier size to check against: it fails writing
    run = tiny_run(max_iters=40, every_steps=10, when_disk_full=ev.DISK_FULL_PAUSE)
    run.start_thread()
    run.wait_for(ev.DiskFull)
    if room_before_stop:
        disk.enospc = False
    run.control.stop("interrupted")
    result = run.join()
    assert temp_files(run.run_dir) == []
    if room_before_stop:
        assert (result.reason, result.step) == ("interrupted", 10)
        assert run.checkpoints() == {10: INTERRUPTED}
    else:
        assert (result.reason, result.step) == ("disk_full", 10)
        assert run.checkpoints() == {}
        assert any("disk full" in note and "prune" in note for note in result.notes)
    assert read_run(run.run_dir).state == result.reason
    assert run.events[-1] == ev.Finished(10, result.reason, time=run.events[-1].time)


def test_quit_without_saving_while_paused_on_a_full_disk_just_stops(tiny_run, disk):
    disk.enospc = True
    run = tiny_run(max_iters=40, every_steps=10, when_disk_full=ev.DISK_FULL_PAUSE)
    run.start_thread()
    run.wait_for(ev.DiskFull)
    run.control.stop()
    result = run.join()
    assert (result.reason, result.step) == ("stopped", 10)
    assert run.checkpoints() == {} and temp_files(run.run_dir) == []
    assert read_run(run.run_dir).state == "stopped"


def test_by_default_a_full_disk_ends_the_run_without_pausing(tiny_run, disk):
    disk.enospc = True
    run = tiny_run(max_iters=40, every_steps=10)
    result = run.run()
    assert (result.reason, result.step) == ("disk_full", 10)
    assert run.of(ev.DiskFull) == [] and run.of(ev.Paused) == []
    assert run.checkpoints() == {} and temp_files(run.run_dir) == []
    assert read_run(run.run_dir).state == "disk_full"


def test_an_unknown_disk_full_choice_is_refused(tiny_run):
    with pytest.raises(ValueError, match="when_disk_full"):
        tiny_run(when_disk_full="ignore")
