"""Ways of checksumming a checkpoint while torch.save writes it, for bench_checkpoint's side-by-side rows.

The store hashes each buffer as it is written (`HashingWriter`, XXH3-128). The other ways here
are what it was measured against: the same writer with SHA-256 or BLAKE3, and the writer the
store used before, which hashed on a second thread by reading the written bytes back from the
page cache (hashlib and blake3 release the GIL, so that thread can overlap torch's serialisation).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from typing import IO, Any

from tui_trainer.engine.checkpoints.hashing_writer import HashingWriter

_CHUNK = 4 << 20


def blake3_or_none() -> Callable[[], Any] | None:
    """BLAKE3's hash, if the `blake3` package is installed (it is not a dependency)."""
    try:
        from blake3 import blake3
    except ImportError:
        return None
    return blake3


def inline_writer(new_hash: Callable[[], Any]) -> Callable[[IO[bytes]], HashingWriter]:
    """The store's writer with another hash."""

    def make(file: IO[bytes]) -> HashingWriter:
        writer = HashingWriter(file)
        writer._hash = new_hash()
        return writer

    return make


def read_back_writer(new_hash: Callable[[], Any] = hashlib.sha256) -> Callable[[IO[bytes]], ReadBackWriter]:
    return lambda file: ReadBackWriter(file, new_hash)


class ReadBackWriter(HashingWriter):
    """The store's writer before: a second thread reads back what was written and hashes it.

    Wraps an unbuffered binary file opened for writing and reading (`"w+b", buffering=0`); gathers
    small writes as the store's writer does, and differs only in where the hashing happens.
    """

    def __init__(self, file: IO[bytes], new_hash: Callable[[], Any]) -> None:
        super().__init__(file)
        self._hash = new_hash()
        self._closed = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._hash_loop, name="checkpoint-hash", daemon=True)
        self._thread.start()

    def _write_through(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        self._write_all(view)
        with self._cond:
            self._written += len(view)
            self._cond.notify()

    def finish(self) -> str:
        """Write what is gathered, fsync while the hash catches up; return the hex digest."""
        if self._pending:
            self._write_through(self._pending)
            self._pending = bytearray()
        with self._cond:
            self._closed = True
            self._cond.notify()
        try:
            os.fsync(self._fd)
        finally:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._hash.hexdigest()

    def _hash_loop(self) -> None:
        offset = 0
        buffer = bytearray(_CHUNK)
        view = memoryview(buffer)
        try:
            while True:
                with self._cond:
                    while offset >= self._written and not self._closed:
                        self._cond.wait()
                    end, closed = self._written, self._closed
                while offset < end:
                    got = os.preadv(self._fd, [view[: min(_CHUNK, end - offset)]], offset)
                    if not got:
                        raise OSError("file shrank while being hashed")
                    self._hash.update(view[:got])
                    offset += got
                if closed:
                    return
        except BaseException as exc:  # reported by finish()
            self._error = exc
