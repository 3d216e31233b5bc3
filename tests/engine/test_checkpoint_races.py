"""Pin, delete, prune and set-aside against each other: no sidecar without its file, no pin lost, no overwrite."""

from __future__ import annotations

import json
import threading

import pytest

from tests.factories import RUN_ID, add_checkpoint, make_run, tiny_model
from tui_trainer.engine.checkpoints.checkpointer import Checkpointer
from tui_trainer.engine.checkpoints.meta import checkpoint_name, sidecar_path
from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.checkpoints.store import CheckpointStore
from tui_trainer.engine.errors import CheckpointNotFound
from tui_trainer.engine.rundir.layout import SUPERSEDED_DIR, set_aside
from tui_trainer.engine.tools.verify import verify_path

WAIT_S = 10.0


class Pause:
    """Wraps a method so its first call stops after returning, until `go()`; `reached` says it got there."""

    def __init__(self, method):
        self.method = method
        self.reached = threading.Event()
        self._go = threading.Event()

    def __call__(self, *args, **kwargs):
        result = self.method(*args, **kwargs)
        if not self.reached.is_set():
            self.reached.set()
            self._go.wait(WAIT_S)
        return result

    def go(self):
        self._go.set()


def in_thread(target) -> tuple[threading.Thread, list]:
    outcome: list = []

    def run():
        try:
            outcome.append(target())
        except CheckpointNotFound as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_pin_racing_a_delete_never_writes_a_sidecar_for_the_deleted_file(tmp_path):
    run = make_run(tmp_path / "run", steps=(100, 200, 300))
    name = checkpoint_name(100)
    pinner = CheckpointStore(run, RUN_ID)
    pinner.get = pause = Pause(pinner.get)  # the pin has looked at the checkpoint, not yet written
    pinning, _ = in_thread(lambda: pinner.set_pinned(name, True))
    assert pause.reached.wait(WAIT_S)

    deleting, deleted = in_thread(lambda: CheckpointStore(run, RUN_ID).delete(name))
    deleting.join(0.3)
    pause.go()
    pinning.join(WAIT_S)
    deleting.join(WAIT_S)
    assert isinstance(deleted[0], int)
    assert not (run / name).exists() and not sidecar_path(run / name).exists()
    assert all(r.ok for r in verify_path(run))


def test_a_pin_landing_while_retention_prunes_is_kept_or_refused_never_lost(tmp_path):
    run = make_run(tmp_path / "run", steps=(100, 200, 300), val_losses={100: 3.0, 200: 2.0, 300: 2.5})
    name = checkpoint_name(100)  # neither best (200) nor latest (300): keep-last 1 lets it go
    checkpointer = Checkpointer(run, RUN_ID, CheckpointPolicy(keep_last=1), emit=lambda event: None, notes=[])
    checkpointer.store.scan = pause = Pause(checkpointer.store.scan)  # retention has planned, not yet deleted
    pruning, _ = in_thread(checkpointer.prune)
    assert pause.reached.wait(WAIT_S)

    pinning, pinned = in_thread(lambda: CheckpointStore(run, RUN_ID).set_pinned(name, True))
    pinning.join(0.3)
    pause.go()
    pruning.join(WAIT_S)
    pinning.join(WAIT_S)
    if isinstance(pinned[0], CheckpointNotFound):  # retention was first: the pin says the file is gone
        assert not (run / name).exists() and not sidecar_path(run / name).exists()
    else:  # the pin was first: retention saw it
        assert CheckpointStore(run, RUN_ID).get(name).pinned
    assert all(r.ok for r in verify_path(run))


def test_checkpoints_of_one_name_set_aside_in_one_second_are_all_kept(tmp_path):
    run = make_run(tmp_path / "run", steps=(100,))
    name = checkpoint_name(100)
    contents = []
    for version in range(3):
        if version:
            add_checkpoint(run, 100, model=tiny_model(version * 7))
        contents.append((run / name).read_bytes())
        set_aside(run, [run / name])
    moved = sorted((run / SUPERSEDED_DIR).rglob(name))
    assert sorted(p.read_bytes() for p in moved) == sorted(contents) and len(set(contents)) == 3
    assert all(sidecar_path(p).is_file() for p in moved)
    assert all(r.ok for r in verify_path(run))


def test_resume_mends_what_older_versions_left_and_verify_then_passes(tiny_run, resume):
    run = tiny_run(max_iters=30, every_steps=10)
    run.run()
    run_dir = run.run_dir
    # A set-aside killed between its two moves: the file went, its sidecar stayed behind.
    folder = run_dir / SUPERSEDED_DIR / "20240101-000000"
    folder.mkdir(parents=True)
    (run_dir / "step_00000030.pt").rename(folder / "step_00000030.pt")
    # A pin that raced retention: a sidecar for a checkpoint deleted long ago; and one in superseded/.
    (run_dir / "step_00000005.meta.json").write_text(json.dumps({"name": "step_00000005.pt", "step": 5}))
    (folder / "step_00000001.meta.json").write_text(json.dumps({"name": "step_00000001.pt", "step": 1}))
    (folder / ".step_00000002.pt.tmp-999999999-abcd").write_bytes(b"partial")
    assert len([r for r in verify_path(run_dir) if not r.ok]) == 5

    resumed = resume(run_dir, max_iters=35)
    assert resumed.trainer.step == 20
    assert any("moved step_00000030.meta.json to superseded/20240101-000000/" in n for n in resumed.trainer.notes)
    assert any("removed step_00000005.meta.json: its checkpoint is gone" in n for n in resumed.trainer.notes)
    resumed.run()
    assert [r for r in verify_path(run_dir) if not r.ok] == []
    assert sidecar_path(folder / "step_00000030.pt").is_file()
    assert sorted(p.name for p in folder.iterdir()) == ["step_00000030.meta.json", "step_00000030.pt"]


@pytest.mark.parametrize("names", [["../../outside.pt"], "not a list", ["step_00000010.pt"]])
def test_an_interrupted_set_aside_record_moves_only_plain_checkpoint_names_of_the_run_dir(tiny_run, resume, names):
    run = tiny_run(max_iters=20, every_steps=10)
    run.run()
    run_dir = run.run_dir
    outside = run_dir.parent / "outside.pt"
    outside.write_bytes(b"not yours")
    folder = run_dir / SUPERSEDED_DIR / "20240101-000000"
    folder.mkdir(parents=True)
    (folder / ".moving.json").write_text(json.dumps({"names": names}))
    assert any(not r.ok and "interrupted" in r.problem for r in verify_path(run_dir))

    resumed = resume(run_dir, max_iters=25)
    assert outside.read_bytes() == b"not yours"
    moved = ["step_00000010.pt"] if names == ["step_00000010.pt"] else []
    assert sorted(p.name for p in folder.glob("*.pt")) == moved
    assert not (folder / ".moving.json").exists()
    resumed.run()
    assert [r for r in verify_path(run_dir) if not r.ok] == []
