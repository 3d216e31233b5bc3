import errno
import json
import shutil
from collections import namedtuple

import pytest

from tui_trainer.engine.checkpoints.hashing_writer import checksum_of_file
from tui_trainer.engine.checkpoints.meta import MANUAL, CheckpointMeta, checkpoint_name, read_sidecar, sidecar_path
from tui_trainer.engine.checkpoints.store import CheckpointStore
from tui_trainer.engine.errors import CheckpointNotFound, NotEnoughDiskSpace, RunDirError, UnsafePath

RUN = "run-a"
DiskUsage = namedtuple("DiskUsage", "total used free")


class Crash(Exception):
    pass


def meta(step, val_loss=None, **kwargs):
    return CheckpointMeta(
        name=checkpoint_name(step),
        step=step,
        metrics={} if val_loss is None else {"val_loss": val_loss},
        metrics_step=step,
        run_id=RUN,
        **kwargs,
    )


def payload(step: int) -> bytes:
    return bytes(range(256)) * (40 + step)  # spans several writes, differs per step


def writer_of(data: bytes, chunk: int = 4096):
    def write(f):
        for start in range(0, len(data), chunk):
            f.write(data[start : start + chunk])

    return write


def crashing_writer(data: bytes, error: BaseException):
    """Writes half of `data`, then fails as a killed serialiser or a full disk would."""

    def write(f):
        f.write(data[: len(data) // 2])
        raise error

    return write


@pytest.fixture
def store(tmp_path):
    store = CheckpointStore(tmp_path, RUN)
    for step in (100, 200):
        store.save(meta(step, val_loss=1.0 / step), writer_of(payload(step)))
    return store


def snapshot(directory):
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def test_a_save_writes_the_file_and_a_sidecar_with_its_checksum(store, tmp_path):
    path = tmp_path / checkpoint_name(100)
    assert path.read_bytes() == payload(100)
    sidecar = read_sidecar(sidecar_path(path))
    assert sidecar.checksum == checksum_of_file(path)
    assert sidecar.size_bytes == path.stat().st_size
    assert sidecar.run_id == RUN and sidecar.step == 100 and sidecar.created
    assert json.loads(sidecar_path(path).read_text())["name"] == path.name
    assert store.integrity_problem(store.get(path.name)) is None


@pytest.mark.parametrize(
    "error",
    [Crash("serialiser died"), OSError(errno.EIO, "I/O error"), KeyboardInterrupt()],
    ids=["exception", "io-error", "ctrl-c"],
)
def test_a_crash_mid_write_leaves_no_trace_and_earlier_checkpoints_intact(store, tmp_path, error):
    before = snapshot(tmp_path)
    with pytest.raises(type(error)):
        store.save(meta(300), crashing_writer(payload(300), error))
    assert snapshot(tmp_path) == before  # no temp file, nothing under the final name
    assert [m.step for m in store.scan()] == [100, 200]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_mid_write_raises_not_enough_disk_space(store, tmp_path, code):
    before = snapshot(tmp_path)
    with pytest.raises(NotEnoughDiskSpace) as caught:
        store.save(meta(300), crashing_writer(payload(300), OSError(code, "No space left on device")))
    message = str(caught.value)
    assert "disk full" in message and checkpoint_name(300) in message
    assert "nothing was overwritten" in message and "prune" in message
    assert snapshot(tmp_path) == before


def test_check_space_refuses_when_the_disk_is_nearly_full(store, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: DiskUsage(10 << 30, (10 << 30) - 500_000, 500_000))
    with pytest.raises(NotEnoughDiskSpace, match=r"needs about .* but only .* is free.*prune"):
        store.check_space(400_000)
    before = snapshot(tmp_path)
    with pytest.raises(NotEnoughDiskSpace):
        store.save(meta(300), writer_of(payload(300)), expected_bytes=400_000)
    assert snapshot(tmp_path) == before


def test_check_space_passes_with_room_to_spare(store, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: DiskUsage(10 << 30, 0, 10 << 30))
    store.check_space(400_000)
    store.save(meta(300), writer_of(payload(300)), expected_bytes=400_000)
    assert [m.step for m in store.scan()] == [100, 200, 300]


def test_a_new_save_over_an_existing_name_is_atomic(store, tmp_path):
    path = tmp_path / checkpoint_name(200)
    with pytest.raises(Crash):
        store.save(meta(200), crashing_writer(b"new" * 10_000, Crash()))
    assert path.read_bytes() == payload(200)
    store.save(meta(200), writer_of(b"new" * 10_000))
    assert path.read_bytes() == b"new" * 10_000
    assert read_sidecar(sidecar_path(path)).checksum == checksum_of_file(path)


def test_leftover_temp_files_are_hidden_from_listing_and_removed(store, tmp_path):
    leftover = tmp_path / ".step_00000300.pt.tmp-999999999-abcd"
    leftover.write_bytes(b"partial")
    assert [m.step for m in store.scan()] == [100, 200]
    assert store.remove_temp_files() == [leftover]
    assert not leftover.exists()


@pytest.mark.parametrize("name", ["../x.pt", "/abs.pt", ".hidden", "sub/x.pt", "..", ""])
def test_unsafe_names_are_refused(store, tmp_path, name):
    with pytest.raises(UnsafePath, match="plain file name"):
        store.save(CheckpointMeta(name=name, step=300, run_id=RUN), writer_of(b"x"))
    with pytest.raises(UnsafePath):
        store.delete(name)
    assert not (tmp_path.parent / "x.pt").exists()


def test_marks_best_latest_and_pinned(store):
    store.save(meta(300, val_loss=1.0, kind=MANUAL), writer_of(b"m"))
    store.set_pinned(checkpoint_name(100), True)
    marks = {c.meta.step: c.marks for c in store.list()}
    assert marks == {100: ("pinned",), 200: ("best",), 300: ("latest",)}
    assert store.best().meta.step == 200 and store.latest().meta.step == 300


def test_delete_removes_the_file_and_its_sidecar(store, tmp_path):
    freed = store.delete(checkpoint_name(100))
    assert freed == len(payload(100))
    assert not (tmp_path / checkpoint_name(100)).exists()
    assert not sidecar_path(tmp_path / checkpoint_name(100)).exists()
    with pytest.raises(CheckpointNotFound):
        store.delete(checkpoint_name(100))


def test_a_checkpoint_another_pruner_deletes_mid_call_is_reported_as_not_found(store, tmp_path, monkeypatch):
    """The trainer's retention and the dashboard's prune may delete the same file at once."""
    import tui_trainer.engine.checkpoints.store as checkpoint_store

    real_size = checkpoint_store.file_size

    def size_then_lose_the_race(path):
        size = real_size(path)
        path.unlink()  # the other pruner, between this call's look and its unlink
        return size

    monkeypatch.setattr(checkpoint_store, "file_size", size_then_lose_the_race)
    with pytest.raises(CheckpointNotFound):
        store.delete(checkpoint_name(100))
    assert not sidecar_path(tmp_path / checkpoint_name(100)).exists()
    assert (tmp_path / checkpoint_name(200)).exists()


def test_integrity_problems_are_named(store, tmp_path):
    path = tmp_path / checkpoint_name(200)
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    assert "checksum mismatch" in store.integrity_problem(store.get(path.name))
    path.write_bytes(bytes(data[:50]))
    assert "truncated" in store.integrity_problem(store.get(path.name))
    path.write_bytes(b"")
    assert "empty" in store.integrity_problem(store.get(path.name))


def test_prune_needs_a_run(tmp_path):
    with pytest.raises(RunDirError, match="not a tui-trainer run dir"):
        CheckpointStore(tmp_path).plan_prune(1)


def test_scanning_a_missing_directory_says_so(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        CheckpointStore(tmp_path / "missing", RUN).scan()
