"""A headless run on a real, small filesystem (a tmpfs) that its checkpoints do not all fit.

Two ways the disk fills: the first checkpoint does not fit at all, so the write itself fails
with ENOSPC halfway; or a few fit and then the space check before a save refuses the next one.
Either way: exit 4, one line saying what to do, nothing broken, no temporary file left.
Mounting needs root; elsewhere these tests are skipped, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tui_trainer.engine.checkpoints.meta import checkpoint_name, read_sidecar, sidecar_path
from tui_trainer.engine.rundir.layout import read_run
from tui_trainer.engine.tools.verify import verify_path

EXIT_DISK_FULL = 4
# A tiny demo checkpoint is about 105 KB: none fits in 64 KB; a few fit in 1.4 MB before free
# space drops under the size of the next one plus the 1 MB margin the space check keeps.
FILESYSTEMS = {"write-fails": "64k", "space-check-refuses": "1400k"}


@dataclass
class Outcome:
    run_dir: Path
    exit_code: int
    output: str  # stdout and stderr


def mount_tmpfs(mount_point: Path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    if shutil.which("mount") is None:
        pytest.skip("no `mount` command on this machine")
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")


def unmount(mount_point: Path) -> None:
    if os.path.ismount(mount_point):
        subprocess.run(["umount", str(mount_point)], check=False)
        if os.path.ismount(mount_point):
            subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture(scope="module")
def disk_full(tmp_path_factory, forkserver_session) -> Iterator[dict[str, Outcome]]:
    """One headless run per small filesystem; the output goes to a log beside, not onto, it."""
    root = tmp_path_factory.mktemp("disk-full")
    mounted: list[Path] = []
    try:
        outcomes = {}
        for name, size in FILESYSTEMS.items():
            mount_tmpfs(root / name, size)
            mounted.append(root / name)
            run_dir, log = root / name / "run", root / f"{name}.log"
            argv = [
                "train", "--headless", "--run-dir", str(run_dir), "--max-iters", "200", "--ckpt-every", "2",
                "--keep-last", "0", "--job-opt", "size=tiny", "--job-opt", "device=cpu",
            ]
            exit_code = forkserver_session.run(argv, log)
            outcomes[name] = Outcome(run_dir, exit_code, log.read_text())
        yield outcomes
    finally:
        forkserver_session.kill_child()
        for mount_point in mounted:
            unmount(mount_point)


def saved_steps(run_dir: Path) -> list[int]:
    return sorted(int(p.name[5:13]) for p in run_dir.glob("step_*.pt"))


def assert_stopped_cleanly(outcome: Outcome) -> str:
    """Exit 4, the reason as the last line, nothing broken, no temp file; return that line."""
    assert outcome.exit_code == EXIT_DISK_FULL, outcome.output
    assert "Traceback" not in outcome.output
    message = outcome.output.strip().splitlines()[-1]
    assert "tui-trainer ckpt prune" in message and "resume" in message
    assert not [p.name for p in outcome.run_dir.iterdir() if ".tmp-" in p.name]
    assert [r for r in verify_path(outcome.run_dir) if not r.ok] == []
    assert read_run(outcome.run_dir).state == "disk_full"
    return message


def test_a_checkpoint_that_does_not_fit_fails_mid_write_and_leaves_nothing(disk_full):
    outcome = disk_full["write-fails"]
    message = assert_stopped_cleanly(outcome)
    assert message.startswith(f"disk full while writing {checkpoint_name(2)}; nothing was overwritten")
    assert saved_steps(outcome.run_dir) == []
    assert f"checkpoint at step 2 FAILED: {message}" in outcome.output


def test_when_the_disk_fills_the_earlier_checkpoints_stay_intact(disk_full):
    outcome = disk_full["space-check-refuses"]
    message = assert_stopped_cleanly(outcome)
    assert "the next checkpoint needs about" in message and "is free under" in message
    steps = saved_steps(outcome.run_dir)
    assert len(steps) >= 2 and steps == list(range(2, 2 * len(steps) + 1, 2))
    for step in steps:
        path = outcome.run_dir / checkpoint_name(step)
        assert read_sidecar(sidecar_path(path)).size_bytes == path.stat().st_size
    assert f"checkpoint at step {steps[-1] + 2} FAILED: {message}" in outcome.output


def fill(mount_point: Path, leave_bytes: int) -> Path:
    """A file taking all but about `leave_bytes` of the filesystem's free space."""
    filler = mount_point / "filler"
    free = shutil.disk_usage(mount_point).free
    with open(filler, "wb") as f:
        f.truncate(0)
        f.write(b"\0" * max(0, free - leave_bytes))
    return filler


