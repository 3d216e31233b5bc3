"""A changed target with torch's schedulers, end to end: jobs as users write them (tests/lr_jobs.py)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.loop import launch
from tui_trainer.engine.loop.lr_takeover import TakenOver, preview_retarget
from tui_trainer.engine.loop.rewarm import Rewarm, RewarmRefused, parse_rewarm
from tui_trainer.engine.rundir.layout import RunSettings

RATIO = 5.0  # tests/lr_jobs.py: group 0 at 0.1, group 1 at 0.02


class Recorder:
    """Every step's per-group LRs (the LRs the next step will use), and the run's events."""

    def __init__(self, change_at: dict[int, int] | None = None, rewarm: Rewarm | None = None) -> None:
        self.change_at = change_at or {}
        self.rewarm = rewarm
        self.trainer = None
        self.lrs: dict[int, list[float]] = {}
        self.events: list[ev.Event] = []

    def on_event(self, event: ev.Event) -> None:
        self.events.append(event)
        if isinstance(event, ev.StepCompleted):
            self.lrs[event.step] = [float(g["lr"]) for g in self.trainer.job.optimizer.param_groups]
            if event.step in self.change_at:
                self.trainer.control.set_target(self.change_at[event.step], self.rewarm)

    def notes(self) -> list[str]:
        return [e.note for e in self.events if isinstance(e, ev.TargetChanged)]

    def group0(self, first: int, last: int) -> list[float]:
        return [self.lrs[step][0] for step in range(first, last + 1)]


def start(tmp_path: Path, job: str, max_iters: int, recorder: Recorder, *, every: int = 0, eval_every: int = 0,
          name: str = "run"):
    trainer = launch.start_run(
        tmp_path / name, job=f"tests.lr_jobs:{job}",
        settings=RunSettings(max_iters=max_iters, eval_every=eval_every, log_every=1),
        policy=CheckpointPolicy(every_steps=every, keep_last=0, eval_before_save=False),
        on_event=recorder.on_event,
    )
    recorder.trainer = trainer
    return trainer


def resume(run_dir: Path, recorder: Recorder, max_iters: int | None = None):
    trainer = launch.resume_run(run_dir, max_iters=max_iters, on_event=recorder.on_event)
    recorder.trainer = trainer
    return trainer


def assert_smooth_decay(rec: Recorder, change: int, end: int, floor: float) -> None:
    """Continuous at the change, never up, > 0 until the end, at `floor` on the new target, ratios kept."""
    lrs = rec.group0(change - 2, end)
    before = lrs[1] - lrs[2]  # the old schedule's last step
    assert abs(lrs[2] - lrs[3]) <= max(abs(before), 1e-12), "a jump at the change"
    decay = rec.group0(change, end)
    assert all(b <= a for a, b in itertools.pairwise(decay)), "the LR went up after the change"
    assert min(rec.group0(change, end - 1)) > 0, "the LR sat at 0 before the end"
    assert decay[-1] == pytest.approx(floor, abs=1e-12)
    for step in range(change, end + 1):
        g0, g1 = rec.lrs[step]
        assert g0 == pytest.approx(RATIO * g1, rel=1e-9), f"group ratio lost at step {step}"


@pytest.mark.parametrize(("job", "floor", "shape"), [
    ("one_cycle", 0.1 / 25 / 1e4, "cosine"),  # OneCycleLR's min_lr: initial_lr / final_div_factor
    ("cosine", 0.0, "cosine"),
    ("linear", 0.0, "linear"),
])
def test_extending_mid_run_takes_the_scheduler_over_and_decays_smoothly(tmp_path, job, floor, shape):
    rec = Recorder(change_at={20: 70})
    result = start(tmp_path, job, 30, rec).run()
    assert (result.reason, result.step) == ("target", 70)  # OneCycleLR would raise at step 31
    assert_smooth_decay(rec, 20, 70, floor)
    [note] = rec.notes()
    lr_now = rec.lrs[20][0]
    assert note == (f"LR continues from {lr_now:.1e} and decays ({shape}) to {floor:.1e} at step 70, taken over "
                    f"from {rec.trainer.job.scheduler.original.__class__.__name__}; all 2 param groups keep their ratios")


def test_extending_on_resume_takes_over_too_and_a_second_change_keeps_the_floor(tmp_path):
    rec = Recorder()
    run_dir = start(tmp_path, "one_cycle", 30, rec, every=10).run().last_checkpoint.parent
    end_lr = rec.lrs[30][0]
    rec = Recorder(change_at={45: 90})
    result = resume(run_dir, rec, max_iters=60).run()
    assert (result.reason, result.step) == ("target", 90)
    floor = 0.1 / 25 / 1e4
    rec.lrs[30] = [end_lr, end_lr / RATIO]
    decay = rec.group0(30, 90)
    assert all(b <= a for a, b in itertools.pairwise(decay)) and min(decay[:-1]) > 0
    assert decay[1] == pytest.approx(end_lr, rel=0.01) and decay[-1] == pytest.approx(floor)
    [first, second] = rec.notes()
    assert first.startswith(f"LR continues from {end_lr:.1e} and decays (cosine) to {floor:.1e} at step 60, "
                            "taken over from OneCycleLR")
    assert second.startswith(f"LR continues from {rec.lrs[45][0]:.1e} and decays (cosine) to {floor:.1e} at step 90")


def test_re_warm_after_decay_warms_to_a_share_of_the_peak_then_decays(tmp_path):
    rec = Recorder()
    run_dir = start(tmp_path, "linear", 20, rec).run().last_checkpoint.parent
    assert rec.lrs[20] == [0.0, 0.0]  # a linear LambdaLR ends at 0
    rec = Recorder()
    trainer = resume(run_dir, rec, max_iters=60)
    trainer.rewarm_at_start(Rewarm(0.5, 10))
    trainer.run()
    warm = rec.group0(21, 30)
    assert warm == pytest.approx([0.05 * k / 10 for k in range(1, 11)])
    assert_smooth_decay(rec, 30, 60, 0.0)
    [note] = rec.notes()
    assert note.startswith("LR warms up from 0.0e+00 to 5.0e-02 by step 30, then decays (linear) to 0.0e+00 at step 60")


def test_a_re_warm_that_cannot_be_is_refused_with_what_to_choose(tmp_path):
    trainer = start(tmp_path, "cosine", 30, Recorder())
    with pytest.raises(RewarmRefused, match=r"re-warm to 0.5 of the peak \(5.0e-02\) is not above the LR now "
                                            r"\(1.0e-01\): choose a larger fraction, or extend without re-warm"):
        preview_retarget(trainer.job, 0, 30, 60, Rewarm(0.5))
    trainer.run()
    with pytest.raises(RewarmRefused, match=r"a re-warm of 30 steps does not fit before the new target "
                                            r"\(30 steps away\): choose fewer steps"):
        preview_retarget(trainer.job, 30, 30, 60, Rewarm(0.5, 30))


@pytest.mark.parametrize(("text", "expected"), [("0.5", Rewarm(0.5)), ("0.25:200", Rewarm(0.25, 200))])
def test_parse_rewarm(text, expected):
    assert parse_rewarm(text) == expected


@pytest.mark.parametrize("text", ["", "half", "0", "1.5", "0.5:", "0.5:x", "0.5:0", "nan"])
def test_parse_rewarm_refuses_bad_values_in_one_line(text):
    with pytest.raises(ValueError) as caught:
        parse_rewarm(text)
    assert "\n" not in str(caught.value)


def test_resume_after_a_takeover_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    whole = Recorder(change_at={12: 50})
    start(tmp_path, "one_cycle", 30, whole, name="whole").run()
    first = Recorder(change_at={12: 50})
    trainer = start(tmp_path, "one_cycle", 30, first, every=10, name="cut")
    stop_at_25 = first.on_event

    def on_event(event: ev.Event) -> None:
        stop_at_25(event)
        if isinstance(event, ev.StepCompleted) and event.step == 25:
            trainer.control.stop("interrupted")

    trainer.on_event = on_event
    assert trainer.run().reason == "interrupted"
    assert isinstance(trainer.job.scheduler, TakenOver)
    second = Recorder()
    resumed = resume(tmp_path / "cut", second)
    assert isinstance(resumed.job.scheduler, TakenOver)
    resumed.run()
    assert second.lrs == {step: whole.lrs[step] for step in range(26, 51)}
    weights = [torch.load(tmp_path / name / "step_00000050.pt", weights_only=True)["model"] for name in ("whole", "cut")]
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


def test_plateau_steps_with_the_metric_at_scheduled_evaluations_only(tmp_path):
    def lrs_of(run: str, save_at: set[int]) -> tuple[dict[int, list[float]], int]:
        rec = Recorder()
        trainer = start(tmp_path, "plateau", 30, rec, eval_every=5, name=run)
        record = rec.on_event

        def on_event(event: ev.Event) -> None:
            record(event)
            if isinstance(event, ev.StepCompleted) and event.step in save_at:
                trainer.control.save_now()

        trainer.on_event = on_event
        assert trainer.run().reason == "target"  # no TypeError at step 1
        return rec.lrs, trainer.job.scheduler.last_epoch

    plain, evaluations = lrs_of("plain", set())
    saved, evaluations_with_saves = lrs_of("saved", {2, 3, 7, 8, 12, 13})
    assert evaluations == evaluations_with_saves == 6  # steps 5, 10, ..., 30
    assert saved == plain  # save-now's evaluations never moved the LR
    # val_loss never improves; patience 1: halved at the 3rd and 5th evaluation (steps 15 and 25),
    # after the step's line (the LR of step 16 on)
    assert [plain[step][0] for step in (15, 16, 25, 26)] == [0.1, 0.05, 0.05, 0.025]
    assert plain[26][1] == pytest.approx(plain[26][0] / RATIO)


def test_plateau_with_a_new_target_keeps_following_its_metric(tmp_path):
    rec = Recorder(change_at={10: 40})
    trainer = start(tmp_path, "plateau", 20, rec, eval_every=5)
    assert trainer.run().step == 40
    assert rec.notes() == [("LR 1.0e-01 now; ReduceLROnPlateau keeps lowering it when the monitored metric stalls, "
                            "at scheduled evaluations")]
