"""kill -9 at random instants, many of them mid-checkpoint-write: no checkpoint is ever broken.

One run dir is trained, killed with SIGKILL, resumed, killed again, and so on; after every kill
each checkpoint under a final name must verify, and the next resume must start from the newest
of them. The processes are real `tui-trainer` commands, forked from one process that imported
torch once (`cli_forkserver.py`), so two dozen kills take seconds, not minutes.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

from cli_forkserver import Forkserver
from tiny_runs import PYTHON, child_env, wait_until

from tests.factories import add_checkpoint
from tui_trainer.engine.checkpoints.meta import CHECKPOINT_SUFFIX, checkpoint_name
from tui_trainer.engine.rundir.layout import read_run
from tui_trainer.engine.tools.verify import VerifyResult, verify_path

SEED = 20261130
KILLS = 24
TINY = ["--job-opt", "size=tiny", "--job-opt", "device=cpu"]
TRAIN = ["--headless", "--max-iters", "100000", "--ckpt-every", "2", "--keep-last", "2"]
STEP_RE = re.compile(r"^step_(\d{8})\.pt$")
RESUMED_RE = re.compile(r"resuming from (step_\d{8}\.pt)")


def final_checkpoints(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.iterdir() if STEP_RE.match(p.name))


def newest_step(run_dir: Path) -> int:
    names = final_checkpoints(run_dir) if run_dir.exists() else []
    return int(STEP_RE.match(names[-1].name)[1]) if names else -1


def checkpoint_temp_files(run_dir: Path, pid: int) -> list[str]:
    """Temporary files of a checkpoint or sidecar being written by `pid` (see `atomic.temp_path_for`)."""
    with os.scandir(run_dir) as entries:
        return [e.name for e in entries if e.name.startswith(".step_") and f".tmp-{pid}-" in e.name]


def broken_checkpoints(run_dir: Path) -> list[VerifyResult]:
    """Problems of files under final names, set-aside ones included.

    Two states a kill may leave are not broken: a leftover temp file, and a checkpoint without
    its sidecar (killed between the two renames, or between the two unlinks of a prune). Such a
    checkpoint was fsynced before its rename, verify has just loaded it and checked its zip
    CRCs, and resume rebuilds its sidecar.
    """
    return [
        r for r in verify_path(run_dir)
        if not r.ok and ".tmp-" not in r.path.name and not r.problem.startswith("no sidecar")
    ]


def kill_at_a_random_instant(server: Forkserver, run_dir: Path, pid: int, rng: random.Random, mid_write: bool) -> None:
    """Once the child has saved a checkpoint of its own, SIGKILL it mid-write or after a random delay."""
    start = newest_step(run_dir)
    wait_until(lambda: newest_step(run_dir) > start, interval=0.002)
    if mid_write:
        wait_until(lambda: bool(checkpoint_temp_files(run_dir, pid)), interval=0)
    else:
        time.sleep(rng.uniform(0.0, 0.15))
    os.kill(pid, signal.SIGKILL)
    assert server.wait() == -signal.SIGKILL, "the child ended before it was killed"


def test_kill_9_at_random_instants_never_leaves_a_broken_checkpoint(forkserver, tmp_path):
    rng = random.Random(SEED)
    run_dir = tmp_path / "run"
    killed_mid_write = 0
    for attempt in range(KILLS):
        newest_before = final_checkpoints(run_dir)[-1].name if attempt else None
        if attempt == 0:
            argv = ["train", "--run-dir", str(run_dir), *TRAIN, *TINY]
        else:
            argv = ["resume", str(run_dir), "--headless"]
        log = tmp_path / f"attempt-{attempt:02d}.log"
        pid = forkserver.start(argv, log)
        kill_at_a_random_instant(forkserver, run_dir, pid, rng, mid_write=rng.random() < 0.6)

        killed_mid_write += bool(checkpoint_temp_files(run_dir, pid))
        assert broken_checkpoints(run_dir) == [], log.read_text()
        if newest_before is not None:
            resumed = RESUMED_RE.search(log.read_text())
            assert resumed and resumed[1] == newest_before, log.read_text()

    assert killed_mid_write >= KILLS // 4, f"only {killed_mid_write} of {KILLS} kills landed mid-write"
    target = newest_step(run_dir) + 6
    log = tmp_path / "final.log"
    assert forkserver.run(["resume", str(run_dir), "--headless", "--max-iters", str(target)], log) == 0, log.read_text()
    assert f"finished at step {target} (target)" in log.read_text()
    assert read_run(run_dir).state == "finished"
    assert not [p for p in run_dir.iterdir() if ".tmp-" in p.name]

    verified = subprocess.run(
        [PYTHON, "-m", "tui_trainer", "ckpt", "verify", str(run_dir)],
        capture_output=True, text=True, env=child_env(), timeout=60,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"{run_dir / checkpoint_name(target)}  xxh3_128 matches" in verified.stdout


def test_the_check_catches_a_truncated_checkpoint_under_its_final_name(tmp_path):
    for step in (2, 4):
        add_checkpoint(tmp_path, step, run_id="r")
    (tmp_path / f".{checkpoint_name(6)}.tmp-999999999-abcd").write_bytes(b"partial")  # a killed writer's
    assert broken_checkpoints(tmp_path) == []

    path = tmp_path / checkpoint_name(4)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert [r.path for r in broken_checkpoints(tmp_path)] == [path]
    assert path.name.endswith(CHECKPOINT_SUFFIX)
