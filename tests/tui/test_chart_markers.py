"""What the chart marks: checkpoints by their marks, events by their class name (unknown ones tolerated)."""

from __future__ import annotations

from dataclasses import dataclass

from tui_trainer.engine.loop import events as ev
from tui_trainer.tui.chart_markers import ChartMarker, checkpoint_markers, event_markers
from tui_trainer.tui.run_model import Changed, RunModel
from tui_trainer.tui.widgets.loss_chart import fit_caption


def test_a_checkpoint_shows_the_most_telling_of_its_marks():
    rows = [(300.0, "best latest"), (200.0, "pinned"), (100.0, ""), (50.0, "manual")]
    assert checkpoint_markers(rows, resumed_from=[100.0]) == [
        ChartMarker(50.0, "saved"), ChartMarker(100.0, "resumed_from"), ChartMarker(200.0, "pinned"),
        ChartMarker(300.0, "best")]


@dataclass(frozen=True)
class AnomalySpotted:  # a kind of event this module was written without
    step: int


@dataclass(frozen=True)
class SomethingNew:
    step: int


def test_events_are_marked_by_name_and_unknown_ones_are_tolerated():
    assert event_markers(ev.Paused(120), 300) == [ChartMarker(120.0, "pause")]
    assert event_markers(ev.TargetChanged(130, 600, 900, ""), 300) == [ChartMarker(130.0, "target")]
    assert event_markers(AnomalySpotted(140), 300) == [ChartMarker(140.0, "anomaly")]
    assert event_markers(SomethingNew(150), 300) == []
    resumed = ev.Started("run", "id", "demo", 200, 600, "cpu", resumed_from="run/step_00000200.pt")
    assert event_markers(resumed, 200) == [ChartMarker(200.0, "resume")]
    assert event_markers(resumed, 300) == [ChartMarker(200.0, "rollback")]  # below where the curve got
    assert event_markers(ev.Started("run", "id", "demo", 0, 600, "cpu"), 0) == []


def test_the_model_keeps_the_markers_and_says_the_chart_changed():
    model = RunModel()
    changed = model.apply([ev.Paused(10), AnomalySpotted(12), SomethingNew(13)])
    assert Changed.CHART in changed
    assert [m.kind for m in model.markers] == ["pause", "anomaly"]
    model.apply([ev.Started("run", "id", "demo", 5, 600, "cpu", resumed_from="run/step_00000005.pt")])
    assert model.resumed_from == [5.0] and model.markers[-1].kind == "rollback"


def test_the_caption_shortens_then_leaves_parts_out_whole():
    parts = [(6, "loss", ""), (0, "── train 2.157", "── 2.157"), (1, "o val 2.135", "o 2.135"),
             (3, "y: early fall left out (auto)", "y robust"), (4, "log scale", "log"), (7, "+ saved", "")]
    assert fit_caption(parts, 200).endswith("log scale   + saved")
    assert fit_caption(parts, 80) == "loss   ── train 2.157   o val 2.135   y: early fall left out (auto)   log scale"
    assert fit_caption(parts, 70) == "── train 2.157  o val 2.135  y: early fall left out (auto)  log scale"
    assert fit_caption(parts, 35) == "── 2.157   o 2.135   y robust   log"
    assert fit_caption(parts, 20) == "── 2.157   o 2.135"
    assert fit_caption(parts, 5) == "── 2.157"
