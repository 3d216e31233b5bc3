"""The `r` modal says what the LR will do on the new target, and offers a re-warm (Pilot)."""

from __future__ import annotations

from typing import Any

import torch
from textual.app import App
from textual.widgets import Checkbox, Input, Label
from tui_pilot import run_async, screen_up, wait_for

from tui_trainer.engine.loop.job import load_job
from tui_trainer.engine.loop.lr_takeover import preview_retarget
from tui_trainer.engine.loop.rewarm import Rewarm
from tui_trainer.tui.screens.target_modal import NewTarget, TargetScreen

UNSET = object()


class Host(App):
    def __init__(self, screen: TargetScreen) -> None:
        super().__init__()
        self.modal = screen
        self.result: Any = UNSET

    def on_mount(self) -> None:
        self.push_screen(self.modal, self._done)

    def _done(self, result: Any) -> None:
        self.result = result


def one_cycle_at(step: int, total: int) -> Any:
    job = load_job("tests.lr_jobs:one_cycle", max_iters=total)
    for _ in range(step):
        job.optimizer.step()
        job.scheduler.step()
    return job


def text(app: App, selector: str) -> str:
    return str(app.screen.query_one(selector, Label).render())


def test_the_modal_previews_the_takeover_and_a_re_warm_then_returns_both():
    torch.set_num_threads(1)
    job = one_cycle_at(20, 40)
    lr_now = job.optimizer.param_groups[0]["lr"]
    app = Host(TargetScreen(40, 20, plan_lr=lambda target, rewarm: preview_retarget(job, 20, 40, target, rewarm)))

    async def scenario() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: screen_up(app, TargetScreen), what="the modal")
            assert text(app, "#lr-plan") == f"LR schedule unchanged: LR {lr_now:.1e} now"
            await pilot.press("1", "0", "0")
            await wait_for(pilot, lambda: "step 100" in text(app, "#lr-plan"), what="the new plan")
            assert text(app, "#lr-plan") == (
                f"LR continues from {lr_now:.1e} and decays (cosine) to 4.0e-07 at step 100, "
                "taken over from OneCycleLR; all 2 param groups keep their ratios")
            assert not app.screen.query_one("#rewarm-fraction", Input).display

            app.screen.query_one("#rewarm-on", Checkbox).value = True  # 0.5 of the peak: below the LR now
            await wait_for(pilot, lambda: "not above" in text(app, "#lr-plan"), what="the refusal")
            assert app.screen.query_one("#lr-plan").has_class("-refused")
            assert text(app, "#lr-plan") == (f"re-warm to 0.5 of the peak (5.0e-02) is not above the LR now "
                                             f"({lr_now:.1e}): choose a larger fraction, or extend without re-warm")
            await pilot.click("#target-ok")
            assert isinstance(app.screen, TargetScreen), "a refused re-warm keeps the modal open"
            assert "not above" in text(app, "#target-error")

            app.screen.query_one("#rewarm-fraction", Input).value = "0.9"
            app.screen.query_one("#rewarm-steps", Input).value = "10"
            await wait_for(pilot, lambda: "warms up" in text(app, "#lr-plan"), what="the re-warm plan")
            assert text(app, "#lr-plan") == (
                f"LR warms up from {lr_now:.1e} to 9.0e-02 by step 30, then decays (cosine) to 4.0e-07 at step 100, "
                "taken over from OneCycleLR; all 2 param groups keep their ratios")
            await pilot.click("#target-ok")
            await wait_for(pilot, lambda: app.result is not UNSET, what="the modal to close")

    run_async(scenario)
    assert app.result == NewTarget(100, Rewarm(0.9, 10))


def test_without_a_planner_the_modal_is_the_plain_target_form():
    app = Host(TargetScreen(400, 10))

    async def scenario() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: screen_up(app, TargetScreen), what="the modal")
            assert not app.screen.query("#lr-plan") and not app.screen.query("#rewarm-on")
            app.screen.query_one("#target-input", Input).value = "600"
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.result is not UNSET, what="the modal to close")

    run_async(scenario)
    assert app.result == NewTarget(600)
