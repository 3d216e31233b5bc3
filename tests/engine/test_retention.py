import math
import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui_trainer.engine.checkpoints import retention
from tui_trainer.engine.checkpoints.meta import (
    FINAL,
    FOREIGN,
    INTERRUPTED,
    MANUAL,
    PERIODIC,
    ROTATING_KINDS,
    CheckpointMeta,
    checkpoint_name,
)
from tui_trainer.engine.checkpoints.store import CheckpointStore

RUN = "run-a"
OTHER = "run-b"
FRESH = object()  # metrics_step: the checkpoint's own step


def meta(step, val_loss=None, *, kind=PERIODIC, run_id=RUN, pinned=False, metrics_step=FRESH):
    return CheckpointMeta(
        name=checkpoint_name(step),
        step=step,
        kind=kind,
        metrics={} if val_loss is None else {"val_loss": val_loss},
        metrics_step=step if metrics_step is FRESH else metrics_step,
        run_id=run_id,
        pinned=pinned,
    )


def steps(metas):
    return sorted(m.step for m in metas)


def prune(metas, keep_last, **kwargs):
    return steps(retention.checkpoints_to_prune(metas, keep_last, RUN, **kwargs))


# --- best -------------------------------------------------------------------------------------


def test_best_is_the_lowest_val_loss():
    metas = [meta(10, 3.0), meta(20, 1.5), meta(30, 2.0)]
    assert retention.best_checkpoint(metas, RUN).step == 20


def test_best_in_max_mode_is_the_highest():
    metas = [meta(10, 3.0), meta(20, 1.5), meta(30, 2.0)]
    assert retention.best_checkpoint(metas, RUN, mode="max").step == 10


def test_nan_is_the_worst_score_in_either_mode():
    metas = [meta(10, math.nan), meta(20, 5.0), meta(30, math.nan)]
    assert retention.best_checkpoint(metas, RUN, mode="min").step == 20
    assert retention.best_checkpoint(metas, RUN, mode="max").step == 20


def test_no_best_when_every_score_is_nan_or_missing():
    assert retention.best_checkpoint([meta(10, math.nan), meta(20)], RUN) is None


def test_a_tie_goes_to_the_earliest_step():
    metas = [meta(30, 1.0), meta(10, 1.0), meta(20, 1.0)]
    assert retention.best_checkpoint(metas, RUN).step == 10


def test_a_metric_counts_only_when_measured_on_that_step():
    stale = meta(20, 0.1, metrics_step=10)  # the metric belongs to other weights
    assert stale.metric("val_loss") is None
    assert retention.best_checkpoint([meta(10, 1.0), stale], RUN).step == 10


def test_best_can_monitor_another_metric():
    a, b = meta(10), meta(20)
    a.metrics, b.metrics = {"accuracy": 0.7}, {"accuracy": 0.9}
    assert retention.best_checkpoint([a, b], RUN, monitor="accuracy", mode="max").step == 20


def test_best_ignores_other_runs():
    metas = [meta(10, 2.0), meta(20, 0.5, run_id=OTHER)]
    assert retention.best_checkpoint(metas, RUN).step == 10


# --- latest -----------------------------------------------------------------------------------


def test_latest_is_the_highest_step_whatever_the_order_given():
    metas = [meta(300), meta(100), meta(200)]
    assert retention.latest_checkpoint(metas, RUN).step == 300


def test_latest_ignores_other_runs_and_foreign_files():
    metas = [meta(100), meta(500, run_id=OTHER), meta(900, kind=FOREIGN, run_id=None)]
    assert retention.latest_checkpoint(metas, RUN).step == 100


def test_latest_on_disk_follows_steps_not_file_times(tmp_path):
    store = CheckpointStore(tmp_path, RUN)
    for step in (100, 200, 300):
        store.save(meta(step), lambda f, step=step: f.write(b"x" * step))
    now = time.time()
    for offset, step in enumerate((100, 200, 300)):  # the newest step gets the oldest mtime
        stamp = now - 1000 * offset
        os.utime(tmp_path / checkpoint_name(step), (stamp, stamp))
        os.utime(tmp_path / checkpoint_name(step).replace(".pt", ".meta.json"), (stamp, stamp))
    assert store.latest().meta.step == 300
    assert retention.latest_checkpoint(store.scan(), RUN).step == 300
    assert [m.step for m in store.scan()] == [100, 200, 300]


def test_best_and_latest_agree_with_the_separate_functions():
    metas = [meta(30, 2.0), meta(10, math.nan), meta(20, 1.0), meta(40, 1.0), meta(50), meta(60, 0.5, run_id=OTHER)]
    for mode in ("min", "max"):
        best, latest = retention.best_and_latest(metas, RUN, mode=mode)
        assert best is retention.best_checkpoint(metas, RUN, mode=mode)
        assert latest is retention.latest_checkpoint(metas, RUN)
    assert retention.best_and_latest([], RUN) == (None, None)


# --- what a prune deletes ---------------------------------------------------------------------


def test_keeps_the_newest_keep_last_rotating_checkpoints():
    metas = [meta(s) for s in (10, 20, 30, 40, 50)]
    assert prune(metas, 2) == [10, 20, 30]


