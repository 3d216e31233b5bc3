"""Attaching to a long run: first frame, the whole curve on screen, and the viewer's memory.

Two live-looking runs are made (this process holds their locks, as a trainer would): one of
1k logged steps and one of 1M, with an evaluation every 1,000 steps. Each round starts, in a
fresh tmux pane at 120x40, `tui-trainer attach` on each and the bare Textual app of
`bench_first_frame.py`, alternating the order. The clock starts when tmux starts the command;
the first frame is the first `capture-pane` showing the dashboard's header (or the bare app's
text), and the whole curve is on screen once the chart's step axis reaches 800k (only a chart
drawn over the whole run has that tick). The viewer's peak memory is its VmHWM.

Goals: the whole 1M-step curve within 1 s of the first frame; the viewer at most 200 MB; the
first frame as for a short run. Run from the repository root:

    PYTHONPATH=. python benchmarks/bench_attach.py [--rounds N] [--steps N]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_first_frame import BASELINE_APP, POLL_S, TIMEOUT_S, Terminal  # noqa: E402
from bench_history import synthetic_history  # noqa: E402

CURVE_GOAL_S = 1.0
MEMORY_GOAL_MB = 200


def make_run(run_dir: Path, steps: int) -> None:
    from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
    from tui_trainer.engine.rundir.layout import HISTORY_FILE, RunInfo, RunSettings, new_run_id, write_run

    run_dir.mkdir(parents=True)
    write_run(run_dir, RunInfo(run_id=new_run_id(), job="tui_trainer.demo.job:make_job", state="running",
                               policy=CheckpointPolicy(), settings=RunSettings(max_iters=2 * steps)))
    synthetic_history(run_dir / HISTORY_FILE, steps)


def peak_mb(terminal: Terminal) -> float:
    pid = terminal.tmux("display-message", "-p", "-t", "bench:", "#{pane_pid}").strip()
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def attach_times(terminal: Terminal, command: str, cwd: Path, curve_marker: str | None) -> tuple[float, float, float]:
    """Seconds to the first frame and to the whole curve, and the viewer's peak MB."""
    started = terminal.start(f"exec {command}", cwd)
    first = curve = None
    try:
        while time.perf_counter() - started < TIMEOUT_S:
            screen = terminal.tmux("capture-pane", "-p", "-t", "bench:")
            now = time.perf_counter() - started
            if first is None and ("LOADING" in screen or "RUNNING" in screen):
                first = now
            if first is not None and (curve_marker is None or curve_marker in screen):
                curve = now
                break
            time.sleep(POLL_S)
        if curve is None:
            raise RuntimeError(f"the curve never reached {curve_marker!r}:\n{screen}")
        time.sleep(1.0)  # the memory a viewer settles at, not only its start
        return first, curve, peak_mb(terminal)
    finally:
        terminal.tmux("kill-server", check=False)


def main(argv: list[str] | None = None) -> int:
    from tui_trainer.engine.rundir.layout import RunLock

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    repo = Path(__file__).resolve().parents[1]
    python = shlex.quote(sys.executable)
    with tempfile.TemporaryDirectory(prefix="attach-") as tmp:
        root = Path(tmp)
        made = time.perf_counter()
        make_run(root / "short", 1_000)
        make_run(root / "long", args.steps)
        print(f"made the runs in {time.perf_counter() - made:.1f} s", flush=True)
        (root / "baseline.py").write_text(BASELINE_APP)
        env = f"env PYTHONPATH={shlex.quote(str(repo))} XDG_CONFIG_HOME={root}/config"
        sides = {
            "bare Textual app": (f"{env} {python} {root}/baseline.py", None),
            "attach, 1k steps": (f"{env} {python} -m tui_trainer attach {root}/short", None),
            f"attach, {args.steps:,} steps": (f"{env} {python} -m tui_trainer attach {root}/long", "800k"),
        }
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in sides}
        with RunLock(root / "short"), RunLock(root / "long"):
            for number in range(args.rounds):
                order = list(sides.items()) if number % 2 == 0 else list(reversed(sides.items()))
                for name, (command, marker) in order:
                    terminal = Terminal(f"attach-{os.getpid()}-{number}-{len(results[name])}")
                    if name == "bare Textual app":
                        frame = terminal.time_to_paint(command, "BASELINE ready", root)
                        results[name].append((frame, frame, float("nan")))
                    else:
                        results[name].append(attach_times(terminal, command, root, marker))
                print(f"round {number + 1}: " + ", ".join(
                    f"{n} {r[-1][0]:.2f}/{r[-1][1]:.2f} s {r[-1][2]:.0f} MB" for n, r in results.items()), flush=True)
    print()
    print("| what | first frame (median) | whole curve on screen, after the first frame (median, max) | viewer peak memory (max) |")
    print("|---|---|---|---|")
    for name, samples in results.items():
        frames = [s[0] for s in samples]
        curves = [s[1] - s[0] for s in samples]
        memory = max(s[2] for s in samples)
        print(f"| {name} | {statistics.median(frames):.2f} s | {statistics.median(curves):.2f} s, {max(curves):.2f} s "
              f"| {'-' if memory != memory else f'{memory:.0f} MB'} |")
    long = results[f"attach, {args.steps:,} steps"]
    curve = statistics.median(s[1] - s[0] for s in long)
    memory = max(s[2] for s in long)
    print()
    print(f"whole curve within {CURVE_GOAL_S} s of the first frame: {'met' if curve <= CURVE_GOAL_S else 'not met'} "
          f"({curve:.2f} s); viewer at most {MEMORY_GOAL_MB} MB: {'met' if memory <= MEMORY_GOAL_MB else 'not met'} "
          f"({memory:.0f} MB)")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
