import json
import shutil

import pytest
import torch
from tiny_runs import checkpoint_kinds, step_records, stop_at, without_time

from tui_trainer.demo.job import make_job
from tui_trainer.engine.loop.job import job_factory
from tui_trainer.engine.checkpoints.file import load_checkpoint
from tui_trainer.engine.checkpoints.hashing_writer import checksum_of_file
from tui_trainer.engine.checkpoints.meta import (
    FINAL,
    INTERRUPTED,
    PERIODIC,
    checkpoint_name,
    read_sidecar,
    sidecar_path,
)
from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.errors import ArchitectureMismatch, CheckpointError, RunDirError
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.loop.control import TrainingControl
from tui_trainer.engine.rundir.layout import RUN_FILE, SUPERSEDED_DIR, read_run

TARGET = 74  # "2N": the interruptions below fall mid-epoch, off the every-10 checkpoints


@job_factory
def noisy_tiny_job(**options):
    """The demo job with a draw from the global RNG in every step, as dropout would make.

    Resume rebuilds it by name from run.json, so exactness also covers the saved RNG streams.
    """
    job = make_job(**options)
    loss_fn = job.loss_fn
    job.loss_fn = lambda model, batch: loss_fn(model, batch) * (1 + 0.1 * torch.rand(()))
    return job


