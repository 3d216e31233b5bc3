"""The pure functions behind the loss chart: downsampling, smoothing, log ticks, series."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tui_trainer.tui.chart_data import (
    ROBUST_AFTER_POINTS,
    SMOOTHING_LEVELS,
    Y_ALL,
    Y_AUTO,
    Y_ROBUST,
    LossSeries,
    debiased_ema,
    debiased_ema_array,
    downsample_minmax,
    format_step,
    log_ticks,
    next_smoothing,
    next_y_mode,
    robust_applies,
    y_limits,
)


def test_short_series_come_back_unchanged():
    x, y = downsample_minmax([1, 2, 3], [3.0, 2.0, 1.0], buckets=10)
    assert list(x) == [1, 2, 3] and list(y) == [3.0, 2.0, 1.0]


def test_downsampling_keeps_a_spike_and_the_overall_range():
    steps = np.arange(1, 100_001)
    loss = np.linspace(4.0, 1.0, steps.size)
    loss[54_321] = 9.5  # one diverging step among 100k
    loss[77_777] = 0.25
    x, y = downsample_minmax(steps, loss, buckets=100)
    assert len(x) <= 200
    assert y.max() == 9.5 and x[y.argmax()] == 54_322
    assert y.min() == 0.25
    assert np.all(np.diff(x) > 0), "points must stay in step order for a line plot"


def test_non_finite_losses_are_dropped():
    x, y = downsample_minmax([1, 2, 3, 4], [1.0, math.nan, math.inf, 2.0], buckets=10)
    assert list(x) == [1, 4] and list(y) == [1.0, 2.0]


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=500), st.integers(1, 60))
def test_downsampling_never_exceeds_two_points_per_bucket_and_keeps_extremes(values, buckets):
    x, y = downsample_minmax(range(len(values)), values, buckets)
    assert len(x) <= 2 * buckets if len(values) > 2 * buckets else len(x) == len(values)
    assert y.max() == max(values) and y.min() == min(values)
    assert np.all(np.diff(x) > 0)


def test_ema_is_debiased_from_the_first_value():
    assert debiased_ema([2.0], 0.9) == [pytest.approx(2.0)]
    assert debiased_ema([3.0] * 50, 0.9) == [pytest.approx(3.0)] * 50  # no warm-up ramp from zero
    smoothed = debiased_ema([1.0, 0.0], 0.5)
    assert smoothed[1] == pytest.approx((0.5 * 0.5 * 1.0) / (1 - 0.25))


def test_ema_skips_nan_instead_of_propagating_it():
    smoothed = debiased_ema([math.nan, 2.0, math.nan, 2.0], 0.9)
    assert math.isnan(smoothed[0])
    assert smoothed[1:] == [pytest.approx(2.0)] * 3


def test_log_ticks_use_round_values_inside_the_range():
    assert log_ticks(0.5, 120) == [0.5, 1, 2, 5, 10, 20, 50, 100]
    assert log_ticks(1e-4, 1e4) == pytest.approx([1e-4, 1e-2, 1, 1e2, 1e4])  # 9 decades: every other one
    narrow = log_ticks(2.1, 2.6)
    assert narrow and all(2.1 <= t <= 2.6 for t in narrow)
    assert log_ticks(-1, 5) == []


def test_step_ticks_read_as_people_count_steps():
    assert [format_step(v) for v in (0, 800, 1000, 12_000, 1_500_000)] == ["0", "800", "1k", "12k", "1.5M"]


def test_a_replayed_step_supersedes_the_old_tail():
    series = LossSeries(weight=0.5)
    for step, loss in [(1, 4.0), (2, 3.0), (3, 2.0)]:
        series.append(step, loss)
    series.append(2, 10.0)  # a resume from step 1 replays step 2
    assert list(series.steps) == [1, 2] and list(series.values) == [4.0, 10.0]
    assert list(series.smoothed) == pytest.approx(debiased_ema([4.0, 10.0], 0.5))


def test_the_vectorised_ema_equals_the_running_one_and_continues_from_where_it_ends():
    import numpy as np

    from tui_trainer.tui.chart_data import LossSeries, debiased_ema, debiased_ema_array

    values = np.random.default_rng(0).normal(3.0, 1.0, 20_000)
    values[[0, 7, 5000]] = np.nan
    values[9000] = np.inf
    for weight in (0.0, 0.6, 0.9, 0.999):
        fast, _, _ = debiased_ema_array(values, weight)
        slow = np.array(debiased_ema(list(values), weight))
        assert np.array_equal(np.isnan(fast), np.isnan(slow))
        assert np.allclose(fast[~np.isnan(fast)], slow[~np.isnan(slow)], rtol=1e-12)

    loaded, replayed = LossSeries(), LossSeries()
    loaded.load(np.arange(1, 1001), values[:1000])
    for step, value in enumerate(values[:1000], 1):
        replayed.append(step, float(value))
    loaded.append(1001, 2.5)
    replayed.append(1001, 2.5)
    assert list(loaded.steps) == list(replayed.steps)
    assert np.allclose(np.array(loaded.smoothed[1:]), np.array(replayed.smoothed[1:]), rtol=1e-12)


def test_debiased_ema_starts_at_the_first_point():
    values = np.array([4.3, 4.1, 3.9, 3.0])
    smoothed, _, _ = debiased_ema_array(values, 0.99)
    assert smoothed[0] == pytest.approx(4.3)  # no lag from zero, even at the heaviest smoothing
    assert debiased_ema([4.3], 0.99)[0] == pytest.approx(4.3)


def test_reweighting_a_series_smooths_it_again_and_appends_continue():
    series = LossSeries(0.9)
    series.load([1, 2, 3], [3.0, 2.0, 1.0])
    series.reweight(0.6)
    series.append(4, 1.0)
    assert list(series.smoothed) == pytest.approx(debiased_ema([3.0, 2.0, 1.0, 1.0], 0.6))


def test_robust_y_limits_leave_out_the_early_fall_and_lone_spikes():
    steps = np.arange(1, 1001)
    loss = 2.0 + 8.0 * np.exp(-steps / 20) + 0.01 * np.sin(steps)
    loss[700] = 50.0  # one spike
    low, high = y_limits(loss, robust=True)
    assert 1.9 < low < 2.0 and high < 2.2  # the fall from 10 and the spike are left out
    low_all, high_all = y_limits(loss, robust=False)
    assert high_all > 50.0 and low_all < low


def test_auto_turns_robust_once_past_the_first_steps():
    assert not robust_applies(Y_AUTO, ROBUST_AFTER_POINTS - 1)
    assert robust_applies(Y_AUTO, ROBUST_AFTER_POINTS)
    assert robust_applies(Y_ROBUST, 3) and not robust_applies(Y_ALL, 10_000)
    assert [next_y_mode(m) for m in (Y_AUTO, Y_ALL, Y_ROBUST)] == [Y_ALL, Y_ROBUST, Y_AUTO]


def test_smoothing_steps_through_its_levels_and_stops_at_the_ends():
    assert next_smoothing(0.0, +1) == SMOOTHING_LEVELS[1]
    assert next_smoothing(0.9, +1) == 0.95 and next_smoothing(0.9, -1) == 0.8
    assert next_smoothing(SMOOTHING_LEVELS[-1], +1) == SMOOTHING_LEVELS[-1]
    assert next_smoothing(SMOOTHING_LEVELS[1], -1) == 0.0 and next_smoothing(0.0, -1) == 0.0
