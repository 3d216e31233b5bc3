"""Damaged sidecars, damaged embedded metadata and non-checkpoint files never crash a listing."""

import json

import pytest
import torch

from tests.factories import bare_state_dict, make_run, seed_style_checkpoint
from tui_trainer.engine.checkpoints.file import load_checkpoint, read_meta
from tui_trainer.engine.checkpoints.meta import read_sidecar
from tui_trainer.engine.checkpoints.store import CheckpointStore
from tui_trainer.engine.errors import CheckpointCorrupt, NotACheckpoint
from tui_trainer.engine.rundir.layout import store_for


@pytest.mark.parametrize(
    "content",
    [
        "[]",
        "1",
        '{"name": "a.pt", "step": 1, "metrics": [1]}',
        '{"name": "a.pt", "step": 1, "kind": []}',
        '{"name": "a.pt", "step": 1, "created": 5}',
        '{"name": "a.pt", "step": 1, "epoch": "two"}',
    ],
)
def test_damaged_sidecars_read_as_missing(tmp_path, content):
    (tmp_path / "a.meta.json").write_text(content)
    assert read_sidecar(tmp_path / "a.meta.json") is None


def test_sidecar_values_are_normalised(tmp_path):
    (tmp_path / "a.meta.json").write_text('{"name": "a.pt", "step": 1, "train_loss": "x", "pinned": "false"}')
    meta = read_sidecar(tmp_path / "a.meta.json")
    assert meta.pinned is False and meta.train_loss != meta.train_loss  # NaN


def test_unknown_sidecar_keys_are_ignored(tmp_path):
    (tmp_path / "a.meta.json").write_text('{"name": "a.pt", "step": 1, "written_by": "a later version"}')
    meta = read_sidecar(tmp_path / "a.meta.json")
    assert (meta.name, meta.step) == ("a.pt", 1)


def test_a_damaged_sidecar_falls_back_to_the_file(tmp_path):
    run = make_run(tmp_path / "run", steps=(100, 200))
    (run / "step_00000100.meta.json").write_text('{"name": "step_00000100.pt", "step": 100, "metrics": []}')
    listed = store_for(run).list()
    assert [c.meta.step for c in listed] == [100, 200]
    assert listed[0].meta.recorded_checksum is None  # rebuilt from the file, which cannot vouch for itself


def test_damaged_embedded_metadata_is_corrupt_not_a_crash(tmp_path):
    torch.save({"format": "tui-trainer", "meta": "nonsense", "model": {"w": torch.ones(1)}}, tmp_path / "x.pt")
    with pytest.raises(CheckpointCorrupt):
        read_meta(tmp_path / "x.pt")
    assert CheckpointStore(tmp_path).list() == []


@pytest.mark.parametrize("content", [b'{"step": 1}', b"plain text", b"\x7fELF\x02\x01\x01\x00"])
def test_non_pickles_are_not_called_unsafe(tmp_path, content):
    (tmp_path / "x.pt").write_bytes(content)
    with pytest.raises(NotACheckpoint):
        load_checkpoint(tmp_path / "x.pt")


def test_a_folder_of_foreign_files_marks_best_and_latest_among_them(tmp_path):
    seed_style_checkpoint(tmp_path / "late.pt", iteration=500)
    seed_style_checkpoint(tmp_path / "early.pt", iteration=100)
    bare_state_dict(tmp_path / "bare.pth")
    marks = {c.meta.name: c.marks for c in CheckpointStore(tmp_path).list()}
    assert marks == {"bare.pth": (), "early.pt": ("best",), "late.pt": ("latest",)}


def test_foreign_files_in_a_run_dir_take_no_marks(tmp_path):
    run = make_run(tmp_path / "run", steps=(100,))
    seed_style_checkpoint(run / "imported.pt", iteration=900)
    marks = {c.meta.name: c.marks for c in store_for(run).list()}
    assert marks == {"step_00000100.pt": ("best", "latest"), "imported.pt": ()}


def test_sidecar_name_cannot_point_outside_the_directory(tmp_path):
    run = make_run(tmp_path / "run", steps=(100,))
    outside = tmp_path / "outside.pt"
    outside.write_bytes(b"precious")
    sidecar = run / "step_00000100.meta.json"
    sidecar.write_text(json.dumps(json.loads(sidecar.read_text()) | {"name": "../outside.pt"}))
    [stored] = store_for(run).list()
    assert stored.path == run / "step_00000100.pt"
    store_for(run).delete("step_00000100.pt")
    assert outside.read_bytes() == b"precious"
