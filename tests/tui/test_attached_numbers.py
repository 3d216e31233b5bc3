"""Attaching to a run with a history: the LR, gradient norm and the job's scalars, with their
sparklines, are on screen with the curve, not only after the next step."""

from __future__ import annotations

import json

from textual.widgets import Label
from tui_pilot import driving, run_async, shown_text, wait_for

from tui_trainer.engine.rundir.layout import HISTORY_FILE, RunInfo, RunSettings, write_run
from tui_trainer.session import run_follower
from tui_trainer.session.run_follower import LastSteps, RunFollower
from tui_trainer.tui.attach_app import make_attach_app
from tui_trainer.tui.widgets.train_scalars import BLOCKS

STEPS = 300


def _finished_run(run_dir, steps: int = STEPS):
    """A run another process trained to its end: run.json and a history of `steps` logged steps."""
    run_dir.mkdir()
    write_run(run_dir, RunInfo(run_id="r1", job="tui_trainer.demo.job:make_job",
                               settings=RunSettings(max_iters=steps), state="finished"))
    with open(run_dir / HISTORY_FILE, "w") as f:
        for step in range(1, steps + 1):
            f.write(json.dumps({"step": step, "epoch": 0, "loss": 3.0 - step / 1000, "lr": 2e-4 + step * 1e-6,
                                "time": 1000.0 + step, "elapsed": float(step), "grad_norm": 1.0 + (step % 7) / 10,
                                "samples_per_sec": 512.0, "tokens_per_sec": 8192.0, "acc": step / steps}) + "\n")
            if step % 50 == 0:
                f.write(json.dumps({"step": step, "val_loss": 2.9, "time": 1000.0 + step}) + "\n")
    return run_dir


def test_an_attached_run_shows_lr_grad_norm_and_sparklines_with_its_curve(tmp_path):
    app = make_attach_app(_finished_run(tmp_path / "run"))

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: len(app.model.train) == STEPS, what="the curve from the history")
            # The run has ended, so no step comes to fill the line: what it shows came with the curve
            # (within the counters' half-second repaint).
            line = app.query_one("#train-scalars", Label)
            await wait_for(pilot, lambda: shown_text(line).strip() != "", what="the numbers beside the loss")
            shown = shown_text(line)
            assert "lr 5.0e-04" in shown  # the last step's LR (2e-4 + 300e-6)
            grad = shown.split("grad ", 1)[1].split()
            assert grad[0] == "1.6"  # the last step's (300 % 7 = 6)
            assert len(grad[1]) == 8 and set(grad[1]) <= set(BLOCKS) and len(set(grad[1])) > 1  # a full sparkline
            acc = shown.split("acc ", 1)[1].split()
            assert acc[0] == "1" and len(acc[1]) == 8 and set(acc[1]) <= set(BLOCKS)

    run_async(scenario)


def test_the_sparklines_seed_reads_only_the_end_of_a_long_history(tmp_path, monkeypatch):
    run_dir = _finished_run(tmp_path / "run", steps=5000)
    read = []
    real_open = open

    def counting_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        if str(path).endswith(HISTORY_FILE) and "b" in mode:
            real_read = f.read
            f.read = lambda n=-1: read.append(len(chunk := real_read(n))) or chunk  # type: ignore[method-assign]
        return f

    monkeypatch.setattr(run_follower, "open", counting_open, raising=False)
    events = []
    RunFollower(run_dir, events.append).poll()
    seeded = next(e for e in events if isinstance(e, LastSteps))
    assert [s.step for s in seeded.steps] == list(range(5000 - run_follower.SEED_STEPS + 1, 5001))
    assert seeded.steps[-1].lrs == (2e-4 + 5000 * 1e-6,) and seeded.steps[-1].grad_norm == 1.0 + (5000 % 7) / 10
    assert sum(read) <= run_follower.SEED_BYTES < (run_dir / HISTORY_FILE).stat().st_size / 10
