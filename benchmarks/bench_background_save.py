"""Background saves against sync saves: the stall of the step that saves, and the wall time a save adds.

The engine trains the demo's small GPT plus 25M parameters with AdamW (a ~300 MB checkpoint:
weights and two moments) for the same steps three ways, alternating within each round: without saves, with sync saves and
with background saves (`save_mode`), a periodic save every few steps. Times come from the
trainer's own events:

- stall: how long the loop's save call holds the step that triggers a save (for a background
  save: the snapshot into CPU buffers, and the history's fsync; for a sync save: the whole write);
  also shown, the gap from that step to the next, less the median gap between steps without a save;
- added wall time per save: the run's wall time (first timed step to the end of the run, the
  last background save drained) less that of the run without saves, over the number of saves.
  On a machine with few cores the saver thread competes with training for them.

Run from the repository root (or with the package installed, without PYTHONPATH):

    PYTHONPATH=. python benchmarks/bench_background_save.py [--rounds N] [--steps N] [--every N]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from tui_trainer.demo.job import make_job, param_groups
from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.loop.job import Job, job_factory
from tui_trainer.engine.loop.launch import start_run
from tui_trainer.engine.loop.trainer import SAVE_BACKGROUND, SAVE_SYNC
from tui_trainer.engine.rundir.layout import RunSettings

SEED = 1337
STALL_GOAL = 0.10
ADDED_GOAL = 0.60
WARMUP_STEPS = 2
# Beside the demo's small GPT, 25M more parameters that AdamW updates every step: weights
# (~100 MB) and two moments make a ~300 MB checkpoint, and a step costs what updating them costs
# (memory-bound, as an optimizer step is) rather than seconds of matmuls on two cores.
EXTRA_PARAMETERS = 25_000_000
WAYS = ("no saves", SAVE_SYNC, SAVE_BACKGROUND)


@job_factory
def large_job(**options: Any) -> Job:
    """The demo job (small model) with 25M extra parameters under the same AdamW."""
    job = make_job(seed=SEED, size="small", batch_size=8, device="cpu")
    model = job.model
    model.register_parameter("extra", torch.nn.Parameter(torch.zeros(EXTRA_PARAMETERS)))
    optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-4)
    loss_fn = job.loss_fn

    def loss_with_extra(model: torch.nn.Module, batch: Any) -> torch.Tensor:
        return loss_fn(model, batch) + 1e-6 * model.extra.mean()

    return dataclasses.replace(job, optimizer=optimizer, scheduler=None, evaluate=None, loss_fn=loss_with_extra)


@dataclasses.dataclass
class Timing:
    wall_s: float
    step_gaps: list[float]  # between steps that do not save
    save_gaps: list[float]  # after each step that saves
    stalls: list[float]  # in the loop's save calls
    saves: int
    size: int


def train_once(root: Path, way: str, steps: int, every: int) -> Timing:
    events: list[ev.Event] = []
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=root)) / "run"
    trainer = start_run(
        run_dir, job=large_job,
        policy=CheckpointPolicy(every_steps=0 if way == "no saves" else every, keep_last=2,
                                eval_before_save=False, save_final=False),
        settings=RunSettings(max_iters=steps + WARMUP_STEPS, log_every=1),
        on_event=events.append,
    )
    trainer.save_mode = SAVE_BACKGROUND if way == SAVE_BACKGROUND else SAVE_SYNC
    stalls: list[float] = []
    save = trainer._save

    def timed_save(*args: Any, **kwargs: Any) -> Any:  # how long the loop is held by each save
        started = time.perf_counter()
        try:
            return save(*args, **kwargs)
        finally:
            stalls.append(time.perf_counter() - started)

    trainer._save = timed_save  # type: ignore[method-assign]
    result = trainer.run()
    assert result.reason == "target", result
    ends = {e.step: e.time for e in events if isinstance(e, ev.StepCompleted)}
    finished = next(e.time for e in events if isinstance(e, ev.Finished))
    saving = {e.step for e in events if isinstance(e, ev.CheckpointSaved)}
    gaps, save_gaps = [], []
    for step in range(WARMUP_STEPS + 1, steps + WARMUP_STEPS):
        gap = ends[step + 1] - ends[step]
        (save_gaps if step % every == 0 and way != "no saves" else gaps).append(gap)
    size = max((e.size_bytes for e in events if isinstance(e, ev.CheckpointSaved)), default=0)
    shutil.rmtree(run_dir.parent)
    return Timing(finished - ends[WARMUP_STEPS], gaps, save_gaps, stalls, len(saving), size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three ways (default: 3)")
    parser.add_argument("--steps", type=int, default=24, help="timed steps per run (default: 24)")
    parser.add_argument("--every", type=int, default=4, help="save every N steps (default: 4)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"bench_background_save: torch {torch.__version__}, threads={torch.get_num_threads()}, "
          f"{os.cpu_count()} cores, load average {load_average()}")
    root = Path(tempfile.mkdtemp(prefix="tui-trainer-bench-bg-"))
    timings: dict[str, list[Timing]] = {way: [] for way in WAYS}
    try:
        train_once(root, SAVE_SYNC, args.every + 1, args.every)  # warms up the allocator and the page cache
        for r in range(args.rounds):
            for way in WAYS[r % 3:] + WAYS[: r % 3]:
                timings[way].append(train_once(root, way, args.steps, args.every))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(timings)
    print(f"\nload average at the end: {load_average()}")
    return 0


def report(timings: dict[str, list[Timing]]) -> None:
    step_s = statistics.median(g for t in timings["no saves"] for g in t.step_gaps)
    base_wall = statistics.median(t.wall_s for t in timings["no saves"])
    stall, added, slower = {}, {}, {}
    for way in (SAVE_SYNC, SAVE_BACKGROUND):
        runs = timings[way]
        stall[way] = statistics.median(s for t in runs for s in t.stalls)
        slower[way] = statistics.median(g for t in runs for g in t.save_gaps) - statistics.median(
            g for t in runs for g in t.step_gaps)
        added[way] = (statistics.median(t.wall_s for t in runs) - base_wall) / runs[0].saves
    size = timings[SAVE_SYNC][0].size
    print(f"\n{size / 1e6:.0f} MB checkpoints, {timings[SAVE_SYNC][0].saves} saves a run, "
          f"{len(timings[SAVE_SYNC])} rounds (medians); a step without saves: {ms(step_s)}")
    print(f"   {'':<44} {'sync':>10} {'background':>11} {'ratio':>7}  goal")
    stall_ratio = stall[SAVE_BACKGROUND] / stall[SAVE_SYNC]
    added_ratio = added[SAVE_BACKGROUND] / added[SAVE_SYNC]
    print(f"   {'stall of the step that saves':<44} {ms(stall[SAVE_SYNC]):>10} {ms(stall[SAVE_BACKGROUND]):>11} "
          f"{stall_ratio:6.2f}x  <= {STALL_GOAL:.2f}x: {'met' if stall_ratio <= STALL_GOAL else 'NOT met'}")
    print(f"   {'wall time a save adds to the run':<44} {ms(added[SAVE_SYNC]):>10} {ms(added[SAVE_BACKGROUND]):>11} "
          f"{added_ratio:6.2f}x  <= {ADDED_GOAL:.2f}x: {'met' if added_ratio <= ADDED_GOAL else 'NOT met'}")
    print(f"   {'(the step after it, less a step without one)':<44} {ms(slower[SAVE_SYNC]):>10} "
          f"{ms(slower[SAVE_BACKGROUND]):>11}")
    for way in WAYS:
        walls = ", ".join(f"{t.wall_s:.2f}" for t in timings[way])
        print(f"   (run wall times, {way}: {walls} s)")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
