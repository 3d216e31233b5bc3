"""The run's journal on its own: what goes in comes back out, bounded, and nothing can spoil it."""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from pathlib import Path

import pytest
from tiny_runs import wait_until

from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.rundir import journal as journal_module
from tui_trainer.engine.rundir.journal import JournalLine, JournalWriter, read_journal
from tui_trainer.engine.rundir.journal_records import JOURNAL_FILE, JOURNALED_EVENTS, ROTATED_FILE, encode_event
from tui_trainer.engine.rundir.journal_tail import JournalTail

ONE_OF_EACH = [
    ev.Started("runs/a", "20240101-000000-abcdef", "demo:make_job", 0, 2000, "cuda:0", None, time=1.0),
    ev.Started("runs/a", "20240101-000000-abcdef", "demo:make_job", 300, 2000, "cpu", "runs/a/step_00000300.pt", time=1.5),
    ev.CheckpointSaved("runs/a/step_00000100.pt", 100, "periodic", 105_044, 0.25, time=2.0),
    ev.CheckpointPruned(("runs/a/step_00000100.pt", "runs/a/step_00000200.pt"), 210_088, time=3.0),
    ev.CheckpointFailed(200, "manual", "OSError: [Errno 5] Input/output error", time=4.0),
    ev.DiskFull(300, "periodic", "step_00000300.pt", 105_044, 4096, "runs/a", "not enough space", time=5.0),
    ev.DiskFull(300, "final", "step_00000300.pt", None, None, "runs/a", "unknown sizes", time=5.5),
    ev.TargetChanged(310, 2000, 5000, "cosine schedule re-anchored: lr 3.0e-04 -> 3.2e-04", time=6.0),
    ev.PolicyChanged(3, time=7.0),
    ev.Paused(320, time=8.0),
    ev.Resumed(320, time=9.0),
    ev.Finished(5000, "target", time=10.0),
    ev.Failed(321, "RuntimeError: CUDA out of memory", time=11.0),
    ev.AnomalyFound(330, "non-finite loss", "loss nan", "pause", "step_00000300.pt", 30, time=12.0),
    ev.AnomalyFound(331, "loss spike", "loss 9.1 > mean 2.3 + 6 x std 0.4", "stop", None, 0, time=12.5),
    ev.RolledBack(300, 330, "step_00000300.pt", 30, 1, time=13.0),
]


def test_one_of_each_event_is_tested():
    assert {type(e) for e in ONE_OF_EACH} == set(JOURNALED_EVENTS)


def test_every_event_comes_back_as_it_went_in_and_step_summaries_stay_out(tmp_path):
    writer = JournalWriter(tmp_path)
    for event in ONE_OF_EACH:
        writer.record(event)
        writer.record(ev.StepCompleted(1, 0, 2.5, 1e-3, 10.0, 640.0, 2000))
        writer.record(ev.Evaluated(1, {"val_loss": 2.4}))
    with JournalTail(tmp_path) as tail:
        assert tail.read() == ONE_OF_EACH
        assert tail.skipped == 0
    assert b"StepCompleted" not in (tmp_path / JOURNAL_FILE).read_bytes()
    assert b"Evaluated" not in (tmp_path / JOURNAL_FILE).read_bytes()


def test_notes_and_output_come_back_as_lines_in_the_order_written(tmp_path):
    writer = JournalWriter(tmp_path)
    writer.output("building the model")  # batched, but written before the note that follows it
    writer.note("resuming from step_00000300.pt")
    writer.record(ev.Paused(300))
    writer.output("UserWarning: lr too high", "warning")
    writer.close()
    got = read_journal(tmp_path)
    assert [(type(r).__name__, getattr(r, "text", None), getattr(r, "source", None)) for r in got] == [
        ("JournalLine", "building the model", "job"),
        ("JournalLine", "resuming from step_00000300.pt", "run"),
        ("Paused", None, None),
        ("JournalLine", "UserWarning: lr too high", "job"),
    ]
    assert got[-1].level == "warning"
    assert all(r.time > 1e9 for r in got if isinstance(r, JournalLine))


