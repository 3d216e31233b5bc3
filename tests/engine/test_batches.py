import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tui_trainer.engine.loop.batches import EpochBatches, epoch_seed, stack_samples
from tui_trainer.engine.loop.job import BatchSource


class CountingDataset:
    """An indexable dataset that records how often it is read."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.reads = 0

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> torch.Tensor:
        self.reads += 1
        return torch.tensor(index)


def draw(source: EpochBatches, count: int) -> list[list[int]]:
    return [source.next_batch().tolist() for _ in range(count)]


def test_is_a_batch_source():
    assert isinstance(EpochBatches(torch.arange(8), 2), BatchSource)


def test_same_seed_gives_the_same_stream_regardless_of_global_rng():
    first = EpochBatches(torch.arange(20), 4, seed=7)
    second = EpochBatches(torch.arange(20), 4, seed=7)
    expected = draw(first, 12)
    got = []
    for _ in range(12):
        torch.manual_seed(len(got))  # the global RNG must not matter
        torch.rand(3)
        got.append(second.next_batch().tolist())
    assert got == expected


def test_different_seeds_give_different_orders():
    assert draw(EpochBatches(torch.arange(50), 10, seed=1), 5) != draw(
        EpochBatches(torch.arange(50), 10, seed=2), 5
    )


def test_each_epoch_is_a_fresh_permutation_of_the_dataset():
    source = EpochBatches(torch.arange(12), 3, seed=0)
    epochs = [sum(draw(source, 4), []) for _ in range(3)]
    for order in epochs:
        assert sorted(order) == list(range(12))
    assert epochs[0] != epochs[1] != epochs[2]


def test_epoch_is_that_of_the_last_drawn_batch_and_rolls_over():
    source = EpochBatches(torch.arange(6), 2)
    assert source.batches_per_epoch == 3
    assert (source.epoch, source.position) == (0, 0)
    draw(source, 3)
    assert (source.epoch, source.position) == (0, 3)
    draw(source, 1)
    assert (source.epoch, source.position) == (1, 1)


def test_without_shuffle_batches_come_in_dataset_order():
    source = EpochBatches(torch.arange(6), 2, shuffle=False)
    assert draw(source, 4) == [[0, 1], [2, 3], [4, 5], [0, 1]]


def test_without_drop_last_the_last_batch_is_short():
    source = EpochBatches(torch.arange(7), 3, shuffle=False, drop_last=False)
    assert source.batches_per_epoch == 3
    assert draw(source, 4) == [[0, 1, 2], [3, 4, 5], [6], [0, 1, 2]]


def test_drop_last_skips_the_remainder():
    source = EpochBatches(torch.arange(7), 3, seed=3)
    assert source.batches_per_epoch == 2
    seen = sum(draw(source, 2), [])
    assert len(set(seen)) == 6


def test_tuple_samples_collate_field_by_field():
    pairs = [(torch.tensor([i, i]), i * 10) for i in range(4)]
    x, y = EpochBatches(pairs, 2, shuffle=False).next_batch()
    assert x.tolist() == [[0, 0], [1, 1]]
    assert y.tolist() == [0, 10]


def test_custom_collate_is_used():
    source = EpochBatches(list("abcd"), 2, shuffle=False, collate="".join)
    assert source.next_batch() == "ab"


def test_default_collate_names_the_fix_for_unknown_samples():
    with pytest.raises(TypeError, match="collate="):
        stack_samples([object(), object()])


def test_state_dict_is_plain_json_ints():
    source = EpochBatches(torch.arange(10), 3, seed=5)
    draw(source, 4)
    state = source.state_dict()
    assert state == {"epoch": 1, "position": 1, "seed": 5}
    assert json.loads(json.dumps(state)) == state


def test_restore_mid_epoch_continues_exactly_and_survives_a_second_interruption():
    reference = EpochBatches(torch.arange(30), 4, seed=11)
    expected = draw(reference, 40)

    first_run = EpochBatches(torch.arange(30), 4, seed=11)
    got = draw(first_run, 5)  # stop mid-epoch 0
    second_run = EpochBatches(torch.arange(30), 4, seed=11)
    second_run.load_state_dict(json.loads(json.dumps(first_run.state_dict())))
    got += draw(second_run, 12)  # crosses into epoch 2, stops mid-epoch
    third_run = EpochBatches(torch.arange(30), 4, seed=11)
    third_run.load_state_dict(second_run.state_dict())
    got += draw(third_run, 23)
    assert got == expected
    assert third_run.epoch == reference.epoch


def test_restore_at_an_epoch_boundary_starts_the_next_epoch():
    reference = EpochBatches(torch.arange(8), 4, seed=2)
    expected = draw(reference, 5)
    run = EpochBatches(torch.arange(8), 4, seed=2)
    first = draw(run, 2)
    resumed = EpochBatches(torch.arange(8), 4, seed=2)
    resumed.load_state_dict(run.state_dict())
    assert resumed.epoch == 0
    assert first + draw(resumed, 3) == expected


def test_restore_does_not_replay_batches():
    dataset = CountingDataset(10_000)
    source = EpochBatches(dataset, 10, seed=1)
    source.load_state_dict({"epoch": 50, "position": 999, "seed": 1})
    assert dataset.reads == 0
    source.next_batch()
    assert dataset.reads == 10


def test_restore_adopts_the_saved_seed():
    saved = EpochBatches(torch.arange(12), 3, seed=9)
    draw(saved, 2)
    resumed = EpochBatches(torch.arange(12), 3, seed=0)
    resumed.load_state_dict(saved.state_dict())
    assert resumed.seed == 9
    assert draw(resumed, 6) == draw(saved, 6)


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(1, 40),
    batch_size=st.integers(1, 8),
    drop_last=st.booleans(),
    stop_after=st.integers(0, 25),
)
def test_any_stop_point_restores_exactly(size, batch_size, drop_last, stop_after):
    if drop_last and size < batch_size:
        return
    reference = EpochBatches(torch.arange(size), batch_size, drop_last=drop_last)
    expected = draw(reference, stop_after + 5)
    run = EpochBatches(torch.arange(size), batch_size, drop_last=drop_last)
    got = draw(run, stop_after)
    resumed = EpochBatches(torch.arange(size), batch_size, drop_last=drop_last)
    resumed.load_state_dict(run.state_dict())
    assert got + draw(resumed, 5) == expected


def test_epoch_seeds_differ_by_seed_and_epoch():
    seeds = {epoch_seed(seed, epoch) for seed in range(20) for epoch in range(20)}
    assert len(seeds) == 400
    assert all(0 <= s < 2**63 for s in seeds)


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, True])
def test_rejects_a_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        EpochBatches(torch.arange(8), batch_size)


def test_rejects_a_dataset_smaller_than_one_batch():
    with pytest.raises(ValueError, match="fewer than one batch"):
        EpochBatches(torch.arange(3), 4)
    assert EpochBatches(torch.arange(3), 4, drop_last=False).batches_per_epoch == 1


def test_rejects_an_empty_dataset():
    with pytest.raises(ValueError, match="empty"):
        EpochBatches([], 1, drop_last=False)


@pytest.mark.parametrize(
    "state",
    [
        {"epoch": 0, "position": 4, "seed": 0},  # only 3 batches per epoch
        {"epoch": -1, "position": 0, "seed": 0},
        {"epoch": 0, "position": 1},
        {"epoch": 0, "position": "1", "seed": 0},
        {"epoch": 0.0, "position": 1, "seed": 0},
    ],
)
def test_rejects_a_state_that_does_not_fit(state):
    source = EpochBatches(torch.arange(6), 2)
    with pytest.raises(ValueError):
        source.load_state_dict(state)
