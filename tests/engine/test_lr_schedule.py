import json
import math

import pytest
import torch

from tui_trainer.engine.loop.job import Retargetable
from tui_trainer.engine.loop.lr_schedule import WarmupCosine, cosine_decay, warmup_cosine_lr

PEAK, FLOOR = 1e-3, 1e-5


def make_optimizer(groups: int = 1) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        [{"params": [torch.nn.Parameter(torch.zeros(1))]} for _ in range(groups)], lr=0.5
    )


def make_schedule(optimizer=None, *, total=1000, warmup=100) -> WarmupCosine:
    return WarmupCosine(
        optimizer or make_optimizer(),
        peak_lr=PEAK,
        total_steps=total,
        warmup_steps=warmup,
        min_lr=FLOOR,
    )


def run_to(schedule: WarmupCosine, step: int) -> None:
    while schedule.current_step < step:
        schedule.step()


def lrs(schedule: WarmupCosine, steps: int) -> list[float]:
    """The LR now and after each of the next `steps` steps."""
    out = [schedule.get_last_lr()[0]]
    for _ in range(steps):
        schedule.step()
        out.append(schedule.get_last_lr()[0])
    return out


def largest_change(values: list[float]) -> float:
    return max(abs(b - a) for a, b in zip(values, values[1:]))


def test_is_retargetable():
    assert isinstance(make_schedule(), Retargetable)


def test_constructor_sets_the_lr_of_step_zero_in_every_group():
    optimizer = make_optimizer(groups=2)
    schedule = make_schedule(optimizer)
    assert schedule.get_last_lr() == pytest.approx([PEAK / 101] * 2)
    assert [group["lr"] for group in optimizer.param_groups] == schedule.get_last_lr()
    assert all(type(lr) is float for lr in schedule.get_last_lr())


def test_warm_up_is_linear_then_cosine_reaches_the_floor_and_stays():
    values = lrs(make_schedule(), 1200)
    assert values[49] == pytest.approx(PEAK * 50 / 101)
    assert values[100] == pytest.approx(PEAK)
    assert values[550] == pytest.approx((PEAK + FLOOR) / 2)
    assert values[1000] == pytest.approx(FLOOR)
    assert set(values[1000:]) == {FLOOR}
    assert all(b >= a for a, b in zip(values[:100], values[1:101]))
    assert all(b <= a for a, b in zip(values[100:], values[101:]))


def test_without_warm_up_step_zero_is_at_peak():
    schedule = WarmupCosine(make_optimizer(), peak_lr=PEAK, total_steps=10)
    assert schedule.get_last_lr() == [PEAK]
    assert lrs(schedule, 10)[-1] == 0.0


def test_pure_functions_agree_with_the_schedule():
    assert warmup_cosine_lr(0, peak_lr=1.0, min_lr=0.0, warmup_steps=0, total_steps=4) == 1.0
    assert warmup_cosine_lr(
        2, peak_lr=1.0, min_lr=0.0, warmup_steps=0, total_steps=4
    ) == pytest.approx(0.5)
    assert cosine_decay(9, start=0, end=5, start_lr=1.0, end_lr=0.25) == 0.25


def test_retarget_mid_decay_continues_smoothly_to_the_new_floor():
    schedule = make_schedule()
    before = lrs(schedule, 800)
    lr_before = before[-1]
    note = schedule.retarget(800, 5000)
    after = lrs(schedule, 4300)
    normal_step = largest_change(before[100:])

    assert abs(after[0] - lr_before) <= normal_step
    assert largest_change(after) <= normal_step
    assert max(after) <= lr_before  # no jump back up towards the peak
    assert after[200] > 2 * FLOOR  # not stuck at the old floor once the old target passes
    assert after[4200 - 1] > FLOOR
    assert after[4200] == pytest.approx(FLOOR)  # step 5000
    assert after[4200:] == pytest.approx([FLOOR] * 101)
    assert schedule.target == 5000
    assert note == f"LR continues from {lr_before:.1e} and decays to {FLOOR:.1e} at step 5000"


def test_retarget_to_an_earlier_target_decays_faster_without_a_jump():
    schedule = make_schedule(total=5000)
    run_to(schedule, 1000)
    lr_before = schedule.get_last_lr()[0]
    schedule.retarget(1000, 1200)
    after = lrs(schedule, 200)
    assert after[0] == lr_before
    assert after[-1] == pytest.approx(FLOOR)


