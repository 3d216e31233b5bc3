"""First frame: seconds from launching `tui-trainer` in a real terminal to its first painted screen.

Each round starts, in a fresh tmux pane at 120x40, the dashboard on the demo job and a baseline:
the smallest Textual app there is (a header line and a footer), which measures what Python,
Textual and the terminal cost before any of our code runs. The sides alternate round by round so
a busy spell of the machine lands on both. The clock starts when tmux is asked to start the
command and stops at the first `capture-pane` (polled every 10 ms) that shows the app's first
line: for the dashboard, its status header in the "LOADING" state, before torch is imported.

Goal: the dashboard paints within 0.8 s. Run from the repository root:

    PYTHONPATH=. python benchmarks/bench_first_frame.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_S = 0.8
POLL_S = 0.01
TIMEOUT_S = 20.0

BASELINE_APP = """
from textual.app import App
from textual.widgets import Footer, Static

class Baseline(App):
    BINDINGS = [("q", "quit", "Quit")]
    def compose(self):
        yield Static("BASELINE ready")
        yield Footer()

Baseline().run()
"""


class Terminal:
    """One tmux server with one session ("bench"), driven from outside as a user's terminal would be."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def tmux(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        if check and done.returncode != 0:
            raise RuntimeError(f"tmux {args[0]} failed: {done.stderr.strip()}")
        return done.stdout

    def start(self, command: str, cwd: Path, width: int = 120, height: int = 40) -> float:
        """Start `command` in a fresh session of `width`x`height`; return when it was asked to start."""
        for attempt in range(3):
            started = time.perf_counter()  # tmux's own start-up (a few ms) is paid by every side
            try:
                self.tmux("-f", os.devnull, "new-session", "-d", "-s", "bench", "-x", str(width), "-y", str(height),
                          "-c", str(cwd), command)
                return started
            except RuntimeError:  # "server exited unexpectedly", now and then on a loaded machine
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def time_to_paint(self, command: str, marker: str, cwd: Path) -> float:
        started = self.start(f"{command}; echo EXIT $?; sleep 30", cwd)
        try:
            while time.perf_counter() - started < TIMEOUT_S:
                if marker in self.tmux("capture-pane", "-p", "-t", "bench:"):
                    return time.perf_counter() - started
                time.sleep(POLL_S)
            screen = self.tmux("capture-pane", "-p", "-t", "bench:").strip()
            raise RuntimeError(f"no {marker!r} on screen within {TIMEOUT_S:.0f} s: {command}\n{screen}")
        finally:
            self.tmux("kill-server", check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    if shutil.which("tmux") is None:
        print("bench_first_frame: tmux is not installed", file=sys.stderr)
        return 2
    repo = Path(__file__).resolve().parents[1]
    python = shlex.quote(sys.executable)
    env = f"PYTHONPATH={shlex.quote(str(repo))}"
    with tempfile.TemporaryDirectory(prefix="first-frame-") as tmp:
        root = Path(tmp)
        baseline_py = root / "baseline.py"
        baseline_py.write_text(BASELINE_APP)
        sides = {
            "baseline (bare Textual app)": (f"{env} {python} {baseline_py}", "BASELINE ready"),
            "tui-trainer dashboard": (f"{env} XDG_CONFIG_HOME={root}/config {python} -m tui_trainer train "
                                      f"--run-dir {root}/run{{n}} --max-iters 50", "LOADING"),
        }
        times: dict[str, list[float]] = {name: [] for name in sides}
        for number in range(args.rounds):
            order = list(sides.items()) if number % 2 == 0 else list(reversed(sides.items()))
            for name, (command, marker) in order:
                terminal = Terminal(f"first-frame-{os.getpid()}-{number}-{len(times[name])}")  # a fresh server each
                times[name].append(terminal.time_to_paint(command.format(n=number), marker, root))
                # The dashboard started its trainer in the background: end it, or it would load the
                # machine (torch's import) under the next rounds' first frames.
                subprocess.run(["pkill", "-9", "-f", f"run-dir {root}/run{number} "], check=False)
            print(f"round {number + 1}: " + ", ".join(f"{n} {t[-1]:.3f} s" for n, t in times.items()), flush=True)
    base, dash = (statistics.median(t) for t in times.values())
    print()
    print("| what | median first frame | min | max |")
    print("|---|---|---|---|")
    for name, samples in times.items():
        print(f"| {name} | {statistics.median(samples):.3f} s | {min(samples):.3f} s | {max(samples):.3f} s |")
    print()
    verdict = "met" if dash <= GOAL_S else "not met"
    print(f"dashboard / baseline: {dash / base:.2f}x; goal: first frame within {GOAL_S} s: {verdict} ({dash:.3f} s)")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
