"""history.idx: written beside history.jsonl, read as arrays, cut in place on resume."""

from __future__ import annotations

import io
import json
import math

import numpy as np

from tui_trainer.engine.rundir.history import read_history
from tui_trainer.engine.rundir.history_cuts import cut_offset
from tui_trainer.engine.rundir.history_epochs import EpochSummary
from tui_trainer.engine.rundir.history_index import HEADER_BYTES, RECORD, index_path, load_index, read_curves
from tui_trainer.engine.rundir.history_writer import HistoryWriter, truncate_history
from tui_trainer.engine.tools.history_summary import downsample, merge_records, summarize
from tui_trainer.engine.tools.history_table import history_table


def write_run(run_dir, steps=200, eval_every=10, epoch_len=30, nan_at=(17,)):
    writer = HistoryWriter(run_dir)
    for step in range(1, steps + 1):
        loss = math.nan if step in nan_at else 3.0 / step + (step % 7) * 0.01
        writer.log_step(step, step // epoch_len, loss, 1e-3 * (1 - step / (steps + 1)), 1000.0 + step)
        if eval_every and step % eval_every == 0:
            writer.log_eval(step, step // epoch_len, {"val_loss": 2.0 / step, "acc": 0.5}, 1000.5 + step)
    writer.close()
    return run_dir / "history.jsonl"


def test_the_index_matches_the_history_line_for_line(tmp_path):
    path = write_run(tmp_path)
    records = np.fromfile(index_path(path), RECORD, offset=HEADER_BYTES)
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(records) == len(lines) == 220
    assert records["end"].tolist() == np.cumsum([len(line) for line in lines]).tolist()
    assert [json.loads(line)["step"] for line in lines] == records["step"].tolist()
    curves = read_curves(tmp_path)
    history = read_history(path)
    assert curves.steps.tolist() == [r["step"] for r in history if "loss" in r]
    assert np.array_equal(curves.losses, [math.nan if r["loss"] is None else r["loss"] for r in history if "loss" in r],
                          equal_nan=True)
    assert curves.val_steps.tolist() == list(range(10, 201, 10))
    assert curves.tail_offset == path.stat().st_size and curves.note is None and curves.generation == 0


def test_a_partial_last_record_is_ignored(tmp_path):
    path = write_run(tmp_path, steps=20, eval_every=0)
    with open(index_path(path), "ab") as f:
        f.write(b"\x01" * 17)  # killed mid-write
    assert len(load_index(path)) == 20
    assert read_curves(tmp_path).steps.tolist() == list(range(1, 21))


def test_an_old_run_without_an_index_still_reads_and_says_so(tmp_path):
    path = write_run(tmp_path, steps=50)
    index_path(path).unlink()
    curves = read_curves(tmp_path)
    assert curves.steps.tolist() == list(range(1, 51)) and curves.val_steps.tolist() == [10, 20, 30, 40, 50]
    assert "no index" in curves.note and "resum" in curves.note
    assert curves.tail_offset == path.stat().st_size
    assert not index_path(path).exists()  # a reader does not write into a run it does not hold


def test_a_resume_of_an_old_run_builds_the_index_once_and_says_so(tmp_path):
    path = write_run(tmp_path, steps=50)
    index_path(path).unlink()
    writer = HistoryWriter(tmp_path, resume_step=30)
    writer.close()
    assert any("built history.idx" in note for note in writer.notes)
    assert read_curves(tmp_path).steps.tolist() == list(range(1, 31)) and read_curves(tmp_path).note is None
    again = HistoryWriter(tmp_path, resume_step=30)
    again.close()
    assert again.notes == []


def test_resume_cuts_in_place_and_keeps_the_index_consistent(tmp_path):
    path = write_run(tmp_path, steps=200)
    inode = path.stat().st_ino
    writer = HistoryWriter(tmp_path, resume_step=120)
    assert path.stat().st_ino == inode and writer.dropped == 80 + 8
    writer.log_step(121, 4, 0.5, 1e-4, 5000.0)
    writer.close()
    steps = [r["step"] for r in read_history(path)]
    assert steps[-3:] == [120, 120, 121] and max(steps[:-1]) == 120
    records = load_index(path)
    assert records["end"][-1] == path.stat().st_size and records["step"][-1] == 121
    assert len(records) == len(steps)


def test_the_cut_point_is_found_in_a_few_reads(tmp_path):
    lines = [json.dumps({"step": s // 2, "loss": 1.0}).encode() + b"\n" for s in range(200_000)]
    data = b"".join(lines)

    class Counting(io.BytesIO):
        reads = 0
        spans: list[tuple[int, int]] = []

        def read(self, n=-1):
            start = self.tell()
            chunk = super().read(n)
            Counting.reads += 1
            Counting.spans.append((start, start + len(chunk)))
            return chunk

    f = Counting(data)
    expected = sum(len(line) for line in lines[: 2 * 50_001])
    assert cut_offset(f, len(data), 50_000) == expected
    assert Counting.reads < 60 and sum(b - a for a, b in Counting.spans) < 300_000  # of 5 MB
    # Whatever it did not read may be garbage: the answer does not depend on it.
    garbled = bytearray(b"#" * len(data))
    for a, b in Counting.spans:
        garbled[a:b] = data[a:b]
    assert cut_offset(io.BytesIO(bytes(garbled)), len(data), 50_000) == expected


def test_torn_and_garbled_lines_are_not_kept_as_records(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_bytes(b'{"step": 1, "loss": 1.0}\nnot json\n{"step": 2, "loss": 1.0}\n{"step": 3, "lo')
    truncate_history(path, 5)
    assert path.read_bytes() == b'{"step": 1, "loss": 1.0}\nnot json\n{"step": 2, "loss": 1.0}\n'


def test_the_summary_comes_back_from_the_checkpoint_without_reading_the_history(tmp_path, monkeypatch):
    writer = HistoryWriter(tmp_path)
    for step in range(1, 61):
        writer.log_step(step, step // 25, 1.0 + step, 1e-3, float(step))
    state = writer.summary_state()  # as a checkpoint at step 60 carries it
    writer.log_eval(60, 2, {"val_loss": 0.25}, 60.5)  # an evaluation after the save, same step
    for step in range(61, 80):
        writer.log_step(step, 2, 9.0, 1e-3, float(step))
    writer.close()
    def no_rebuild(records):
        raise AssertionError("rebuilt from the whole history")

    monkeypatch.setattr(EpochSummary, "from_records", staticmethod(no_rebuild))
    resumed = HistoryWriter(tmp_path, resume_step=60, summary_state=state)
    resumed.close()
    summary = json.loads((tmp_path / "training_history.json").read_text())
    assert summary["epochs"] == [0, 1, 2] and summary["steps"] == [24, 49, 60]
    assert summary["train_loss"][0] == sum(1.0 + s for s in range(1, 25)) / 24
    assert summary["val_loss"] == [None, None, 0.25]
    monkeypatch.undo()
    rebuilt = HistoryWriter(tmp_path, resume_step=60)  # an older checkpoint: rebuilt from the index
    rebuilt.close()
    assert json.loads((tmp_path / "training_history.json").read_text()) == summary


def test_ckpt_history_rows_and_summary_are_those_of_every_record(tmp_path):
    path = write_run(tmp_path, steps=997, eval_every=37, nan_at=(5, 400))
    rows = merge_records(read_history(path))
    for up_to in (None, 500, 20):
        chosen = rows if up_to is None else [r for r in rows if r.step <= up_to]
        table = history_table(path, 30, up_to)
        assert table.total == len(chosen)
        assert _same(table.rows, downsample(chosen, 30)) and _same([table.summary], [summarize(chosen)])
    index_path(path).unlink()
    table = history_table(path, 30)
    assert _same(table.rows, downsample(rows, 30)) and "no index" in table.notes[0]


def _same(a, b):
    return repr(a) == repr(b)  # NaN == NaN, as a user reads them