def test_retarget_during_warm_up_only_extends_the_total():
    schedule = make_schedule()
    run_to(schedule, 50)
    lr_before = schedule.get_last_lr()[0]
    note = schedule.retarget(50, 5000)
    after = lrs(schedule, 4950)
    assert after[0] == lr_before
    assert after[50] == pytest.approx(PEAK)  # step 100: warm-up ends as planned
    assert after[4950] == pytest.approx(FLOOR)
    assert after[2500] == pytest.approx((PEAK + FLOOR) / 2)  # step 2550, the new cosine's midpoint
    assert "warms up" in note and "5000" in note


def test_retarget_below_the_end_of_warm_up_decays_from_the_current_lr():
    schedule = make_schedule()
    run_to(schedule, 50)
    lr_before = schedule.get_last_lr()[0]
    schedule.retarget(50, 80)
    after = lrs(schedule, 30)
    assert after[0] == lr_before
    assert max(after) == lr_before
    assert after[-1] == pytest.approx(FLOOR)


def test_retarget_after_the_old_target_holds_the_floor_and_says_so():
    schedule = make_schedule()
    run_to(schedule, 1200)
    note = schedule.retarget(1200, 2000)
    assert set(lrs(schedule, 900)) == {FLOOR}
    assert note == f"LR stays at its floor {FLOOR:.1e} until step 2000"


def test_retarget_to_the_same_target_changes_nothing():
    schedule = make_schedule()
    run_to(schedule, 500)
    expected = make_schedule()
    run_to(expected, 500)
    assert "unchanged" in schedule.retarget(500, 1000)
    assert lrs(schedule, 600) == lrs(expected, 600)


def test_a_second_retarget_is_smooth_too():
    schedule = make_schedule()
    run_to(schedule, 800)
    schedule.retarget(800, 5000)
    before = lrs(schedule, 1200)
    schedule.retarget(2000, 3000)
    after = lrs(schedule, 1000)
    assert after[0] == before[-1]
    assert all(b <= a for a, b in zip(after, after[1:]))
    assert after[-1] == pytest.approx(FLOOR)


def test_state_dict_round_trip_reproduces_the_lrs_after_a_retarget():
    schedule = make_schedule()
    run_to(schedule, 800)
    schedule.retarget(800, 5000)
    run_to(schedule, 1500)
    state = json.loads(json.dumps(schedule.state_dict()))
    assert state["anchors"] == [[800, pytest.approx(schedule.lr_at(800)), 5000]]

    optimizer = make_optimizer()
    resumed = WarmupCosine(optimizer, peak_lr=0.1, total_steps=10)  # the state overrides these
    resumed.load_state_dict(state)
    assert optimizer.param_groups[0]["lr"] == schedule.get_last_lr()[0]
    assert lrs(resumed, 4000) == lrs(schedule, 4000)
    assert resumed.target == 5000


def test_state_dict_holds_only_plain_numbers():
    schedule = make_schedule()
    schedule.retarget(0, 20)
    state = schedule.state_dict()

    def plain(value):
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return type(value) in (int, float)

    assert all(plain(value) for value in state.values())


def test_load_state_dict_rejects_garbage():
    with pytest.raises(ValueError, match="WarmupCosine state"):
        make_schedule().load_state_dict({"peak_lr": 1.0})


@pytest.mark.parametrize(
    "step, new_total", [(800, 800), (800, 700), (-1, 10), (1.5, 10), (5, 10.0), (5, None)]
)
def test_retarget_rejects_bad_targets(step, new_total):
    schedule = make_schedule()
    with pytest.raises(ValueError):
        schedule.retarget(step, new_total)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"peak_lr": 0.0}, "peak_lr"),
        ({"min_lr": 2e-3}, "min_lr"),
        ({"min_lr": -1.0}, "min_lr"),
        ({"total_steps": 0}, "total_steps"),
        ({"warmup_steps": 1000}, "warmup_steps"),
        ({"warmup_steps": -1}, "warmup_steps"),
    ],
)
def test_constructor_rejects_bad_settings(settings, message):
    arguments = {
        "peak_lr": PEAK,
        "total_steps": 1000,
        "warmup_steps": 100,
        "min_lr": FLOOR,
        **settings,
    }
    with pytest.raises(ValueError, match=message):
        WarmupCosine(make_optimizer(), **arguments)


def test_the_lr_is_always_finite_and_within_bounds():
    schedule = make_schedule(total=300, warmup=30)
    schedule.retarget(200, 700)
    values = lrs(schedule, 800)
    assert all(math.isfinite(v) and FLOOR <= v <= PEAK for v in values)
