"""Checkpoint costs: the engine's atomic save against a raw torch.save, and listing against loading.

Part A times `CheckpointStore.save` with the trainer's write callback (torch.save through the
hashing writer, fsync, rename, directory fsync, sidecar) against `torch.save(state, path)`
followed by an fsync, on the demo model's full training state and on a ~100 MB state (35 MB of
weights plus AdamW's two moments, like the 102 MB checkpoint users describe). Other rows split
the difference: torch.save to an open file object (as the store does), the store's unbuffered
file without hashing, and with a checksumming writer but without the rename, directory fsync and
sidecar: the store's (XXH3-128 on each buffer as it is written), the same with SHA-256 or BLAKE3,
and the store's writer before (SHA-256, or BLAKE3, on a second thread reading the written bytes
back; `checksum_writers.py`). BLAKE3's rows need `pip install blake3`. The ways alternate within
each round, in an order that rotates from round to round; the table gives medians.

Part B writes 1,000 checkpoints of the tiny demo model through the store (real sidecars), then
times listing them against `torch.load(weights_only=True)` of each file (a sample, scaled up),
and against loading as many checkpoints of the demo's default "small" model (~1.4 MB each, what
a user of the demo lists; a sample of them, written through the store too), with reading the
bare sidecars as the floor of any sidecar-per-file listing, and times the CLI's `ckpt list` as a
subprocess next to the start-up costs it cannot avoid.

Run from the repository root (or with the package installed, without PYTHONPATH):

    PYTHONPATH=. python benchmarks/bench_checkpoint.py [--rounds N] [--large-rounds N] [--saves-only] [--count N] [--load-sample N]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from tui_trainer.demo.job import make_job, param_groups
from tui_trainer.demo.model import GPT, ModelConfig
from tui_trainer.engine.checkpoints.hashing_writer import HashingWriter
from tui_trainer.engine.checkpoints.meta import CheckpointMeta, checkpoint_name
from tui_trainer.engine.checkpoints.store import CheckpointStore
from tui_trainer.engine.loop import training_state
from tui_trainer.engine.loop.job import DEMO_JOB, Job
from tui_trainer.engine.rundir import layout as run_dirs
from tui_trainer.engine.rundir.layout import RunInfo, new_run_id, write_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checksum_writers import blake3_or_none, inline_writer, read_back_writer  # noqa: E402

SEED = 1337
SAVE_GOAL = 1.10
LIST_GOAL_S = 0.2
LIST_SPEEDUP_GOAL = 1000
CLI_GOAL_S = 0.5
REPO_ROOT = Path(__file__).resolve().parent.parent
# A GPT whose weights take ~35 MB, so weights + AdamW moments make a ~100 MB checkpoint.
LARGE_MODEL = {"block_size": 256, "n_layer": 5, "n_head": 6, "n_embd": 384}


# --- states to save ---------------------------------------------------------------------------


def trained_job(size: str) -> Job:
    """The demo job after one optimizer step, so the optimizer state is full-sized."""
    job = make_job(seed=SEED, size=size, max_iters=100)
    one_step(job)
    return job


def large_job() -> Job:
    """The demo job with a ~9M-parameter model in place of the small one."""
    job = make_job(seed=SEED, size="small", max_iters=100)
    config = ModelConfig(vocab_size=job.config["model"]["vocab_size"], dropout=0.0, **LARGE_MODEL)
    torch.manual_seed(SEED)
    model = GPT(config)
    optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-3)
    job = dataclasses.replace(
        job, model=model, optimizer=optimizer, scheduler=None,
        config={**job.config, "model": dataclasses.asdict(config)},
    )
    one_step(job)
    return job


def one_step(job: Job) -> None:
    loss = job.loss_fn(job.model, job.batches.next_batch())
    loss.backward()
    job.optimizer.step()
    job.optimizer.zero_grad(set_to_none=True)


def meta_for(step: int, run_id: str, val_loss: float = 2.0) -> CheckpointMeta:
    return CheckpointMeta(
        name=checkpoint_name(step), step=step, epoch=step // 500, train_loss=val_loss + 0.05,
        metrics={"val_loss": val_loss}, metrics_step=step, run_id=run_id,
    )


def capture(job: Job, meta: CheckpointMeta) -> dict[str, Any]:
    return training_state.capture(job, meta, {"target": 10_000, "job": DEMO_JOB, "job_options": {}})


# --- part A: one save, many ways --------------------------------------------------------------


def save_ways(directory: Path, run_id: str) -> dict[str, Callable[[dict[str, Any], int], Path]]:
    """Each way writes `state` as checkpoint number `n` and returns the file it wrote."""
    store = CheckpointStore(directory, run_id)

    def engine(state: dict[str, Any], n: int) -> Path:
        return store.save(meta_for(n, run_id), lambda f: torch.save(state, f)).path

    def raw_path(state: dict[str, Any], n: int) -> Path:
        path = directory / f"raw_{n}.pt"
        torch.save(state, path)
        fsync_file(path)
        return path

    def raw_file(state: dict[str, Any], n: int) -> Path:
        path = directory / f"rawf_{n}.pt"
        with open(path, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        return path

    def unbuffered(state: dict[str, Any], n: int) -> Path:
        path = directory / f"unbuf_{n}.pt"
        with open(path, "w+b", buffering=0) as f:
            torch.save(state, f)
            os.fsync(f.fileno())
        return path

    def hashing(make_writer: Callable[[Any], Any]) -> Callable[[dict[str, Any], int], Path]:
        def save(state: dict[str, Any], n: int) -> Path:
            path = directory / f"hash_{n}.pt"
            with open(path, "w+b", buffering=0) as f:
                writer = make_writer(f)
                torch.save(state, writer)
                writer.finish()  # fsyncs
            return path

        return save

    ways = {
        "raw: torch.save(state, path) + fsync": raw_path,
        "raw: torch.save to open(wb) + fsync": raw_file,
        "diag: unbuffered file, no hash + fsync": unbuffered,
        "diag: + xxh3_128 as written (the store's writer)": hashing(HashingWriter),
        "diag: + sha256 as written": hashing(inline_writer(hashlib.sha256)),
        "diag: + sha256 on a 2nd thread (the writer before)": hashing(read_back_writer(hashlib.sha256)),
    }
    blake3 = blake3_or_none()
    if blake3 is not None:
        ways["diag: + blake3 as written"] = hashing(inline_writer(blake3))
        ways["diag: + blake3 on a 2nd thread"] = hashing(read_back_writer(blake3))
    ways["engine: CheckpointStore.save"] = engine
    return ways


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def time_saves(label: str, job: Job, rounds: int, root: Path) -> None:
    directory = Path(tempfile.mkdtemp(prefix="saves-", dir=root))
    run_id = new_run_id()
    state = capture(job, meta_for(1, run_id))
    capture_s = statistics.median(timed(lambda: capture(job, meta_for(1, run_id))) for _ in range(3))
    ways = save_ways(directory, run_id)
    names = list(ways)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    size = 0
    for n in range(rounds + 1):  # round 0 warms up and is not counted
        for name in names[n % len(names):] + names[: n % len(names)]:
            started = time.perf_counter()
            path = ways[name](state, n + 1)
            elapsed = time.perf_counter() - started
            size = path.stat().st_size
            if n:
                seconds[name].append(elapsed)
            for leftover in directory.iterdir():  # untimed: keep the directory small
                leftover.unlink()
    shutil.rmtree(directory)

    baseline = statistics.median(seconds[names[0]])
    print(f"\nA. save, {label}: {size / 1e6:.1f} MB, {rounds} rounds (medians), load average {load_average()}")
    print(f"   {'way':<52} {'median':>9} {'min':>9} {'vs raw':>8}  goal <= {SAVE_GOAL:.2f}x")
    for name in names:
        median = statistics.median(seconds[name])
        ratio = median / baseline
        verdict = "(baseline)" if name == names[0] else ""
        if name.startswith("engine"):
            verdict = "met" if ratio <= SAVE_GOAL else "NOT met"
        print(f"   {name:<52} {ms(median):>9} {ms(min(seconds[name])):>9} {ratio:7.2f}x  {verdict}".rstrip())
    print(f"   {'(not in the ratio) training_state.capture':<52} {ms(capture_s):>9}")


# --- part B: listing ----------------------------------------------------------------------------


@contextlib.contextmanager
def fsync_skipped() -> Iterator[None]:
    """Only to make the 1,000 listing fixtures quickly: durability does not change their bytes."""
    real = os.fsync
    os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = real


def make_run_with_checkpoints(directory: Path, count: int, size: str = "tiny") -> list[Path]:
    job = trained_job(size)
    info = RunInfo(run_id=new_run_id(), job=DEMO_JOB, job_options={"size": size, "seed": SEED})
    directory.mkdir(parents=True)
    write_run(directory, info)
    store = CheckpointStore(directory, info.run_id)
    paths = []
    with fsync_skipped():
        for n in range(1, count + 1):
            meta = meta_for(n * 10, info.run_id, val_loss=2.0 + ((n * 7919) % 1000) / 1000)
            state = capture(job, meta)
            paths.append(store.save(meta, lambda f, s=state: torch.save(s, f)).path)
    return paths


def time_listing(count: int, sample: int, rounds: int, root: Path, large_file: Path) -> None:
    directory = root / "listing-run"
    started = time.perf_counter()
    paths = make_run_with_checkpoints(directory, count)
    made_s = time.perf_counter() - started
    sample = min(sample, count)
    picks = [paths[i * count // sample] for i in range(sample)]
    small_picks = make_run_with_checkpoints(root / "small-model-sample", sample, size="small")
    sidecars = sorted(directory.glob("*.meta.json"))

    def listing() -> None:
        listed = run_dirs.store_for(directory).list()
        assert len(listed) == count, len(listed)

    def reading_sidecars() -> None:
        for path in sidecars:
            with open(path, "rb") as f:
                json.loads(f.read())

    def loading(files: list[Path], into: list[float]) -> Callable[[], None]:
        def load_each() -> None:
            for path in files:
                into.append(timed(lambda: load(path)))

        return load_each

    list_s: list[float] = []
    floor_s: list[float] = []
    load_s: list[float] = []
    small_load_s: list[float] = []
    for r in range(rounds):
        actions = [
            (listing, list_s),
            (reading_sidecars, floor_s),
            (loading(picks[r::rounds], load_s), []),
            (loading(small_picks[r::rounds], small_load_s), []),
        ]
        turn = r % len(actions)
        for action, into in actions[turn:] + actions[:turn]:
            into.append(timed(action))
    listed = statistics.median(list_s)
    big_all = statistics.median(timed(lambda: load(large_file)) for _ in range(3)) * count

    print(f"\nB. listing {count} checkpoints of the tiny model ({human(total_size(directory))} on disk, "
          f"made through the store in {made_s:.1f} s; page cache warm), {rounds} rounds (medians)")
    row("what", "time", "goal")
    row("run_dir.store_for(d).list(), in process", seconds_text(listed), goal(listed < LIST_GOAL_S, f"< {LIST_GOAL_S} s"))
    row("(reference) open + read + json.loads of each sidecar", seconds_text(statistics.median(floor_s)))
    sampled = f"{sample} sampled, x {count / sample:g}" if sample < count else "all files"
    for model, files, seconds in (("tiny", picks, load_s), ("small", small_picks, small_load_s)):
        load_all = statistics.median(seconds) * count
        row(f"torch.load(weights_only=True) of {count} {model}-model files", seconds_text(load_all),
            f"(baseline; {ms(load_all / count)} a {human(files[0].stat().st_size)} file; {sampled})")
        speedup = load_all / listed
        row(f"listing speedup over loading the {model}-model files", f"{speedup:.0f}x",
            goal(speedup >= LIST_SPEEDUP_GOAL, f">= {LIST_SPEEDUP_GOAL}x"))
    row(f"(reference) torch.load of {count} {human(large_file.stat().st_size)} files (3 loads x {count})",
        seconds_text(big_all), f"listing is {big_all / listed:.0f}x faster")

    cli = [sys.executable, "-m", "tui_trainer", "ckpt", "list", str(directory)]
    name = "python -m tui_trainer ckpt list DIR (subprocess)"
    if subprocess.run(cli, cwd=REPO_ROOT, env=child_env(), capture_output=True).returncode != 0:
        row(name, "skipped: ckpt list not available")
    else:
        cli_s = statistics.median(run_seconds(cli) for _ in range(rounds))
        row(name, seconds_text(cli_s), goal(cli_s < CLI_GOAL_S, f"< {CLI_GOAL_S} s"))
    for label, code in (
        ("(reference) python -c: import store_for, list, no torch",
         f"from tui_trainer.engine.rundir.layout import store_for; store_for({str(directory)!r}).list()"),
        ("(reference) python -c 'import torch'", "import torch"),
        ("(reference) python -c pass", "pass"),
    ):
        row(label, seconds_text(statistics.median(run_seconds([sys.executable, "-c", code]) for _ in range(rounds))))
    shutil.rmtree(directory)


def load(path: Path) -> object:
    return torch.load(path, map_location="cpu", weights_only=True)


def row(what: str, took: str, note: str = "") -> None:
    print(f"   {what:<62} {took:>9}  {note}".rstrip())


def goal(met: bool, target: str) -> str:
    return f"{target}: {'met' if met else 'NOT met'}"


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def run_seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO_ROOT, env=child_env(), check=True, capture_output=True)
    return time.perf_counter() - started


# --- plumbing -----------------------------------------------------------------------------------


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def total_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir())


def human(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} KB"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def seconds_text(seconds: float) -> str:
    return f"{seconds:.3f} s" if seconds < 10 else f"{seconds:.1f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="rounds of saves of the small state (default: 15)")
    parser.add_argument("--large-rounds", type=int, default=7, help="rounds of saves of the ~100 MB state (default: 7)")
    parser.add_argument("--count", type=int, default=1000, help="checkpoints to list (default: 1000)")
    parser.add_argument("--load-sample", type=int, default=50, help="files torch.load'ed to extrapolate from (default: 50)")
    parser.add_argument("--list-rounds", type=int, default=5, help="rounds of listing (default: 5)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    parser.add_argument("--saves-only", action="store_true", help="part A only: skip listing")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"bench_checkpoint: torch {torch.__version__}, threads={torch.get_num_threads()}, "
          f"temp dir on {'tmpfs' if is_tmpfs(tempfile.gettempdir()) else 'disk'}, load average {load_average()}")
    root = Path(tempfile.mkdtemp(prefix="tui-trainer-bench-ckpt-"))
    try:
        time_saves("demo small model, full training state", trained_job("small"), args.rounds, root)
        big = large_job()
        time_saves("~9M-parameter GPT, full training state", big, args.large_rounds, root)
        if not args.saves_only:
            large_file = root / "large.pt"
            torch.save(capture(big, meta_for(1, "reference")), large_file)
            del big
            time_listing(args.count, args.load_sample, args.list_rounds, root, large_file)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\nload average at the end: {load_average()}")
    return 0


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def is_tmpfs(path: str) -> bool:
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return False
    best = max((m.split() for m in mounts if path.startswith(m.split()[1])), key=lambda m: len(m[1]), default=None)
    return best is not None and best[2] == "tmpfs"


if __name__ == "__main__":
    sys.exit(main())
