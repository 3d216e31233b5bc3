"""A full disk at a write other than a save: the history, its index, run.json, a sidecar, the summary.

Each loses nothing and tears nothing: a run asked to pause (the dashboard, a detached trainer)
pauses with the alert and writes everything once there is room; a headless run ends with reason
`disk_full`, and a resume carries on from its last checkpoint with a continuous history.
"""

import json

import pytest
from tiny_runs import TINY, Gate, at_step, wait_until

from tests.full_disk import FullDisk
from tui_trainer.engine.checkpoints.meta import MANUAL, PERIODIC, checkpoint_name, sidecar_path
from tui_trainer.engine.errors import WriteDidNotFit
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.loop import launch
from tui_trainer.engine.rundir.history_index import index_path, load_index
from tui_trainer.engine.rundir.history_writer import HistoryWriter
from tui_trainer.engine.rundir.layout import HISTORY_FILE, RUN_FILE, SUMMARY_FILE, read_run
from tui_trainer.engine.tools.verify import verify_path


@pytest.fixture
def disk(monkeypatch):
    return FullDisk(monkeypatch)


def history_lines(run_dir):
    """Every line of history.jsonl, parsed: a torn record fails here."""
    return [json.loads(line) for line in (run_dir / HISTORY_FILE).read_bytes().splitlines()]


def train_steps(run_dir):
    return [r["step"] for r in history_lines(run_dir) if "loss" in r]


def leftovers(run_dir):
    return sorted(p.name for p in run_dir.iterdir() if ".tmp-" in p.name)


def assert_index_matches(run_dir):
    records = load_index(run_dir / HISTORY_FILE)
    lines = history_lines(run_dir)
    assert records is not None and len(records) == len(lines)
    assert [int(s) for s in records["step"]] == [r["step"] for r in lines]
    assert int(records["end"][-1]) == (run_dir / HISTORY_FILE).stat().st_size


def test_the_history_keeps_what_does_not_fit_and_writes_it_whole_later(tmp_path, disk):
    writer = HistoryWriter(tmp_path)
    for step in range(1, 4):
        writer.log_step(step, 0, 1.0 / step, 0.1, 1000.0 + step)
    writer.flush()
    disk.refuse(HISTORY_FILE)
    for step in range(4, 200):
        writer.log_step(step, 0, 1.0 / step, 0.1, 1000.0 + step)  # never raises: the trainer decides
    with pytest.raises(WriteDidNotFit) as raised:
        writer.flush()
    assert "history.jsonl could not be written" in str(raised.value)
    assert writer.unwritten is not None and disk.refusals
    assert [r["step"] for r in history_lines(tmp_path)] == [1, 2, 3]  # the torn half was cut off

    disk.make_room()
    writer.flush()
    assert writer.unwritten is None
    assert [r["step"] for r in history_lines(tmp_path)] == list(range(1, 200))
    writer.close()
    assert_index_matches(tmp_path)


def test_an_index_that_does_not_fit_stays_behind_its_history_never_past_it(tmp_path, disk):
    writer = HistoryWriter(tmp_path)
    writer.log_step(1, 0, 0.5, 0.1, 1000.0)
    writer.flush()
    disk.refuse(index_path(tmp_path / HISTORY_FILE).name)
    writer.log_step(2, 0, 0.4, 0.1, 1001.0)
    with pytest.raises(WriteDidNotFit):
        writer.flush()
    assert [r["step"] for r in history_lines(tmp_path)] == [1, 2]
    assert len(load_index(tmp_path / HISTORY_FILE)) == 1
    disk.make_room()
    writer.close()
    assert_index_matches(tmp_path)


@pytest.mark.parametrize("refused", [HISTORY_FILE, SUMMARY_FILE, "history.idx"])
def test_a_run_asked_to_pause_waits_for_room_and_loses_no_step(tiny_run, disk, refused):
    summary = refused == SUMMARY_FILE  # written at saves only: the save pauses for it
    run = tiny_run(max_iters=400, every_steps=100 if summary else 0, keep_last=0, when_disk_full=ev.DISK_FULL_PAUSE)
    run.start_thread()
    run.wait_for(ev.StepCompleted, lambda e: e.step >= 20)
    disk.refuse(refused)

    full = run.wait_for(ev.DiskFull)
    assert "could not be written" in full.reason
    assert (full.kind, full.name) == (("periodic", "step_00000100.pt") if summary else (ev.DISK_FULL_WRITE, refused))
    paused_at = run.last_step()
    wait_until(lambda: read_run(run.run_dir).state == "paused")
    assert run.control.paused and run.last_step() == paused_at
    assert leftovers(run.run_dir) == []

    run.control.resume()  # still full: the alert comes back, still paused
    wait_until(lambda: len(run.of(ev.DiskFull)) >= 2)
    assert run.last_step() == paused_at

    disk.make_room()
    run.control.resume()
    result = run.join()
    assert (result.reason, result.step) == ("target", 400)
    assert train_steps(run.run_dir) == list(range(1, 401))  # continuous: no step lost, none twice
    assert_index_matches(run.run_dir)
    assert read_run(run.run_dir).state == "finished"
    assert [r for r in verify_path(run.run_dir) if not r.ok] == []
    assert leftovers(run.run_dir) == []


