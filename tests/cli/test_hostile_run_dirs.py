"""A table of hostile run dirs against every command that reads one.

Each run dir is a real demo run, then changed the way someone else's could be: links out of it,
FIFOs and folders where its files belong, `run.json` of the wrong shape, a forged job. Every
command answers in at most one line on stderr, never a traceback, never hangs, never writes or
runs anything outside the run dir; a command that would write through the hostile file refuses.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from ckpt_cli import run

Plant = Callable[[Path, Path], None]  # (run_dir, outside): make the run dir hostile


def _link(name: str, target: str) -> Plant:
    def plant(run_dir: Path, outside: Path) -> None:
        (run_dir / name).unlink(missing_ok=True)
        (run_dir / name).symlink_to(outside / target)

    return plant


def _fifo(name: str) -> Plant:
    def plant(run_dir: Path, outside: Path) -> None:
        (run_dir / name).unlink(missing_ok=True)
        os.mkfifo(run_dir / name)

    return plant


def _folder(name: str) -> Plant:
    def plant(run_dir: Path, outside: Path) -> None:
        (run_dir / name).unlink(missing_ok=True)
        (run_dir / name).mkdir()

    return plant


def _edit_run_json(**fields: object) -> Plant:
    def plant(run_dir: Path, outside: Path) -> None:
        data = json.loads((run_dir / "run.json").read_text())
        data.update({k: str(v).format(outside=outside) if isinstance(v, str) else v for k, v in fields.items()})
        (run_dir / "run.json").write_text(json.dumps(data))

    return plant


def _sidecar_naming_outside(run_dir: Path, outside: Path) -> None:
    sidecar = run_dir / "step_00000005.meta.json"
    data = json.loads(sidecar.read_text())
    data["name"] = "../outside/victim.pt"
    sidecar.write_text(json.dumps(data))


def _checkpoint_link(run_dir: Path, outside: Path) -> None:
    shutil.copy(run_dir / "step_00000005.pt", outside / "victim.pt")
    (run_dir / "step_00000009.pt").symlink_to(outside / "victim.pt")


HOSTILE: dict[str, Plant] = {
    "lock-links-out": _link(".lock", "victim.txt"),
    "history-links-out": _link("history.jsonl", "victim.txt"),
    "index-links-out": _link("history.idx", "victim.txt"),
    "run-json-links-out": _link("run.json", "run.json"),
    "journal-links-out": _link("journal.jsonl", "victim.txt"),
    "superseded-links-out": _link("superseded", "."),
    "control-lock-links-out": _link(".control.lock", "victim.txt"),
    "run-json-is-a-fifo": _fifo("run.json"),
    "control-is-a-fifo": _fifo("control.json"),
    "history-is-a-fifo": _fifo("history.jsonl"),
    "run-json-is-a-folder": _folder("run.json"),
    "settings-a-list": _edit_run_json(settings=[1, 2]),
    "target-a-word": _edit_run_json(settings={"max_iters": "ten"}),
    "forged-job": _edit_run_json(job="subprocess:getoutput", job_options={"cmd": "touch {outside}/pwned"}),
    "sidecar-names-outside": _sidecar_naming_outside,
    "checkpoint-links-out": _checkpoint_link,
}

# The run's own files: a command that writes the run (resume, prune) must refuse, not write through.
REFUSED_BY_WRITERS = {
    "lock-links-out", "history-links-out", "index-links-out", "run-json-links-out", "journal-links-out",
    "control-lock-links-out", "run-json-is-a-fifo", "history-is-a-fifo", "run-json-is-a-folder",
    "settings-a-list", "target-a-word", "forged-job",
}


def _commands(run_dir: Path) -> dict[str, list[object]]:
    return {
        "ckpt list": ["ckpt", "list", run_dir],
        "ckpt verify": ["ckpt", "verify", run_dir],
        "ckpt history": ["ckpt", "history", run_dir],
        "ckpt prune": ["ckpt", "prune", run_dir, "--keep", "1", "--yes"],
        "runs": ["runs", run_dir.parent],
        "resume": ["resume", run_dir, "--max-iters", "12", "--headless"],
    }


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
    from tui_trainer.engine.loop import launch
    from tui_trainer.engine.rundir.layout import RunSettings

    run_dir = tmp_path_factory.mktemp("hostile-table") / "run"
    trainer = launch.start_run(run_dir, job_options={"size": "tiny", "device": "cpu"},
                               policy=CheckpointPolicy(every_steps=5), settings=RunSettings(max_iters=10))
    assert trainer.run().reason == "target"
    return run_dir


def _outside_state(outside: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(outside.iterdir()) if p.is_file()}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("hostile", list(HOSTILE), ids=list(HOSTILE))
def test_every_command_answers_a_hostile_run_dir_in_one_line_and_writes_nothing_outside(capsys, tmp_path, demo_run,
                                                                                       hostile):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("precious\n")
    shutil.copy(demo_run / "run.json", outside / "run.json")
    run_dir = tmp_path / "runs" / "run"
    shutil.copytree(demo_run, run_dir)
    HOSTILE[hostile](run_dir, outside)
    before = _outside_state(outside)

    outcomes = {}
    for name, argv in _commands(run_dir).items():
        result = run(capsys, *argv)  # a FIFO read that blocks would hang here: the timeout fails it
        outcomes[name] = result.code
        assert "Traceback" not in result.err + result.out, (name, result.err)
        assert result.err.count("\n") <= 1, (name, result.err)
        if result.code != 0:  # a failure says why: in one line, or as verify's named problems
            assert result.err.count("\n") == 1 or (name == "ckpt verify" and "PROBLEM" in result.out), (name, result)
        assert _outside_state(outside) == before, f"{name} wrote outside the run dir"
        assert not (outside / "pwned").exists()
    assert outcomes["runs"] == 0  # the other runs still list
    if hostile in REFUSED_BY_WRITERS:
        assert outcomes["resume"] == 2, outcomes
        assert outcomes["ckpt prune"] in (0, 2), outcomes
