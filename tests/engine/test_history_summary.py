import math

import pytest

from tui_trainer.engine.tools.history_summary import downsample, merge_records, records_from_embedded, summarize


def records(last_step, eval_every=10):
    out = []
    for step in range(1, last_step + 1):
        out.append({"step": step, "epoch": step // 50, "loss": 10.0 - step / 10, "lr": 0.1, "time": step * 2.0})
        if step % eval_every == 0:
            out.append({"step": step, "val_loss": 11.0 - step / 10, "time": step * 2.0})
    return out


def test_merge_puts_step_and_eval_records_of_a_step_in_one_row():
    rows = merge_records(records(20))
    assert [r.step for r in rows] == list(range(1, 21))
    assert rows[9].loss == pytest.approx(9.0) and rows[9].val_loss == pytest.approx(10.0)
    assert rows[8].val_loss is None


def test_null_loss_from_history_jsonl_is_nan():
    [row] = merge_records([{"step": 1, "loss": None, "lr": 0.1}])
    assert math.isnan(row.loss)


def test_downsample_spans_cover_every_step_once():
    rows = merge_records(records(1000))
    shown = downsample(rows, 30)
    assert len(shown) == 30
    assert shown[0].first_step == 1 and shown[-1].step == 1000
    assert all(a.step + 1 == b.first_step for a, b in zip(shown, shown[1:]))
    first = [r.loss for r in rows if r.step <= shown[0].step]
    assert shown[0].loss == pytest.approx(sum(first) / len(first))


def test_downsample_keeps_short_histories_and_shows_nan_spans():
    rows = merge_records(records(10))
    assert downsample(rows, 30) == rows
    rows = merge_records(records(100))
    rows[5].loss = math.nan
    assert math.isnan(downsample(rows, 10)[0].loss)


def test_summary():
    data = records(100)
    data.append({"step": 101, "loss": None, "lr": 0.1})
    s = summarize(merge_records(data))
    assert (s.steps_logged, s.evaluations, s.first_step, s.last_step) == (101, 10, 1, 101)
    assert s.min_loss == pytest.approx(0.0) and s.min_loss_step == 100
    assert s.best_val_loss == pytest.approx(1.0) and s.best_val_step == 100
    assert s.non_finite_losses == 1 and s.last_epoch == 2
    assert s.elapsed_s == pytest.approx(198.0)


def test_summary_of_nothing():
    s = summarize([])
    assert s.steps_logged == 0 and s.first_step is None and s.best_val_loss is None


def test_embedded_dict_of_lists_with_steps():
    history = {"iteration": [10, 20, 30, 40], "train_loss": [4.0, 3.0, 2.0, 1.0], "val_loss": [3.5, 1.5]}
    found, notes = records_from_embedded(history)
    rows = merge_records(found)
    assert [r.step for r in rows] == [10, 20, 30, 40]
    assert [r.val_loss for r in rows] == [None, 3.5, None, 1.5]
    assert any("assumed evenly spaced" in n for n in notes)


def test_embedded_dict_of_lists_without_steps_is_numbered():
    found, notes = records_from_embedded({"loss": [3.0, 2.0], "lr": [0.1, 0.05], "val_loss": [None, 2.5]})
    assert found == [{"step": 1, "loss": 3.0, "lr": 0.1}, {"step": 2, "loss": 2.0, "lr": 0.05, "val_loss": 2.5}]
    assert notes == ["the history records no steps: rows are numbered by position"]


def test_embedded_list_of_records():
    history = [{"epoch": 0, "train_loss": 2.0}, {"epoch": 1, "train_loss": 1.0, "val_loss": 1.5}]
    found, _ = records_from_embedded(history)
    assert found == [{"step": 1, "loss": 2.0, "epoch": 0}, {"step": 2, "loss": 1.0, "val_loss": 1.5, "epoch": 1}]


def test_embedded_nonsense_gives_no_records():
    assert records_from_embedded("text")[0] == []
    assert records_from_embedded({"a": 1})[0] == []
