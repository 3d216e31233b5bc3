"""Names read from a run dir never make the tool read, delete or write outside it.

A sidecar is data on disk: one edited to name `../victim.pt` or an absolute path is ignored.
A checkpoint name in the run dir that is a symbolic link to a file elsewhere is left alone and
reported. Moving checkpoints aside never follows a link out of the run dir.
"""

from __future__ import annotations

import json
import shutil

import pytest
from tiny_runs import checkpoint_kinds

from tui_trainer.cli.main import main
from tui_trainer.engine.checkpoints.hashing_writer import sha256_of_file
from tui_trainer.engine.checkpoints.meta import checkpoint_name, read_sidecar, sidecar_path
from tui_trainer.engine.checkpoints.store import CheckpointStore
from tui_trainer.engine.errors import UnsafePath
from tui_trainer.engine.rundir.layout import SUPERSEDED_DIR, read_run
from tui_trainer.engine.tools.verify import verify_path


def outside_snapshot(tmp_path, run_dir) -> dict[str, bytes]:
    """Every file under tmp_path that is not in the run dir, with its bytes."""
    return {
        str(p.relative_to(tmp_path)): p.read_bytes()
        for p in tmp_path.rglob("*")
        if p.is_file() and not p.is_symlink() and run_dir not in p.parents
    }


def edit_sidecar(checkpoint, **changes) -> None:
    path = sidecar_path(checkpoint)
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, **changes}))


@pytest.fixture
def finished_run(tiny_run, tmp_path):
    """A run with checkpoints at steps 2, 4, 6, 8 and a victim file beside its run dir."""
    run = tiny_run(max_iters=8, every_steps=2)
    run.run()
    victim = tmp_path / "victim.pt"
    shutil.copy(run.run_dir / checkpoint_name(8), victim)
    shutil.copy(sidecar_path(run.run_dir / checkpoint_name(8)), tmp_path / "victim.meta.json")
    return run


@pytest.mark.parametrize("bad_name", ["../victim.pt", "{tmp}/victim.pt", checkpoint_name(6)])
def test_a_sidecar_naming_another_file_is_ignored_by_listing_and_prune(finished_run, tmp_path, capsys, bad_name):
    run_dir = finished_run.run_dir
    edit_sidecar(run_dir / checkpoint_name(2), name=bad_name.format(tmp=tmp_path))
    before = outside_snapshot(tmp_path, run_dir)
    assert read_sidecar(sidecar_path(run_dir / checkpoint_name(2))) is None
    assert [m.name for m in CheckpointStore(run_dir).scan()] == [checkpoint_name(s) for s in (2, 4, 6, 8)]

    assert main(["ckpt", "prune", str(run_dir), "--keep", "1", "--yes"]) == 0
    assert outside_snapshot(tmp_path, run_dir) == before
    assert set(checkpoint_kinds(run_dir)) == {8}  # 2 was deleted under its own name, 6 by rotation
    assert not sidecar_path(run_dir / checkpoint_name(2)).exists()


def test_a_save_at_a_step_whose_sidecar_names_a_file_outside_writes_only_in_the_run_dir(
    finished_run, resume, tmp_path
):
    run_dir = finished_run.run_dir
    edit_sidecar(run_dir / checkpoint_name(8), name="../victim.pt")
    before = outside_snapshot(tmp_path, run_dir)
    resumed = resume(run_dir, max_iters=10)
    assert resumed.trainer.step == 8
    # A sidecar naming another file is a damaged one: resume rebuilds it from its checkpoint.
    assert any(f"rebuilt the missing or damaged metadata of {checkpoint_name(8)}" in n for n in resumed.trainer.notes)
    resumed.control.save_now()
    resumed.control.stop()
    resumed.run()
    assert outside_snapshot(tmp_path, run_dir) == before
    assert [r for r in verify_path(run_dir) if not r.ok] == []
    assert read_sidecar(sidecar_path(run_dir / checkpoint_name(8))).name == checkpoint_name(8)


def test_a_checkpoint_linking_outside_the_run_dir_is_never_read_pruned_or_resumed(
    finished_run, resume, tmp_path, capsys
):
    run_dir = finished_run.run_dir
    link = run_dir / checkpoint_name(100)
    link.symlink_to(tmp_path / "victim.pt")
    sidecar_path(link).write_text(json.dumps({
        **json.loads((tmp_path / "victim.meta.json").read_text()),
        "name": link.name, "step": 100, "sha256": sha256_of_file(tmp_path / "victim.pt"),
    }))
    before = outside_snapshot(tmp_path, run_dir)

    assert [m.step for m in CheckpointStore(run_dir).scan()] == [2, 4, 6, 8]
    problems = [r for r in verify_path(run_dir) if not r.ok]
    assert [r.path for r in problems] == [link] and "outside" in problems[0].problem

    assert main(["ckpt", "prune", str(run_dir), "--keep", "1", "--yes"]) == 0
    assert link.is_symlink()
    resumed = resume(run_dir, max_iters=10)
    assert resumed.trainer.step == 8
    assert f"ignoring {link.name}: a link to a file outside {run_dir}" in resumed.trainer.notes
    resumed.run()
    assert outside_snapshot(tmp_path, run_dir) == before
    assert read_run(run_dir).state == "finished"


def test_setting_checkpoints_aside_never_follows_a_link_out_of_the_run_dir(finished_run, resume, tmp_path):
    run_dir = finished_run.run_dir
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run_dir / SUPERSEDED_DIR).symlink_to(elsewhere)
    with pytest.raises(UnsafePath, match="outside .* through a symbolic link"):
        resume(run_dir / checkpoint_name(4))
    assert list(elsewhere.iterdir()) == []
    assert set(checkpoint_kinds(run_dir)) == {2, 4, 6, 8}