def test_run_json_that_does_not_fit_is_written_once_there_is_room(tiny_run, disk):
    run = tiny_run(max_iters=100_000, when_disk_full=ev.DISK_FULL_PAUSE)
    run.start_thread()
    run.wait_for(ev.StepCompleted, lambda e: e.step >= 5)
    disk.refuse(RUN_FILE)
    run.control.set_target(60)  # the new target goes into run.json

    full = run.wait_for(ev.DiskFull)
    assert (full.kind, full.name) == (ev.DISK_FULL_WRITE, RUN_FILE)
    assert read_run(run.run_dir).settings.max_iters == 100_000  # the old, whole file
    # The 'paused' state goes into run.json after the alert and fails too: its temporary file
    # exists for the instant of that write, and none may stay.
    wait_until(lambda: leftovers(run.run_dir) == [])
    disk.make_room()
    run.control.resume()
    result = run.join()
    assert (result.reason, result.step) == ("target", 60)
    info = read_run(run.run_dir)
    assert (info.state, info.settings.max_iters) == ("finished", 60)
    assert leftovers(run.run_dir) == []


def test_headless_a_full_disk_between_saves_ends_the_run_with_nothing_broken(tiny_run, resume, disk):
    run = tiny_run(max_iters=400, every_steps=50, keep_last=0)
    run.start_thread()
    run.wait_for(ev.CheckpointSaved, lambda e: e.step == 100)
    disk.refuse(HISTORY_FILE, RUN_FILE)
    result = run.join()
    assert result.reason == "disk_full"
    note = result.notes[-1]
    assert "history.jsonl could not be written" in note or "run.json could not be written" in note
    assert f"training stopped at step {result.step}" in note and "resume" in note
    steps = sorted(run.checkpoints())
    assert steps and all(s % 50 == 0 for s in steps) and max(steps) < 400
    assert leftovers(run.run_dir) == []
    assert [r for r in verify_path(run.run_dir) if not r.ok] == []

    disk.make_room()
    again = resume(run.run_dir)
    assert again.trainer.step == max(steps)
    assert again.run().reason == "target"
    assert train_steps(run.run_dir) == list(range(1, 401))
    assert_index_matches(run.run_dir)
    assert read_run(run.run_dir).state == "finished"


def test_a_sidecar_amended_on_a_full_disk_pauses_like_a_save(tiny_run, disk):
    gate = Gate(at_step(10, ev.CheckpointSaved))
    run = tiny_run(max_iters=30, every_steps=10, eval_before_save=False, on_event=gate.on_event,
                   when_disk_full=ev.DISK_FULL_PAUSE)
    run.start_thread()
    gate.reached()
    disk.refuse(sidecar_path(run.run_dir / checkpoint_name(10)).name)
    run.control.save_now()  # on the step just saved: the periodic checkpoint becomes a manual one
    gate.release()

    full = run.wait_for(ev.DiskFull)
    assert full.step == 10 and "could not be written" in full.reason
    wait_until(lambda: read_run(run.run_dir).state == "paused")  # run.json is written after the alert
    assert run.checkpoints() == {10: PERIODIC}  # the old sidecar, whole
    assert leftovers(run.run_dir) == []
    disk.make_room()
    run.control.resume()
    assert run.join().reason == "target"
    assert run.checkpoints() == {10: MANUAL, 20: PERIODIC, 30: PERIODIC}
    assert [r for r in verify_path(run.run_dir) if not r.ok] == []


@pytest.mark.parametrize("made_by_user", [False, True])
def test_a_run_that_cannot_start_takes_back_what_it_made_and_nothing_else(tmp_path, disk, made_by_user):
    run_dir = tmp_path / "run"
    if made_by_user:
        run_dir.mkdir()
        (run_dir / "notes.txt").write_text("mine")
    disk.refuse(RUN_FILE)
    with pytest.raises(OSError):
        launch.start_run(run_dir, job_options=TINY)
    if made_by_user:
        assert sorted(p.name for p in run_dir.iterdir() if p.name != ".lock") == ["notes.txt"]
    else:
        assert not run_dir.exists()
    disk.make_room()
    trainer = launch.start_run(run_dir, job_options=TINY)  # the same run dir now starts
    trainer.control.stop()
    assert trainer.run().reason == "stopped"