def assert_same_tensors(a, b, where=""):
    """Equal nested state: tensors bit for bit, everything else by value."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_tensors(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def assert_same_training(straight, resumed):
    job_a, job_b = straight.trainer.job, resumed.trainer.job
    assert_same_tensors(job_a.model.state_dict(), job_b.model.state_dict(), "model")
    assert_same_tensors(job_a.optimizer.state_dict(), job_b.optimizer.state_dict(), "optimizer")
    assert job_a.scheduler.state_dict() == job_b.scheduler.state_dict()
    assert job_a.batches.state_dict() == job_b.batches.state_dict()
    history_a, history_b = straight.history(), resumed.history()
    assert without_time(history_a) == without_time(history_b)  # loss, lr, epoch and evals
    steps = [r["step"] for r in step_records(history_b)]
    assert steps == list(range(1, TARGET + 1))  # no duplicates after the resumes


@pytest.fixture
def straight(tiny_run):
    run = tiny_run("straight", job=noisy_tiny_job, max_iters=TARGET, every_steps=10)
    run.run()
    return run


def interrupted_run(tiny_run, at):
    control = TrainingControl()
    run = tiny_run("resumed", job=noisy_tiny_job, max_iters=TARGET, every_steps=10, control=control,
                   on_event=stop_at(at, control, "interrupted"))
    assert run.run().reason == "interrupted"
    assert checkpoint_kinds(run.run_dir)[at] == INTERRUPTED
    return run


def test_an_interrupted_run_resumes_exactly(straight, tiny_run, resume):
    first = interrupted_run(tiny_run, 37)
    assert first.trainer.job.batches.epoch == 0 and first.trainer.job.batches.position == 37  # mid-epoch
    resumed = resume(first.run_dir)
    assert resumed.trainer.step == 37
    assert any("resuming from step_00000037.pt" in note for note in resumed.trainer.notes)
    resumed.run()
    started = resumed.events[0]
    assert (started.step, started.target) == (37, TARGET)
    assert started.resumed_from == str(first.run_dir / checkpoint_name(37))
    assert_same_training(straight, resumed)
    final = load_checkpoint(resumed.run_dir / checkpoint_name(TARGET))
    assert_same_tensors(final["model"], straight.trainer.job.model.state_dict(), "saved model")


def test_two_interruptions_in_the_same_epoch_resume_exactly(straight, tiny_run, resume):
    first = interrupted_run(tiny_run, 23)
    control = TrainingControl()
    second = resume(first.run_dir, control=control, on_event=stop_at(51, control, "interrupted"))
    assert second.run().reason == "interrupted"
    third = resume(first.run_dir)
    assert third.trainer.step == 51
    third.run()
    assert_same_training(straight, third)


def test_resume_with_a_larger_target_continues_from_the_saved_step(tiny_run, resume):
    first = tiny_run(max_iters=30, every_steps=10)
    first.run()
    more = resume(first.run_dir, max_iters=50)
    assert more.trainer.step == 30
    result = more.run()
    assert (result.reason, result.step) == ("target", 50)
    assert [e.step for e in more.of(ev.StepCompleted)] == list(range(31, 51))
    assert [(c.old_target, c.new_target) for c in more.of(ev.TargetChanged)] == [(30, 50)]
    assert [r["step"] for r in step_records(more.history())] == list(range(1, 51))
    assert read_run(first.run_dir).settings.max_iters == 50
    assert checkpoint_kinds(first.run_dir) == {10: PERIODIC, 20: PERIODIC, 30: PERIODIC, 40: PERIODIC, 50: PERIODIC}


@pytest.mark.parametrize("max_iters", [None, 30, 12])
def test_a_finished_run_needs_a_larger_target(tiny_run, resume, max_iters):
    first = tiny_run(max_iters=30)
    first.run()
    with pytest.raises(RunDirError, match=r"already at step 30.*--max-iters N with N > 30"):
        resume(first.run_dir, max_iters=max_iters)
    assert resume(first.run_dir, max_iters=31).run().step == 31  # the lock was let go


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_bytes(path):
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 8):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def empty(path):
    path.write_bytes(b"")


@pytest.mark.parametrize("damage", [truncate, flip_bytes, empty])
def test_a_corrupt_newest_checkpoint_is_skipped_and_moved_aside(tiny_run, resume, damage):
    first = tiny_run(max_iters=30, every_steps=10)
    first.run()
    newest = first.run_dir / checkpoint_name(30)
    damage(newest)
    damaged = newest.read_bytes()

    resumed = resume(first.run_dir)
    assert resumed.trainer.step == 20
    assert any(note.startswith("skipped step_00000030.pt: ") for note in resumed.trainer.notes)
    aside = list((first.run_dir / SUPERSEDED_DIR).rglob(checkpoint_name(30)))
    assert len(aside) == 1 and aside[0].read_bytes() == damaged  # kept for inspection, not deleted
    assert not newest.exists()

    resumed.run()
    assert [s.step for s in resumed.of(ev.CheckpointSaved)] == [30]  # not shadowed by the damaged file
    assert read_sidecar(sidecar_path(newest)).checksum == checksum_of_file(newest)
    assert load_checkpoint(newest)["meta"]["step"] == 30


def test_a_corrupt_checkpoint_without_its_sidecar_does_not_shadow_a_new_save(tiny_run, resume):
    first = tiny_run(max_iters=30, every_steps=10)
    first.run()
    newest = first.run_dir / checkpoint_name(30)
    truncate(newest)
    damaged = newest.read_bytes()
    sidecar_path(newest).unlink()

    resumed = resume(first.run_dir)
    assert resumed.trainer.step == 20
    result = resumed.run()
    assert [s.step for s in resumed.of(ev.CheckpointSaved)] == [30]
    assert load_checkpoint(newest)["meta"]["step"] == 30
    assert any("moved step_00000030.pt to superseded/" in note for note in result.notes)
    aside = [p for p in first.run_dir.rglob(checkpoint_name(30)) if p != newest]
    assert [p.read_bytes() for p in aside] == [damaged]


def test_a_checkpoint_whose_sidecar_was_lost_is_resumed_and_its_sidecar_rebuilt(tiny_run, resume):
    first = tiny_run(max_iters=30, every_steps=10)
    first.run()
    newest = first.run_dir / checkpoint_name(30)
    recorded = read_sidecar(sidecar_path(newest))
    sidecar_path(newest).unlink()  # a crash right after the rename, before the sidecar

    resumed = resume(first.run_dir, max_iters=40)
    assert resumed.trainer.step == 30
    assert "rebuilt the missing or damaged metadata of step_00000030.pt" in resumed.trainer.notes
    rebuilt = read_sidecar(sidecar_path(newest))
    kept = ("checksum", "size_bytes", "run_id")
    assert [getattr(rebuilt, k) for k in kept] == [getattr(recorded, k) for k in kept]


def test_resume_from_an_older_checkpoint_supersedes_newer_ones(tiny_run, resume):
    first = tiny_run(max_iters=50, every_steps=10)
    first.run()
    resumed = resume(first.run_dir / checkpoint_name(20))
    assert resumed.trainer.step == 20
    assert any("moved 3 newer checkpoints to superseded/" in note for note in resumed.trainer.notes)
    moved = sorted(p.name for p in (first.run_dir / SUPERSEDED_DIR).rglob("*.pt"))
    assert moved == [checkpoint_name(s) for s in (30, 40, 50)]
    assert max(r["step"] for r in resumed.history()) == 20  # history truncated at once
    assert set(checkpoint_kinds(first.run_dir)) == {10, 20}
    resumed.run()
    assert [r["step"] for r in step_records(resumed.history())] == list(range(1, 51))
    assert set(checkpoint_kinds(first.run_dir)) == {10, 20, 30, 40, 50}


def test_the_stored_policy_is_kept_unless_overridden(tiny_run, resume):
    first = tiny_run(max_iters=20, every_steps=10, keep_last=2)
    first.run()
    policy = read_run(first.run_dir).policy
    kept = resume(first.run_dir, max_iters=30, policy_overrides={"keep_last": None, "every_steps": None})
    assert kept.trainer.policy == policy == CheckpointPolicy(every_steps=10, keep_last=2)
    kept.run()
    assert read_run(first.run_dir).policy == policy
    changed = resume(first.run_dir, max_iters=40, policy_overrides={"keep_last": 4})
    assert changed.trainer.policy == CheckpointPolicy(every_steps=10, keep_last=4)
    assert read_run(first.run_dir).policy.keep_last == 4
    changed.run()


def copy_checkpoint(source_dir, step, target_dir):
    for path in (source_dir / checkpoint_name(step), sidecar_path(source_dir / checkpoint_name(step))):
        shutil.copy2(path, target_dir / path.name)


def test_checkpoints_of_another_run_are_ignored_with_a_note(tiny_run, resume):
    mine = tiny_run("mine", max_iters=20, every_steps=10)
    mine.run()
    theirs = tiny_run("theirs", max_iters=70, every_steps=70)
    theirs.run()
    copy_checkpoint(theirs.run_dir, 70, mine.run_dir)
    resumed = resume(mine.run_dir, max_iters=30)
    assert resumed.trainer.step == 20
    assert any("ignoring 1 checkpoint of other runs" in note for note in resumed.trainer.notes)
    resumed.run()
    with pytest.raises(CheckpointError, match="not a checkpoint of run"):
        resume(mine.run_dir / checkpoint_name(70))
    assert (mine.run_dir / checkpoint_name(70)).exists()  # never pruned or moved
    assert set(checkpoint_kinds(mine.run_dir)) == {10, 20, 30}


def test_another_runs_checkpoint_at_a_step_this_run_reaches_is_kept_and_not_shadowing(tiny_run, resume):
    mine = tiny_run("mine", max_iters=20, every_steps=10)
    mine.run()
    theirs = tiny_run("theirs", max_iters=30, every_steps=30)
    theirs.run()
    copy_checkpoint(theirs.run_dir, 30, mine.run_dir)
    theirs_bytes = (theirs.run_dir / checkpoint_name(30)).read_bytes()
    resumed = resume(mine.run_dir, max_iters=40)
    result = resumed.run()
    assert any("not a readable checkpoint of this run" in note for note in result.notes)
    assert set(checkpoint_kinds(mine.run_dir)) == {10, 20, 30, 40}
    assert read_sidecar(sidecar_path(mine.run_dir / checkpoint_name(40))).run_id == read_run(mine.run_dir).run_id
    kept = [p.read_bytes() for p in mine.run_dir.rglob(checkpoint_name(30))]
    assert theirs_bytes in kept


def test_a_changed_model_names_the_first_mismatching_key(tiny_run, resume):
    first = tiny_run(max_iters=10, every_steps=10)
    first.run()
    run_file = first.run_dir / RUN_FILE
    data = json.loads(run_file.read_text())
    data["job_options"]["size"] = "small"
    run_file.write_text(json.dumps(data))
    with pytest.raises(ArchitectureMismatch) as caught:
        resume(first.run_dir, max_iters=20)
    message = str(caught.value)
    assert "token_embedding.weight: checkpoint (74, 16) vs model (74, 64)" in message
    assert "job and options it was trained with" in message
    data["job_options"]["size"] = "tiny"
    run_file.write_text(json.dumps(data))
    assert resume(first.run_dir, max_iters=20).trainer.step == 10  # the lock was let go


def test_resume_of_a_dir_without_a_run_says_so(tmp_path, resume):
    with pytest.raises(RunDirError, match="does not exist"):
        resume(tmp_path / "missing")
    with pytest.raises(RunDirError, match="not a tui-trainer run dir"):
        resume(tmp_path)


def test_resume_without_any_checkpoint_says_so(tiny_run, resume):
    first = tiny_run(max_iters=5, save_final=False)
    first.run()
    with pytest.raises(RunDirError, match="no checkpoint"):
        resume(first.run_dir)


def test_leftover_temp_files_are_removed_on_resume(tiny_run, resume):
    first = tiny_run(max_iters=10, every_steps=10)
    first.run()
    leftover = first.run_dir / ".step_00000020.pt.tmp-999999999-abcd"
    leftover.write_bytes(b"partial")
    resumed = resume(first.run_dir, max_iters=20)
    assert not leftover.exists()
    assert any("removed leftover temporary file" in note for note in resumed.trainer.notes)
    resumed.run()
    assert set(checkpoint_kinds(first.run_dir)) == {10, 20}
    assert checkpoint_kinds(first.run_dir)[20] in (PERIODIC, FINAL)
