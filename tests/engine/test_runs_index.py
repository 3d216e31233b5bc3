"""The runs under a root: state from the lock, last step, best val loss, sizes, totals; prune across them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.factories import add_checkpoint, make_run, make_run_dir, write_history
from tui_trainer.engine.errors import RunDirError
from tui_trainer.engine.rundir.layout import HISTORY_FILE, SUPERSEDED_DIR, RunLock, read_run, store_for, write_run
from tui_trainer.engine.rundir.runs_index import last_logged_step, list_runs
from tui_trainer.engine.rundir.runs_prune import BEING_TRAINED, plan_runs_prune, prune_runs


def _files_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _set_state(run_dir: Path, state: str) -> None:
    info = read_run(run_dir)
    info.state = state
    write_run(run_dir, info)


def _names(run_dir: Path) -> list[str]:
    return sorted(c.meta.name for c in store_for(run_dir).list())


def test_lists_each_run_with_its_numbers_and_the_totals(tmp_path):
    gpu0 = make_run(tmp_path / "model_gpu0", steps=(100, 200, 300))
    write_history(gpu0, 350)
    gpu1 = make_run(tmp_path / "model_gpu1", steps=(100, 200), val_losses={100: 1.5, 200: 1.75})
    _set_state(gpu0, "finished")
    _set_state(gpu1, "interrupted")
    (tmp_path / "notes").mkdir()  # a plain folder without runs is not a run

    index = list_runs(tmp_path)

    assert [r.name for r in index.runs] == ["model_gpu0", "model_gpu1"]
    run0, run1 = index.runs
    assert (run0.state, run0.last_step, run0.checkpoints) == ("finished", 350, 3)
    assert run0.best_value == pytest.approx(2.7) and run0.best_checkpoint == "step_00000300.pt"
    assert (run1.state, run1.last_step, run1.checkpoints) == ("interrupted", 200, 2)  # no history: newest checkpoint
    assert run1.best_value == 1.5 and run1.best_checkpoint == "step_00000100.pt"
    assert run0.disk_bytes == _files_size(gpu0) and run1.disk_bytes == _files_size(gpu1)
    assert index.disk_bytes == _files_size(gpu0) + _files_size(gpu1)
    assert index.checkpoints == 5
    assert index.problems == ()


def test_state_comes_from_the_lock_not_from_a_stale_run_json(tmp_path):
    run_dir = make_run(tmp_path / "run", steps=(100,))
    _set_state(run_dir, "running")
    with RunLock(run_dir):
        (run,) = list_runs(tmp_path).runs
        assert run.state == "running" and run.running
    (run,) = list_runs(tmp_path).runs
    assert run.state == "gone" and not run.running  # its trainer died without writing its end


def test_a_real_trained_run_is_summed_up(tiny_run, tmp_path):
    run = tiny_run("trained", max_iters=30, every_steps=10, keep_last=2)
    run.run()
    (summary,) = list_runs(tmp_path).runs
    store = store_for(run.run_dir)
    assert summary.state == "finished" and summary.target == 30 and summary.last_step == 30
    assert summary.checkpoints == len(store.list())
    assert summary.best_checkpoint == store.best().meta.name
    assert summary.best_value == store.best().meta.metric("val_loss")


def test_nested_runs_are_found_and_superseded_and_damaged_ones_are_not_listed(tmp_path):
    make_run_dir(tmp_path / "demo" / "run-a")
    make_run_dir(tmp_path / "run-b" / SUPERSEDED_DIR / "old")  # nothing under a run is another run
    make_run_dir(tmp_path / "run-b")
    damaged = tmp_path / "run-c"
    damaged.mkdir()
    (damaged / "run.json").write_text("{not json")

    index = list_runs(tmp_path)

    assert [r.name for r in index.runs] == ["demo/run-a", "run-b"]
    assert len(index.problems) == 1 and "run-c" in index.problems[0]


def test_a_run_dir_as_root_lists_itself_and_a_missing_root_is_an_error(tmp_path):
    run_dir = make_run(tmp_path / "only", steps=(100,))
    assert [r.path for r in list_runs(run_dir).runs] == [run_dir]
    with pytest.raises(RunDirError, match="does not exist"):
        list_runs(tmp_path / "nowhere")
    with pytest.raises(RunDirError, match="not a directory"):
        list_runs(run_dir / "run.json")


def test_last_logged_step_skips_a_torn_last_line(tmp_path):
    write_history(tmp_path, 120)
    with open(tmp_path / HISTORY_FILE, "a") as f:
        f.write('{"step": 121, "loss": 1.')
    assert last_logged_step(tmp_path / HISTORY_FILE) == 120
    assert last_logged_step(tmp_path / "missing.jsonl") is None


def test_loss_curves_read_train_and_val(tmp_path):
    from tui_trainer.engine.rundir.history_index import read_curves

    write_history(tmp_path, 100, eval_every=25)
    curves = read_curves(tmp_path)
    assert list(curves.steps) == [float(s) for s in range(1, 101)]
    assert curves.losses[-1] == pytest.approx(2.0)
    assert list(curves.val_steps) == [25.0, 50.0, 75.0, 100.0]


def _five(run_dir: Path, pinned: int | None = None) -> Path:
    make_run_dir(run_dir)
    for step in (100, 200, 300, 400, 500):
        # The best val loss is at step 200, so that one stays whatever keep-last says.
        add_checkpoint(run_dir, step, val_loss=1.0 if step == 200 else 2.0, pinned=step == pinned)
    _set_state(run_dir, "finished")
    return run_dir


def test_prune_plan_keeps_best_latest_pinned_and_leaves_a_trained_run_alone(tmp_path):
    a = _five(tmp_path / "a")
    b = _five(tmp_path / "b", pinned=100)
    busy = _five(tmp_path / "busy")

    with RunLock(busy):
        plan = plan_runs_prune(list_runs(tmp_path), keep_last=2)

    assert plan.keys == ("a/step_00000100.pt", "a/step_00000300.pt", "b/step_00000300.pt")
    assert plan.skipped == (("busy", BEING_TRAINED),)
    assert plan.freed_bytes == sum((a / k.split("/")[1]).stat().st_size for k in plan.keys[:2]) + (
        b / "step_00000300.pt").stat().st_size


def test_prune_deletes_exactly_the_previewed_files_still_due(tmp_path):
    a = _five(tmp_path / "a")
    b = _five(tmp_path / "b")
    index = list_runs(tmp_path)
    plan = plan_runs_prune(index, keep_last=3)
    assert plan.keys == ("a/step_00000100.pt", "b/step_00000100.pt")
    store_for(b).set_pinned("step_00000100.pt", True)  # pinned after the preview: it must stay

    result = prune_runs(index, 3, plan.keys)

    assert result.deleted == ("a/step_00000100.pt",)
    assert _names(a) == ["step_00000200.pt", "step_00000300.pt", "step_00000400.pt", "step_00000500.pt"]
    assert len(_names(b)) == 5
    assert not (a / "step_00000100.meta.json").exists()


def test_prune_skips_a_run_whose_trainer_started_after_the_preview(tmp_path):
    a = _five(tmp_path / "a")
    index = list_runs(tmp_path)
    plan = plan_runs_prune(index, keep_last=2)
    with RunLock(a):
        result = prune_runs(index, 2, plan.keys)
    assert result.deleted == () and result.skipped[0][0] == "a"
    assert len(_names(a)) == 5
    assert json.loads((a / ".lock").read_text() or "{}") == {}  # the lock is left released


def test_a_checkpoint_linking_outside_its_run_is_neither_counted_nor_pruned(tmp_path):
    a = _five(tmp_path / "a")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    victim = outside / "victim.pt"
    victim.write_bytes((a / "step_00000100.pt").read_bytes())
    link = a / "step_00000050.pt"
    link.symlink_to(victim)
    sidecar = json.loads((a / "step_00000100.meta.json").read_text())
    (a / "step_00000050.meta.json").write_text(json.dumps({**sidecar, "name": link.name, "step": 50}))

    index = list_runs(tmp_path)
    assert index.runs[0].checkpoints == 5  # as `ckpt list` counts them
    plan = plan_runs_prune(index, keep_last=1)
    assert "a/step_00000050.pt" not in plan.keys
    prune_runs(index, 1, plan.keys)
    assert link.is_symlink() and victim.exists()
