"""Speed, ETA and elapsed over training time, and the numbers logged beside the loss."""

from __future__ import annotations

import sys
import time

import pytest
import torch
from tiny_runs import Gate, at_step, step_records

from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.loop.step_rate import StepRate, eta_seconds
from tui_trainer.engine.loop.training_clock import PAUSED, TrainingClock

UNEVEN = "tests.scalar_jobs:uneven_job"
SCALARS = "tests.scalar_jobs:scalars_job"
LOOP = {f"tui_trainer.engine.loop.{name}" for name in ("trainer", "step", "step_numbers", "saving")}


def test_speed_is_steps_over_time_not_a_mean_of_rates():
    rate = StepRate()
    seconds = 0.0
    rate.add(0, seconds)  # the start, as the trainer notes it
    for step in range(1, 41):
        seconds += 0.060 if step % 2 else 0.005
        rate.add(step, seconds)
    assert rate.rate == pytest.approx(2 / 0.065)  # 30.8 it/s; a mean of per-step rates says 108
    assert rate.add(5, seconds + 1) == 0.0  # an earlier step (a rollback) starts the window again


def test_the_window_follows_a_change_of_pace():
    rate = StepRate(window_s=10.0)
    for step in range(1, 101):
        rate.add(step, step * 1.0)  # 1 it/s for 100 s
    for step in range(101, 301):
        rate.add(step, 100 + (step - 100) * 0.1)  # then 10 it/s for 20 s
    assert rate.rate == pytest.approx(10.0, rel=0.1)


def test_time_apart_is_not_training_time():
    now = [0.0]
    clock = TrainingClock(elapsed=5.0, now=lambda: now[0])
    clock.start()
    now[0] = 2.0
    with clock.apart(PAUSED):
        now[0] = 60.0
    now[0] = 61.0
    assert clock.lap() == 8.0 and clock.apart_seconds == {PAUSED: 58.0}


def test_the_eta_of_uneven_steps_is_within_30_percent_of_the_truth(tiny_run):
    run = tiny_run(job=UNEVEN, max_iters=60)
    run.run()
    steps = {e.step: e for e in run.of(ev.StepCompleted)}
    at = steps[30]
    shown = eta_seconds(at.step, at.target, at.steps_per_sec)
    truth = steps[60].time - at.time
    assert shown == pytest.approx(truth, rel=0.3)


def test_a_pause_moves_neither_speed_nor_elapsed(tiny_run):
    gate = Gate(at_step(10))
    run = tiny_run(job=UNEVEN, max_iters=20, on_event=gate.on_event)
    run.start_thread()
    gate.reached()
    run.control.pause()
    gate.release()
    run.wait_for(ev.Paused)
    time.sleep(1.0)
    run.control.resume()
    run.join()
    steps = {e.step: e for e in run.of(ev.StepCompleted)}
    assert steps[11].time - steps[10].time > 1.0  # the pause, in wall time
    assert steps[11].elapsed - steps[10].elapsed < 0.5  # and not in training time
    # The speed is that of the steps either side of the pause, in wall time (however busy the machine).
    around = 18 / ((steps[20].time - steps[11].time) + (steps[10].time - steps[1].time))
    assert steps[20].steps_per_sec == pytest.approx(around, rel=0.3)
    last = step_records(run.history())[-1]
    assert last["elapsed"] == pytest.approx(steps[20].elapsed, abs=0.001)


def test_elapsed_goes_on_across_a_resume(tiny_run, resume):
    first = tiny_run(job=UNEVEN, max_iters=10, every_steps=10)
    first.run()
    before = step_records(first.history())[-1]["elapsed"]
    assert before > 0.3
    resumed = resume(first.run_dir, max_iters=14)
    resumed.run()
    started = resumed.of(ev.Started)[0]
    assert started.elapsed == before
    records = step_records(resumed.history())
    assert records[9]["elapsed"] == before and records[-1]["elapsed"] > before + 0.1


@pytest.mark.parametrize("clip", [True, False], ids=["clipped", "not clipped"])
def test_a_loss_fn_dict_logs_its_scalars_and_the_grad_norm_is_logged(tiny_run, clip):
    run = tiny_run(job=SCALARS, max_iters=10, log_every=5, job_options={"clip": clip})
    run.run()
    records = step_records(run.history())
    assert [r["step"] for r in records] == [5, 10]
    for record in records:
        assert 0 <= record["accuracy"] <= 1 and record["tokens"] > 0
        assert record["grad_norm"] > 0 and record["samples_per_sec"] > 0 and record["tokens_per_sec"] > 0
        assert len(record["lrs"]) == 2  # the demo's two param groups
    event = run.of(ev.StepCompleted)[-1]
    assert event.scalars == {"accuracy": records[-1]["accuracy"], "tokens": records[-1]["tokens"]}
    assert event.grad_norm == records[-1]["grad_norm"]


def test_a_logged_step_reads_the_device_once(tiny_run, monkeypatch):
    run = tiny_run(job=SCALARS, max_iters=12, log_every=4, save_final=False, job_options={"clip": False})
    reads = []

    def counted(name):
        original = getattr(torch.Tensor, name)

        def read(self):
            if sys._getframe(1).f_globals.get("__name__") in LOOP:  # not the optimizer's or the sampler's
                reads.append(name)
            return original(self)

        return read

    for name in ("item", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, counted(name))
    run.run()
    assert reads == ["tolist"] * 3  # loss, accuracy and grad norm together, on steps 4, 8 and 12 only


def test_a_scalar_named_like_a_field_of_the_record_is_refused_with_its_fix():
    from tui_trainer.engine.loop.step import split_loss

    with pytest.raises(ValueError, match="'lr'.*rename it"):
        split_loss({"loss": torch.tensor(1.0), "lr": 0.1})
    with pytest.raises(ValueError, match="without 'loss'"):
        split_loss({"total": torch.tensor(1.0)})
