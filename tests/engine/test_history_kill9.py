"""kill -9 at each instant of a resume's history work: the next resume always leaves one
continuous history, with an index that matches it line for line."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from test_history_index import write_run

from tui_trainer.engine.rundir.history import read_history
from tui_trainer.engine.rundir.history_index import index_path, load_index, read_curves
from tui_trainer.engine.rundir.history_scan import scan_records
from tui_trainer.engine.rundir.history_writer import HistoryWriter

RESUME_STEP = 120


def resume_killed_at(run_dir, kill_at: int) -> bool:
    """Resume in a child that SIGKILLs itself at its `kill_at`-th file operation; True if it was."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        calls = 0

        def deadly(real):
            def wrapper(*args, **kwargs):
                nonlocal calls
                calls += 1
                if calls == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                return real(*args, **kwargs)
            return wrapper

        for name in ("truncate", "replace", "fsync"):
            setattr(os, name, deadly(getattr(os, name)))
        try:
            writer = HistoryWriter(run_dir, resume_step=RESUME_STEP)
            writer.log_step(RESUME_STEP + 1, 9, 0.5, 1e-4, 9999.0)
            writer.close()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status)


def assert_one_continuous_history(run_dir):
    path = run_dir / "history.jsonl"
    steps = [r["step"] for r in read_history(path)]
    assert steps == sorted(steps) and steps[-1] == RESUME_STEP + 1
    records = load_index(path)
    with open(path, "rb") as f:
        scanned = scan_records(f)
    for name in ("step", "end", "epoch", "kind"):
        assert records[name].tolist() == scanned[name].tolist()
    assert np.array_equal(records["value"], scanned["value"], equal_nan=True)
    assert read_curves(run_dir).steps[-1] == RESUME_STEP + 1


@pytest.mark.parametrize("case", ["old run without index", "index behind the history", "index intact"])
def test_kill_9_at_any_instant_of_a_resume_is_repaired_by_the_next(tmp_path, case):
    kill_at = 1
    while True:
        run_dir = tmp_path / f"run{kill_at}"
        run_dir.mkdir()
        path = write_run(run_dir, steps=200)
        if case == "old run without index":
            index_path(path).unlink()
        elif case == "index behind the history":
            os.truncate(index_path(path), index_path(path).stat().st_size - 32 * 30 - 5)
        killed = resume_killed_at(run_dir, kill_at)
        resumed = HistoryWriter(run_dir, resume_step=RESUME_STEP)
        resumed.log_step(RESUME_STEP + 1, 9, 0.5, 1e-4, 9999.0)
        resumed.close()
        assert_one_continuous_history(run_dir)
        if not killed:
            break
        kill_at += 1
    assert kill_at > 3  # every file operation of the resume was a kill point
