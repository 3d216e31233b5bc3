"""The main screen as pictures: 80x24, 100x30 and 120x40, in a colour theme and the monochrome one.

After an intended change to the dashboard's look, regenerate them with
`pytest tests/tui/test_snapshots.py --snapshot-update` and look at the new SVGs before committing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from scripted_run import CHECKPOINT_STEPS, LAST_STEP, ScriptedLaunch, freeze_dashboard
from tui_pilot import wait_for
from tui_trainer.tui.app import make_app
from tui_trainer.tui.widgets.disk_panel import DiskPanel
from tui_trainer.tui.widgets.loss_chart import LossChart
from tui_trainer.tui.widgets.system_panel import SystemPanel


# The SVGs are what these versions draw; another Textual or textual-plot draws other pixels for the
# same screen, so there the comparison says nothing about this project and is skipped, saying why.
DRAWN_WITH = {"textual": "8.2.8", "textual-plot": "0.10.1"}
OTHER_VERSIONS = {name: version(name) for name, drawn in DRAWN_WITH.items() if version(name) != drawn}
pytestmark = pytest.mark.skipif(
    bool(OTHER_VERSIONS),
    reason=f"snapshots were drawn with {DRAWN_WITH}, installed {OTHER_VERSIONS}: regenerate them with --snapshot-update",
)


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    freeze_dashboard(monkeypatch)
    yield
    monkeypatch.undo()
    time.tzset()


async def settle(pilot) -> None:
    """Wait until the whole script is on screen, then move the cursor to the second checkpoint."""
    app = pilot.app
    await wait_for(pilot, lambda: app.model.step == LAST_STEP, what="the last scripted step")
    await wait_for(pilot, lambda: len(app.checkpoints) == len(CHECKPOINT_STEPS), what="the checkpoint table")
    await wait_for(pilot, lambda: app.query_one(DiskPanel).forecast is not None, what="the disk forecast")
    await wait_for(pilot, lambda: app.query_one(SystemPanel).sample is not None, what="the system sample")
    app.query_one(LossChart).redraw(force=True)  # a drain may have caught half the script
    app.show_counters(now=time.monotonic() + 60)  # the header and progress repaint at most twice a second
    await pilot.press("down")
    await pilot.pause(0.3)
    await pilot.wait_for_scheduled_animations()


@pytest.mark.parametrize("theme", ["dark", "mono"])
@pytest.mark.parametrize("size", [(80, 24), (100, 30), (120, 40)], ids=["80x24", "100x30", "120x40"])
def test_main_screen(snap_compare, frozen, tmp_path: Path, theme: str, size: tuple[int, int]) -> None:
    app = make_app(ScriptedLaunch(tmp_path), theme=theme)
    assert snap_compare(app, terminal_size=size, run_before=settle)
