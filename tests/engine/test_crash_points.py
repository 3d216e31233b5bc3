"""SIGKILL before and after every rename, replace and unlink of a checkpoint operation.

Save (with retention), prune, pin, delete and roll back each run as a real `tui-trainer` process
(forked, see `cli_forkserver.py`) that is killed at its Nth file operation on a checkpoint, a
sidecar or `superseded/`, for every N. After each kill `ckpt verify` must tell the truth (exit 1
exactly when the kill left something to mend, and nothing under a final name broken); then one
`resume` must mend it all, and `ckpt verify` exit 0.
"""

from __future__ import annotations

import re
import shutil
import signal
from pathlib import Path

import pytest
from crash_points import operations_traced

from tui_trainer.engine.checkpoints.meta import CHECKPOINT_SUFFIX, SIDECAR_SUFFIX
from tui_trainer.engine.rundir.superseded import INTENT_FILE
from tui_trainer.engine.tools.verify import verify_path

TRAIN = ["--headless", "--max-iters", "6", "--ckpt-every", "2", "--keep-last", "0",
         "--job-opt", "size=tiny", "--job-opt", "device=cpu"]
OPERATIONS = {
    "save": lambda run: ["resume", str(run), "--headless", "--max-iters", "8", "--keep-last", "1"],
    "prune": lambda run: ["ckpt", "prune", str(run), "--keep", "1", "--yes"],
    "pin": lambda run: ["ckpt", "pin", str(run / "step_00000004.pt")],
    "delete": lambda run: ["ckpt", "delete", str(run / "step_00000002.pt"), "--yes"],
    "roll back": lambda run: ["resume", str(run / "step_00000002.pt"), "--headless", "--max-iters", "3"],
}
CHECKPOINT_OPERATION = re.compile(r"step_\d{8}|superseded")
RESUMED_RE = re.compile(r"resuming from (step_\d{8}\.pt)")


@pytest.fixture(scope="module")
def template(tmp_path_factory, forkserver_session) -> Path:
    """A finished run with checkpoints at steps 2, 4 and 6, copied for every kill."""
    run = tmp_path_factory.mktemp("template") / "run"
    log = run.parent / "train.log"
    assert forkserver_session.run(["train", "--run-dir", str(run), *TRAIN], log) == 0, log.read_text()
    return run


def leftovers(run: Path) -> list[str]:
    """What a kill may leave for resume to mend: temporary files, sidecars or checkpoints alone, a set-aside record."""
    found = []
    for folder in [run, *(p for p in (run / "superseded").glob("*") if p.is_dir())]:
        names = {p.name for p in folder.iterdir()}
        for name in sorted(names):
            stem = name.removesuffix(SIDECAR_SUFFIX).removesuffix(CHECKPOINT_SUFFIX)
            if ".tmp-" in name or name == INTENT_FILE:
                found.append(f"{folder.name}/{name}")
            elif name.endswith(SIDECAR_SUFFIX) and stem + CHECKPOINT_SUFFIX not in names:
                found.append(f"{folder.name}/{name} without its checkpoint")
            elif name.endswith(CHECKPOINT_SUFFIX) and stem + SIDECAR_SUFFIX not in names:
                found.append(f"{folder.name}/{name} without its sidecar")
    return found


def is_crash_leftover(problem: str, path: Path) -> bool:
    return (".tmp-" in path.name or path.name == INTENT_FILE or problem.startswith("no sidecar")
            or problem.startswith("sidecar without its checkpoint"))


def kill_points(forkserver, template: Path, tmp_path: Path, operation: str) -> list[tuple[int, str]]:
    """Every (N, before/after) at which the operation touches a checkpoint, counted on an unkilled run."""
    run = tmp_path / "counted"
    shutil.copytree(template, run, symlinks=True)
    trace = tmp_path / "counted.trace"
    log = tmp_path / "counted.log"
    assert forkserver.run(OPERATIONS[operation](run), log, (trace, 0, "before")) == 0, log.read_text()
    numbers = [int(line.split()[0]) for line in operations_traced(trace) if CHECKPOINT_OPERATION.search(line)]
    assert numbers, operations_traced(trace)
    return [(n, when) for n in numbers for when in ("before", "after")]


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_a_kill_at_any_file_operation_is_mended_by_one_resume(forkserver, template, tmp_path, operation):
    for n, when in kill_points(forkserver, template, tmp_path, operation):
        run = tmp_path / f"{n}-{when}"
        shutil.copytree(template, run, symlinks=True)
        trace, log = tmp_path / f"{n}-{when}.trace", tmp_path / f"{n}-{when}.log"

        code = forkserver.run(OPERATIONS[operation](run), log, (trace, n, when))
        where = f"{operation}, killed {when} {operations_traced(trace)[-1]}"
        assert code == -signal.SIGKILL, f"{where}: {log.read_text()}"
        left = leftovers(run)
        problems = [r for r in verify_path(run) if not r.ok]
        assert bool(problems) == bool(left), f"{where}: verify says {problems}, left {left}"
        broken = [r for r in problems if not is_crash_leftover(r.problem, r.path)]
        assert broken == [], where

        resumed_log = tmp_path / f"{n}-{when}-resume.log"
        code = forkserver.run(["resume", str(run), "--headless", "--max-iters", "10"], resumed_log)
        assert code == 0, f"{where}: {resumed_log.read_text()}"
        assert leftovers(run) == [], where
        verified = tmp_path / f"{n}-{when}-verify.log"
        assert forkserver.run(["ckpt", "verify", str(run)], verified) == 0, f"{where}: {verified.read_text()}"
        if operation == "roll back":  # all of it or none of it: never from step 4, which it sets aside
            resumed = RESUMED_RE.search(resumed_log.read_text())
            assert resumed and resumed[1] != "step_00000004.pt", f"{where}: {resumed_log.read_text()}"
