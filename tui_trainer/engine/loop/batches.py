"""Batch sources whose position can be saved: `EpochBatches` over an indexable dataset, and
`LoaderBatches` over a torch `DataLoader`.

Each of `EpochBatches`' epochs is a permutation drawn from its own `torch.Generator`, seeded
from (seed, epoch), so the stream never touches the global RNG and any position can be restored
directly from `{"epoch", "position", "seed"}` without replaying earlier batches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from tui_trainer.engine.words import counted


def epoch_seed(seed: int, epoch: int) -> int:
    """A generator seed for one epoch; distinct (seed, epoch) pairs give unrelated seeds."""
    digest = hashlib.blake2b(f"{seed}:{epoch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1  # keep it a non-negative int64


def stack_samples(samples: Sequence[Any]) -> Any:
    """Default collate: stack tensors, stack tuples field by field, tensorise numbers."""
    first = samples[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(list(samples))
    if isinstance(first, tuple):
        return tuple(stack_samples(field) for field in zip(*samples))
    if isinstance(first, (bool, int, float)):
        return torch.tensor(samples)
    raise TypeError(
        f"cannot collate samples of type {type(first).__name__}; pass collate=... to EpochBatches"
    )


class EpochBatches:
    """A BatchSource that walks a dataset in a fresh seeded order every epoch.

    `epoch` is the epoch of the most recently drawn batch (0 before any is drawn), and
    `position` is how many batches of that epoch have been drawn. When an epoch is used up,
    the next `next_batch()` starts the following epoch.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        collate: Callable[[list[Any]], Any] | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed must be an int, got {seed!r}")
        size = len(dataset)
        if size == 0:
            raise ValueError("the dataset is empty: there is nothing to batch")
        if drop_last and size < batch_size:
            raise ValueError(
                f"the dataset has {size} samples, fewer than one batch of {batch_size}; "
                "use a smaller batch_size or drop_last=False"
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.collate = collate or stack_samples
        self._epoch = 0
        self._position = 0
        self._order: torch.Tensor | None = None
        self._rank, self._world_size = 0, 1

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def position(self) -> int:
        return self._position

    @property
    def batches_per_epoch(self) -> int:
        """This process's batches per epoch: all of them, or its share of them once `shard`ed."""
        return self._all_batches() // self._world_size

    def _all_batches(self) -> int:
        size = len(self.dataset)
        if self.drop_last:
            return size // self.batch_size
        return -(-size // self.batch_size)

    def shard(self, rank: int, world_size: int) -> None:
        """Draw only every `world_size`-th batch of each epoch's order, starting at the `rank`-th (DDP).

        Every rank walks the same permutation, so together they see each batch of an epoch once;
        each takes the same number of batches per epoch (the last few batches that do not
        divide evenly are dropped), so the ranks step in lockstep. `position` counts this rank's batches.
        """
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in a world of {world_size}")
        if self._all_batches() < world_size:
            raise ValueError(
                f"the dataset gives {counted(self._all_batches(), 'batch', 'batches')} per epoch, fewer than the {world_size} "
                "processes that would share them; use fewer processes or a smaller batch_size"
            )
        if self._position > self._all_batches() // world_size:
            raise ValueError(f"batch position {self._position} is past a share of {world_size} processes")
        self._rank, self._world_size = rank, world_size

    def next_batch(self) -> Any:
        if self._position >= self.batches_per_epoch:
            self._epoch += 1
            self._position = 0
            self._order = None
        if self._order is None:
            self._order = self._epoch_order(self._epoch)
        start = (self._position * self._world_size + self._rank) * self.batch_size
        indices = self._order[start : start + self.batch_size].tolist()
        self._position += 1
        return self.collate([self.dataset[i] for i in indices])

    def skip(self, count: int) -> None:
        """Move on as `count` calls of `next_batch` would, without drawing them."""
        per = self.batches_per_epoch
        reached = self._position + count
        if reached > per:
            over = reached - per
            epochs = -(-over // per)  # the epochs started on the way
            self._epoch += epochs
            reached = over - (epochs - 1) * per
            self._order = None
        self._position = reached

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._epoch, "position": self._position, "seed": self.seed}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue exactly where the saved stream stopped, including its seed."""
        epoch, position, seed = (plain_int(state, key) for key in ("epoch", "position", "seed"))
        if epoch < 0 or not 0 <= position <= self.batches_per_epoch:
            raise ValueError(
                f"batch position epoch={epoch} position={position} does not fit this dataset "
                f"({self.batches_per_epoch} batches per epoch); "
                "was the dataset or the batch size changed?"
            )
        self.seed = seed
        self._epoch = epoch
        self._position = position
        self._order = None

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        size = len(self.dataset)
        if not self.shuffle:
            return torch.arange(size)
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        return torch.randperm(size, generator=generator)


def plain_int(state: Mapping[str, Any], key: str) -> int:
    value = state.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"batch state needs an int {key!r}, got {value!r}")
    return value


def __getattr__(name: str) -> Any:
    # `tui_trainer.engine.batches.LoaderBatches` is the path users' job files import; it lives in
    # `loader_batches`, which imports this module, so it is looked up here when first asked for.
    if name == "LoaderBatches":
        from tui_trainer.engine.loop.loader_batches import LoaderBatches

        return LoaderBatches
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
