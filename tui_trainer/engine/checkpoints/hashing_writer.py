"""A file writer that computes the SHA-256 of what it writes, on a second thread.

The hash thread reads back, from the page cache, the bytes already written and hashes them while
the caller keeps writing, and `finish()` fsyncs while the hash catches up, so checksumming a
checkpoint costs little more than writing and fsyncing it when a core is free.
The buffers handed to `write()` cannot be hashed later: torch reuses them after the call.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import IO

_CHUNK = 4 << 20
_SMALL_WRITE = 64 << 10


class HashingWriter:
    """Wraps an unbuffered binary file opened for writing and reading (`"w+b", buffering=0`)."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._fd = file.fileno()
        self._hash = hashlib.sha256()
        self._written = 0
        self._pending = bytearray()
        self._closed = False
        self._abandoned = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._hash_loop, name="checkpoint-hash", daemon=True)
        self._thread.start()

    @property
    def bytes_written(self) -> int:
        return self._written

    def write(self, data: bytes | memoryview) -> int:
        size = len(data)
        if size < _SMALL_WRITE:
            # torch.save makes hundreds of tiny writes (zip headers, pickle); gathering them
            # saves a syscall and a wake-up of the hash thread each.
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
        total = 0
        while total < len(view):  # an unbuffered write may be partial
            total += self._file.write(view[total:])
        with self._cond:
            self._written += total
            self._cond.notify()

    def flush(self) -> None:
        """Writes reach the file by `finish()`; torch calls this anyway."""

    def finish(self) -> str:
        """Write what is gathered, fsync the file, wait for the hash; return the hex digest of everything.

        When this returns the file is complete on disk. The fsync waits on the disk while the
        hash thread hashes the last bytes, so the two overlap.
        """
        try:
            if self._pending:
                self._write_through(self._pending)
                self._pending = bytearray()
        except BaseException:  # a full disk: the file will be deleted
            self.abandon()
            raise
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

    def abandon(self) -> None:
        """Stop hashing a file that will be deleted, without fsyncing it."""
        with self._cond:
            self._closed = self._abandoned = True
            self._cond.notify()
        self._thread.join()

    def _hash_loop(self) -> None:
        offset = 0
        # One buffer read into again and again: a fresh 4 MB bytes object per read costs page faults.
        buffer = bytearray(_CHUNK)
        view = memoryview(buffer)
        try:
            while True:
                with self._cond:
                    while offset >= self._written and not self._closed:
                        self._cond.wait()
                    end, closed = self._written, self._closed
                while offset < end and not self._abandoned:
                    got = os.preadv(self._fd, [view[: min(_CHUNK, end - offset)]], offset)
                    if not got:
                        raise OSError("checkpoint file shrank while being hashed")
                    self._hash.update(view[:got])
                    offset += got
                if closed:
                    return
        except BaseException as exc:  # reported by finish()
            self._error = exc


def sha256_of_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
