"""The disk forecast: how many checkpoints a run ends with, how big, and the step the disk fills."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tui_trainer.engine.checkpoints.disk_forecast import (
    DiskState,
    count_after,
    forecast,
    on_disk,
    read_disk_state,
    saves_to_come,
    space_needed,
)
from tui_trainer.engine.checkpoints.meta import FINAL, FOREIGN, MANUAL, PERIODIC, CheckpointMeta
from tui_trainer.engine.checkpoints.policy import CheckpointPolicy

MB = 1_000_000
CKPT = on_disk(10 * MB)  # a 10 MB checkpoint and its sidecar, in whole blocks


def _ckpt(step, kind=PERIODIC, size=10 * MB, val=None, pinned=False, run_id="r1"):
    return CheckpointMeta(
        f"step_{step:08d}.pt", step, kind=kind, size_bytes=size, run_id=run_id, pinned=pinned,
        metrics={} if val is None else {"val_loss": val}, metrics_step=None if val is None else step,
    )


def _state(checkpoints, *, every=100, keep_last=3, target=1000, free=10_000 * MB, save_final=True):
    policy = CheckpointPolicy(every_steps=every, keep_last=keep_last, save_final=save_final)
    return DiskState(tuple(checkpoints), "r1", policy, target, free)


def test_saves_to_come_are_the_periodic_steps_then_a_separate_final():
    policy = CheckpointPolicy(every_steps=100)
    schedule = saves_to_come(250, 1050, policy)
    assert list(schedule.periodic) == [300, 400, 500, 600, 700, 800, 900, 1000]
    assert schedule.final_step == 1050 and len(schedule) == 9
    assert schedule.step_of(1) == 300 and schedule.step_of(9) == 1050
    # A final save on a periodic step amends that checkpoint: no extra file.
    assert saves_to_come(250, 1000, policy).final_step is None
    assert len(saves_to_come(1000, 1000, policy)) == 0
    assert len(saves_to_come(0, 1000, CheckpointPolicy(every_steps=100, save_final=False))) == 10


def test_timed_saves_are_counted_at_the_current_speed():
    policy = CheckpointPolicy(every_steps=0, every_minutes=1.0)
    assert list(saves_to_come(0, 1000, policy, steps_per_sec=5.0).periodic) == [300, 600, 900]
    assert len(saves_to_come(0, 1000, policy, steps_per_sec=0.0).periodic) == 0  # speed unknown yet


def test_keep_last_counts_the_window_the_best_outside_it_and_manual_and_pinned():
    assert count_after(0, kept_for_good=0, rotating=2, keep_last=3, has_best=True) == 2
    assert count_after(5, kept_for_good=0, rotating=2, keep_last=3, has_best=False) == 3
    assert count_after(5, kept_for_good=0, rotating=2, keep_last=3, has_best=True) == 4
    assert count_after(5, kept_for_good=2, rotating=2, keep_last=3, has_best=True) == 6
    # keep_last 0 keeps every save.
    assert count_after(5, kept_for_good=1, rotating=2, keep_last=0, has_best=True) == 8


def test_forecast_with_keep_last_is_the_window_plus_best_plus_kept_ones_plus_one_in_flight():
    checkpoints = [_ckpt(100, val=2.0), _ckpt(200, val=2.5), _ckpt(300, kind=MANUAL, val=2.4),
                   _ckpt(400, val=2.6, pinned=True), _ckpt(500, val=2.7)]
    result = forecast(_state(checkpoints), step=520)
    assert result.used_bytes == 5 * CKPT and result.count_now == 5
    assert result.save_bytes == 10 * MB
    assert result.saves_left == 5  # 600..1000; the final one amends the one at 1000
    # 3 rotating (window) + best outside it + manual + pinned = 6, then one more in flight.
    assert result.count_at_end == 6
    assert result.end_bytes == 6 * CKPT + space_needed(10 * MB)
    assert result.fits and result.fill_step is None


def test_keep_all_counts_every_remaining_save():
    result = forecast(_state([_ckpt(100), _ckpt(200)], keep_last=0, target=1050), step=200)
    assert result.saves_left == 9  # 300..1000, then the final at 1050
    assert result.count_at_end == 11
    assert result.end_bytes == 11 * CKPT + space_needed(10 * MB)


def test_the_step_the_disk_fills_is_the_first_save_that_does_not_fit():
    # 2 on disk (20 MB) + 45 MB free = 65 MB of room; each save 10 MB, and one in flight needs
    # its size plus the store's margin, about 11.5 MB.
    state = _state([_ckpt(100), _ckpt(200)], keep_last=0, free=45 * MB)
    result = forecast(state, step=250)
    # Counting the save itself: at 500, 5 saved + 11.5 MB = 61.5 MB fits; at 600, 71.5 MB does not.
    assert result.fill_step == 600
    assert not result.fits and result.end_bytes > result.room_bytes
    # With rotation the run levels off and fits.
    assert forecast(_state([_ckpt(100), _ckpt(200)], keep_last=2, free=45 * MB), step=250).fits


def test_a_disk_already_too_full_fails_at_the_next_save():
    result = forecast(_state([_ckpt(100)], free=1 * MB), step=150)
    assert result.fill_step == 200


def test_a_huge_keep_all_run_is_computed_without_walking_every_save():
    state = _state([_ckpt(1)], every=1, keep_last=0, target=50_000_000, free=10 * 1000 * MB)
    result = forecast(state, step=1)
    # Room: 10,010 MB. The save at step 1,000 makes 1,000 files (10,000 MB) plus ~11.5 MB in flight.
    assert result.fill_step == 1000 and result.saves_left == 49_999_999


def test_the_stores_safety_margin_counts_for_small_checkpoints():
    # 100 KB saves need 1 MB more free than their size: a 3 MB disk holds far fewer of them.
    checkpoints = [_ckpt(s, size=100_000) for s in (100, 200)]
    result = forecast(_state(checkpoints, keep_last=0, target=5000, free=2_800_000), step=200)
    assert space_needed(100_000) == 105_000 + (1 << 20)
    # Room 3.0 MB; each file takes 104 KB with its sidecar: at step 1,700, 17 files (1.77 MB) and
    # 1.15 MB in flight fit; at 1,800, 1.87 + 1.15 MB do not.
    assert result.fill_step == 1800


def test_the_history_growing_with_every_step_counts_too():
    state = _state([_ckpt(100), _ckpt(200)], keep_last=2, free=30 * MB)
    quiet = forecast(state, step=200)
    assert quiet.fits  # 2 checkpoints + 1 in flight: 31.6 of the 50 MB of room
    # 3 MB of history per 100 steps so far: 24 MB more by step 1,000, past the room at step 900.
    chatty = forecast(replace(state, history_bytes=6 * MB), step=200)
    assert chatty.end_bytes == quiet.end_bytes + 24 * MB
    assert chatty.fill_step == 900


def test_no_forecast_before_the_first_save_and_nothing_left_after_the_end():
    before = forecast(_state([]), step=10)
    assert before.save_bytes is None and before.end_bytes is None and before.fits
    done = forecast(_state([_ckpt(900), _ckpt(1000, kind=FINAL)]), step=1000)
    assert done.saves_left == 0 and done.end_bytes == done.used_bytes == 2 * CKPT and done.fits


def test_other_runs_and_foreign_files_are_not_this_runs_checkpoints():
    checkpoints = [_ckpt(100), _ckpt(100, run_id="other"), _ckpt(-1, kind=FOREIGN, run_id=None)]
    result = forecast(_state(checkpoints), step=100)
    assert result.count_now == 1 and result.used_bytes == CKPT


def test_the_newest_save_sets_the_unit_and_a_new_target_changes_the_count():
    checkpoints = [_ckpt(100, size=5 * MB), _ckpt(200, size=8 * MB)]
    result = forecast(_state(checkpoints, keep_last=0), step=200, target=400)
    assert result.save_bytes == 8 * MB and result.saves_left == 2
    assert result.end_bytes == on_disk(8 * MB) * 4 + space_needed(8 * MB)


@pytest.mark.parametrize("keep_last", [0, 1, 3])
def test_fill_step_agrees_with_the_end_forecast(keep_last):
    for free_mb in range(0, 200, 7):
        result = forecast(_state([_ckpt(100, val=1.0), _ckpt(200)], keep_last=keep_last, free=free_mb * MB), step=200)
        assert (result.fill_step is None) == (result.end_bytes <= result.room_bytes)


def test_read_disk_state_from_a_run_dir(tiny_run):
    run = tiny_run(max_iters=40, every_steps=10, keep_last=2)
    run.run()
    state = read_disk_state(run.run_dir)
    assert state.target == 40 and state.policy.keep_last == 2 and state.free_bytes > 0
    assert sorted(m.step for m in state.checkpoints) == [30, 40]
    result = forecast(state, step=40)
    assert result.count_now == 2 and result.saves_left == 0 and result.fits