def test_events_are_on_disk_at_once_and_output_within_a_second(tmp_path):
    writer = JournalWriter(tmp_path, flush_s=0.2)
    tail = JournalTail(tmp_path)
    writer.record(ev.Paused(3))
    assert tail.read() == [ev.Paused(3, time=0.0)]
    writer.output("step 3 done")
    assert tail.read() == []  # batched
    wait_until(lambda: (tmp_path / JOURNAL_FILE).read_bytes().count(b"\n") == 2, timeout=2.0)
    assert [r.text for r in tail.read()] == ["step 3 done"]
    tail.close()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_job_printing_without_end_cannot_grow_the_journal_without_limit(tmp_path):
    clock = Clock()
    writer = JournalWriter(tmp_path, output_lines=100, line_chars=80, clock=clock, flush_s=3600)
    for minute in range(3):
        for i in range(10_000):
            writer.output(f"minute {minute} line {i} " + "x" * 500)
        writer.flush()
        clock.now += 61
    writer.record(ev.Finished(1, "target"))
    writer.close()
    got = read_journal(tmp_path)
    lines = [r for r in got if isinstance(r, JournalLine)]
    kept = [r for r in lines if r.text.startswith("minute")]
    dropped = [r.text for r in lines if not r.text.startswith("minute")]
    assert len(kept) == 300 and all(len(r.text) == 80 and r.text.endswith("…") for r in kept)
    assert dropped == ["9900 lines of the job's output not journaled"] * 3
    assert isinstance(got[-1], ev.Finished)
    assert (tmp_path / JOURNAL_FILE).stat().st_size < 300 * 200  # 30,000 lines of 500 chars went in


def test_the_output_dropped_is_counted_even_if_the_job_falls_silent(tmp_path):
    writer = JournalWriter(tmp_path, output_lines=2, output_window_s=0.3, flush_s=0.05)
    for i in range(5):
        writer.output(f"line {i}")
    wait_until(lambda: len(read_journal(tmp_path)) == 3, timeout=3.0)
    assert [r.text for r in read_journal(tmp_path)] == ["line 0", "line 1", "3 lines of the job's output not journaled"]


def test_rotation_keeps_the_journal_bounded_and_a_tail_follows_it_without_a_gap(tmp_path):
    writer = JournalWriter(tmp_path, max_bytes=4000)
    tail = JournalTail(tmp_path)
    seen = tail.read()
    for step in range(1, 2001):
        writer.record(ev.Paused(step))
        if step % 7 == 0:
            seen += tail.read()
    seen += tail.read()
    assert [e.step for e in seen] == list(range(1, 2001))
    assert (tmp_path / JOURNAL_FILE).stat().st_size <= 4000
    assert (tmp_path / ROTATED_FILE).stat().st_size <= 4000
    assert sorted(p.name for p in tmp_path.iterdir()) == [ROTATED_FILE, JOURNAL_FILE]
    tail.close()


def test_attaching_just_after_a_rotation_still_gets_the_backlog(tmp_path):
    writer = JournalWriter(tmp_path, max_bytes=2000)
    steps = 0
    while not (tmp_path / ROTATED_FILE).exists() or (tmp_path / JOURNAL_FILE).stat().st_size > 100:
        steps += 1
        writer.record(ev.Paused(steps))
    with JournalTail(tmp_path, backlog=20) as tail:
        assert [e.step for e in tail.read()] == list(range(steps - 19, steps + 1))
        writer.record(ev.Resumed(steps))
        assert tail.read() == [ev.Resumed(steps, time=0.0)]


