import os
import subprocess
import sys

import pytest

from tui_trainer.engine.atomic import (
    atomic_open,
    atomic_write_bytes,
    atomic_write_json,
    find_temp_files,
    remove_temp_files,
    temp_path_for,
)


class Crash(Exception):
    pass


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: not even a zombie is left
    return child.pid


@pytest.fixture
def live_pid():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait()


def test_write_replaces_the_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "state.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.bin"]


def test_a_crash_mid_write_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "state.bin"
    atomic_write_bytes(target, b"old contents")
    with pytest.raises(Crash), atomic_open(target) as f:
        f.write(b"half of the new")
        raise Crash
    assert target.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.bin"]


def test_a_crash_on_the_first_write_creates_nothing(tmp_path):
    target = tmp_path / "new.bin"
    with pytest.raises(Crash), atomic_open(target) as f:
        f.write(b"partial")
        raise Crash
    assert list(tmp_path.iterdir()) == []


def test_json_keeps_nan_readable(tmp_path):
    atomic_write_json(tmp_path / "x.json", {"loss": float("nan")})
    assert "NaN" in (tmp_path / "x.json").read_text()


def test_temp_files_are_hidden_in_the_same_directory_and_name_the_writer(tmp_path):
    temp = temp_path_for(tmp_path / "step_00000100.pt")
    assert temp.parent == tmp_path
    assert temp.name.startswith(".step_00000100.pt.tmp-")
    assert f"-{os.getpid()}-" in temp.name


def test_leftovers_of_a_dead_writer_are_found_and_removed(tmp_path, live_pid):
    dead = tmp_path / f".step_00000100.pt.tmp-{dead_pid()}-abcd1234"
    alive = tmp_path / f".step_00000200.pt.tmp-{live_pid}-abcd1234"
    ours = temp_path_for(tmp_path / "step_00000300.pt")
    unrelated = tmp_path / ".step_00000400.pt.tmp-notapid"
    for path in (dead, alive, ours, unrelated):
        path.write_bytes(b"partial")
    assert find_temp_files(tmp_path) == [dead]
    assert remove_temp_files(tmp_path) == [dead]
    assert not dead.exists()
    assert alive.exists() and ours.exists() and unrelated.exists()


def test_no_leftovers_in_a_missing_directory(tmp_path):
    assert find_temp_files(tmp_path / "missing") == []


def test_a_full_disk_at_the_final_flush_leaves_no_temporary_file(tmp_path, monkeypatch):
    """The write fits in the buffer; the disk fills when it is flushed (and again when closing retries)."""
    import errno
    import io

    import tui_trainer.engine.atomic as atomic

    class FullDisk(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    real_open = open

    def open_on_a_full_disk(path, mode="r", *args, **kwargs):
        real_open(path, mode, *args, **kwargs).close()  # the temporary file exists, as on a real disk
        return io.BufferedWriter(FullDisk(), buffer_size=1 << 16)

    monkeypatch.setattr(atomic, "open", open_on_a_full_disk, raising=False)
    target = tmp_path / "step_00000001.meta.json"
    with pytest.raises(OSError) as caught:
        atomic_write_bytes(target, b"x" * 1000)
    assert caught.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []  # no final file, and no temporary one


def test_a_link_planted_where_the_temporary_file_goes_is_not_written_through(tmp_path, monkeypatch):
    import tui_trainer.engine.atomic as atomic

    victim = tmp_path / "victim"
    victim.write_text("keep me")
    planted = tmp_path / ".run.json.tmp-planted"
    planted.symlink_to(victim)
    monkeypatch.setattr(atomic, "temp_path_for", lambda path: planted)
    with pytest.raises(FileExistsError):
        atomic_write_bytes(tmp_path / "run.json", b"{}")
    assert victim.read_text() == "keep me" and not (tmp_path / "run.json").exists()
