"""A trainer started by the dashboard (detached, in its own session) against `train --headless`.

Both are the same command in a fresh process; the detached one is started the way the dashboard
starts it (`session.detached.DetachedTrainer`: its own session, output to the run's
trainer.log, a journal). Steps per second are read from each run's history.jsonl timestamps,
from step `--skip` to the last, so process start-up and torch's import do not count. The two
sides alternate, round by round, to spread the machine's noise over both.

A third side attaches a dashboard to the detached trainer in a real terminal (tmux, 120x40),
as a user watching the run would: the dashboard is another process, so what it costs training
is CPU time on a shared machine, not the training loop's.

Goal: the detached trainer at least 0.99x as fast as headless. From the repository root:

    PYTHONPATH=. python benchmarks/bench_detached.py [--rounds N] [--steps N] [--size tiny|small]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = 0.99


def steps_per_sec(run_dir: Path, skip: int) -> float:
    times = {}
    with open(run_dir / "history.jsonl") as f:
        for line in f:
            record = json.loads(line)
            if "loss" in record:
                times[record["step"]] = record["time"]
    last = max(times)
    return (last - skip) / (times[last] - times[skip])


def headless(args: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "tui_trainer", *args], stdout=subprocess.DEVNULL, check=True)


def started(args: list[str]):
    """A trainer started as the dashboard starts one, once it has said where it trains."""
    from tui_trainer.session.detached import DetachedTrainer

    trainer = DetachedTrainer(args)
    trainer.start()
    report = trainer.wait_launched()
    if report.error:
        raise SystemExit(f"the detached trainer did not start: {report.error}")
    return trainer, report


def detached(args: list[str]) -> None:
    trainer, _ = started(args)
    trainer.process.wait()


def detached_and_watched(args: list[str]) -> None:
    """The detached trainer with a dashboard attached to it in a real terminal (tmux, 120x40): what users run."""
    import shlex

    trainer, report = started(args)
    socket = f"bench-detached-{os.getpid()}-{time.monotonic_ns()}"
    command = f"exec {shlex.quote(sys.executable)} -m tui_trainer attach {shlex.quote(str(report.run_dir))}"
    subprocess.run(["tmux", "-L", socket, "-f", os.devnull, "new-session", "-d", "-x", "120", "-y", "40", command],
                   check=True)
    try:
        trainer.process.wait()
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--skip", type=int, default=100)
    parser.add_argument("--size", default="tiny")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sides = {"headless (train --headless)": headless, "detached (as the dashboard starts it)": detached,
             "detached, a dashboard attached in tmux": detached_and_watched}
    rates: dict[str, list[float]] = {name: [] for name in sides}
    with tempfile.TemporaryDirectory(prefix="detached-") as tmp:
        for number in range(args.rounds):
            order = list(sides.items()) if number % 2 == 0 else list(reversed(sides.items()))
            for name, run in order:
                run_dir = Path(tmp) / f"run-{number}-{len(rates[name])}-{name.split()[0]}"
                run(["train", "--run-dir", str(run_dir), "--max-iters", str(args.steps), "--job-opt",
                     f"size={args.size}", "--job-opt", "device=cpu", "--headless"])
                rates[name].append(steps_per_sec(run_dir, args.skip))
            print(f"round {number + 1}: " + ", ".join(f"{n} {r[-1]:.1f} it/s" for n, r in rates.items()), flush=True)
            time.sleep(0.5)
    base, ours, watched = (statistics.median(r) for r in rates.values())
    print()
    print("| what | median steps/s | min | max |")
    print("|---|---|---|---|")
    for name, samples in rates.items():
        print(f"| {name} | {statistics.median(samples):.1f} | {min(samples):.1f} | {max(samples):.1f} |")
    ratio = ours / base
    print(f"\ndetached / headless: {ratio:.3f}x; goal >= {GOAL}x: {'met' if ratio >= GOAL else 'not met'}")
    print(f"detached with a dashboard attached / headless: {watched / base:.3f}x")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
