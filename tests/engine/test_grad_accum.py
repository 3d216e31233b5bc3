"""Gradient accumulation: K batches per optimizer step, a step is one optimizer step everywhere."""

from __future__ import annotations

import pytest
import torch
from test_loader_batches import interrupted_twice, same_training
from torch import nn

from tui_trainer.engine.errors import JobLoadError
from tui_trainer.engine.loop.batches import EpochBatches
from tui_trainer.engine.loop.job import Job, load_job
from tui_trainer.engine.loop.step import train_step

SAMPLES, FEATURES = 48, 5


def linear_job(batch_size: int, accum: int, *, clip: float | None = None, scaler: bool = False) -> Job:
    generator = torch.Generator().manual_seed(0)
    xs = torch.randn(SAMPLES, FEATURES, generator=generator)
    ys = xs @ torch.randn(FEATURES, 1, generator=generator)
    torch.manual_seed(0)
    model = nn.Linear(FEATURES, 1)
    data = torch.utils.data.TensorDataset(xs, ys)

    def loss_fn(model, batch):
        x, y = batch
        return nn.functional.mse_loss(model(x), y)  # mean-reduced

    return Job(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
               batches=EpochBatches(data, batch_size, seed=3), loss_fn=loss_fn, grad_clip=clip,
               grad_scaler=torch.amp.GradScaler("cpu", init_scale=2.0**8) if scaler else None,
               batch_size=batch_size, grad_accum_steps=accum)


@pytest.mark.parametrize("clip, scaler", [(None, False), (0.05, False), (0.05, True)],
                         ids=["plain", "clipped", "grad scaler and clipping"])
def test_k_micro_batches_equal_one_batch_k_times_larger(clip, scaler):
    whole, parts = linear_job(12, 1, clip=clip, scaler=scaler), linear_job(4, 3, clip=clip, scaler=scaler)
    for _ in range(8):  # two epochs: each step of `parts` sees the same 12 samples as one of `whole`
        loss_whole, loss_parts = train_step(whole).loss, train_step(parts).loss
        torch.testing.assert_close(loss_parts, loss_whole)
    for a, b in zip(whole.model.parameters(), parts.model.parameters()):
        torch.testing.assert_close(a, b)
    assert (whole.batches.epoch, whole.batches.position) == (1, 4)
    assert (parts.batches.epoch, parts.batches.position) == (1, 12)


def test_a_clip_between_micro_batches_would_differ():
    """The clipped case above proves something: clipping is not linear in the micro-batches."""
    clipped, unclipped = linear_job(4, 3, clip=0.05), linear_job(4, 3)
    train_step(clipped), train_step(unclipped)
    assert not torch.equal(clipped.model.weight, unclipped.model.weight)


def test_gradients_are_cleared_before_the_forward():
    job = linear_job(4, 2)
    seen = []
    loss_fn = job.loss_fn

    def watching(model, batch):
        seen.append([p.grad is None for p in model.parameters()])
        return loss_fn(model, batch)

    job.loss_fn = watching
    train_step(job), train_step(job)
    # Each step's first forward sees no gradient left from the step before; the second, its first's.
    assert seen == [[True, True], [False, False], [True, True], [False, False]]


def test_the_trainer_counts_optimizer_steps(tiny_run):
    run = tiny_run(job="loader_jobs:make_job", job_options={"grad_accum_steps": 3}, max_iters=6, every_steps=3)
    result = run.run()
    assert (result.reason, result.step) == ("target", 6)
    assert [r["step"] for r in run.history() if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert sorted(p.name for p in run.run_dir.glob("step_*.pt")) == ["step_00000003.pt", "step_00000006.pt"]
    batches = run.trainer.job.batches
    assert (batches.epoch, batches.position) == (1, 6)  # 18 batches of 12 an epoch


def test_accumulation_resumes_bit_identically(tiny_run, resume):
    options = {"grad_accum_steps": 3}
    straight = tiny_run("straight", job="loader_jobs:make_job", job_options=options, max_iters=30, every_steps=10)
    straight.run()
    # 4 steps an epoch: 13 and 17 stop 3 batches into an epoch.
    same_training(straight, interrupted_twice(tiny_run, resume, options, stops=(13, 17)))


@pytest.mark.parametrize("accum", [0, -2, 1.5, True])
def test_a_bad_accumulation_count_is_one_line(accum):
    with pytest.raises(JobLoadError, match=r"job.grad_accum_steps must be an int >= 1, got"):
        load_job("loader_jobs:make_job", grad_accum_steps=accum)


def test_samples_per_second_counts_every_micro_batch_of_a_step(tmp_path):
    from tui_trainer.demo.job import make_job
    from tui_trainer.engine.loop import events as ev
    from tui_trainer.engine.loop import launch
    from tui_trainer.engine.loop.job import job_factory
    from tui_trainer.engine.rundir.layout import RunSettings

    @job_factory
    def accumulating(**_: object) -> Job:
        job = make_job(size="tiny", device="cpu")
        job.grad_accum_steps = 3
        return job

    events: list[ev.Event] = []
    trainer = launch.start_run(tmp_path / "run", job=accumulating, on_event=events.append,
                               settings=RunSettings(max_iters=5))
    assert trainer.run().reason == "target"
    last = [e for e in events if isinstance(e, ev.StepCompleted)][-1]
    assert last.samples_per_sec == pytest.approx(last.steps_per_sec * trainer.job.batch_size * 3)
