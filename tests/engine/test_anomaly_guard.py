"""The anomaly guard: a NaN or a spike is never applied nor saved, and pause, roll back, stop or continue."""

from __future__ import annotations

import math

import pytest
import torch

from tui_trainer.engine.checkpoints.meta import read_sidecar
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.loop.anomaly import (
    NON_FINITE_LOSS,
    SPIKE,
    AnomalyGuard,
    SpikeDetector,
    find_anomaly,
)
from tui_trainer.engine.loop.batches import EpochBatches
from tui_trainer.engine.rundir.history import read_history
from tui_trainer.engine.rundir.journal import JOURNAL_FILE, decode
from tui_trainer.engine.rundir.layout import HISTORY_FILE

NAN_JOB = "tests.anomaly_jobs:anomaly_job"


# --- which step is an anomaly -----------------------------------------------------------------


def test_a_spike_is_k_standard_deviations_above_the_window_mean():
    spikes = SpikeDetector(window=10, k=3.0, warmup=5)
    for step, loss in enumerate([2.0, 2.2, 1.8, 2.1, 1.9], 1):  # mean 2.0, std ~0.14
        assert spikes.spike(loss) is None
        spikes.add(step, loss)
    assert spikes.spike(2.4) is None
    assert "mean 2 + 3 x std" in spikes.spike(2.5)


def test_no_spike_during_the_warm_up_nor_with_k_zero():
    warming = SpikeDetector(window=10, k=3.0, warmup=5)
    off = SpikeDetector(window=10, k=0.0, warmup=2)
    for step in range(1, 5):
        warming.add(step, 1.0 + step * 0.01)
        off.add(step, 1.0)
    assert warming.spike(100.0) is None  # 4 losses of the 5 it waits for
    assert off.spike(100.0) is None


def test_the_window_keeps_only_the_last_losses():
    spikes = SpikeDetector(window=5, k=3.0, warmup=5)
    for step in range(1, 6):
        spikes.add(step, 100.0 + step % 2)  # a high plateau, soon out of the window
    for step in range(6, 11):
        spikes.add(step, 1.0 + step % 2 * 0.1)
    assert len(spikes) == 5 and spikes.spike(50.0) is not None


def test_a_settled_loss_does_not_flag_float_noise():
    spikes = SpikeDetector(window=10, k=6.0, warmup=3)
    for step in range(1, 11):
        spikes.add(step, 0.5)
    assert spikes.spike(0.5000001) is None and spikes.spike(0.6) is not None


def test_a_roll_back_forgets_the_losses_after_its_step():
    spikes = SpikeDetector(window=10, k=3.0, warmup=2)
    for step in range(1, 9):
        spikes.add(step, float(step))
    spikes.forget_after(5)
    assert len(spikes) == 5


def test_non_finite_numbers_are_anomalies_and_healthy_losses_join_the_window():
    spikes = SpikeDetector(window=10, k=3.0, warmup=2)
    assert find_anomaly(3, math.nan, 1.0, spikes).kind == NON_FINITE_LOSS
    assert find_anomaly(3, 1.0, math.inf, spikes).detail == "grad norm inf"
    assert find_anomaly(3, 1.0, math.inf, spikes, scaler_in_use=True) is None  # fp16 overflow: the scaler skips it
    assert len(spikes) == 1
    find_anomaly(4, 1.1, 1.0, spikes)
    assert find_anomaly(5, 50.0, 1.0, spikes).kind == SPIKE and len(spikes) == 2  # a spike stays out


@pytest.mark.parametrize("bad", [{"on_anomaly": "ignore"}, {"spike_window": 1}, {"spike_k": -1.0},
                                 {"spike_k": math.nan}, {"spike_warmup": 200}, {"max_rollbacks": -1}])
def test_bad_guard_options_fail_when_built(bad):
    with pytest.raises(ValueError):
        AnomalyGuard(**bad)


def test_skipping_batches_lands_where_drawing_them_does():
    data = list(range(10))
    for start, count in [(0, 3), (2, 5), (3, 4), (0, 12), (4, 1)]:
        drawn, skipped = (EpochBatches(data, 2, seed=1) for _ in range(2))
        for _ in range(start):
            drawn.next_batch(), skipped.next_batch()
        for _ in range(count):
            drawn.next_batch()
        skipped.skip(count)
        assert skipped.state_dict() == drawn.state_dict()
        assert torch.equal(skipped.next_batch(), drawn.next_batch())


# --- what the run does --------------------------------------------------------------------------


def guarded(tiny_run, action, *, nan_at=14, max_rollbacks=3, **job):
    run = tiny_run(job=NAN_JOB, max_iters=20, every_steps=5, job_options={"nan_at": nan_at, **job})
    run.trainer.anomaly_guard = AnomalyGuard(on_anomaly=action, max_rollbacks=max_rollbacks)
    return run


def journal_events(run):
    lines = (run.run_dir / JOURNAL_FILE).read_bytes().splitlines()
    return [e for e in map(decode, lines) if isinstance(e, (ev.AnomalyFound, ev.RolledBack))]


def anomaly_records(run):
    return [r for r in read_history(run.run_dir / HISTORY_FILE) if "anomaly" in r]


