"""Every kind of batch users hand over reaches the job's device (the meta device shows the move)."""

from __future__ import annotations

from collections import OrderedDict, UserDict, defaultdict, namedtuple
from collections.abc import Mapping

import torch

from tui_trainer.engine.loop.batches import EpochBatches
from tui_trainer.engine.loop.job import Job
from tui_trainer.engine.loop.step import to_device, train_step

Pair = namedtuple("Pair", "x y")


class Encoding(UserDict):
    """Like Hugging Face's BatchEncoding: a mapping that moves itself with `.to(device)`."""

    def to(self, device):
        self.data = {k: v.to(device) for k, v in self.data.items()}
        self.moved_to = device
        return self


class Frozen(Mapping):
    """A read-only mapping without `.to`."""

    def __init__(self, data):
        self._data = dict(data)

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)


class Packed:
    """Any object that knows how to move itself."""

    def __init__(self, tensor):
        self.tensor = tensor

    def to(self, device):
        return Packed(self.tensor.to(device))


def on_meta(value) -> bool:
    return isinstance(value, torch.Tensor) and value.device.type == "meta"


def test_each_kind_of_batch_moves_and_keeps_its_type():
    t = torch.ones(2)
    pair = to_device(Pair(t, t), "meta")
    assert type(pair) is Pair and on_meta(pair.x) and on_meta(pair.y)
    assert all(on_meta(v) for v in to_device((t, [t, t]), "meta")[1])
    assert type(to_device([t], "meta")) is list
    ordered = to_device(OrderedDict(a=t), "meta")
    assert type(ordered) is OrderedDict and on_meta(ordered["a"])
    counts = defaultdict(list, a=t)
    moved = to_device(counts, "meta")
    assert type(moved) is defaultdict and moved.default_factory is list and on_meta(moved["a"])
    frozen = to_device(Frozen({"a": t}), "meta")
    assert on_meta(frozen["a"])
    encoding = to_device(Encoding(input_ids=t), "meta")
    assert encoding.moved_to == "meta" and on_meta(encoding["input_ids"])
    assert on_meta(to_device(Packed(t), "meta").tensor)
    assert to_device({"name": "x", "n": 3, "mask": None}, "meta") == {"name": "x", "n": 3, "mask": None}


def test_a_job_whose_batches_are_namedtuples_trains():
    torch.manual_seed(0)
    xs = torch.randn(16, 3)

    class NamedPairs(EpochBatches):
        def next_batch(self):
            x, y = super().next_batch()
            return Pair(x, y)

    model = torch.nn.Linear(3, 1)
    job = Job(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
              batches=NamedPairs(torch.utils.data.TensorDataset(xs, xs.sum(1, keepdim=True)), 4),
              loss_fn=lambda m, b: torch.nn.functional.mse_loss(m(b.x), b.y))
    first = train_step(job).loss
    for _ in range(20):
        last = train_step(job).loss
    assert last < first