def history_steps(run_dir: Path) -> list[int]:
    lines = (run_dir / "history.jsonl").read_bytes().splitlines()
    return [r["step"] for r in map(json.loads, lines) if "loss" in r]  # a torn line fails here


def test_a_disk_that_fills_between_saves_stops_the_run_whole_and_a_resume_carries_on(tmp_path, forkserver):
    """The history (not a save) meets the full disk: exit 4, one line, nothing torn, run.json says
    so; a resume needs no room the size of the history, and the curve stays continuous."""
    mount_point = tmp_path / "between-saves"
    mount_tmpfs(mount_point, "2m")
    try:
        run_dir = mount_point / "run"
        common = ["--job-opt", "size=tiny", "--job-opt", "device=cpu"]
        first = forkserver.run(["train", "--headless", "--run-dir", str(run_dir), "--max-iters", "800", "--ckpt-every", "0",
                                "--keep-last", "0", *common], tmp_path / "first.log")
        assert first == 0, (tmp_path / "first.log").read_text()
        free = 32 * 1024
        assert (run_dir / "history.jsonl").stat().st_size > 2 * free  # a resume must not copy it
        filler = fill(mount_point, free)

        code = forkserver.run(["resume", "--headless", "--max-iters", "10000000", "--ckpt-every", "0",
                               "--log-every", "1", str(run_dir)], tmp_path / "full.log")
        output = (tmp_path / "full.log").read_text()
        assert code == EXIT_DISK_FULL, output
        assert "Traceback" not in output
        line = next(line for line in output.splitlines() if "could not be written" in line)
        assert line.startswith("the disk is full: ") and str(run_dir / "history.") in line
        assert "last checkpoint is step_00000800.pt" in line and f"tui-trainer resume {run_dir}" in line
        assert not [p.name for p in run_dir.iterdir() if ".tmp-" in p.name]
        assert [r for r in verify_path(run_dir) if not r.ok] == []
        assert read_run(run_dir).state == "disk_full"
        steps = history_steps(run_dir)
        assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 800

        filler.unlink()
        again = forkserver.run(["resume", "--headless", "--max-iters", "860", str(run_dir)], tmp_path / "again.log")
        assert again == 0, (tmp_path / "again.log").read_text()
        assert history_steps(run_dir) == list(range(1, 861))
        assert read_run(run_dir).state == "finished"
    finally:
        unmount(mount_point)


def test_a_run_that_cannot_start_on_a_full_disk_leaves_no_half_made_run_dir(tmp_path, forkserver):
    mount_point = tmp_path / "full-from-the-start"
    mount_tmpfs(mount_point, "256k")
    try:
        fill(mount_point, 4096)
        run_dir = mount_point / "run"
        log = tmp_path / "start.log"
        code = forkserver.run(["train", "--headless", "--run-dir", str(run_dir), "--max-iters", "10",
                               "--job-opt", "size=tiny", "--job-opt", "device=cpu"], log)
        lines = log.read_text().strip().splitlines()
        assert code == EXIT_DISK_FULL, lines
        assert len(lines) == 1 and lines[0].startswith("tui-trainer: error: the disk is full")
        assert lines[0].endswith("make room, then run it again")
        assert not run_dir.exists()  # so the same command works once there is room
    finally:
        unmount(mount_point)
