import errno
import hashlib
import os
import threading

import pytest

from tui_trainer.engine.checkpoints import hashing_writer
from tui_trainer.engine.checkpoints.meta import (
    CheckpointMeta,
    checkpoint_name,
    read_sidecar,
    sidecar_path,
)
from tui_trainer.engine.checkpoints.store import CheckpointStore
from tui_trainer.engine.errors import NotEnoughDiskSpace

SMALL, CHUNK = hashing_writer._SMALL_WRITE, hashing_writer._CHUNK
BATCH = 2 * CHUNK  # several reads of the hash thread


def meta(step):
    return CheckpointMeta(name=checkpoint_name(step), step=step, run_id="run-a")


def data_of(size):
    return (bytes(range(251)) * (size // 251 + 1))[:size]


def in_pieces(data, sizes):
    """A write callback that hands `data` over in pieces of the given sizes, cycling, as torch.save mixes them."""

    def write(f):
        start, i = 0, 0
        while start < len(data):
            piece = sizes[i % len(sizes)]
            f.write(memoryview(data)[start : start + piece])
            start, i = start + piece, i + 1

    return write


@pytest.mark.parametrize(
    "size",
    [0, 1, SMALL - 1, SMALL, SMALL + 1, CHUNK - 1, CHUNK, CHUNK + 1, BATCH - 1, BATCH, BATCH + 1, 2 * BATCH + 7],
)
@pytest.mark.parametrize("pieces", [[4096], [SMALL - 1, 1, SMALL, 17], [CHUNK + 3], [BATCH]], ids=str)
def test_the_recorded_checksum_is_the_sha256_of_the_file(tmp_path, size, pieces):
    data = data_of(size)
    stored = CheckpointStore(tmp_path, "run-a").save(meta(size), in_pieces(data, pieces))
    assert stored.path.read_bytes() == data
    sidecar = read_sidecar(sidecar_path(stored.path))
    assert sidecar.sha256 == hashlib.sha256(data).hexdigest()
    assert sidecar.size_bytes == size


@pytest.mark.parametrize("offset", [0, SMALL, CHUNK, BATCH, BATCH + CHUNK // 2])
def test_a_flipped_byte_is_caught(tmp_path, offset):
    store = CheckpointStore(tmp_path, "run-a")
    stored = store.save(meta(1), in_pieces(data_of(BATCH + CHUNK), [SMALL + 5, 300]))
    assert store.integrity_problem(store.get(stored.path.name)) is None
    with open(stored.path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))
    assert store.integrity_problem(store.get(stored.path.name)).startswith("checksum mismatch")


def test_a_failed_save_stops_hashing_and_skips_the_fsync(tmp_path, monkeypatch):
    fsynced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: fsynced.append(fd) or real_fsync(fd))

    def dies(f):
        f.write(data_of(BATCH + 1))
        raise RuntimeError("serialiser died")

    with pytest.raises(RuntimeError, match="serialiser died"):
        CheckpointStore(tmp_path, "run-a").save(meta(1), dies)
    assert list(tmp_path.iterdir()) == []
    assert fsynced == []  # a file about to be deleted is not waited onto the disk
    assert not [t for t in threading.enumerate() if t.name == "checkpoint-hash"]


def test_a_disk_full_at_the_last_write_stops_hashing(tmp_path, monkeypatch):
    real_write_through = hashing_writer.HashingWriter._write_through

    def full_at_the_tail(self, data):
        if len(data) < SMALL:  # the gathered tail, written by finish()
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_through(self, data)

    def writes(f):
        f.write(data_of(SMALL))
        f.write(b"tail")

    monkeypatch.setattr(hashing_writer.HashingWriter, "_write_through", full_at_the_tail)
    with pytest.raises(NotEnoughDiskSpace, match="disk full"):
        CheckpointStore(tmp_path, "run-a").save(meta(1), writes)
    assert list(tmp_path.iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name == "checkpoint-hash"]
