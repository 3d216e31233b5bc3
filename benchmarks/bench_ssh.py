"""The dashboard over SSH: bytes it writes to its terminal per second, and how fast a key shows.

A trainer is started in the background as `tui-trainer train` starts one (the demo, `tiny`),
and the dashboard is attached to it in a real terminal: a tmux pane at 120x40. Once the run
trains and its chart is drawn, `tmux pipe-pane` copies everything the app writes to its
terminal into a file for `--window` seconds: those bytes per second are what an SSH link
carries in steady training. The pane is then resized to 80x24 and measured again.

Back at 120x40, each key is sent `--presses` times with `tmux send-keys`, and `capture-pane`
(polled every 10 ms) times how long its effect takes to show:
- `p` to the header's first word changing (PAUSING, shown by the dashboard itself), and on to
  PAUSED (the trainer has paused and the dashboard has read that); `p` again to RUNNING;
- `l` to the chart caption saying "log scale" (and back).

Goals (issue 14): at most 8 KB/s at 120x40, and a key's effect within 0.25 s at the 95th
percentile. From the repository root:

    PYTHONPATH=. python benchmarks/bench_ssh.py [--window S] [--presses N]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_first_frame import Terminal

GOAL_BYTES_PER_S = 8 * 1024
GOAL_KEY_P95_S = 0.25
POLL_S = 0.01
KEY_TIMEOUT_S = 5.0


class Pane(Terminal):
    """bench_first_frame's terminal, with what this benchmark reads from it."""

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "bench:")

    def wait_for(self, test, timeout: float) -> float:
        """Seconds until `test(screen)` holds, polling every POLL_S."""
        started = time.perf_counter()
        while True:
            if test(self.screen()):
                return time.perf_counter() - started
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"timed out after {timeout:.0f} s; the screen:\n{self.screen()}")
            time.sleep(POLL_S)

    def bytes_per_second(self, path: Path, seconds: float) -> float:
        path.write_bytes(b"")
        self.tmux("pipe-pane", "-o", "-t", "bench:", f"cat >> {shlex.quote(str(path))}")
        time.sleep(1.0)  # the pipe's cat is running
        first, started = path.stat().st_size, time.perf_counter()
        time.sleep(seconds)
        last, ended = path.stat().st_size, time.perf_counter()
        self.tmux("pipe-pane", "-t", "bench:")  # off
        return (last - first) / (ended - started)

    def resize(self, width: int, height: int) -> None:
        self.tmux("resize-window", "-t", "bench:", "-x", str(width), "-y", str(height))


def header(screen: str) -> str:
    return screen.splitlines()[0] if screen else ""