def test_attaching_to_a_100_mb_journal_reads_only_its_end(tmp_path):
    line = encode_event(ev.CheckpointSaved("runs/a/step_00000100.pt", 100, "periodic", 105_044, 0.25))
    assert line is not None
    block = line * 10_000
    with open(tmp_path / JOURNAL_FILE, "wb") as f:
        while f.tell() < 100 << 20:
            f.write(block)
        f.write(encode_event(ev.Finished(7, "target")))
    start = time.perf_counter()
    with JournalTail(tmp_path, backlog=500) as tail:
        got = tail.read()
        seconds = time.perf_counter() - start
        assert len(got) == 500 and got[-1] == ev.Finished(7, "target")
        assert tail.read() == []
    print(f"backlog of 500 from a {(tmp_path / JOURNAL_FILE).stat().st_size >> 20} MB journal: {seconds * 1000:.1f} ms")
    assert seconds < 0.1


GARBAGE = [
    b"not json at all",
    b"[1, 2, 3]",
    b'"a string"',
    b'{"type": "Exploded", "time": 1}',
    b'{"type": "Paused", "time": 1}',  # no step
    b'{"type": "Paused", "time": 1, "step": "7"}',
    b'{"type": "Paused", "time": 1, "step": true}',
    b'{"type": "Paused", "time": "late", "step": 7}',
    b'{"type": "CheckpointPruned", "time": 1, "paths": "a.pt", "freed_bytes": 1}',
    b'{"type": "CheckpointPruned", "time": 1, "paths": [1], "freed_bytes": 1}',
    b'{"type": "note", "time": 1, "text": ["x"]}',
    b'{"type": "__import__", "time": 1, "text": "os"}',
    b"[" * 100_000,
    b"\xff\xfe\x00garbage",
]


def test_garbage_lines_are_skipped_and_counted(tmp_path):
    good = [ev.Paused(1, time=1.0), ev.Resumed(1, time=2.0)]
    body = encode_event(good[0]) + b"\n".join(GARBAGE) + b"\n" + encode_event(good[1])
    (tmp_path / JOURNAL_FILE).write_bytes(body)
    with JournalTail(tmp_path) as tail:
        assert tail.read() == good
        assert tail.skipped == len(GARBAGE)


def test_extra_fields_are_ignored_and_an_unknown_level_reads_as_info(tmp_path):
    (tmp_path / JOURNAL_FILE).write_bytes(
        b'{"type": "Paused", "time": 1, "step": 7, "from_a_newer_version": 1}\n'
        b'{"type": "output", "time": 2, "text": "hi", "level": "shout"}\n'
    )
    assert read_journal(tmp_path) == [ev.Paused(7, time=1.0), JournalLine(2.0, "hi", "info", "job")]


def test_a_torn_last_line_waits_for_its_end(tmp_path):
    line = encode_event(ev.Paused(5, time=1.0))
    assert line is not None
    path = tmp_path / JOURNAL_FILE
    path.write_bytes(encode_event(ev.Paused(4, time=1.0)) + line[:10])
    with JournalTail(tmp_path) as tail:
        assert tail.read() == [ev.Paused(4, time=1.0)]
        with open(path, "ab") as f:
            f.write(line[10:])
        assert tail.read() == [ev.Paused(5, time=1.0)]
        assert tail.skipped == 0


def test_a_writer_ends_an_earlier_writers_torn_line_before_its_own(tmp_path):
    (tmp_path / JOURNAL_FILE).write_bytes(b'{"type": "Paused", "ti')  # a crash mid-write
    JournalWriter(tmp_path).record(ev.Resumed(3, time=1.0))
    assert read_journal(tmp_path) == [ev.Resumed(3, time=1.0)]


def test_a_symlink_planted_in_the_run_dir_is_never_written_through_or_read(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / JOURNAL_FILE).symlink_to(outside)
    writer = JournalWriter(run_dir)
    assert "symbolic link" in (writer.ready() or "")
    writer.record(ev.Paused(1))  # does not raise
    writer.close()
    assert outside.read_text() == "precious\n"
    assert writer.failed_writes >= 1
    with JournalTail(run_dir) as tail:
        assert tail.read() == []
        assert "symbolic link" in (tail.problem or "")


