"""The anomaly guard on two gloo ranks: every rank decides the same at the step itself.

A NaN loss on one rank only must stop, or roll back, every rank at once: a rank that skipped its
update while another applied it would train different weights, and one that stopped while the
other waits in a collective would hang it until the collective's timeout.
"""

from __future__ import annotations

import time

import pytest
import torch
from test_ddp import TINY, WAIT_S, ddp_env, finish, tui_trainer
from tiny_runs import checkpoint_kinds

from tui_trainer.cli.anomaly_flags import EXIT_ANOMALY
from tui_trainer.engine.checkpoints.file import load_checkpoint
from tui_trainer.engine.checkpoints.meta import checkpoint_name, sharded_checkpoint_name
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.rundir.commands import ROLL_BACK, ControlClient
from tui_trainer.engine.rundir.history import read_history
from tui_trainer.engine.rundir.journal import read_journal
from tui_trainer.engine.rundir.layout import HISTORY_FILE, read_run

NAN_JOB = ["--job", "tests.anomaly_jobs:anomaly_job", "--job-opt", "nan_at=14"]
ON_RANK = {"rank 1": ["--job-opt", "on_rank=1"], "every rank": []}


def train(run_dir, *flags):
    return finish(tui_trainer("train", "--nproc", "2", "--run-dir", str(run_dir), *NAN_JOB, "--max-iters", "20",
                              "--ckpt-every", "5", *TINY, *flags, env=ddp_env()))


def anomaly_events(run_dir):
    return [e for e in read_journal(run_dir) if isinstance(e, (ev.AnomalyFound, ev.RolledBack))]


@pytest.mark.parametrize("where", ON_RANK)
def test_stop_ends_every_rank_at_the_bad_step_with_exit_code_5(where, tmp_path):
    run_dir = tmp_path / "run"
    began = time.monotonic()
    code, out, err = train(run_dir, "--on-anomaly", "stop", *ON_RANK[where])
    assert time.monotonic() - began < 45  # no rank waited for another in a collective
    assert code == EXIT_ANOMALY, err
    lines = [line for line in (out + err).splitlines() if "stopped on an anomaly" in line]
    assert len(lines) == 1, out + err
    assert "stopped on an anomaly at step 14: loss nan; nothing new was saved" in lines[0]
    assert sorted(checkpoint_kinds(run_dir)) == [5, 10]
    assert read_run(run_dir).state == "anomaly"
    assert "Traceback" not in err and "exited with status" not in err
    [found] = anomaly_events(run_dir)
    assert (found.step, found.action) == (14, "stop")


@pytest.mark.parametrize("where", ON_RANK)
def test_rollback_goes_on_on_every_rank_with_the_same_finite_weights(where, tmp_path):
    run_dir = tmp_path / "run"
    dump = tmp_path / "weights"
    code, out, err = train(run_dir, "--on-anomaly", "rollback", "--job-opt", f"weights_to={dump}", *ON_RANK[where])
    assert code == 0, err
    assert "rolled back from step 14 to step_00000010.pt (step 10) and skipped the 4 batches of steps 11-14" in out
    assert "Traceback" not in err
    final = load_checkpoint(run_dir / checkpoint_name(20), map_location="cpu")
    assert all(bool(torch.isfinite(w).all()) for w in final["model"].values())
    assert final["meta"]["healthy"] is True
    # The weights step 20 started from, on each rank: the same (one rank skipping an update would differ).
    rank0, rank1 = (torch.load(f"{dump}.rank{r}.call24", weights_only=True) for r in (0, 1))
    assert rank0.keys() == rank1.keys() and all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    assert all(bool(torch.isfinite(w).all()) for w in rank0.values())
    saved = load_checkpoint(run_dir / checkpoint_name(10), map_location="cpu")["model"]
    again = torch.load(f"{dump}.rank1.call15", weights_only=True)  # step 11 trained again starts at step 10's
    assert all(torch.equal(again[f"module.{k}"], saved[k]) for k in saved)
    found, back = anomaly_events(run_dir)
    assert (found.step, found.action, found.rollback_to) == (14, "rollback", "step_00000010.pt")
    assert (back.step, back.from_step, back.skipped_batches) == (10, 14, 4)
    [record] = [r for r in read_history(run_dir / HISTORY_FILE) if "anomaly" in r]
    assert record["action"] == "rollback" and record["bad_step"] == 14
    assert [r["step"] for r in read_history(run_dir / HISTORY_FILE) if "loss" in r] == list(range(1, 21))


def test_paused_on_an_anomaly_a_roll_back_asked_for_reaches_every_rank(tmp_path):
    run_dir, dump = tmp_path / "run", tmp_path / "weights"
    process = tui_trainer("train", "--nproc", "2", "--run-dir", str(run_dir), *NAN_JOB, "--job-opt", "on_rank=1",
                          "--job-opt", f"weights_to={dump}", "--max-iters", "20", "--ckpt-every", "5", *TINY,
                          "--on-anomaly", "pause", env=ddp_env())
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and process.poll() is None and not anomaly_events(run_dir):
        time.sleep(0.05)
    ControlClient(run_dir).send(ROLL_BACK)
    code, out, err = finish(process)
    assert code == 0, err
    assert "rolled back from step 14 to step_00000010.pt (step 10)" in out
    rank0, rank1 = (torch.load(f"{dump}.rank{r}.call24", weights_only=True) for r in (0, 1))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_with_no_checkpoint_to_go_back_to_rollback_stops_every_rank_and_says_why(strategy, tmp_path):
    run_dir = tmp_path / "run"
    code, out, err = train(run_dir, "--strategy", strategy, "--on-anomaly", "rollback", "--job-opt", "on_rank=1",
                           "--ckpt-every", "100")
    assert code == EXIT_ANOMALY, err
    assert "no healthy checkpoint of this run to roll back to" in out
    assert "stopped on an anomaly at step 14: loss nan; nothing new was saved" in out
    assert checkpoint_kinds(run_dir) == {}


def test_fsdp_rolls_back_to_the_last_step_folder_on_every_rank(tmp_path):
    run_dir, dump = tmp_path / "run", tmp_path / "weights"
    code, out, err = train(run_dir, "--strategy", "fsdp", "--on-anomaly", "rollback", "--job-opt", "on_rank=1",
                           "--job-opt", f"weights_to={dump}")
    assert code == 0, err
    assert "rolled back from step 14 to step_00000010.dcp (step 10) and skipped the 4 batches of steps 11-14" in out
    assert "Traceback" not in err
    # Step 11, trained again (call 15), starts on every rank from the weights saved at step 10.
    saved = load_checkpoint(run_dir / sharded_checkpoint_name(10), map_location="cpu")["model"]
    for rank in (0, 1):
        again = torch.load(f"{dump}.rank{rank}.call15", weights_only=True)
        assert again.keys() == saved.keys() and all(torch.equal(again[k], saved[k]) for k in saved)
    final = load_checkpoint(run_dir / sharded_checkpoint_name(20), map_location="cpu")
    assert all(bool(torch.isfinite(w).all()) for w in final["model"].values())
    assert final["meta"]["healthy"] is True
    [record] = [r for r in read_history(run_dir / HISTORY_FILE) if "anomaly" in r]
    assert record["action"] == "rollback" and record["rolled_back_to"] == "step_00000010.dcp"
    assert [r["step"] for r in read_history(run_dir / HISTORY_FILE) if "loss" in r] == list(range(1, 21))
