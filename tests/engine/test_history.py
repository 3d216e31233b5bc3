import json
import math

from tui_trainer.engine.rundir.history import read_history
from tui_trainer.engine.rundir.history_writer import HistoryWriter


def test_a_diverged_loss_is_written_as_null_and_read_back_on_resume(tmp_path):
    writer = HistoryWriter(tmp_path)
    writer.log_step(1, 0, 2.5, 1e-3, 100.0)
    writer.log_step(2, 0, math.nan, 1e-3, 101.0)
    writer.log_eval(2, 0, {"val_loss": math.inf}, 101.5)
    writer.log_step(3, 0, 2.25, 1e-3, 102.0)
    writer.close()
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines][1] == {"step": 2, "epoch": 0, "loss": None, "lr": 1e-3, "time": 101.0}
    assert json.loads(lines[2])["val_loss"] is None

    resumed = HistoryWriter(tmp_path, resume_step=2)  # step 3 came after the checkpoint
    resumed.close()
    assert [r["step"] for r in read_history(tmp_path / "history.jsonl")] == [1, 2, 2]
    assert resumed.dropped == 1
    assert json.loads((tmp_path / "training_history.json").read_text())["train_loss"] == [2.5]


def test_a_torn_last_line_from_a_crash_is_skipped(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    assert read_history(path) == [{"step": 1, "loss": 2.0}]


def test_a_new_run_never_appends_to_an_old_history(tmp_path):
    (tmp_path / "history.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    try:
        HistoryWriter(tmp_path)
    except FileExistsError as exc:
        assert "resume" in str(exc)
    else:
        raise AssertionError("an existing history was appended to")
