import errno
import hashlib
import json
import os

import pytest
import xxhash

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
BATCH = 2 * CHUNK  # several gathered chunks


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


def flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


@pytest.mark.parametrize(
    "size",
    [0, 1, SMALL - 1, SMALL, SMALL + 1, CHUNK - 1, CHUNK, CHUNK + 1, BATCH - 1, BATCH, BATCH + 1, 2 * BATCH + 7],
)
@pytest.mark.parametrize("pieces", [[4096], [SMALL - 1, 1, SMALL, 17], [CHUNK + 3], [BATCH]], ids=str)
def test_the_recorded_checksum_is_the_xxh3_128_of_the_file(tmp_path, size, pieces):
    data = data_of(size)
    stored = CheckpointStore(tmp_path, "run-a").save(meta(size), in_pieces(data, pieces))
    assert stored.path.read_bytes() == data
    sidecar = read_sidecar(sidecar_path(stored.path))
    assert sidecar.checksum == f"xxh3_128:{xxhash.xxh3_128(data).hexdigest()}"
    assert sidecar.sha256 is None  # not computed: it was most of a save's cost
    assert sidecar.size_bytes == size


@pytest.mark.parametrize("offset", [0, SMALL, CHUNK, BATCH, BATCH + CHUNK // 2])
def test_a_flipped_byte_is_caught(tmp_path, offset):
    store = CheckpointStore(tmp_path, "run-a")
    stored = store.save(meta(1), in_pieces(data_of(BATCH + CHUNK), [SMALL + 5, 300]))
    assert store.integrity_problem(store.get(stored.path.name)) is None
    flip_byte(stored.path, offset)
    assert store.integrity_problem(store.get(stored.path.name)).startswith("checksum mismatch")


def test_a_failed_save_skips_the_fsync(tmp_path, monkeypatch):
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


def test_a_disk_full_at_the_last_write_leaves_nothing(tmp_path, monkeypatch):
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


def as_old_sidecar(path):
    """Rewrite a sidecar as versions before `checksum` wrote it: the file's SHA-256 under `sha256`."""
    sidecar = sidecar_path(path)
    recorded = json.loads(sidecar.read_text())
    del recorded["checksum"]
    recorded["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    sidecar.write_text(json.dumps(recorded))


def test_an_old_sha256_sidecar_still_verifies_and_catches_a_flipped_byte(tmp_path):
    store = CheckpointStore(tmp_path, "run-a")
    path = store.save(meta(1), in_pieces(data_of(CHUNK + 9), [SMALL + 5])).path
    as_old_sidecar(path)
    stored = store.get(path.name)
    assert (stored.meta.checksum, stored.meta.recorded_checksum) == (None, f"sha256:{stored.meta.sha256}")
    assert store.integrity_problem(stored) is None
    flip_byte(path, CHUNK)
    assert store.integrity_problem(store.get(path.name)).startswith("checksum mismatch")


def test_a_checksum_of_an_unknown_algorithm_is_reported_not_matched(tmp_path):
    store = CheckpointStore(tmp_path, "run-a")
    path = store.save(meta(1), in_pieces(data_of(100), [100])).path
    sidecar = sidecar_path(path)
    sidecar.write_text(json.dumps(json.loads(sidecar.read_text()) | {"checksum": "md7:00ff"}))
    assert "unknown checksum algorithm 'md7'" in store.integrity_problem(store.get(path.name))


def test_checksum_of_file_names_its_algorithm(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(data_of(CHUNK + 1))
    assert hashing_writer.checksum_of_file(path) == f"xxh3_128:{xxhash.xxh3_128(path.read_bytes()).hexdigest()}"
    assert hashing_writer.checksum_of_file(path, "sha256") == f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}"
    assert hashing_writer.sha256_of_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
