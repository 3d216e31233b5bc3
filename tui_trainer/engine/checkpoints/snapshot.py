"""A consistent copy of a training state, taken on the training thread for a save written elsewhere.

The state is the nested dict `training_state.capture` makes: its tensors are the live ones, which
the next step changes in place. `SnapshotBuffers.copy` copies every tensor's storage into a CPU
buffer allocated once per place in the state and reused by every later save (pinned when the
source is on CUDA: the copies are issued without blocking, then waited for once). Whole storages
are copied, and tensors that shared one storage share its copy, so `torch.save` writes the same
bytes it would have written from the live state. Other values are deep-copied.

A buffer is rewritten by the next `copy`: its caller must not start one before the save that
reads the previous copy is done.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

import torch

Path = tuple[Any, ...]


class SnapshotBuffers:
    """Reusable CPU buffers for the tensors of one run's checkpoints. Used from one thread."""

    def __init__(self) -> None:
        self._buffers: dict[Path, torch.Tensor] = {}  # flat uint8, one per storage's first place
        self._copied: dict[tuple[str, int], torch.Tensor] = {}  # this copy's storages, for aliasing
        self._memo: dict[int, Any] = {}  # this copy's other shared objects (pickle writes each once)
        self._cuda = False

    @property
    def nbytes(self) -> int:
        return sum(buffer.numel() for buffer in self._buffers.values())

    def copy(self, state: Any) -> Any:
        """A copy of `state` that the training loop can no longer change."""
        self._copied, self._memo, self._cuda = {}, {}, False
        try:
            copied = self._copy(state, ())
            if self._cuda:
                torch.cuda.synchronize()  # the non-blocking copies into pinned memory have landed
        finally:
            self._copied, self._memo = {}, {}
        return copied

    def _copy(self, value: Any, path: Path) -> Any:
        if isinstance(value, torch.Tensor):
            return self._tensor(value, path)
        if id(value) in self._memo:  # an object met twice stays one object (an optimizer's shared betas)
            return self._memo[id(value)]
        if type(value) is dict:
            copied: Any = {key: self._copy(item, (*path, key)) for key, item in value.items()}
        elif type(value) is OrderedDict:  # a module's state_dict, with its `_metadata` (versions)
            copied = OrderedDict((key, self._copy(item, (*path, key))) for key, item in value.items())
            copied.__dict__.update(copy.deepcopy(vars(value), self._memo))
        elif type(value) in (list, tuple):
            copied = type(value)(self._copy(item, (*path, i)) for i, item in enumerate(value))
        else:
            return copy.deepcopy(value, self._memo)
        self._memo[id(value)] = copied
        return copied

    def _tensor(self, tensor: torch.Tensor, path: Path) -> torch.Tensor:
        if type(tensor) is not torch.Tensor or tensor.layout is not torch.strided or tensor.is_quantized \
                or tensor.device.type == "meta":
            return tensor.detach().clone()  # rare kinds: a fresh copy each time, on their own device
        storage = tensor.untyped_storage()
        nbytes = storage.nbytes()
        key = (str(tensor.device), storage.data_ptr())
        copied = self._copied.get(key) if nbytes else None
        if copied is None:
            copied = self._buffer(path, nbytes, tensor.device)
            if nbytes:
                source = torch.empty(0, dtype=torch.uint8, device=tensor.device).set_(storage)
                on_cuda = tensor.device.type == "cuda"
                copied.copy_(source, non_blocking=on_cuda)
                self._cuda |= on_cuda
                self._copied[key] = copied
        view = torch.empty(0, dtype=tensor.dtype)
        view.set_(copied.untyped_storage(), tensor.storage_offset(), tensor.size(), tensor.stride())
        return view

    def _buffer(self, path: Path, nbytes: int, device: torch.device) -> torch.Tensor:
        pin = device.type == "cuda"
        buffer = self._buffers.get(path)
        if buffer is None or buffer.numel() != nbytes or buffer.is_pinned() != pin:
            buffer = torch.empty(nbytes, dtype=torch.uint8, pin_memory=pin)
            self._buffers[path] = buffer
        return buffer
