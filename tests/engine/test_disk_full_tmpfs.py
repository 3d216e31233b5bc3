"""A headless run on a real, small filesystem (a tmpfs) that its checkpoints do not all fit.

Two ways the disk fills: the first checkpoint does not fit at all, so the write itself fails
with ENOSPC halfway; or a few fit and then the space check before a save refuses the next one.
Either way: exit 4, one line saying what to do, nothing broken, no temporary file left.
Mounting needs root; elsewhere these tests are skipped, saying why.
"""

from __future__ import annotations

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
