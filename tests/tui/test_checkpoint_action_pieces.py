"""The plain pieces behind the checkpoint keys: parsing, roll-back plans, export paths, palette entries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tui_trainer.engine.checkpoints.meta import CheckpointMeta
from tui_trainer.session.rollback import RollbackRefused, describe_rollback, plan_rollback
from tui_trainer.tui.app import TrainerApp
from tui_trainer.tui.binding_commands import binding_commands
from tui_trainer.tui.checkpoint_actions import CHECKPOINT_ACTIONS, protection_reasons
from tui_trainer.tui.screens.export_modal import default_export_path, with_format_suffix
from tui_trainer.tui.screens.prune_modal import PrunePreview, parse_keep_last, preview_lines


@dataclass
class _Stored:
    meta: CheckpointMeta
    marks: tuple[str, ...] = ()
    best: bool = False
    latest: bool = False

    @property
    def pinned(self) -> bool:
        return self.meta.pinned


def _stored(step: int, run_id: str = "r1", marks: tuple[str, ...] = (), **meta) -> _Stored:
    return _Stored(CheckpointMeta(f"step_{step:08d}.pt", step, run_id=run_id, size_bytes=1000, **meta), marks,
                   best="best" in marks, latest="latest" in marks)


def test_parse_keep_last():
    assert parse_keep_last(" 3 ") == (3, None)
    assert parse_keep_last("1_0") == (10, None)
    for bad, says in (("abc", "not a whole number"), ("", "not a whole number"), ("-2", "not a whole number"),
                      ("0", "at least 1")):
        keep, problem = parse_keep_last(bad)
        assert keep is None and says in problem


def test_preview_lines_name_every_file_and_the_space_freed():
    preview = PrunePreview(2, (("step_00000010.pt", 10, 1500), ("step_00000020.pt", 20, 1500)),
                           (("step_00000050.pt", ("best", "latest")),))
    lines = preview_lines(preview)
    assert "2 checkpoints, freeing 3.0 KB" in lines[0]
    assert "step_00000010.pt" in lines[1] and "step_00000020.pt" in lines[2]
    assert "step_00000050.pt (best latest)" in lines[-1]
    assert "nothing to delete" in preview_lines(PrunePreview(9, (), ()))[0]


def test_a_rollback_supersedes_this_runs_newer_checkpoints_whatever_their_marks():
    stored = [_stored(100), _stored(200), _stored(300, marks=("best",)), _stored(400, marks=("latest",)),
              _stored(350, run_id="other"), _stored(500, kind="manual", pinned=True)]
    plan = plan_rollback(stored, "step_00000200.pt", "r1", reached_step=530)
    assert [s.step for s in plan.superseded] == [300, 400, 500]
    assert plan.reached_step == 530
    text = "\n".join(describe_rollback(plan, live_step=530))
    assert "Training is running (step 530)" in text and "without saving" in text
    assert "step_00000300.pt  step 300 (best)" in text
    assert "History of steps 201-530" in text
    assert "other" not in text and "350" not in text  # another run's file stays where it is

    with pytest.raises(RollbackRefused, match="not written by this run"):
        plan_rollback(stored, "step_00000350.pt", "r1", reached_step=530)

    latest = plan_rollback(stored, "step_00000500.pt", "r1", reached_step=500)
    assert latest.superseded == ()
    assert "nothing is moved" in "\n".join(describe_rollback(latest, live_step=None))


def test_export_paths_default_beside_the_run_and_follow_the_format(tmp_path):
    assert default_export_path(tmp_path, "step_00000300.pt") == tmp_path / "exports" / "step_00000300.safetensors"
    assert with_format_suffix("/x/w.safetensors", "pt") == str(Path("/x/w.pt"))
    assert with_format_suffix("/x/w.pt", "safetensors") == str(Path("/x/w.safetensors"))
    assert with_format_suffix("/x/w.pth", "pt") == "/x/w.pth"  # already a .pt format name
    assert with_format_suffix("/x/weights.bin", "pt") == "/x/weights.bin"  # not ours to rename


def test_protection_reasons_say_why_in_words():
    best = _stored(300, marks=("best", "latest"), metrics={"val_loss": 1.25}, metrics_step=300)
    reasons = protection_reasons(best, "val_loss")
    assert reasons[0] == "it is the best checkpoint (val_loss 1.2500)" and "latest" in reasons[1]
    assert protection_reasons(_stored(100, pinned=True), "val_loss") == ["it is pinned, to be kept through every prune"]
    assert protection_reasons(_stored(100), "val_loss") == []


def test_the_palette_offers_every_checkpoint_action_by_name():
    app = TrainerApp(lambda **kwargs: None)
    commands = {help_text: name for name, help_text, _ in binding_commands(app)}
    offered = " ".join(commands)
    for key, word in (("e", "Export"), ("x", "Prune"), ("d", "Delete"), ("space", "Pin"), ("c", "Compare"),
                      ("b", "Roll back"), ("?", "Help"), ("p", "Pause")):
        assert f"{word} (key: {key})" in offered
    assert len(CHECKPOINT_ACTIONS) == 8
