"""A file writer that checksums what it writes, and the checksums a sidecar can record.

A checksum is written as `algorithm:hex`. New saves use XXH3-128 (xxHash): ~15 GB/s on one core
here, so hashing each buffer as torch hands it over costs ~7 ms for 108 MB on the saving thread,
where SHA-256 on a second thread cost 80-90 ms of CPU that a busy 2-core machine could not hide.
The checksum catches a torn, truncated or flipped file; like SHA-256 beside an unsigned sidecar,
it does not stop someone who can rewrite both. Sidecars written before record `sha256` and
still verify.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import IO, Any

import xxhash

CHECKSUM_ALGORITHM = "xxh3_128"
_HASHES: dict[str, Callable[[], Any]] = {"xxh3_128": xxhash.xxh3_128, "sha256": hashlib.sha256}
_CHUNK = 4 << 20
_SMALL_WRITE = 64 << 10


class UnknownChecksum(ValueError):
    """A recorded checksum names an algorithm this version cannot compute."""


class HashingWriter:
    """Wraps an unbuffered binary file opened for writing (`buffering=0`); hashes each write before it goes out.

    torch reuses the buffers it hands to `write()`, so they are hashed during the call.
    """

    def __init__(self, file: IO[bytes], algorithm: str = CHECKSUM_ALGORITHM) -> None:
        self._file = file
        self._fd = file.fileno()
        self._algorithm = algorithm
        self._hash = new_hash(algorithm)
        self._written = 0
        self._pending = bytearray()

    @property
    def bytes_written(self) -> int:
        return self._written

    def write(self, data: bytes | memoryview) -> int:
        size = len(data)
        if size < _SMALL_WRITE:
            # torch.save makes hundreds of tiny writes (zip headers, pickle); gathering them
            # saves a syscall and a hash call each.
            self._pending += data
            if len(self._pending) >= _CHUNK:
                self._write_through(self._pending)
                self._pending = bytearray()
            return size
        if self._pending:
            self._write_through(self._pending)
            self._pending = bytearray()
        self._write_through(data)
        return size

    def _write_through(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        self._write_all(view)
        self._hash.update(view)
        self._written += len(view)

    def _write_all(self, view: memoryview) -> None:
        total = 0
        while total < len(view):  # an unbuffered write may be partial
            total += self._file.write(view[total:])

    def flush(self) -> None:
        """Writes reach the file by `finish()`; torch calls this anyway."""

    def finish(self) -> str:
        """Write what is gathered and fsync the file; return the checksum of everything (`algorithm:hex`).

        When this returns the file is complete on disk.
        """
        if self._pending:
            self._write_through(self._pending)
            self._pending = bytearray()
        os.fsync(self._fd)
        return f"{self._algorithm}:{self._hash.hexdigest()}"

    def abandon(self) -> None:
        """Forget a file that will be deleted, without fsyncing it."""
        self._pending = bytearray()


def new_hash(algorithm: str) -> Any:
    try:
        return _HASHES[algorithm]()
    except KeyError:
        known = ", ".join(sorted(_HASHES))
        raise UnknownChecksum(f"unknown checksum algorithm {algorithm!r} (this version knows {known})") from None


def checksum_of_file(path: str | os.PathLike[str], algorithm: str = CHECKSUM_ALGORITHM) -> str:
    """The file's checksum as a sidecar records it: `algorithm:hex`."""
    digest = new_hash(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return f"{algorithm}:{digest.hexdigest()}"


def algorithm_of(checksum: str) -> str:
    """`xxh3_128` of `xxh3_128:<hex>`; UnknownChecksum for an algorithm this version cannot compute."""
    algorithm, colon, _ = checksum.partition(":")
    if not colon or algorithm not in _HASHES:
        raise UnknownChecksum(f"unknown checksum algorithm {algorithm!r}; a newer tui-trainer may read it")
    return algorithm


def file_matches(path: str | os.PathLike[str], checksum: str) -> bool:
    """Whether the file's checksum, by the algorithm `checksum` names, is `checksum`."""
    return checksum_of_file(path, algorithm_of(checksum)) == checksum


def sha256_of_file(path: str | os.PathLike[str]) -> str:
    return checksum_of_file(path, "sha256").removeprefix("sha256:")
