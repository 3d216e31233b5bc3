"""Steps per second on 2 processes (DDP, gloo, CPU): `tui-trainer train --nproc 2` against a bare DDP loop.

Both sides train the demo job (same size, seed, data shard per rank, optimizer, LR schedule and
grad clip) on 2 ranks started by torchrun, one torch thread each. The product side is the CLI
(`train --nproc 2 --headless`, no checkpoints until the final one, history on, the loss averaged
over the ranks on every logged step, rank 0's decisions broadcast after every step); its rate is
read from the history's timestamps from step `--skip` on, so start-up and the final save are left
out. The bare side is the loop a user would write: `DistributedDataParallel`,
the job's sharded batches, forward, backward, clip, optimizer and scheduler steps, timed on rank 0
over the same steps. Each side's rate is that of its median chunk of 10 steps, and the sides
alternate round after round, so a slow spell of a shared machine moves neither much; the table
gives the median of the rounds' ratios.

Run from the repository root (or with the package installed, without PYTHONPATH):

    PYTHONPATH=. python benchmarks/bench_ddp.py [--size small|tiny] [--steps N] [--skip N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NPROC = 2
CHUNK = 10  # steps per timed chunk


def product_rate(size: str, steps: int, skip: int, scratch: Path) -> float:
    run_dir = scratch / f"run-{time.monotonic_ns()}"
    subprocess.run([sys.executable, "-m", "tui_trainer", "train", "--nproc", str(NPROC), "--run-dir", str(run_dir),
                    "--max-iters", str(steps), "--ckpt-every", "0", "--job-opt", f"size={size}",
                    "--job-opt", "device=cpu", "--headless"], check=True, stdout=subprocess.DEVNULL, env=_env())
    stamps = {}
    with open(run_dir / "history.jsonl") as f:
        for line in f:
            record = json.loads(line)
            if "loss" in record:
                stamps[record["step"]] = record["time"]
    shutil.rmtree(run_dir, ignore_errors=True)
    return chunked_rate([stamps[step] for step in range(skip, steps + 1, CHUNK)])


def chunked_rate(times: list[float]) -> float:
    """Steps/s of the median chunk of `CHUNK` steps: a slow spell of the machine moves it little."""
    return CHUNK / statistics.median(b - a for a, b in zip(times, times[1:]))


def bare_rate(size: str, steps: int, skip: int) -> float:
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(NPROC),
                           __file__, "--bare", "--size", size, "--steps", str(steps), "--skip", str(skip)],
                          check=True, capture_output=True, text=True, env=_env())
    return float(done.stdout.strip().splitlines()[-1])


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}


def bare_loop(size: str, steps: int, skip: int) -> None:
    """One rank of the bare side (under torchrun): rank 0 prints its steps/s over steps skip..steps."""
    import torch
    import torch.distributed as dist

    from tui_trainer.demo.job import make_job

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    job = make_job(size=size, device="cpu", max_iters=steps)
    job.batches.shard(rank, world)
    model = torch.nn.parallel.DistributedDataParallel(job.model)
    model.train()
    times = []
    for step in range(1, steps + 1):
        job.optimizer.zero_grad(set_to_none=True)
        loss = job.loss_fn(model, job.batches.next_batch())
        loss.backward()
        if job.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), job.grad_clip)
        job.optimizer.step()
        if job.scheduler is not None:
            job.scheduler.step()
        if step >= skip and (step - skip) % CHUNK == 0:
            times.append(time.time())  # the clock of the product's history timestamps
    if rank == 0:
        print(chunked_rate(times))
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "small"), default="small")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--skip", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare_loop(args.size, args.steps, args.skip)
        return
    ratios = []
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as scratch:
        for round_ in range(args.rounds):
            product = product_rate(args.size, args.steps, args.skip, Path(scratch))
            bare = bare_rate(args.size, args.steps, args.skip)
            ratios.append(product / bare)
            print(f"round {round_ + 1}: product {product:.1f} it/s, bare DDP {bare:.1f} it/s, ratio {ratios[-1]:.3f}x")
    print(f"median ratio over {args.rounds} rounds: {statistics.median(ratios):.3f}x "
          f"({min(ratios):.3f}-{max(ratios):.3f}); goal >= 0.97x")


if __name__ == "__main__":
    main()