def test_keep_last_zero_keeps_everything():
    metas = [meta(s) for s in range(10, 110, 10)]
    assert prune(metas, 0) == []


def test_best_is_never_pruned():
    metas = [meta(10, 0.5), meta(20, 2.0), meta(30, 3.0), meta(40, 4.0)]
    assert prune(metas, 1) == [20, 30]


def test_manual_and_pinned_are_never_pruned_and_do_not_use_up_keep_last():
    metas = [meta(10, kind=MANUAL), meta(20, pinned=True), meta(30), meta(40), meta(50)]
    assert prune(metas, 1) == [30, 40]
    assert prune(metas, 2) == [30]


def test_final_and_interrupted_rotate_like_periodic():
    metas = [meta(10, kind=INTERRUPTED), meta(20, kind=FINAL), meta(30), meta(40)]
    assert prune(metas, 1) == [10, 20, 30]


def test_latest_survives_even_when_it_is_manual():
    metas = [meta(10), meta(20), meta(30, kind=MANUAL)]
    assert prune(metas, 1) == [10]


def test_other_runs_and_foreign_files_are_never_candidates():
    metas = [
        meta(5, run_id=OTHER),
        meta(6, run_id=None),
        meta(7, kind=FOREIGN, run_id=None),
        meta(10),
        meta(20),
        meta(30),
    ]
    assert prune(metas, 1) == [10, 20]


def test_a_stale_metric_does_not_protect_a_checkpoint():
    metas = [meta(10, 0.1, metrics_step=5), meta(20, 1.0), meta(30, 2.0)]
    assert prune(metas, 1) == [10]


# --- property: any sequence of saves, pins and keep-last changes ---------------------------------

val_losses = st.one_of(st.none(), st.just(math.nan), st.sampled_from([0.5, 1.0, 2.0]), st.floats(0.1, 5.0))
saves = st.tuples(
    st.just("save"),
    st.sampled_from([PERIODIC, PERIODIC, PERIODIC, FINAL, INTERRUPTED, MANUAL]),
    val_losses,
    st.booleans(),  # whether the metric was measured at this step
)
pins = st.tuples(st.just("pin"), st.integers(0, 50), st.booleans())
keep_lasts = st.tuples(st.just("keep_last"), st.integers(0, 4))
operations = st.lists(st.one_of(saves, saves, saves, pins, keep_lasts), min_size=1, max_size=40)


def ranking(m):
    return (retention.score_for_ranking(m.metric("val_loss"), "min"), m.step)


@settings(max_examples=300, deadline=None)
@given(operations, st.integers(0, 4), st.lists(st.integers(1, 200), max_size=5))
def test_any_history_of_saves_keeps_best_latest_pinned_and_at_most_keep_last(ops, keep_last, other_steps):
    others = [meta(s, 0.01, run_id=OTHER) for s in other_steps]  # better scores, newer steps
    kept: list[CheckpointMeta] = []
    ever_saved: list[CheckpointMeta] = []
    step = 0
    for op in ops:
        if op[0] == "keep_last":
            keep_last = op[1]
        elif op[0] == "pin":
            if kept:
                kept[op[1] % len(kept)].pinned = op[2]
        else:
            _, kind, val_loss, fresh = op
            step += 10
            saved = meta(step, val_loss, kind=kind, metrics_step=step if fresh else step - 1)
            kept.append(saved)
            ever_saved.append(saved)
        doomed = retention.checkpoints_to_prune([*kept, *others], keep_last, RUN)
        names = {d.name for d in doomed}
        assert all(d.run_id == RUN for d in doomed)
        assert all(d.kind in ROTATING_KINDS and not d.pinned for d in doomed)
        if keep_last == 0:
            assert not doomed
        kept = [m for m in kept if m.name not in names]

        if ever_saved:
            assert ever_saved[-1] in kept  # the latest
            best_ever = min(ever_saved, key=ranking)
            if math.isfinite(ranking(best_ever)[0]):
                assert best_ever in kept
        best = retention.best_checkpoint(kept, RUN)
        latest = retention.latest_checkpoint(kept, RUN)
        both = retention.best_and_latest([*kept, *others], RUN)
        assert both[0] is best and both[1] is latest
        unprotected = [m for m in kept if m.kind in ROTATING_KINDS and not retention.is_protected(m, best, latest)]
        if keep_last:
            assert len(unprotected) <= keep_last
            newest_rotating = [m for m in kept if m.kind in ROTATING_KINDS][-keep_last:]
            assert all(m in newest_rotating for m in unprotected)
        assert all(m in kept for m in ever_saved if m.kind == MANUAL)


@pytest.mark.parametrize("keep_last", [1, 3])
def test_pruning_twice_deletes_nothing_more(keep_last):
    metas = [meta(s, 1.0 / s) for s in range(10, 100, 10)]
    doomed = {m.name for m in retention.checkpoints_to_prune(metas, keep_last, RUN)}
    survivors = [m for m in metas if m.name not in doomed]
    assert retention.checkpoints_to_prune(survivors, keep_last, RUN) == []
