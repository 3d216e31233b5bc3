"""History costs on long runs: resume, `ckpt history` and `read_curves`, against short runs.

(a) Resume (`resume_run`, up to the trainer being ready for its first step) of a tiny demo run
    whose history holds 2M logged steps against the same run with 1k: wall time and peak RSS,
    each in a fresh child process. Goal: at most 2 s and 100 MB more.
(b) `tui-trainer ckpt history RUN_DIR` on the 2M-step run, as a subprocess: wall time and its
    max RSS (getrusage(RUSAGE_CHILDREN) in a small go-between process). Goal: 5 s, 300 MB.
(c) `read_curves` on 1M logged steps, with the index against without one (an older run dir,
    read by one streaming pass): time and memory (tracemalloc peak).

The long histories are synthetic, written in the writer's own format with their index; each
run's last 1k steps and its checkpoint come from real training, so the checkpoint carries the
history summary as a real one does.

    PYTHONPATH=. python benchmarks/bench_history.py [--steps 2000000] [--curve-steps 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

TINY = {"size": "tiny", "device": "cpu"}
TAIL = 1000  # steps trained for real at the end of each run
EVAL_EVERY = 1000


def synthetic_history(path: Path, steps: int) -> None:
    """history.jsonl and history.idx for steps 1..steps, as HistoryWriter writes them."""
    from tui_trainer.engine.rundir.history_index import HEADER, index_path
    from tui_trainer.engine.rundir.history_scan import KIND_TRAIN, KIND_VAL, RECORD

    chunk = 200_000
    records, end = [], 0
    with open(path, "wb") as f:
        for first in range(1, steps + 1, chunk):
            lines, rec = [], []
            for step in range(first, min(steps, first + chunk - 1) + 1):
                loss = 3.0 / (1 + step * 1e-4)
                epoch = step // 50_000
                line = f'{{"step": {step}, "epoch": {epoch}, "loss": {loss!r}, "lr": 0.0003, "time": {1.7e9 + step * 0.01:.3f}}}\n'
                end += len(line)
                lines.append(line)
                rec.append((step, end, loss, epoch, KIND_TRAIN))
                if step % EVAL_EVERY == 0:
                    line = json.dumps({"step": step, "val_loss": loss * 1.1, "time": round(1.7e9 + step * 0.01, 3)}) + "\n"
                    end += len(line)
                    lines.append(line)
                    rec.append((step, end, loss * 1.1, epoch, KIND_VAL))
            f.write("".join(lines).encode())
            records.append(np.array(rec, RECORD))
    with open(index_path(path), "wb") as f:
        f.write(HEADER)
        for part in records:
            f.write(part.tobytes())


def make_run(run_dir: Path, steps: int) -> None:
    """A tiny demo run with a checkpoint at `steps`; its first steps - TAIL are synthetic."""
    from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
    from tui_trainer.engine.loop.launch import start_run
    from tui_trainer.engine.rundir.history_writer import HistoryWriter
    from tui_trainer.engine.rundir.layout import RunSettings

    trainer = start_run(run_dir, job_options=TINY, settings=RunSettings(max_iters=steps),
                        policy=CheckpointPolicy(every_steps=TAIL, keep_last=1, eval_before_save=False))
    trainer.history.close()
    first = steps - TAIL
    if first:
        synthetic_history(trainer.history.path, first)
    trainer.history = HistoryWriter(run_dir, resume_step=first)
    trainer.step = first
    trainer.run()


def child_resume(run_dir: str) -> None:
    from tui_trainer.engine.loop.launch import resume_run

    start = time.perf_counter()
    trainer = resume_run(run_dir, max_iters=10**9)
    seconds = time.perf_counter() - start
    trainer.history.close()
    trainer.control_file.close()
    trainer._lock.release()
    print(json.dumps({"seconds": seconds, "notes": trainer.notes}))


def run_child(args: list[str]) -> tuple[dict | str, float, int]:
    """(its output's last line as JSON, wall seconds, its max RSS in MB).

    Measured by a small go-between process: a child forked from this one (which holds torch and
    the runs it made) would count this process's pages in its own max RSS.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                                     os.environ.get("PYTHONPATH")])),
               OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, __file__, "--measure", json.dumps(args)], env=env,
                         capture_output=True, text=True, check=True).stdout
    measured = json.loads(out)
    return measured["out"], measured["wall"], measured["rss"]


def measure(args: list[str]) -> None:
    start = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - start
    try:
        last: dict | str = json.loads(out.splitlines()[-1])
    except (ValueError, IndexError):
        last = out
    print(json.dumps({"out": last, "wall": wall, "rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024}))


def measure_curves(run_dir: Path) -> tuple[float, float, int]:
    """Seconds (untraced), then peak MB allocated (a second, traced call: tracing slows it)."""
    from tui_trainer.engine.rundir.history_index import read_curves

    start = time.perf_counter()
    curves = read_curves(run_dir)
    seconds = time.perf_counter() - start
    del curves
    tracemalloc.start()
    curves = read_curves(run_dir)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak / 2**20, len(curves.steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2_000_000)
    parser.add_argument("--curve-steps", type=int, default=1_000_000)
    parser.add_argument("--child-resume", help=argparse.SUPPRESS)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(json.loads(args.measure))
        return
    if args.child_resume:
        child_resume(args.child_resume)
        return
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        make_run(root / "short", TAIL)
        make_run(root / "long", args.steps)
        print(f"made runs of {TAIL} and {args.steps} logged steps in {time.perf_counter() - t0:.1f} s")
        size = (root / "long" / "history.jsonl").stat().st_size
        print(f"long history: {size / 2**20:.0f} MB jsonl, {(root / 'long' / 'history.idx').stat().st_size / 2**20:.0f} MB index\n")

        out, wall, rss = run_child([sys.executable, "-m", "tui_trainer.cli.main", "ckpt", "history", str(root / "long")])
        print(f"(b) ckpt history, {args.steps} steps: {wall:.2f} s, max RSS {rss} MB   (goal 5 s, 300 MB)")

        results = {}
        for name in ("short", "long"):
            out, wall, rss = run_child([sys.executable, __file__, "--child-resume", str(root / name)])
            results[name] = (out["seconds"], rss)
        (s_time, s_rss), (l_time, l_rss) = results["short"], results["long"]
        print(f"(a) resume, {TAIL} steps:       {s_time:.3f} s, peak RSS {s_rss} MB")
        print(f"    resume, {args.steps} steps: {l_time:.3f} s, peak RSS {l_rss} MB")
        print(f"    long - short: {l_time - s_time:+.3f} s (x{l_time / s_time:.2f}), {l_rss - s_rss:+d} MB"
              "   (goal <= 2 s and <= 100 MB more)")

        curve_dir = root / "curves"
        curve_dir.mkdir()
        synthetic_history(curve_dir / "history.jsonl", args.curve_steps)
        with_index = measure_curves(curve_dir)
        (curve_dir / "history.idx").unlink()
        without = measure_curves(curve_dir)
        arrays_mb = with_index[2] * 16 / 2**20
        print(f"\n(c) read_curves, {args.curve_steps} steps ({arrays_mb:.0f} MB of train arrays):")
        print(f"    with the index:    {with_index[0]:.3f} s, peak {with_index[1]:.0f} MB allocated")
        print(f"    without (older run, one streaming pass): {without[0]:.3f} s, peak {without[1]:.0f} MB")
        print(f"    ratio: x{without[0] / with_index[0]:.0f} faster with the index")


if __name__ == "__main__":
    main()
