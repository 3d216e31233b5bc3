"""A custom metric (`accuracy`, only sometimes beside val_loss) in `ckpt history`'s rows and summary."""

import math

import numpy as np

from tui_trainer.engine.rundir.history import read_history
from tui_trainer.engine.rundir.history_evals import metric_curve
from tui_trainer.engine.rundir.history_index import load_index
from tui_trainer.engine.rundir.history_writer import HistoryWriter
from tui_trainer.engine.tools.history_summary import downsample, merge_records, summarize
from tui_trainer.engine.tools.history_table import history_table


def write_history(run_dir, steps=400, eval_every=37):
    writer = HistoryWriter(run_dir)
    for step in range(1, steps + 1):
        writer.log_step(step, step // 50, 3.0 / step, 1e-3, 1000.0 + step)
        if step % eval_every == 0:
            accuracy = math.nan if step == 4 * eval_every else 1 - 1 / step
            metrics = {"accuracy": accuracy} if step % 2 else {"accuracy": accuracy, "val_loss": 2.0 / step}
            writer.log_eval(step, step // 50, metrics, 1000.5 + step)
    writer.close()
    return run_dir / "history.jsonl"


def test_the_indexed_table_agrees_with_every_record_for_a_custom_metric(tmp_path):
    path = write_history(tmp_path)
    rows = merge_records(read_history(path))
    for up_to in (None, 200, 20):
        chosen = rows if up_to is None else [r for r in rows if r.step <= up_to]
        table = history_table(path, 30, up_to, "accuracy", "max")
        assert repr(table.rows) == repr(downsample(chosen, 30))
        assert repr(table.summary) == repr(summarize(chosen, "accuracy", "max"))
    summary = history_table(path, 30, None, "accuracy", "max").summary
    assert summary.evaluations == 400 // 37  # those without val_loss count too
    best = summary.monitored
    assert (best.name, best.mode, best.best_step, best.last) == ("accuracy", "max", 370, 1 - 1 / 370)
    assert history_table(path, 30).summary.monitored is None  # val_loss monitored: its own line


def test_a_metric_curve_is_read_from_the_evaluation_lines(tmp_path):
    path = write_history(tmp_path)
    records = load_index(path)
    steps, values = metric_curve(path, records, "accuracy")
    assert steps.tolist() == [float(s) for s in range(37, 401, 37)]
    assert np.isnan(values[3]) and values[0] == 1 - 1 / 37
    val_steps, _ = metric_curve(path, records, "val_loss")
    assert val_steps.tolist() == [float(s) for s in range(74, 401, 74)]
    assert metric_curve(path, records, "bleu")[0].tolist() == []
