"""A sidecar that lies about the checkpoint it describes: the file (its name, its own metadata) is the truth."""

from __future__ import annotations

import json

from tui_trainer.engine.checkpoints.meta import sidecar_path
from tui_trainer.engine.loop import launch
from tui_trainer.engine.rundir.layout import RunSettings, store_for
from tui_trainer.engine.tools.verify import verify_path

TINY = {"size": "tiny", "device": "cpu"}


def _run_with_checkpoints(run_dir, to=30):
    from tui_trainer.engine.checkpoints.policy import CheckpointPolicy

    trainer = launch.start_run(run_dir, job_options=TINY, policy=CheckpointPolicy(every_steps=10, keep_last=0),
                               settings=RunSettings(max_iters=to))
    assert trainer.run().reason == "target"


def _lie(run_dir, name: str, **fields) -> None:
    path = sidecar_path(run_dir / name)
    data = json.loads(path.read_text())
    data.update(fields)
    path.write_text(json.dumps(data))


def test_verify_names_a_sidecar_that_says_another_step_than_its_file(tmp_path):
    run_dir = tmp_path / "run"
    _run_with_checkpoints(run_dir)
    _lie(run_dir, "step_00000020.pt", step=999)  # the checksum still matches: only the step lies
    results = {r.path.name: r for r in verify_path(run_dir)}
    bad = results["step_00000020.pt"]
    assert not bad.ok and bad.problem == "its sidecar says step 999 but the file holds step 20"
    assert all(r.ok for name, r in results.items() if name != "step_00000020.pt")


def test_resume_believes_the_file_not_the_sidecar_and_rebuilds_it(tmp_path):
    run_dir = tmp_path / "run"
    _run_with_checkpoints(run_dir)
    _lie(run_dir, "step_00000030.pt", step=999)
    trainer = launch.resume_run(run_dir, max_iters=40)
    assert trainer.step == 30  # not 999: step-30 weights are trained on as step 30
    assert any("rebuilt the metadata of step_00000030.pt from the file" in note for note in trainer.notes)
    assert store_for(run_dir).get("step_00000030.pt").meta.step == 30
    trainer.run()
    assert all(r.ok for r in verify_path(run_dir))
    assert sorted(c.meta.step for c in store_for(run_dir).list()) == [10, 20, 30, 40]


def test_a_sidecar_claiming_a_later_step_does_not_make_newer_checkpoints_look_superseded(tmp_path):
    run_dir = tmp_path / "run"
    _run_with_checkpoints(run_dir)
    _lie(run_dir, "step_00000010.pt", step=5000)
    trainer = launch.resume_run(run_dir, max_iters=40)
    assert trainer.step == 30 and not (run_dir / "superseded").exists()
