"""A safetensors file's header, read without torch: 8 bytes of little-endian length, then JSON.

Listing and `verify` learn a safetensors file's tensors, dtypes, shapes and whether its data is
all there from the header alone, never reading (or trusting) the tensor bytes.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

SUFFIX = ".safetensors"
# The format caps the header at 100 MB; anything larger is garbage, not a header to read.
MAX_HEADER_BYTES = 100_000_000
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}


class SafetensorsProblem(ValueError):
    """The file is not a complete safetensors file; the message says how."""


@dataclass(frozen=True)
class TensorEntry:
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class SafetensorsHeader:
    path: Path
    header_bytes: int
    file_bytes: int
    tensors: dict[str, TensorEntry] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def data_bytes(self) -> int:
        """The bytes the header says its tensors take: the end of the last one."""
        return max((t.end for t in self.tensors.values()), default=0)

    @property
    def parameters(self) -> int:
        return sum(t.numel for t in self.tensors.values())


def read_header(path: str | os.PathLike[str]) -> SafetensorsHeader:
    """The header of a safetensors file; SafetensorsProblem if it is damaged, or its data is cut short."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) < 8:
                raise SafetensorsProblem(f"{size} bytes: too short to hold a safetensors header")
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER_BYTES or 8 + length > size:
                raise SafetensorsProblem(
                    f"its header claims {length} bytes but the file has {size}: truncated, or not safetensors")
            raw = f.read(length)
    except OSError as exc:
        raise SafetensorsProblem(f"cannot read it: {exc.strerror or exc}") from None
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise SafetensorsProblem("its header is not valid JSON: damaged, or not safetensors") from None
    if not isinstance(parsed, dict):
        raise SafetensorsProblem("its header is not a JSON object")
    metadata = parsed.pop("__metadata__", None) or {}
    tensors = {name: _entry(name, value) for name, value in parsed.items()}
    header = SafetensorsHeader(path, length, size, tensors, {str(k): str(v) for k, v in dict(metadata).items()})
    available = size - 8 - length
    if header.data_bytes > available:
        raise SafetensorsProblem(
            f"truncated: its header describes {header.data_bytes} bytes of tensor data, the file holds {available}")
    return header


def _entry(name: str, value: object) -> TensorEntry:
    try:
        dtype, shape, (begin, end) = value["dtype"], tuple(value["shape"]), value["data_offsets"]  # type: ignore[index]
        if not all(isinstance(n, int) and n >= 0 for n in (*shape, begin, end)) or end < begin:
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise SafetensorsProblem(f"its header entry for {name!r} is damaged") from None
    width = DTYPE_BYTES.get(str(dtype))
    if width is not None and (end - begin) != math.prod(shape) * width:
        raise SafetensorsProblem(f"its header entry for {name!r} does not add up ({dtype} {list(shape)})")
    return TensorEntry(str(dtype), shape, begin, end)