def finite(model):
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def test_continue_records_it_and_goes_on_without_the_bad_update(tiny_run):
    weights = {}

    def watch(event):
        if isinstance(event, ev.StepCompleted) and event.step == 13 or isinstance(event, ev.AnomalyFound):
            weights[event.step] = [p.detach().clone() for p in run.trainer.job.model.parameters()]

    run = guarded(tiny_run, "continue")
    run.trainer.on_event = lambda event: (watch(event), run.events.append(event))
    result = run.run()
    assert result.reason == "target" and result.step == 20 and finite(run.trainer.job.model)
    assert all(torch.equal(a, b) for a, b in zip(weights[13], weights[14]))  # step 14's update was dropped
    [found] = journal_events(run)
    assert (found.step, found.kind, found.action) == (14, NON_FINITE_LOSS, "continue")
    assert anomaly_records(run) == [{"step": 14, "anomaly": NON_FINITE_LOSS, "bad_step": 14, "detail": "loss nan",
                                     "action": "continue", "time": anomaly_records(run)[0]["time"]}]


def test_rollback_goes_back_to_the_last_healthy_checkpoint_past_the_batches(tiny_run):
    run = guarded(tiny_run, "rollback")
    result = run.run()
    assert result.reason == "target" and result.step == 20 and finite(run.trainer.job.model)
    found, back = journal_events(run)
    assert (found.rollback_to, found.skip_batches) == ("step_00000010.pt", 4)
    assert (back.step, back.from_step, back.name, back.skipped_batches) == (10, 14, "step_00000010.pt", 4)
    [record] = anomaly_records(run)
    assert record["step"] == 10 and record["action"] == "rollback" and record["skipped_batches"] == 4
    steps = [r["step"] for r in read_history(run.run_dir / HISTORY_FILE) if "loss" in r]
    assert steps == list(range(1, 21))  # one continuous history: the steps after 10 were cut, then trained again
    for step in (5, 10, 15, 20):
        assert read_sidecar(run.run_dir / f"step_{step:08d}.meta.json").healthy is True


def test_the_batches_after_a_roll_back_are_those_past_the_skipped_ones(tiny_run):
    run = guarded(tiny_run, "rollback")
    run.run()
    # 20 steps trained from step 0, plus the 4 batches of steps 11-14 skipped (the tiny demo's epoch is longer).
    assert run.trainer.job.batches.state_dict()["position"] == 20 + 4


def test_stop_saves_nothing_new_and_names_the_step(tiny_run):
    run = guarded(tiny_run, "stop")
    result = run.run()
    assert result.reason == "anomaly" and result.step == 14
    assert sorted(p.name for p in run.run_dir.glob("step_*.pt")) == ["step_00000005.pt", "step_00000010.pt"]
    assert any(n.startswith("stopped on an anomaly at step 14: loss nan") for n in result.notes)
    assert anomaly_records(run)[0]["action"] == "stop"
    assert run.of(ev.Finished)[-1].reason == "anomaly"


def test_roll_backs_stop_at_the_retry_limit(tiny_run):
    run = guarded(tiny_run, "rollback", nan_times=100, max_rollbacks=2)
    result = run.run()
    assert result.reason == "anomaly" and len(run.of(ev.RolledBack)) == 2
    assert [e.action for e in run.of(ev.AnomalyFound)] == ["rollback", "rollback", "stop"]


def test_pause_waits_and_a_roll_back_asked_for_is_done(tiny_run):
    run = guarded(tiny_run, "pause")
    run.start_thread()
    found = run.wait_for(ev.AnomalyFound)
    assert found.action == "pause" and run.wait_for(ev.Paused).step == 14
    run.control.roll_back()
    result = run.join()
    assert result.reason == "target" and finite(run.trainer.job.model)
    assert run.of(ev.RolledBack)[0].step == 10
    # Training again after the roll-back: whoever watches sees the pause end (it showed PAUSED to the end)
    rolled = run.events.index(run.of(ev.RolledBack)[0])
    assert isinstance(run.events[rolled + 1], ev.Resumed) and run.events[rolled + 1].step == 10


def test_a_save_of_an_unlogged_step_with_a_nan_loss_is_refused(tiny_run):
    run = tiny_run(job=NAN_JOB, max_iters=12, every_steps=5, log_every=4, job_options={"nan_at": 5, "nan_times": 100})
    run.trainer.anomaly_guard = AnomalyGuard(on_anomaly="stop")
    result = run.run()
    assert result.reason == "anomaly" and result.step == 8  # step 8 is the first logged one after the NaN
    assert not list(run.run_dir.glob("step_*.pt"))
    assert any("checkpoint of step 5 was not saved: loss nan" in n for n in run.trainer.notes)


@pytest.mark.parametrize("max_rows", [5, 100])  # summarised from the index, or from every record of a short history
def test_ckpt_history_summarises_each_anomaly_and_what_was_done(tiny_run, max_rows):
    from tui_trainer.cli.ckpt_history import history_summary_lines
    from tui_trainer.engine.tools.history_table import history_table

    run = guarded(tiny_run, "rollback")
    assert run.run().reason == "target"
    summary = history_table(run.run_dir / HISTORY_FILE, max_rows=max_rows).summary
    assert [(a["bad_step"], a["action"], a["rolled_back_to"]) for a in summary.anomalies] == \
        [(14, "rollback", "step_00000010.pt")]
    lines = history_summary_lines(summary)
    assert "1 anomaly:" in lines
    assert "  step 14: non-finite loss (loss nan); rolled back to step_00000010.pt, skipping 4 batches" in lines
    assert summary.evaluations == history_table(run.run_dir / HISTORY_FILE, max_rows=100).summary.evaluations