def key_latencies(pane: Pane, presses: int) -> dict[str, list[float]]:
    """Each key's time to its visible effect, `presses` times each, with a random pause between."""
    found: dict[str, list[float]] = {"p: PAUSING or PAUSED": [], "p: PAUSED": [], "p again: RUNNING": [],
                                     "l: caption changes": []}
    for _ in range(presses):
        pane.tmux("send-keys", "-t", "bench:", "p")
        sent = time.perf_counter()
        pane.wait_for(lambda s: "PAUS" in header(s), KEY_TIMEOUT_S)
        found["p: PAUSING or PAUSED"].append(time.perf_counter() - sent)
        pane.wait_for(lambda s: "PAUSED" in header(s), KEY_TIMEOUT_S)
        found["p: PAUSED"].append(time.perf_counter() - sent)
        time.sleep(0.3 + random.random() * 0.3)
        pane.tmux("send-keys", "-t", "bench:", "p")
        sent = time.perf_counter()
        pane.wait_for(lambda s: "RUNNING" in header(s), KEY_TIMEOUT_S)
        found["p again: RUNNING"].append(time.perf_counter() - sent)
        time.sleep(0.3 + random.random() * 0.3)
    for _ in range(presses):
        had_log = "log scale" in pane.screen()
        pane.tmux("send-keys", "-t", "bench:", "l")
        sent = time.perf_counter()
        pane.wait_for(lambda s: ("log scale" in s) != had_log, KEY_TIMEOUT_S)
        found["l: caption changes"].append(time.perf_counter() - sent)
        time.sleep(0.3 + random.random() * 0.3)
    return found


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--window", type=float, default=25.0, help="seconds of output counted at each size")
    parser.add_argument("--presses", type=int, default=20)
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--ckpt-every", type=int, default=1000)
    parser.add_argument("--keep", type=Path, help="copy what the app wrote at each size into this folder")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo))
    from tui_trainer.session.detached import DetachedTrainer

    with tempfile.TemporaryDirectory(prefix="bench-ssh-") as tmp:
        root = Path(tmp)
        trainer = DetachedTrainer(["train", "--run-dir", str(root / "run"), "--max-iters", "100000000",
                                   "--job-opt", f"size={args.size}", "--job-opt", "device=cpu",
                                   "--ckpt-every", str(args.ckpt_every), "--on-anomaly", "continue", "--headless"])
        trainer.start()
        pane = Pane(f"bench-ssh-{os.getpid()}")
        try:
            report = trainer.wait_launched(timeout=120)
            if report is None or report.error:
                raise SystemExit(f"the trainer did not start: {report.error if report else 'no report'}")
            env = f"PYTHONPATH={shlex.quote(str(repo))} XDG_CONFIG_HOME={shlex.quote(str(root / 'config'))}"
            pane.start(f"{env} exec {shlex.quote(sys.executable)} -m tui_trainer attach "
                       f"{shlex.quote(str(report.run_dir))}", root)
            pane.wait_for(lambda s: "RUNNING" in header(s) and "loading chart" not in s, 60)
            time.sleep(5.0)  # past the first curve, into steady training
            rates = {}
            for width, height in ((120, 40), (80, 24)):
                pane.resize(width, height)
                time.sleep(3.0)
                rates[f"{width}x{height}"] = pane.bytes_per_second(root / f"out-{width}x{height}", args.window)
                print(f"{width}x{height}: {rates[f'{width}x{height}'] / 1024:.2f} KB/s", flush=True)
                if args.keep is not None:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    (args.keep / f"out-{width}x{height}").write_bytes((root / f"out-{width}x{height}").read_bytes())
            pane.resize(120, 40)
            time.sleep(3.0)
            latencies = key_latencies(pane, args.presses)
        finally:
            pane.tmux("kill-server", check=False)
            _stop(trainer)
    print()
    print(f"| terminal | bytes/s written by the dashboard ({args.window:.0f} s of steady training) |")
    print("|---|---|")
    for size, rate in rates.items():
        print(f"| {size} | {rate / 1024:.2f} KB/s |")
    print()
    print(f"| key ({args.presses} presses) | median | p95 | max |")
    print("|---|---|---|---|")
    for what, samples in latencies.items():
        print(f"| {what} | {statistics.median(samples):.3f} s | {p95(samples):.3f} s | {max(samples):.3f} s |")
    print()
    rate = rates["120x40"]
    print(f"goal: <= {GOAL_BYTES_PER_S / 1024:.0f} KB/s at 120x40: {'met' if rate <= GOAL_BYTES_PER_S else 'not met'} "
          f"({rate / 1024:.2f} KB/s)")
    worst = max(p95(s) for s in latencies.values())
    print(f"goal: every key's effect within {GOAL_KEY_P95_S} s at p95: "
          f"{'met' if worst <= GOAL_KEY_P95_S else 'not met'} (worst p95 {worst:.3f} s)")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    return 0


def _stop(trainer) -> None:
    """End the background trainer this benchmark started (by its pid), and wait for it."""
    import signal

    process = trainer.process
    if process is None or process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


if __name__ == "__main__":
    raise SystemExit(main())
