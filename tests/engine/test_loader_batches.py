"""LoaderBatches: a torch DataLoader as a job's batches, resumed exactly and without replaying the epoch."""

from __future__ import annotations

import pytest
import torch
from loader_jobs import CountingDataset, regression_data
from test_resume import assert_same_tensors
from tiny_runs import step_records, stop_at, without_time
from torch.utils.data import DataLoader, IterableDataset, RandomSampler, TensorDataset

from tui_trainer.engine.batches import LoaderBatches
from tui_trainer.engine.loop.batches import LoaderBatches as SameClass
from tui_trainer.engine.loop.control import TrainingControl
from tui_trainer.engine.loop.job import BatchSource

DATA = TensorDataset(torch.arange(22.0))  # 22 samples in batches of 4: the last batch is short


def draw(source: LoaderBatches, n: int) -> list[list[float]]:
    return [torch.atleast_1d(source.next_batch()[0]).tolist() for _ in range(n)]


def resumed_stream(make, stops: list[int], total: int) -> list[list[float]]:
    """`total` batches drawn by a fresh LoaderBatches per segment, each restored from the last's state."""
    drawn, state, done = [], None, 0
    for stop in [*stops, total]:
        source = make()
        if state is not None:
            source.load_state_dict(state)
        drawn += draw(source, stop - done)
        state, done = source.state_dict(), stop
    return drawn


def test_is_a_batch_source_and_the_engine_path_is_the_same_class():
    assert LoaderBatches is SameClass
    assert isinstance(LoaderBatches(DataLoader(DATA, batch_size=4)), BatchSource)


@pytest.mark.parametrize("loader", [
    lambda: DataLoader(DATA, batch_size=4, shuffle=True),
    lambda: DataLoader(DATA, batch_size=4, shuffle=True, drop_last=True),
    lambda: DataLoader(DATA, batch_size=4, shuffle=False),
    lambda: DataLoader(DATA, batch_size=4, sampler=RandomSampler(DATA, generator=torch.Generator().manual_seed(5))),
    lambda: DataLoader(DATA, batch_size=None, shuffle=True),
], ids=["shuffled", "drop_last", "in order", "own sampler generator", "no batching"])
@pytest.mark.parametrize("stops", [[3], [7, 9], [6, 12, 13]], ids=str)
def test_repeated_interrupts_anywhere_resume_exactly(loader, stops):
    per_epoch = len(loader())
    total = 2 * per_epoch + 3  # into a third epoch
    straight = draw(LoaderBatches(loader()), total)
    assert resumed_stream(lambda: LoaderBatches(loader()), stops, total) == straight
    if not loader().drop_last:  # each epoch: every sample once
        for epoch in straight[:per_epoch], straight[per_epoch:2 * per_epoch]:
            assert sorted(x for batch in epoch for x in batch) == list(range(22))


def test_epochs_are_reshuffled_and_the_seed_picks_the_order():
    stream = draw(LoaderBatches(DataLoader(DATA, batch_size=4, shuffle=True), seed=1), 12)
    assert stream[:6] != stream[6:]
    assert stream != draw(LoaderBatches(DataLoader(DATA, batch_size=4, shuffle=True), seed=2), 12)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_the_global_rng_is_never_drawn_from(num_workers):
    source = LoaderBatches(DataLoader(DATA, batch_size=4, shuffle=True, num_workers=num_workers))
    before = torch.get_rng_state()
    draw(source, 8)  # two epochs: two iterators made, two orders drawn
    assert torch.equal(torch.get_rng_state(), before)


def test_a_resume_loads_only_the_batches_still_to_come():
    xs, ys = regression_data()

    def make():
        return LoaderBatches(DataLoader(CountingDataset(xs, ys), batch_size=8, shuffle=True))

    first = make()
    for _ in range(9):
        first.next_batch()
    state = first.state_dict()
    CountingDataset.fetched = 0
    second = make()
    second.load_state_dict(state)
    second.next_batch()
    assert CountingDataset.fetched == 8  # one batch: the nine consumed were never loaded again
    assert (second.epoch, second.position) == (0, 10)


def test_a_state_that_does_not_fit_the_loader_is_refused():
    state = LoaderBatches(DataLoader(DATA, batch_size=4)).state_dict()
    with pytest.raises(ValueError, match="does not fit this DataLoader"):
        LoaderBatches(DataLoader(DATA, batch_size=4)).load_state_dict({**state, "position": 99})


def test_anything_but_a_data_loader_is_refused_in_one_line():
    with pytest.raises(ValueError, match="wraps a torch DataLoader"):
        LoaderBatches([1, 2, 3])


class Countdown(IterableDataset):
    """A stream of 0..n-1 that can say where it stands, when `stateful`."""

    def __init__(self, n: int = 10) -> None:
        self.n, self.at = n, 0

    def __iter__(self):
        while self.at < self.n:
            self.at += 1
            yield torch.tensor(float(self.at - 1))
        self.at = 0


