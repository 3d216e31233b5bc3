"""Following history.jsonl incrementally: each byte read once, partial lines wait, rewrites restart."""

from __future__ import annotations

import json

from tui_trainer.engine.history import truncate_history
from tui_trainer.engine.history_tail import HistoryTail


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


def test_a_rewrite_on_resume_starts_over(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text("".join(_line(i) for i in range(1, 11)))
    tail = HistoryTail(path)
    assert len(tail.read()) == 10
    truncate_history(path, 4)  # a resume from step 4 rewrites the file under a new inode
    with open(path, "a") as f:
        f.write(_line(5, replayed=True))
    steps = [r["step"] for r in tail.read()]
    assert steps == [1, 2, 3, 4, 5] and tail.restarts == 1
