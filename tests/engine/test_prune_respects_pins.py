"""A prune planned before a `ckpt pin` never takes the pinned checkpoint, and says it kept it.

`ckpt prune`, the runs screen's prune (`prune_runs`) and the dashboard's prune (tests/tui) list
what they will delete, wait for a confirmation, then delete. Each test here pins one of the
listed checkpoints in that gap and checks the file, its sidecar and the report.
"""

from __future__ import annotations

import io
import json
import threading

import pytest

from tests.cli.ckpt_cli import run
from tests.factories import RUN_ID, add_checkpoint, make_run
from tui_trainer.engine.checkpoints.meta import checkpoint_name, sidecar_path
from tui_trainer.engine.checkpoints.previewed_prune import PINNED_SINCE, prune_previewed
from tui_trainer.engine.checkpoints.store import CheckpointStore
from tui_trainer.engine.errors import CheckpointNotFound
from tui_trainer.engine.rundir.layout import store_for
from tui_trainer.engine.rundir.runs_index import list_runs
from tui_trainer.engine.rundir.runs_prune import plan_runs_prune, prune_runs
from tui_trainer.engine.tools.verify import verify_path

WAIT_S = 10.0
STEPS = (100, 200, 300, 400, 500)


def _run(path):
    """Steps 100..500, val_loss falling with the step: 500 is best and latest, keep-last 1 deletes 100..400."""
    return make_run(path, steps=STEPS)


def _pin(run_dir, step: int) -> None:
    """What `ckpt pin` does from another terminal."""
    store_for(run_dir).set_pinned(checkpoint_name(step), True)


def _assert_pinned_and_whole(run_dir, step: int) -> None:
    path = run_dir / checkpoint_name(step)
    assert path.is_file() and sidecar_path(path).is_file()
    assert json.loads(sidecar_path(path).read_text())["pinned"] is True
    assert store_for(run_dir).orphan_sidecars() == []
    assert all(r.ok for r in verify_path(run_dir))


def _names(run_dir) -> list[str]:
    return sorted(p.name for p in run_dir.glob("*.pt"))


# --- ckpt prune ---------------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_ckpt_prune_keeps_a_checkpoint_pinned_while_its_question_waits(capsys, tmp_path, monkeypatch):
    run_dir = _run(tmp_path / "run")
    monkeypatch.setattr("sys.stdin", FakeTerminal())

    def answer(question: str) -> str:
        _pin(run_dir, 200)  # the user reads the list, pins one in another terminal, then says yes
        return "y"

    monkeypatch.setattr("builtins.input", answer)
    result = run(capsys, "ckpt", "prune", run_dir, "--keep", "1")

    assert result.code == 0, result.err
    assert "would delete step_00000200.pt" in result.out
    lines = result.out.splitlines()
    assert f"kept step_00000200.pt: {PINNED_SINCE}" in lines
    deleted = [line.split()[1] for line in lines if line.startswith("deleted")]
    assert deleted == [checkpoint_name(s) for s in (100, 300, 400)]
    assert lines[-1].startswith("freed ")
    _assert_pinned_and_whole(run_dir, 200)
    assert _names(run_dir) == [checkpoint_name(s) for s in (200, 500)]


def test_ckpt_prune_yes_keeps_a_checkpoint_pinned_between_its_plan_and_its_deletes(capsys, tmp_path, monkeypatch):
    run_dir = _run(tmp_path / "run")
    from tui_trainer.cli import ckpt_maintain

    confirm = ckpt_maintain.confirm

    def pin_then_confirm(question: str, assume_yes: bool) -> bool:
        _pin(run_dir, 100)
        return confirm(question, assume_yes)

    monkeypatch.setattr(ckpt_maintain, "confirm", pin_then_confirm)
    result = run(capsys, "ckpt", "prune", run_dir, "--keep", "1", "--yes")

    assert result.code == 0, result.err
    assert f"kept step_00000100.pt: {PINNED_SINCE}" in result.out.splitlines()
    assert "deleted step_00000100.pt" not in result.out
    _assert_pinned_and_whole(run_dir, 100)
    assert _names(run_dir) == [checkpoint_name(s) for s in (100, 500)]


def test_ckpt_prune_says_which_listed_checkpoint_was_gone_before_it_got_there(capsys, tmp_path, monkeypatch):
    run_dir = _run(tmp_path / "run")
    monkeypatch.setattr("sys.stdin", FakeTerminal())

    def answer(question: str) -> str:
        store_for(run_dir).delete(checkpoint_name(300))  # `ckpt delete` in another terminal
        return "y"

    monkeypatch.setattr("builtins.input", answer)
    result = run(capsys, "ckpt", "prune", run_dir, "--keep", "1")

    assert result.code == 0, result.err
    assert "step_00000300.pt was already gone: deleted elsewhere since the preview" in result.out
    assert "deleted step_00000300.pt" not in result.out
    assert _names(run_dir) == [checkpoint_name(500)]
    assert store_for(run_dir).orphan_sidecars() == []


# --- the runs screen's prune --------------------------------------------------------------------


