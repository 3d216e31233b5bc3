"""`--nproc 2` when things go wrong: a rank killed outright, a full disk on rank 0."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from test_ddp import TINY, WAIT_S, ddp_env, finish, steps_of, tui_trainer
from tiny_runs import checkpoint_kinds

from tui_trainer.engine.checkpoints.meta import PERIODIC
from tui_trainer.engine.errors import TrainerError


def rank_pid(run_dir: Path, rank: int) -> int | None:
    """The pid of a rank (torchrun's child, `RANK` in its environment) training `run_dir`."""
    for proc in Path("/proc").iterdir():
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if str(run_dir).encode() in cmdline and f"RANK={rank}".encode() in environ and \
                any(v.startswith(b"TORCHELASTIC_RUN_ID=") for v in environ):
            return int(proc.name)
    return None


def test_a_rank_killed_stops_the_run_at_once_and_it_resumes_on_two(tmp_path):
    run_dir = tmp_path / "run"
    launcher = tui_trainer("train", "--nproc", "2", "--run-dir", str(run_dir), "--max-iters", "100000",
                           "--ckpt-every", "5", *TINY)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and launcher.poll() is None and not checkpoint_kinds_or_none(run_dir):
        time.sleep(0.05)
    victim = rank_pid(run_dir, 1)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    code, _, err = finish(launcher)
    assert time.monotonic() - killed < 15  # not the 60 s collective timeout
    assert code == 1
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert "rank 1 died (SIGKILL)" in last and f"tui-trainer resume --nproc 2 {run_dir}" in last, err
    kinds = checkpoint_kinds(run_dir)
    assert set(kinds.values()) == {PERIODIC}, kinds  # nothing new under a final (or interrupted) name
    saved = max(kinds)

    code, _, err = finish(tui_trainer("resume", "--nproc", "2", str(run_dir), "--max-iters", str(saved + 5), *TINY))
    assert code == 0, err
    assert steps_of(run_dir) == list(range(1, saved + 6))


def checkpoint_kinds_or_none(run_dir: Path) -> dict[int, str] | None:
    try:
        return checkpoint_kinds(run_dir)
    except (OSError, ValueError, TrainerError):  # not made yet, or run.json mid-write
        return None


def test_a_full_disk_on_rank_0_stops_every_rank_with_exit_4_and_breaks_nothing(tmp_path):
    run_dir = tmp_path / "run"
    env = {**ddp_env(), "TUI_TRAINER_FULL_DISK_RANK": "0", "TUI_TRAINER_FULL_DISK_AFTER": "1"}
    code, out, err = finish(tui_trainer("train", "--nproc", "2", "--run-dir", str(run_dir), "--max-iters", "100000",
                                        "--ckpt-every", "5", *TINY, env=env))
    assert code == 4, err  # the second save, at step 10, did not fit: both ranks stopped there
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert "the disk is full" in last and f"tui-trainer resume --nproc 2 {run_dir}" in last, err
    assert "disk" in out
    assert checkpoint_kinds(run_dir) == {5: PERIODIC}
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".") and p.name != ".lock") == []  # no temp file
    assert steps_of(run_dir)[-1] == 10

    code, _, err = finish(tui_trainer("resume", "--nproc", "2", str(run_dir), "--max-iters", "12", *TINY))
    assert code == 0, err
    assert steps_of(run_dir) == list(range(1, 13))