class StatefulCountdown(Countdown):
    def state_dict(self):
        return {"at": self.at}

    def load_state_dict(self, state):
        self.at = state["at"]


def test_an_iterable_dataset_with_state_resumes_exactly():
    def make():
        return LoaderBatches(DataLoader(StatefulCountdown(), batch_size=3))

    source = make()
    straight = [source.next_batch().tolist() for _ in range(11)]
    assert straight[:5] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9], [0, 1, 2]]

    def resumed(stops):
        drawn, state, done = [], None, 0
        for stop in [*stops, 11]:
            part = make()
            if state is not None:
                part.load_state_dict(state)
                assert part.resume_notes == []
            drawn += [part.next_batch().tolist() for _ in range(stop - done)]
            state, done = part.state_dict(), stop
        return drawn

    assert resumed([2, 4, 5]) == straight


def test_an_iterable_dataset_without_state_says_its_stream_restarts():
    source = LoaderBatches(DataLoader(Countdown(), batch_size=3))
    source.next_batch(), source.next_batch()
    again = LoaderBatches(DataLoader(Countdown(), batch_size=3))
    again.load_state_dict(source.state_dict())
    assert again.resume_notes == [
        "the DataLoader's IterableDataset restarts its stream: it has no state_dict()/load_state_dict(), "
        "so epoch 0 starts again from its first batch (2 batches of it were seen before)"
    ]
    assert again.next_batch().tolist() == [0, 1, 2]


class StatefulLoader:
    """A loader that saves its own position, as torchdata's StatefulDataLoader does."""

    def __init__(self) -> None:
        self.at, self.loaded = 0, None

    def __iter__(self):
        while self.at < 5:
            self.at += 1
            yield self.at
        self.at = 0

    def state_dict(self):
        return {"at": self.at}

    def load_state_dict(self, state):
        self.loaded = dict(state)
        self.at = state["at"]


def test_a_loader_with_its_own_state_is_used_as_it_is():
    source = LoaderBatches(StatefulLoader())
    assert [source.next_batch() for _ in range(7)] == [1, 2, 3, 4, 5, 1, 2]
    assert source.epoch == 1 and source.state_dict()["loader"] == {"at": 2}
    again = LoaderBatches(StatefulLoader())
    again.load_state_dict(source.state_dict())
    assert again.loader.loaded == {"at": 2} and again.next_batch() == 3 and again.epoch == 1


# --- end to end: a job written as users write one, interrupted mid-epoch and resumed ------------

TARGET = 30  # 12 batches an epoch: the stops below fall mid-epoch, twice in the same one


def same_training(straight, resumed) -> None:
    job_a, job_b = straight.trainer.job, resumed.trainer.job
    assert_same_tensors(job_a.model.state_dict(), job_b.model.state_dict(), "model")
    assert_same_tensors(job_a.optimizer.state_dict(), job_b.optimizer.state_dict(), "optimizer")
    if job_a.ema is not None:
        assert_same_tensors(job_a.ema.state_dict(), job_b.ema.state_dict(), "ema")
    assert without_time(straight.history()) == without_time(resumed.history())
    assert [r["step"] for r in step_records(resumed.history())] == list(range(1, TARGET + 1))


def interrupted_twice(tiny_run, resume, options, stops=(15, 20), per_epoch=12):
    control = TrainingControl()
    run = tiny_run("resumed", job="loader_jobs:make_job", job_options=options, max_iters=TARGET,
                   every_steps=10, control=control, on_event=stop_at(stops[0], control, "interrupted"))
    assert run.run().reason == "interrupted"
    control = TrainingControl()
    second = resume(run.run_dir, control=control, on_event=stop_at(stops[1], control, "interrupted"))
    assert second.run().reason == "interrupted"
    assert 0 < second.trainer.job.batches.position < per_epoch  # mid-epoch
    third = resume(run.run_dir)
    assert third.trainer.step == stops[1]
    assert third.run().reason == "target"
    return third


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_job_on_a_shuffled_data_loader_resumes_bit_identically(tiny_run, resume, num_workers):
    options = {"num_workers": num_workers}
    straight = tiny_run("straight", job="loader_jobs:make_job", job_options=options, max_iters=TARGET, every_steps=10)
    straight.run()
    same_training(straight, interrupted_twice(tiny_run, resume, options))



def test_resume_says_when_a_stream_restarts(tiny_run, resume):
    control = TrainingControl()
    run = tiny_run(job="loader_jobs:make_stream_job", max_iters=20, control=control,
                   on_event=stop_at(5, control, "interrupted"))
    assert run.run().reason == "interrupted"
    again = resume(run.run_dir)
    assert ("the DataLoader's IterableDataset restarts its stream: it has no state_dict()/load_state_dict(), "
            "so epoch 0 starts again from its first batch (5 batches of it were seen before)") in again.trainer.notes
    assert again.run().reason == "target"
