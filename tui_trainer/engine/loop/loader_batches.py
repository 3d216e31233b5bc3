"""`LoaderBatches`: a torch `DataLoader` as a batch source whose position can be saved, exactly.

See the class for how each kind of loader resumes; `engine.batches` re-exports it for job files.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import random
import sys
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset

from tui_trainer.engine.loop.batches import plain_int
from tui_trainer.engine.words import counted


class LoaderBatches:
    """A BatchSource over a torch `DataLoader`, resumable exactly, also mid-epoch.

    Map-style datasets (any sampler, any `num_workers`): each epoch's batches of indices are drawn
    from the loader's own sampler with every random stream it may use pinned: a generator of its
    own is set back to its state at the epoch's start, a sampler without one (`shuffle=True`)
    draws under a global RNG seeded from (seed, epoch) and put back afterwards, and
    `set_epoch(epoch)` is called where the sampler has it. A restored position starts the
    sampler's order past the batches already consumed: none is loaded again.

    An `IterableDataset` with `state_dict()`/`load_state_dict()` (and `num_workers=0`, where its
    state lives in this process) resumes where it stood; without them its stream restarts on
    resume, and `resume_notes` says so. A loader with its own `state_dict()`/`load_state_dict()`
    (torchdata's `StatefulDataLoader`) is used as it is and saved with its own state.

    Creating a DataLoader iterator draws its workers' base seed from the global torch RNG unless
    the loader has a `generator`: the batches come from a copy of the loader that has its own,
    reseeded from (seed, epoch) at every iterator, so the model's random stream is left alone.
    Random draws inside worker processes (augmentations) restart from that seed on a resume.
    """

    def __init__(self, loader: Any, *, seed: int = 0) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed must be an int, got {seed!r}")
        stateful = callable(getattr(loader, "state_dict", None)) and callable(getattr(loader, "load_state_dict", None))
        if not stateful and not isinstance(loader, DataLoader):
            raise ValueError(
                f"LoaderBatches wraps a torch DataLoader (or one with state_dict()/load_state_dict()), "
                f"got {type(loader).__name__}"
            )
        self.loader = loader
        self.seed = seed
        self.resume_notes: list[str] = []
        self._epoch = 0
        self._position = 0
        weakref.finalize(self, _release_iterator, id(self), os.getpid()).atexit = False
        self._generator = torch.Generator()
        self._remaining = _RemainingOrder()
        self._order: list[Any] | None = None
        self._epoch_start_states: list[torch.Tensor] | None = None
        self._rank, self._world_size = 0, 1
        if stateful:
            self._kind, self._own = "stateful", loader
        elif isinstance(loader.dataset, IterableDataset):
            self._kind, self._own = "stream", _copy_of(loader, self._generator, None)
        else:
            if len(loader) == 0:
                raise ValueError("the DataLoader yields no batches (is the dataset smaller than one batch with drop_last?)")
            self._kind, self._own = "indexed", _copy_of(loader, self._generator, self._remaining)

    @property
    def _iterator(self) -> Iterator[Any] | None:
        return _OPEN_ITERATORS.get(id(self))

    @_iterator.setter
    def _iterator(self, iterator: Iterator[Any] | None) -> None:
        _OPEN_ITERATORS[id(self)] = iterator  # the one it replaces, if any, shuts its workers down now

    @property
    def epoch(self) -> int:
        """The epoch of the most recently drawn batch (0 before any is drawn)."""
        return self._epoch

    @property
    def position(self) -> int:
        """How many batches of the current epoch have been drawn."""
        return self._position

    def shard(self, rank: int, world_size: int) -> None:
        """Draw only every `world_size`-th batch of each epoch's order, starting at the `rank`-th (DDP).

        As `EpochBatches.shard`: every rank draws the same order, each takes the same number of
        batches per epoch (the few that do not divide evenly are dropped), `position` counts this
        rank's own. Map-style datasets only: a stream cannot be split without reading all of it.
        """
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in a world of {world_size}")
        if self._kind != "indexed":
            raise ValueError("a DataLoader over an IterableDataset (or a stateful loader) cannot be shared "
                             "between processes here; train it in one process (without --nproc)")
        if len(self.loader) < world_size:
            raise ValueError(f"the DataLoader gives {counted(len(self.loader), 'batch', 'batches')} per epoch, fewer than the "
                             f"{world_size} processes that would share them; use fewer processes or a smaller batch_size")
        if self._position > len(self.loader) // world_size:
            raise ValueError(f"batch position {self._position} is past a share of {world_size} processes")
        self._rank, self._world_size = rank, world_size
        self._order, self._iterator = None, None

    def next_batch(self) -> Any:
        if self._kind == "indexed":
            return self._next_indexed()
        return self._next_streamed()

    def _next_indexed(self) -> Any:
        if self._order is None:
            self._order = self._draw_order(self._epoch)
        if self._position >= len(self._order):
            self._epoch, self._position, self._epoch_start_states = self._epoch + 1, 0, None
            self._order, self._iterator = self._draw_order(self._epoch), None
            if not self._order:
                raise ValueError(f"the DataLoader's sampler gave no batches for epoch {self._epoch}")
        if self._iterator is None:
            self._remaining.items, self._remaining.start = self._order, self._position
            self._iterator = self._fresh_iterator()
        batch = next(self._iterator)
        self._position += 1
        return batch

    def _next_streamed(self) -> Any:
        for _ in range(2):
            if self._iterator is None:
                self._iterator = self._fresh_iterator()
            try:
                batch = next(self._iterator)
            except StopIteration:  # the epoch is over: the next batch starts another
                self._iterator = None
                self._epoch, self._position = self._epoch + 1, 0
                continue
            self._position += 1
            return batch
        raise ValueError(f"the DataLoader yields no batches (epoch {self._epoch})")

    def _fresh_iterator(self) -> Iterator[Any]:
        self._generator.manual_seed(_seed_for(self.seed, self._epoch, "workers"))
        return iter(self._own)

    def _draw_order(self, epoch: int) -> list[Any]:
        """The epoch's batches of indices, as the loader's sampler gives them, reproducibly."""
        holders = _sampler_parts(self.loader)
        for part in holders:
            if callable(getattr(part, "set_epoch", None)):
                part.set_epoch(epoch)
        generators = _generators_of(holders)
        if self._epoch_start_states is None:
            self._epoch_start_states = [g.get_state() for g in generators]
        else:
            if len(self._epoch_start_states) != len(generators):
                raise ValueError("the saved data position was made with a different sampler; was the DataLoader changed?")
            for generator, state in zip(generators, self._epoch_start_states):
                generator.set_state(state)
        index_sampler = self.loader.batch_sampler if self.loader.batch_sampler is not None else self.loader.sampler
        with _global_rngs_seeded(_seed_for(self.seed, epoch, "order")):
            order = list(index_sampler)
        if self._world_size == 1:
            return order
        return order[self._rank :: self._world_size][: len(order) // self._world_size]

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"epoch": self._epoch, "position": self._position, "seed": self.seed}
        if self._kind == "stateful":
            state["loader"] = self.loader.state_dict()
        elif self._kind == "stream" and _stream_state_is_here(self.loader):
            state["dataset"] = self.loader.dataset.state_dict()
        elif self._kind == "indexed":
            states = self._epoch_start_states
            if states is None:
                states = [g.get_state() for g in _generators_of(_sampler_parts(self.loader))]
            state["sampler_rng"] = list(states)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue exactly where the saved stream stopped, including its seed."""
        epoch, position, seed = (plain_int(state, key) for key in ("epoch", "position", "seed"))
        if epoch < 0 or position < 0 or self._kind == "indexed" and position > len(self.loader) // self._world_size:
            raise ValueError(
                f"batch position epoch={epoch} position={position} does not fit this DataLoader; "
                "was the dataset or the batch size changed?"
            )
        self.resume_notes = []
        self.seed, self._epoch, self._position = seed, epoch, position
        self._iterator, self._order, self._epoch_start_states = None, None, None
        if self._kind == "stateful":
            self.loader.load_state_dict(state["loader"])
        elif self._kind == "indexed":
            saved = state.get("sampler_rng")
            if not isinstance(saved, list) or not all(isinstance(s, torch.Tensor) for s in saved):
                raise ValueError("the saved data position lacks its sampler's RNG states; was it made by EpochBatches?")
            self._epoch_start_states = [s.clone() for s in saved]
        elif "dataset" in state and _stream_state_is_here(self.loader):
            self.loader.dataset.load_state_dict(state["dataset"])
        else:
            why = ("it has no state_dict()/load_state_dict()" if not _has_state(self.loader.dataset)
                   else "its state lives in the worker processes (num_workers > 0)")
            self.resume_notes.append(
                f"the DataLoader's IterableDataset restarts its stream: {why}, so epoch {epoch} "
                f"starts again from its first batch ({counted(position, 'batch', 'batches')} of it {'was' if position == 1 else 'were'} seen before)"
            )
            self._position = 0


# Each LoaderBatches' open DataLoader iterator, by the LoaderBatches' id, dropped when it dies. A
# job sits in reference cycles (a trainer and its callbacks), and an iterator collected with one
# finds its worker queues already closed by the collector: each worker then takes the 5 s join
# timeout to go. Held here, outside the cycle, the iterator is released once its owner is
# collected and shuts its workers down at once.
_OPEN_ITERATORS: dict[int, Iterator[Any] | None] = {}


def _release_iterator(key: int, pid: int) -> None:
    if os.getpid() == pid:  # a DataLoader worker forked meanwhile holds a copy it must not shut down
        _OPEN_ITERATORS.pop(key, None)


class _RemainingOrder:
    """The index sampler of LoaderBatches' own loader: this epoch's batches from `start` on."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.start = 0

    def __iter__(self) -> Iterator[Any]:
        return itertools.islice(self.items, self.start, None)

    def __len__(self) -> int:
        return max(0, len(self.items) - self.start)


def _copy_of(loader: DataLoader, generator: torch.Generator, order: _RemainingOrder | None) -> DataLoader:
    """`loader`'s settings with `generator` and, for a map-style dataset, `order` as its sampler."""
    settings = dict(
        num_workers=loader.num_workers, collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
        timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context, generator=generator,
        prefetch_factor=loader.prefetch_factor, persistent_workers=loader.persistent_workers,
        pin_memory_device=loader.pin_memory_device, in_order=loader.in_order,
    )
    if order is None:
        return DataLoader(loader.dataset, batch_size=loader.batch_size, drop_last=loader.drop_last, **settings)
    if loader.batch_sampler is None:  # batch_size=None: the sampler gives whole batches, or samples
        return DataLoader(loader.dataset, batch_size=None, sampler=order, **settings)
    return DataLoader(loader.dataset, batch_sampler=order, **settings)


def _sampler_parts(loader: DataLoader) -> list[Any]:
    parts: list[Any] = []
    for part in (loader.sampler, loader.batch_sampler, getattr(loader.batch_sampler, "sampler", None)):
        if part is not None and all(part is not seen for seen in parts):
            parts.append(part)
    return parts


def _generators_of(parts: list[Any]) -> list[torch.Generator]:
    found: list[torch.Generator] = []
    for part in parts:
        generator = getattr(part, "generator", None)
        if isinstance(generator, torch.Generator) and all(generator is not seen for seen in found):
            found.append(generator)
    return found


def _has_state(obj: Any) -> bool:
    return callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "load_state_dict", None))


def _stream_state_is_here(loader: DataLoader) -> bool:
    return loader.num_workers == 0 and _has_state(loader.dataset)


def _seed_for(seed: int, epoch: int, purpose: str) -> int:
    digest = hashlib.blake2b(f"{seed}:{epoch}:{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


@contextlib.contextmanager
def _global_rngs_seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU, Python's and numpy's global RNGs, and put them back afterwards."""
    python_state = random.getstate()
    numpy = sys.modules.get("numpy")
    numpy_state = numpy.random.get_state() if numpy is not None else None
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        random.seed(seed)
        if numpy is not None:
            numpy.random.seed(seed % 2**32)
        try:
            yield
        finally:
            random.setstate(python_state)
            if numpy is not None:
                numpy.random.set_state(numpy_state)