def test_runs_prune_keeps_a_checkpoint_pinned_since_its_preview_and_says_so(tmp_path):
    a = _run(tmp_path / "a")
    b = _run(tmp_path / "b")
    index = list_runs(tmp_path)
    plan = plan_runs_prune(index, keep_last=1)
    assert "b/step_00000300.pt" in plan.keys
    _pin(b, 300)

    result = prune_runs(index, 1, plan.keys)

    assert "b/step_00000300.pt" not in result.deleted
    assert result.deleted == tuple(f"{r}/{checkpoint_name(s)}" for r, steps in (("a", (100, 200, 300, 400)),
                                                                                 ("b", (100, 200, 400)))
                                   for s in steps)
    assert result.notes == (f"kept b/step_00000300.pt: {PINNED_SINCE}",)
    assert result.skipped == ()
    _assert_pinned_and_whole(b, 300)
    assert _names(a) == [checkpoint_name(500)]
    assert _names(b) == [checkpoint_name(s) for s in (300, 500)]


# --- the shared step: decided and deleted under one hold of the store lock ----------------------


def test_a_pin_arriving_while_the_previewed_prune_deletes_waits_and_is_told_the_file_is_gone(tmp_path):
    run_dir = _run(tmp_path / "run")
    store = CheckpointStore(run_dir, RUN_ID)
    previewed = [c.meta.name for c in store.plan_prune(1)]
    planned, go = threading.Event(), threading.Event()
    plan = store.plan_prune

    def paused_plan(keep_last):
        doomed = plan(keep_last)
        planned.set()
        go.wait(WAIT_S)  # planned under the store lock, nothing deleted yet
        return doomed

    store.plan_prune = paused_plan
    outcome: list = []
    pruning = threading.Thread(target=lambda: outcome.append(prune_previewed(store, 1, previewed)), daemon=True)
    pruning.start()
    assert planned.wait(WAIT_S)

    pin_result: list = []

    def pin():
        try:
            pin_result.append(CheckpointStore(run_dir, RUN_ID).set_pinned(checkpoint_name(100), True))
        except CheckpointNotFound as exc:
            pin_result.append(exc)

    pinning = threading.Thread(target=pin, daemon=True)
    pinning.start()
    pinning.join(0.3)
    assert pinning.is_alive(), "the pin must wait for the prune's lock"
    go.set()
    pruning.join(WAIT_S)
    pinning.join(WAIT_S)

    assert outcome[0].deleted_names == tuple(previewed) and outcome[0].kept == () and outcome[0].gone == ()
    assert isinstance(pin_result[0], CheckpointNotFound)  # the pin failed and said so; nothing was undone
    assert not (run_dir / checkpoint_name(100)).exists()
    assert store.orphan_sidecars() == []
    assert all(r.ok for r in verify_path(run_dir))


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda run_dir: add_checkpoint(run_dir, 200, kind="manual", val_loss=2.8),
         "kept step_00000200.pt: made a manual checkpoint since the preview"),
        (lambda run_dir: add_checkpoint(run_dir, 200, val_loss=0.1),
         "kept step_00000200.pt: it became the best checkpoint since the preview"),
    ],
    ids=["manual", "best"],
)
def test_a_previewed_checkpoint_protected_otherwise_since_the_preview_is_kept_with_the_reason(tmp_path, change, says):
    run_dir = _run(tmp_path / "run")
    store = store_for(run_dir)
    previewed = [c.meta.name for c in store.plan_prune(1)]
    change(run_dir)

    outcome = prune_previewed(store, 1, previewed)

    assert outcome.notes() == [says]
    assert checkpoint_name(200) not in outcome.deleted_names
    assert (run_dir / checkpoint_name(200)).is_file() and sidecar_path(run_dir / checkpoint_name(200)).is_file()
    assert store.orphan_sidecars() == []


# --- a pin racing the deletes themselves --------------------------------------------------------


def _prune_with_ckpt_prune(capsys, run_dir) -> str:
    result = run(capsys, "ckpt", "prune", run_dir, "--keep", "1", "--yes")
    assert result.code == 0, result.err
    return result.out


def _prune_with_runs_prune(capsys, run_dir) -> str:
    index = list_runs(run_dir.parent)
    result = prune_runs(index, 1, plan_runs_prune(index, keep_last=1).keys)
    return "\n".join(result.deleted + result.notes)


@pytest.mark.parametrize("prune", [_prune_with_ckpt_prune, _prune_with_runs_prune], ids=["ckpt-prune", "runs-prune"])
def test_a_pin_that_reports_success_while_a_prune_deletes_is_never_undone(capsys, tmp_path, monkeypatch, prune):
    run_dir = _run(tmp_path / "run")
    target = checkpoint_name(400)  # planned, and deleted last
    pin_result: list = []

    def pin():
        try:
            pin_result.append(CheckpointStore(run_dir, RUN_ID).set_pinned(target, True))
        except CheckpointNotFound as exc:
            pin_result.append(exc)

    pinning = threading.Thread(target=pin, daemon=True)
    delete = CheckpointStore.delete

    def delete_after_a_pin_tries(self, name):
        if not pinning.is_alive() and not pin_result:
            pinning.start()  # `ckpt pin` from another terminal, as the first file goes
            pinning.join(0.3)
        return delete(self, name)

    monkeypatch.setattr(CheckpointStore, "delete", delete_after_a_pin_tries)
    out = prune(capsys, run_dir)
    pinning.join(WAIT_S)

    assert pin_result, "the pin never finished"
    if isinstance(pin_result[0], CheckpointNotFound):  # the prune held the lock: the pin was refused, truthfully
        assert not (run_dir / target).exists() and not sidecar_path(run_dir / target).exists()
    else:  # the pin got in first: its checkpoint stays, and the prune says why
        _assert_pinned_and_whole(run_dir, 400)
        assert PINNED_SINCE in out
    assert store_for(run_dir).orphan_sidecars() == []
    assert all(r.ok for r in verify_path(run_dir))
