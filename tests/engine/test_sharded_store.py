"""Sharded step folders in the store, in one process: listed from sidecars, deleted without ever
being half-deleted under their name, committed never over another, their leftovers cleaned.

The folders are written as the ranks write them (DCP files, state.pt, the manifest last, then the
rename), here by one process without a process group, which DCP allows.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from tests.factories import RUN_ID, make_run_dir, our_state, tiny_model
from torch.distributed.checkpoint.state_dict import get_state_dict

from tui_trainer.engine.checkpoints import sharded_folder
from tui_trainer.engine.checkpoints.file import load_checkpoint
from tui_trainer.engine.checkpoints.meta import CheckpointMeta, read_sidecar, sharded_checkpoint_name, sidecar_path
from tui_trainer.engine.checkpoints.store import CheckpointStore
from tui_trainer.engine.errors import CheckpointError
from tui_trainer.engine.tools.verify import verify_path


SAVED: dict[int, torch.Tensor] = {}


def sharded_checkpoint(run_dir: Path, step: int) -> Path:
    meta = CheckpointMeta(name=sharded_checkpoint_name(step), step=step, epoch=0, run_id=RUN_ID, train_loss=1.0 / step)
    model = tiny_model(step)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    SAVED[step] = model.weight.detach().clone()
    partial = sharded_folder.partial_path(run_dir / meta.name)
    partial.mkdir()
    model_state, optimizer_state = get_state_dict(model, optimizer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "assuming the intent is to save in a single process": it is
        dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=partial, no_dist=True)
    state = {k: v for k, v in our_state(meta, model).items() if k not in ("model", "optimizer")}
    torch.save({**state, "optimizer_form": "by_name"}, partial / sharded_folder.STATE_FILE)
    names = sorted(p.name for p in partial.iterdir())
    sharded_folder.write_manifest(partial, sharded_folder.describe_files(partial, names), 1, step)
    return CheckpointStore(run_dir, RUN_ID).commit_folder(partial, meta).path


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = make_run_dir(tmp_path / "run", keep_last=2)
    for step in (100, 200, 300):
        sharded_checkpoint(run, step)
    return run


def test_folders_list_from_their_sidecars_and_load_whole_in_one_process(run_dir, monkeypatch):
    store = CheckpointStore(run_dir, RUN_ID)
    listed = store.list()
    assert [c.meta.name for c in listed] == [sharded_checkpoint_name(s) for s in (100, 200, 300)]
    assert listed[-1].latest and all(store.integrity_problem(c) is None for c in listed)
    assert listed[0].meta.size_bytes == sharded_folder.folder_size(run_dir / sharded_checkpoint_name(100))

    state = load_checkpoint(run_dir / sharded_checkpoint_name(300))
    assert torch.equal(state["model"]["weight"], SAVED[300])
    assert state["optimizer"]["state"]["weight"]["exp_avg"].shape == (3, 4)  # by name: DCP's form

    import tui_trainer.engine.checkpoints.dcp_io as dcp_io

    monkeypatch.setattr(dcp_io, "load_full", lambda *_: pytest.fail("listing opened a folder"))
    assert len(CheckpointStore(run_dir, RUN_ID).list()) == 3


def test_prune_renames_a_folder_away_before_removing_it_so_a_kill_leaves_no_half_folder(run_dir, monkeypatch):
    def killed(path, *args, **kwargs):
        raise KeyboardInterrupt  # as if the process died between the rename and the removal

    monkeypatch.setattr(shutil, "rmtree", killed)
    store = CheckpointStore(run_dir, RUN_ID)
    with pytest.raises(KeyboardInterrupt):
        store.prune(keep_last=2)
    monkeypatch.undo()
    assert not (run_dir / sharded_checkpoint_name(100)).exists()
    assert not sidecar_path(run_dir / sharded_checkpoint_name(100)).exists()
    hidden = [p.name for p in run_dir.iterdir() if p.name.startswith(".step_")]
    assert hidden == [f".{sharded_checkpoint_name(100)}.deleting-{os.getpid()}"]
    assert [c.meta.name for c in store.list()] == [sharded_checkpoint_name(200), sharded_checkpoint_name(300)]
    assert sharded_folder.leftovers(run_dir) == []  # its writer (this process) is alive: left alone
    os.rename(run_dir / hidden[0], run_dir / ".step_00000100.dcp.deleting-999999999")  # a writer that is gone
    assert [p.name for p in sharded_folder.remove_leftovers(run_dir)] == [".step_00000100.dcp.deleting-999999999"]


def test_a_partial_folder_is_never_listed_and_verify_flags_it(run_dir):
    newest = run_dir / sharded_checkpoint_name(300)
    sidecar_path(newest).unlink()
    newest.rename(sharded_folder.partial_path(newest))
    store = CheckpointStore(run_dir, RUN_ID)
    assert [c.meta.name for c in store.list()] == [sharded_checkpoint_name(100), sharded_checkpoint_name(200)]
    results = {r.path.name: r for r in verify_path(run_dir)}
    assert results[sharded_checkpoint_name(200)].ok
    assert "interrupted before it finished" in results[sharded_checkpoint_name(300) + ".partial"].problem


def test_commit_never_replaces_a_folder_of_the_same_name(run_dir):
    existing = run_dir / sharded_checkpoint_name(300)
    partial = sharded_folder.partial_path(existing)
    shutil.copytree(existing, partial)
    meta = read_sidecar(sidecar_path(existing))
    with pytest.raises(CheckpointError, match="already exists"):
        CheckpointStore(run_dir, RUN_ID).commit_folder(partial, meta)
    assert partial.is_dir() and existing.is_dir()


@pytest.mark.parametrize("damage", ["truncate", "extra file", "manifest edited", "link"])
def test_a_damaged_folder_is_named_and_never_loaded(run_dir, tmp_path, damage):
    folder = run_dir / sharded_checkpoint_name(300)
    if damage == "truncate":
        shard = next(folder.glob("*.distcp"))
        shard.write_bytes(shard.read_bytes()[:10])
        expected = "truncated or overwritten"
    elif damage == "extra file":
        (folder / "extra.pt").write_bytes(b"x")
        expected = "does not name (extra.pt)"
    elif damage == "manifest edited":
        manifest = json.loads((folder / sharded_folder.MANIFEST).read_text())
        manifest["step"] = 7
        (folder / sharded_folder.MANIFEST).write_text(json.dumps(manifest))
        expected = "rewritten after the save"
    else:
        outside = tmp_path / "outside.distcp"
        outside.write_bytes(b"y")
        shard = next(folder.glob("*.distcp"))
        shard.unlink()
        shard.symlink_to(outside)
        expected = "not a regular file"
    store = CheckpointStore(run_dir, RUN_ID)
    assert expected in store.integrity_problem(store.get(folder.name))
    [result] = verify_path(folder)
    assert not result.ok and expected in result.problem
    if damage != "manifest edited":  # load itself checks the files against the manifest
        with pytest.raises(CheckpointError, match="it was not loaded"):
            load_checkpoint(folder)


def test_a_step_folder_linked_from_outside_is_ignored(run_dir, tmp_path):
    outside = tmp_path / "elsewhere.dcp"
    shutil.copytree(run_dir / sharded_checkpoint_name(300), outside)
    (run_dir / sharded_checkpoint_name(400)).symlink_to(outside)
    store = CheckpointStore(run_dir, RUN_ID)
    assert [p.name for p in store.links_outside()] == [sharded_checkpoint_name(400)]
    assert sharded_checkpoint_name(400) not in [c.meta.name for c in store.list()]
