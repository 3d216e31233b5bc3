"""Training runs journal what a dashboard shows, whether anyone watches, and whatever the disk does."""

from __future__ import annotations

import errno
import os

from tiny_runs import wait_until

from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.rundir import journal as journal_module
from tui_trainer.engine.rundir.commands import PAUSE, RESUME, TARGET, ControlClient, read_ack
from tui_trainer.engine.rundir.journal import JournalLine, read_journal
from tui_trainer.engine.rundir.journal_records import JOURNAL_FILE, JOURNALED_EVENTS
from tui_trainer.engine.rundir.journal_tail import JournalTail

CHATTY = "tests.engine.chatty_job:chatty_job"


def assert_paused_retargeted_and_finished(kinds):
    assert kinds[:3] == [ev.Paused, ev.TargetChanged, ev.Resumed]
    assert kinds[-2:] == [ev.CheckpointSaved, ev.Finished]  # the final save, then the end
    assert set(kinds[3:-2]) <= {ev.CheckpointSaved}  # a periodic save on the way, if one falls due


def journaled(events):
    return [e for e in events if isinstance(e, JOURNALED_EVENTS)]


def test_a_run_journals_every_event_it_reports_but_step_summaries(tiny_run):
    run = tiny_run(max_iters=30, every_steps=10, keep_last=1)
    run.control.set_target(40)
    run.run()
    got = read_journal(run.run_dir)
    events = [r for r in got if isinstance(r, ev.Event)]
    assert events == journaled(run.events)  # times included
    kinds = {type(e) for e in events}
    assert {ev.Started, ev.CheckpointSaved, ev.CheckpointPruned, ev.TargetChanged, ev.Finished} <= kinds
    assert not kinds & {ev.StepCompleted, ev.Evaluated}
    target = next(e for e in events if isinstance(e, ev.TargetChanged))
    assert (target.old_target, target.new_target) == (30, 40) and target.note
    notes = [r.text for r in got if isinstance(r, JournalLine)]
    assert notes[0].startswith("new run ") and got.index(next(r for r in got if isinstance(r, JournalLine))) == 0


def test_a_resume_appends_its_decisions_and_events_to_the_same_journal(tiny_run, resume):
    first = tiny_run(max_iters=20, every_steps=10)
    first.run()
    again = resume(first.run_dir, max_iters=30)
    again.run()
    got = read_journal(first.run_dir)
    started = [e for e in got if isinstance(e, ev.Started)]
    assert [s.step for s in started] == [0, 20] and started[1].resumed_from.endswith("step_00000020.pt")
    notes = [r.text for r in got if isinstance(r, JournalLine)]
    assert any(n.startswith("resuming from step_00000020.pt") for n in notes)
    assert [e.step for e in got if isinstance(e, ev.Finished)] == [20, 30]


class FullDiskOs:
    """The `os` module, but every write fails with ENOSPC."""

    def write(self, fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(os, name)


def test_a_journal_that_cannot_be_written_never_stops_training(tiny_run, monkeypatch):
    monkeypatch.setattr(journal_module, "os", FullDiskOs())
    run = tiny_run(max_iters=25, every_steps=10)
    result = run.run()
    assert result.reason == "target" and result.step == 25
    assert run.checkpoints() == {10: "periodic", 20: "periodic", 25: "final"}
    assert run.trainer.journal.failed_writes >= len(journaled(run.events))
    assert not (run.run_dir / JOURNAL_FILE).stat().st_size


def test_a_viewer_attached_mid_run_is_told_of_a_pause_and_a_target_change(tiny_run):
    run = tiny_run(max_iters=100_000, every_steps=20)
    run.start_thread()
    run.wait_for(ev.CheckpointSaved)
    with JournalTail(run.run_dir) as viewer:
        seen = viewer.read()
        assert isinstance(seen[0], JournalLine) and isinstance(seen[1], ev.Started)
        run.control.pause()
        paused = run.wait_for(ev.Paused)
        wait_until(lambda: seen.extend(viewer.read()) or paused in seen)
        run.control.set_target(paused.step + 5)
        run.control.resume()
        run.join()
        seen += viewer.read()
    assert_paused_retargeted_and_finished([type(e) for e in seen[seen.index(paused):]])


def test_a_headless_runs_journal_holds_its_saves_target_change_and_job_prints(forkserver, tmp_path):
    run_dir, log = tmp_path / "run", tmp_path / "train.log"
    forkserver.start(["train", "--headless", "--job", CHATTY, "--job-opt", "size=tiny", "--job-opt", "device=cpu",
                      "--run-dir", str(run_dir), "--max-iters", "100000", "--ckpt-every", "20"], log)
    wait_until(lambda: read_ack(run_dir) is not None)
    wait_until(lambda: any(isinstance(r, ev.CheckpointSaved) for r in read_journal(run_dir)))
    client = ControlClient(run_dir)
    client.send(PAUSE)
    wait_until(lambda: any(isinstance(r, ev.Paused) for r in read_journal(run_dir)))
    paused = next(r for r in read_journal(run_dir) if isinstance(r, ev.Paused))
    target = paused.step + 10 + (1 if (paused.step + 10) % 20 == 0 else 0)  # a final save of its own, not a periodic one
    client.send(TARGET, target)
    client.send(RESUME)
    assert forkserver.wait() == 0, log.read_text()

    got = read_journal(run_dir)
    events = [r for r in got if isinstance(r, ev.Event)]
    lines = [r for r in got if isinstance(r, JournalLine)]
    assert_paused_retargeted_and_finished([type(e) for e in events[events.index(paused):]])
    change = next(e for e in events if isinstance(e, ev.TargetChanged))
    assert change.new_target == target and "LR" in change.note
    assert [e.kind for e in events if isinstance(e, ev.CheckpointSaved)][-1] == "final"
    job = [(line.text, line.level) for line in lines if line.source == "job"]
    assert job[:5] == [
        ("building the chatty job", "info"),  # printed while the job was built, before the journal
        ("UserWarning: lr too high (chatty_job.py:24)", "warning"),
        ("chatty: careful now", "warning"),
        ("job says step 5", "info"),
        ("job says step 10", "info"),
    ]
    assert any(line.source == "run" and line.text.startswith("new run ") for line in lines)
    printed = log.read_text()  # the terminal still shows all of it
    for text in ("building the chatty job", "job says step 5", "UserWarning: lr too high", "careful now",
                 f"finished at step {target} (target)"):
        assert text in printed
    assert printed.count("job says step 5\n") == 1