def test_a_fifo_in_place_of_the_journal_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / JOURNAL_FILE)
    results = {}

    def attempt() -> None:
        writer = JournalWriter(tmp_path)
        writer.record(ev.Paused(1))
        results["writer"] = writer.problem
        with JournalTail(tmp_path) as tail:
            results["read"] = tail.read()
            results["tail"] = tail.problem

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(5.0)
    assert not thread.is_alive(), "opening a FIFO blocked"
    assert results["read"] == []
    assert "not a regular file" in results["writer"] and "not a regular file" in results["tail"]


class FailingOs:
    """The `os` module, but `write` fails with `errno` while `failing` (after `first` bytes land)."""

    def __init__(self, code: int = errno.ENOSPC, first: int = 0) -> None:
        self.failing = True
        self.code = code
        self.first = first
        self.calls = 0

    def write(self, fd: int, data: bytes) -> int:
        self.calls += 1
        if not self.failing:
            return os.write(fd, data)
        if self.first:
            written, self.first = os.write(fd, bytes(data[: self.first])), 0
            return written
        raise OSError(self.code, os.strerror(self.code))

    def __getattr__(self, name: str):
        return getattr(os, name)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
def test_failed_writes_are_counted_kept_and_written_in_order_once_the_disk_has_room(tmp_path, monkeypatch, code):
    failing = FailingOs(code, first=7)  # half a line lands before the disk fills
    monkeypatch.setattr(journal_module, "os", failing)
    writer = JournalWriter(tmp_path)
    for step in range(1, 4):
        writer.record(ev.Paused(step))  # never raises
    assert writer.failed_writes >= 3 and os.strerror(code) in (writer.problem or "")
    failing.failing = False
    writer.record(ev.Resumed(3))
    assert writer.problem is None
    assert [e.step for e in read_journal(tmp_path)] == [1, 2, 3, 3]


def test_writes_that_keep_failing_hold_a_bounded_amount(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_module, "os", FailingOs())
    monkeypatch.setattr(journal_module, "MAX_PENDING_BYTES", 10_000)
    writer = JournalWriter(tmp_path)
    for step in range(2000):
        writer.record(ev.Paused(step))
    assert len(writer._pending) <= 10_000 and writer.lost_records > 1000
    monkeypatch.setattr(journal_module, "os", os)
    writer.close()
    steps = [e.step for e in read_journal(tmp_path)]
    assert steps == list(range(2000 - len(steps), 2000))  # the newest, in order


def test_a_failing_disk_is_retried_in_the_background(tmp_path, monkeypatch):
    failing = FailingOs()
    monkeypatch.setattr(journal_module, "os", failing)
    monkeypatch.setattr(journal_module, "RETRY_S", 0.05)
    writer = JournalWriter(tmp_path)
    writer.record(ev.DiskFull(3, "periodic", "step_00000003.pt", 100, 10, str(tmp_path), "full"))
    failing.failing = False  # room made while the trainer is paused: nothing else is written
    wait_until(lambda: bool(read_journal(tmp_path)), timeout=3.0)
    assert isinstance(read_journal(tmp_path)[0], ev.DiskFull)


def test_records_are_plain_json_objects_one_a_line(tmp_path):
    writer = JournalWriter(tmp_path)
    writer.output("a line\nwith a newline and \udcff a lone surrogate")
    writer.record(ev.Paused(1))
    lines = (tmp_path / JOURNAL_FILE).read_bytes().splitlines()
    assert len(lines) == 2 and all(isinstance(json.loads(line), dict) for line in lines)


def test_a_missing_journal_reads_as_nothing_yet_and_is_followed_once_it_appears(tmp_path):
    with JournalTail(tmp_path) as tail:
        assert tail.read() == [] and tail.caught_up
        writer = JournalWriter(tmp_path)
        writer.record(ev.Paused(1))
        writer.record(ev.Resumed(1))
        assert [type(e) for e in tail.read()] == [ev.Paused, ev.Resumed]


def test_the_journal_lives_in_the_run_dir(tmp_path):
    JournalWriter(tmp_path).record(ev.Paused(1))
    assert Path(tmp_path / JOURNAL_FILE).is_file()
