"""Following history.jsonl incrementally: each byte read once, partial lines wait, rewrites restart."""

from __future__ import annotations

import json

from tui_trainer.engine.rundir.history_tail import HistoryTail
from tui_trainer.engine.rundir.history_writer import truncate_history


def _line(step, **extra):
    return json.dumps({"step": step, "loss": 2.0, **extra}) + "\n"


def test_reads_only_what_was_appended(tmp_path):
    path = tmp_path / "history.jsonl"
    tail = HistoryTail(path)
    assert tail.read() == [] and tail.caught_up  # no file yet
    path.write_text(_line(1) + _line(2))
    assert [r["step"] for r in tail.read()] == [1, 2]
    assert tail.read() == []
    with open(path, "a") as f:
        f.write(_line(3))
    assert [r["step"] for r in tail.read()] == [3]
    assert tail.offset == path.stat().st_size


def test_a_partial_last_line_waits_for_its_newline(tmp_path):
    path = tmp_path / "history.jsonl"
    text = _line(1) + _line(2)
    path.write_text(text[:-7])
    assert [r["step"] for r in HistoryTail(path).read()] == [1]
    tail = HistoryTail(path)
    tail.read()
    with open(path, "a") as f:
        f.write(text[-7:])
    assert [r["step"] for r in tail.read()] == [2]


def test_garbage_lines_are_skipped(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text(_line(1) + "not json\n" + '{"step": "x"}\n' + "[1]\n" + '{"step": true}\n' + _line(2, val_loss=None))
    assert [r["step"] for r in HistoryTail(path).read()] == [1, 2]


def test_large_backlogs_come_in_chunks(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text("".join(_line(i) for i in range(1, 1001)))
    tail = HistoryTail(path, chunk_bytes=4096)
    steps = []
    reads = 0
    while True:
        records = tail.read()
        reads += 1
        steps += [r["step"] for r in records]
        if tail.caught_up:
            break
    assert steps == list(range(1, 1001)) and reads > 5


def test_a_cut_on_resume_goes_back_to_the_cut(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text("".join(_line(i) for i in range(1, 11)))
    tail = HistoryTail(path)
    assert len(tail.read()) == 10
    inode = path.stat().st_ino
    truncate_history(path, 4)  # a resume from step 4 cuts the file in place
    assert path.stat().st_ino == inode
    with open(path, "a") as f:
        f.write(_line(5, replayed=True))
    records = tail.read()
    assert [(r["step"], r.get("replayed")) for r in records] == [(5, True)] and tail.restarts >= 1


def test_a_cut_is_noticed_even_after_the_file_grew_past_the_old_offset(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text("".join(_line(i) for i in range(1, 11)))
    tail = HistoryTail(path)
    assert len(tail.read()) == 10
    old_size = path.stat().st_size
    truncate_history(path, 4)
    with open(path, "a") as f:  # the resumed run writes more than it dropped before the tail looks
        f.write("".join(_line(i, replayed=True) for i in range(5, 20)))
    assert path.stat().st_size > old_size
    steps = []
    while True:
        records = tail.read()
        steps += [(r["step"], r.get("replayed")) for r in records]
        if tail.caught_up:
            break
    assert steps == [(i, True) for i in range(5, 20)]
    assert tail.restarts == 1 and tail.generation == 1


def test_a_tail_started_from_an_offset_sees_a_cut_made_before_it_was_made(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text("".join(_line(i) for i in range(1, 11)))
    offset = path.stat().st_size  # what read_curves reported, with generation 0
    truncate_history(path, 4)
    with open(path, "a") as f:
        f.write("".join(_line(i, replayed=True) for i in range(5, 20)))
    tail = HistoryTail(path, offset=offset, generation=0)
    assert [r["step"] for r in tail.read()] == list(range(5, 20))


def test_two_cuts_between_reads_go_back_to_the_lower_one(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text("".join(_line(i) for i in range(1, 11)))
    tail = HistoryTail(path)
    tail.read()
    truncate_history(path, 3)
    with open(path, "a") as f:
        f.write("".join(_line(i, run=2) for i in range(4, 9)))
    truncate_history(path, 6)
    with open(path, "a") as f:
        f.write("".join(_line(i, run=3) for i in range(7, 30)))
    records = tail.read()
    assert [(r["step"], r.get("run")) for r in records] == (
        [(i, 2) for i in range(4, 7)] + [(i, 3) for i in range(7, 30)]
    )
