"""Runs trained with `--monitor accuracy --mode max` show accuracy wherever a user looks from the CLI."""

import contextlib
import io
import json
import shutil

import pytest

from tests.cli.ckpt_cli import run
from tests.factories import make_run
from tests.metric_jobs import MONITOR_ARGS
from tui_trainer.cli.main import main

JOBS = {"both": "tests.metric_jobs:accuracy_and_loss_job", "accuracy_only": "tests.metric_jobs:accuracy_only_job"}
STEPS = 40  # more steps than `ckpt history` shows rows: its indexed path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, job in JOBS.items():
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = main(["train", "--headless", "--job", job, "--job-opt", "size=tiny", "--job-opt", "device=cpu",
                         "--run-dir", str(root / name), "--max-iters", str(STEPS), "--ckpt-every", "10",
                         "--eval-every", "5", *MONITOR_ARGS])
        assert code == 0
    return root


def _rows(out):
    lines = out.splitlines()
    return lines[0].split(), {line.split()[0]: line.split() for line in lines[1:] if line.startswith("step_")}


def test_ckpt_list_shows_the_monitored_metric_by_name(capsys, runs, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")  # every column fits (a narrower terminal drops epoch first)
    header, rows = _rows(run(capsys, "ckpt", "list", runs / "both").out)
    assert header[:7] == ["name", "step", "epoch", "train", "loss", "accuracy", "val"]
    accuracy, val_loss = float(rows["step_00000040.pt"][4]), float(rows["step_00000040.pt"][5])
    assert accuracy == pytest.approx(1 / (1 + val_loss), abs=1e-4)
    header, rows = _rows(run(capsys, "ckpt", "list", runs / "accuracy_only").out)
    assert header[:6] == ["name", "step", "epoch", "train", "loss", "accuracy"] and "val" not in header
    assert 0 < float(rows["step_00000010.pt"][4]) < 1


def test_ckpt_list_json_has_every_metric(capsys, runs):
    both = json.loads(run(capsys, "ckpt", "list", runs / "both", "--json").out)
    assert [set(r["metrics"]) for r in both] == [{"accuracy", "val_loss"}] * 4
    assert all(r["metrics"]["val_loss"] == r["val_loss"] for r in both)
    only = json.loads(run(capsys, "ckpt", "list", runs / "accuracy_only", "--json").out)
    assert [set(r["metrics"]) for r in only] == [{"accuracy"}] * 4 and all(r["val_loss"] is None for r in only)
    best = [r for r in only if r["best"]]
    assert best[0]["metrics"]["accuracy"] == max(r["metrics"]["accuracy"] for r in only)  # --mode max


def test_ckpt_show_and_compare_name_the_metric(capsys, runs):
    show = run(capsys, "ckpt", "show", runs / "accuracy_only" / "step_00000020.pt").out
    metric = [line.split() for line in show.splitlines() if line.split()[:1] == ["accuracy"]]
    assert len(metric) == 1 and 0 < float(metric[0][1]) < 1
    compare = run(capsys, "ckpt", "compare", runs / "both" / "step_00000010.pt", runs / "both" / "step_00000020.pt").out
    lines = {line.split()[0]: line.split() for line in compare.splitlines() if line.strip()}
    assert len(lines["accuracy"]) == 4 and lines["accuracy"][3].startswith("+")  # it rose
    assert "val_loss" in lines


def test_ckpt_history_counts_and_trends_the_metric(capsys, runs):
    for name in JOBS:
        out = run(capsys, "ckpt", "history", runs / name).out
        assert f"{STEPS} steps logged (steps 1-{STEPS}), 8 evaluations" in out
        assert "accuracy best " in out and "(max), last " in out
        header = next(line for line in out.splitlines() if line.split()[:1] in (["step"], ["steps"])).split()
        assert "accuracy" in header and ("val_loss" in header) == (name == "both")
    partial = run(capsys, "ckpt", "history", runs / "accuracy_only" / "step_00000020.pt").out
    assert "20 steps logged (steps 1-20), 4 evaluations" in partial and "accuracy best" in partial


def test_runs_names_the_monitored_metric(capsys, runs):
    out = run(capsys, "runs", runs).out
    assert "best accuracy" in out.splitlines()[0]
    data = json.loads(run(capsys, "runs", runs, "--json").out)
    assert [r["monitor"] for r in data["runs"]] == ["accuracy", "accuracy"]


def test_runs_with_different_metrics_say_each_ones_name(capsys, runs, tmp_path):
    shutil.copytree(runs / "accuracy_only", tmp_path / "accuracy_only")
    make_run(tmp_path / "plain", steps=(100,), val_losses={100: 1.5})
    lines = run(capsys, "runs", tmp_path).out.splitlines()
    assert lines[0].split()[3] == "best" and lines[0].split()[4] == "ckpts"
    assert lines[1].split()[3:5][1] == "accuracy" and lines[2].split()[3:5] == ["1.5000", "val_loss"]
