"""The loss chart as a user reads it: what each key makes the caption say, markers where their
steps are, and the screen at 80x24, 100x30 and 120x40 with nothing cut mid-word."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from scripted_run import CHECKPOINT_STEPS, LAST_STEP, RUN_NAME, ScriptedLaunch, freeze_dashboard
from tui_pilot import wait_for
from tui_trainer.engine.checkpoints.meta import checkpoint_name
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.rundir.layout import store_for
from tui_trainer.tui.app import make_app
from tui_trainer.tui.chart_markers import GLYPHS
from tui_trainer.tui.run_model import Changed
from tui_trainer.tui.widgets.checkpoint_table import CheckpointTable
from tui_trainer.tui.widgets.compact_footer import CompactFooter
from tui_trainer.tui.widgets.event_log import EventLog
from tui_trainer.tui.widgets.loss_chart import LossChart

PAUSE_STEP = 150


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    freeze_dashboard(monkeypatch)
    yield
    monkeypatch.undo()
    time.tzset()


def paused_launch(tmp_path: Path) -> ScriptedLaunch:
    """The scripted run, paused and resumed at PAUSE_STEP."""
    launch = ScriptedLaunch(tmp_path)
    at = next(i for i, e in enumerate(launch.events) if isinstance(e, ev.StepCompleted) and e.step == PAUSE_STEP)
    when = launch.events[at].time
    launch.events[at + 1:at + 1] = [ev.Paused(PAUSE_STEP, time=when), ev.Resumed(PAUSE_STEP, time=when)]
    return launch


async def settled(pilot) -> LossChart:
    app = pilot.app
    await wait_for(pilot, lambda: app.model.step == LAST_STEP, what="the last scripted step")
    await wait_for(pilot, lambda: len(app.checkpoints) == len(CHECKPOINT_STEPS), what="the checkpoint table")
    chart = app.query_one(LossChart)
    await wait_for(pilot, lambda: len(chart.checkpoint_marks) == len(CHECKPOINT_STEPS), what="the checkpoint marks")
    chart.redraw(force=True)
    await pilot.pause(0.1)
    return chart


def screen_lines(app) -> list[str]:
    console = Console(width=app.size.width, record=True, color_system=None, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text().splitlines()


def caption(chart: LossChart) -> str:
    return str(chart.query_one("#chart-caption").render())


def test_each_chart_key_changes_what_the_caption_says(frozen, tmp_path):
    app = make_app(paused_launch(tmp_path), theme="mono")

    async def scenario():
        async with app.run_test(size=(120, 40)) as pilot:
            chart = await settled(pilot)
            said = caption(chart)
            assert "y: early fall left out (auto)" in said  # past the first steps, by default
            assert "smoothed" not in said
            assert "+ saved  * best  P pause  R resume" in said  # the markers' legend, where it fits
            for key, words in [("m", "smoothed: EMA 0.9"), ("right_square_bracket", "smoothed: EMA 0.95"),
                               ("left_square_bracket", "smoothed: EMA 0.9"), ("y", "y: whole curve"),
                               ("y", "y: early fall left out"), ("l", "log scale"), ("w", "last 100 steps")]:
                await pilot.press(key)
                await pilot.pause(0.05)
                assert words in caption(chart), (key, caption(chart))
                assert caption(chart) != said, key
                said = caption(chart)
            assert "(auto)" not in said  # y was asked for, not chosen
            await pilot.press("y")
            assert "(auto)" in caption(chart)
            await pilot.press("m")
            assert "smoothed" not in caption(chart) and not chart.smoothing

    import asyncio
    asyncio.run(scenario())


def test_markers_sit_at_their_steps(frozen, tmp_path):
    launch = paused_launch(tmp_path)
    store_for(launch.run_dir).set_pinned(checkpoint_name(200), True)
    app = make_app(launch, theme="mono")

    async def scenario():
        async with app.run_test(size=(120, 40)) as pilot:
            chart = await settled(pilot)
            # A roll-back: a trainer started again from step 100's checkpoint, below where the curve got.
            app.model.apply([ev.Started(str(launch.run_dir), "r", "demo", 100, 600, "cpu",
                                        resumed_from=str(launch.run_dir / checkpoint_name(100)))])
            app.panels.show(Changed.CHART)
            chart.redraw(force=True)
            await pilot.pause(0.1)
            kinds = {(m.kind, m.step) for m, _, _ in chart.drawn_markers}
            assert {("resumed_from", 100), ("pinned", 200), ("best", 300), ("pause", PAUSE_STEP),
                    ("rollback", 100)} <= kinds
            canvas = chart.plot.query_one("#plot").region
            x0, x1 = chart.drawn_x_range
            lines = screen_lines(app)
            columns = canvas.width - 2  # inside the plot's frame
            for marker, column, row in chart.drawn_markers:
                expected = 1 + (marker.step - x0) / (x1 - x0) * (columns - 1)
                assert abs(column - expected) <= 1, marker
                shown = lines[canvas.y + row][canvas.x + column]
                covered = [m.kind for m, c, r in chart.drawn_markers if (c, r) == (column, row)]
                assert shown == GLYPHS[covered[-1]], (marker, shown)  # the last drawn at a cell shows

    import asyncio
    asyncio.run(scenario())


def footer_words(app) -> set[str]:
    words = {"^p", "palette"}
    for binding in app.BINDINGS:
        words.add(app.get_key_display(binding))
        words.update(binding.description.split())
    return words


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (120, 40)], ids=["80x24", "100x30", "120x40"])
def test_nothing_is_cut_mid_word(frozen, tmp_path, size):
    app = make_app(paused_launch(tmp_path), theme="mono")

    async def scenario():
        async with app.run_test(size=size) as pilot:
            chart = await settled(pilot)
            lines = screen_lines(app)
            # The caption: all of it on screen, its parts whole.
            text = caption(chart)
            row = chart.query_one("#chart-caption").region.y
            assert text.strip() and text in lines[row], (text, lines[row])
            # The footer: each word a key or a whole description.
            footer = lines[-1].replace("▏", " ").split()
            assert set(footer) <= footer_words(app), footer
            assert "?" in footer and "^p" in footer
            assert app.query_one(CompactFooter).shown_actions
            # The checkpoint marks: whole, and the table never scrolls sideways.
            table = app.query_one(CheckpointTable)
            assert table.virtual_size.width <= table.scrollable_content_region.width
            screen = "\n".join(lines)
            for checkpoint in app.checkpoints:
                marks = checkpoint.cells[-1]
                assert not marks or marks in screen
            if size == (80, 24):
                assert RUN_NAME in lines[0]
                assert chart.plot.size.height >= 10
            if size == (120, 40):
                assert table.outer_size.width < size[0] // 2  # three rows do not take half the width

    import asyncio
    asyncio.run(scenario())


def test_the_event_log_wraps_at_words_and_again_on_resize(frozen, tmp_path):
    app = make_app(ScriptedLaunch(tmp_path), theme="mono")
    long = ("saved step_00000100.safetensors (periodic, 1.4 MB, 0.02 s) after a long evaluation "
            "of every shard in the validation set")

    def rows(log: EventLog) -> list[str]:
        return [strip.text.rstrip() for strip in log.lines]

    async def scenario():
        async with app.run_test(size=(120, 40)) as pilot:
            await settled(pilot)
            log = app.query_one(EventLog)
            app.model.note(long)
            app.panels.show(Changed.LOG)
            await pilot.pause(0.1)
            wide = rows(log)
            await pilot.resize_terminal(80, 24)
            await pilot.pause(0.3)
            narrow = rows(log)
            width = log.scrollable_content_region.width
            assert max(len(r) for r in narrow) <= width
            # At 80x24 the log has the whole width (beside the table at 120x40): the line takes it.
            assert len(narrow) < len(wide) and max(map(len, narrow)) > max(map(len, wide))
            words = " ".join(" ".join(narrow).split())
            assert "step_00000100.safetensors" in words.split()  # no word broken across lines
            assert long in " ".join(" ".join(r for r in narrow).split())

    import asyncio
    asyncio.run(scenario())
