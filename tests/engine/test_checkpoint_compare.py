import math

import pytest
import torch
from torch import nn

from tests.factories import add_checkpoint, bare_state_dict, make_run_dir, seed_style_checkpoint, tiny_model
from tui_trainer.engine.tools.compare import compare_checkpoints, relative_change, tensor_change


@pytest.fixture
def run(tmp_path):
    run = make_run_dir(tmp_path / "run")
    add_checkpoint(run, 100, val_loss=2.0, train_loss=2.5, epoch=0)
    add_checkpoint(run, 300, val_loss=1.5, train_loss=1.75, epoch=2)
    return run


def test_sides_and_deltas(run):
    c = compare_checkpoints(run / "step_00000100.pt", run / "step_00000300.pt")
    assert (c.a.step, c.b.step, c.a.epoch, c.b.epoch) == (100, 300, 0, 2)
    assert c.a.own_format and c.b.own_format
    assert c.deltas["step"] == 200 and c.deltas["epoch"] == 2
    assert c.deltas["train_loss"] == pytest.approx(-0.75)
    assert c.deltas["val_loss"] == pytest.approx(-0.5)
    assert c.deltas["parameters"] == 0
    assert c.a.parameters == 15 and c.a.size_bytes == (run / "step_00000100.pt").stat().st_size


def test_tensor_changes_are_norms_sorted_by_relative_change(run):
    c = compare_checkpoints(run / "step_00000100.pt", run / "step_00000300.pt")
    a, b = tiny_model(100).state_dict(), tiny_model(300).state_dict()
    assert c.comparable and [t.key for t in c.changes] == sorted(a, key=lambda k: -((b[k] - a[k]).norm() / a[k].norm()))
    for change in c.changes:
        assert change.change_norm == pytest.approx(float((b[change.key] - a[change.key]).norm()), rel=1e-5)
        assert change.base_norm == pytest.approx(float(a[change.key].norm()), rel=1e-5)
    total = math.sqrt(sum(float((b[k] - a[k]).norm()) ** 2 for k in a))
    assert c.total_change_norm == pytest.approx(total, rel=1e-5)
    assert c.total_relative == pytest.approx(total / math.sqrt(sum(float(a[k].norm()) ** 2 for k in a)), rel=1e-5)


def test_same_file_has_no_change(run):
    c = compare_checkpoints(run / "step_00000100.pt", run / "step_00000100.pt")
    assert c.total_change_norm == 0 and all(t.relative == 0 for t in c.changes)


def test_foreign_layouts_compare_with_ours(tmp_path, run):
    seed = seed_style_checkpoint(tmp_path / "seed.pt", iteration=500)
    bare = bare_state_dict(tmp_path / "bare.pth")
    c = compare_checkpoints(run / "step_00000100.pt", seed)
    assert c.comparable and c.b.step == 500 and c.b.epoch == 3 and c.b.val_loss == 1.25
    assert c.deltas["step"] == 400
    c = compare_checkpoints(bare, seed)
    assert c.comparable and c.a.step is None and c.deltas["step"] is None


def test_differing_shapes_list_the_keys(tmp_path, run):
    torch.save({"model": nn.Linear(5, 3).state_dict() | {"extra": torch.ones(1)}}, tmp_path / "other.pt")
    c = compare_checkpoints(run / "step_00000100.pt", tmp_path / "other.pt")
    assert not c.comparable and c.changes is None and c.total_relative is None
    assert c.shape_mismatches == [("weight", (3, 4), (3, 5))]
    assert c.only_in_b == ["extra"] and c.only_in_a == []


def test_relative_change_edge_cases():
    assert relative_change(0.0, 0.0) == 0.0
    assert relative_change(1.0, 0.0) == math.inf
    assert tensor_change("n", torch.tensor([1, 2]), torch.tensor([1, 4])).change_norm == 2.0
    assert tensor_change("h", torch.ones(3, dtype=torch.float16), torch.ones(3, dtype=torch.float16)).relative == 0
