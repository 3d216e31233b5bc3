"""Steps per second: the engine's training loop against a bare PyTorch loop on the demo job.

Every side trains the same model on the same data with the same optimizer, LR schedule, grad
clip and seed (their per-step losses are compared to prove it). The engine side runs the default
policy (checkpoint every 100 steps, keep 5, evaluate before each save, history on, one event per
step), so its time includes the evaluations and saves a user pays for; a second engine side with
checkpoints off separates the loop's own overhead from the cost of saving. A reference side does
what nanoGPT does (the bare loop, plus an evaluation and a plain `torch.save` every 100 steps),
to tell the work the policy asks for from the engine's own cost.

Noise: this is meant for small, busy machines. All sides run in one process, each on its own
thread, and take turns every `--chunk` steps (only one computes at a time), so a slow spell of
the machine lands on all of them within a second. Each turn is timed by the side itself. A
round's ratio compares each turn with the bare loop's turn of the same cycle: ordinary turns
count with their median ratio, turns holding an evaluation, a save or the run's end count
as measured. The table gives the median over rounds.

The dashboard is measured in rounds of its own (`--dashboard-rounds`): the engine side's run,
headless, against the same run trained by the dashboard (`make_app` inside `App.run_test()`,
headless Textual), taking turns the same way. Its UI thread keeps working during the other
side's turns; that CPU time is charged to the dashboard (see `dashboard_round`).

Run from the repository root (or with the package installed, without PYTHONPATH):

    PYTHONPATH=. python benchmarks/bench_loop.py [--size small|tiny] [--steps N] [--rounds R] [--chunk K]
                                                 [--dashboard-rounds D]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tui_trainer.demo.job import make_job
from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.loop.job import DEMO_JOB
from tui_trainer.engine.loop.launch import start_run
from tui_trainer.engine.rundir.layout import RunSettings

GOAL_RATIO = 0.98
DASHBOARD_GOAL = 0.95
SEED = 1337
DEFAULT_STEPS = {"small": 200, "tiny": 1000}
DEFAULT_POLICY = CheckpointPolicy(every_steps=100, keep_last=5, eval_before_save=True)
NO_CHECKPOINTS = CheckpointPolicy(every_steps=0, save_final=False)
BARE = "bare PyTorch loop"
BARE_SAVING = "bare + eval, save /100"
ENGINE = "engine, default policy"
ENGINE_OFF = "engine, checkpoints off"
DASHBOARD = "engine, under dashboard"
SHORT = {BARE: "bare", BARE_SAVING: "bare+save", ENGINE: "engine", ENGINE_OFF: "engine-off", DASHBOARD: "dashboard"}


@dataclass
class Side:
    """One contender, run on its own thread, computing only while it holds the turn."""

    name: str
    work: Callable[[Side], None]
    threads: int
    turn_seconds: list[float] = field(default_factory=list)
    special_turns: set[int] = field(default_factory=set)  # turns with an eval, a save or the end
    losses: list[float] = field(default_factory=list)
    save_seconds: list[float] = field(default_factory=list)
    error: BaseException | None = None
    finished: bool = False
    charge_background: bool = False  # record this thread's CPU time between turns (a UI loop's)
    background_seconds: list[float] = field(default_factory=list)  # [t]: between turns t and t + 1

    def __post_init__(self) -> None:
        self._go, self._back = threading.Event(), threading.Event()
        self._turn_started = 0.0
        self._cpu_clock: int | None = None
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        torch.set_num_threads(self.threads)  # OpenMP keeps this per calling thread
        if self.charge_background:
            self._cpu_clock = time.pthread_getcpuclockid(threading.get_ident())
        self._go.wait()
        self._go.clear()
        self._turn_started = time.perf_counter()
        try:
            self.work(self)
        except BaseException as exc:  # re-raised by the conductor
            self.error = exc
        finally:
            self.turn_seconds.append(time.perf_counter() - self._turn_started)
            self.special_turns.add(len(self.turn_seconds) - 1)
            self.finished = True
            self._back.set()

    def hand_over(self) -> None:
        """Called on this side's thread between steps: end its turn and wait for the next one."""
        self.turn_seconds.append(time.perf_counter() - self._turn_started)
        cpu_at_end = self._thread_cpu()
        self._back.set()
        self._go.wait()
        self._go.clear()
        self._turn_started = time.perf_counter()
        self.background_seconds.append(self._thread_cpu() - cpu_at_end)

    def _thread_cpu(self) -> float:
        """CPU seconds of this side's own thread (not the caller's), if charged."""
        return time.clock_gettime(self._cpu_clock) if self._cpu_clock is not None else 0.0

    def mark_special(self) -> None:
        self.special_turns.add(len(self.turn_seconds))

    def take_turn(self) -> None:
        """Called by the conductor: let this side run until it hands over or finishes."""
        self._go.set()
        self._back.wait()
        self._back.clear()

    def join(self) -> None:
        self._thread.join()
        if self.error is not None:
            raise self.error


def bare_work(size: str, steps: int, chunk: int, save_dir: Path | None = None) -> Callable[[Side], None]:
    """The loop a user writes by hand; with `save_dir`, nanoGPT-style evals and saves too."""
    job = make_job(seed=SEED, size=size, max_iters=steps)
    every = DEFAULT_POLICY.every_steps

    def work(side: Side) -> None:
        model, optimizer, scheduler = job.model, job.optimizer, job.scheduler
        model.train()
        for step in range(1, steps + 1):
            batch = job.batches.next_batch()
            loss = job.loss_fn(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), job.grad_clip)
            optimizer.step()
            scheduler.step()
            side.losses.append(loss.item())
            if step % chunk == 0 and step < steps:
                side.hand_over()
            if save_dir is not None and step % every == 0:
                side.mark_special()
                model.eval()
                with torch.no_grad():
                    metrics = job.evaluate(model)
                model.train()
                checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                              "scheduler": scheduler.state_dict(), "step": step, "metrics": metrics}
                save_dir.mkdir(parents=True, exist_ok=True)
                torch.save(checkpoint, save_dir / "ckpt.pt")

    return work


def engine_work(size: str, steps: int, chunk: int, policy: CheckpointPolicy, run_dir: Path) -> Callable[[Side], None]:
    holder: list[Side] = []

    def on_event(event: ev.Event) -> None:
        # A headless reporter's cheap part: look at the event and keep what it needs.
        side = holder[0]
        if type(event) is ev.StepCompleted:
            side.losses.append(event.loss)
            if event.step % chunk == 0 and event.step < steps:
                side.hand_over()
        elif isinstance(event, (ev.Evaluated, ev.CheckpointSaved)):
            side.mark_special()
            if isinstance(event, ev.CheckpointSaved):
                side.save_seconds.append(event.seconds)

    trainer = start_run(
        run_dir,
        job=DEMO_JOB,
        job_options={"size": size, "seed": SEED},
        policy=policy,
        settings=RunSettings(max_iters=steps, eval_every=0, log_every=1),
        on_event=on_event,
    )

    def work(side: Side) -> None:
        holder.append(side)
        result = trainer.run()
        if result.reason != "target":
            raise RuntimeError(f"engine run ended early: {result.reason} {result.notes}")

    return work


@dataclass
class RoundResult:
    steps_per_sec: dict[str, float]
    ratio: dict[str, float]  # speed vs the bare loop, noise-cancelled turn by turn
    plain_ratio: dict[str, float]  # median over turns without an eval, a save or the end
    extra_seconds: dict[str, float]  # time the special turns took beyond ordinary ones
    bare_turn: float  # median seconds of one bare turn
    save_seconds: list[float]  # the default engine's saves, as its events report them
    losses_match: bool


def run_round(size: str, steps: int, chunk: int, threads: int, root: Path) -> RoundResult:
    run_root = Path(tempfile.mkdtemp(prefix="round-", dir=root))
    makers = {
        BARE: lambda: bare_work(size, steps, chunk),
        BARE_SAVING: lambda: bare_work(size, steps, chunk, run_root / "bare"),
        ENGINE: lambda: engine_work(size, steps, chunk, DEFAULT_POLICY, run_root / "default"),
        ENGINE_OFF: lambda: engine_work(size, steps, chunk, NO_CHECKPOINTS, run_root / "off"),
    }
    sides = [Side(name, make(), threads) for name, make in makers.items()]
    turns = steps // chunk
    run_interleaved(sides, turns, run_root)

    bare = sides[0]
    timed = range(1, turns)  # turn 0 warms up each side; it is not timed
    result = RoundResult({}, {}, {}, {}, statistics.median(bare.turn_seconds[t] for t in timed),
                         sides[2].save_seconds, all(s.losses == bare.losses for s in sides))
    for side in sides:
        result.steps_per_sec[side.name] = (steps - chunk) / sum(side.turn_seconds[t] for t in timed)
        speed = {t: bare.turn_seconds[t] / side.turn_seconds[t] for t in timed}
        special = (side.special_turns | bare.special_turns) & set(timed)
        plain = statistics.median(r for t, r in speed.items() if t not in special)
        # Every turn does the same steps, so the round's speed ratio is the harmonic mean.
        cost = sum(1 / speed[t] for t in special) + (len(timed) - len(special)) / plain
        result.ratio[side.name] = len(timed) / cost
        result.plain_ratio[side.name] = plain
        result.extra_seconds[side.name] = sum(side.turn_seconds[t] - bare.turn_seconds[t] / plain for t in special)
    return result


def dashboard_work(size: str, steps: int, chunk: int, threads: int, run_dir: Path) -> Callable[[Side], None]:
    """The ENGINE side's run, built and trained by the dashboard (headless Textual) on its worker."""
    from tui_trainer.tui.app import make_app

    def work(side: Side) -> None:
        def launch_fn(on_event: Callable[[ev.Event], None], **kwargs: object) -> object:
            torch.set_num_threads(threads)  # per thread, and this is the dashboard's worker thread

            def turns(event: ev.Event) -> None:
                on_event(event)  # into the dashboard's buffer, as in real use
                if type(event) is ev.StepCompleted:
                    side.losses.append(event.loss)
                    if event.step % chunk == 0 and event.step < steps:
                        side.hand_over()
                elif isinstance(event, (ev.Evaluated, ev.CheckpointSaved)):
                    side.mark_special()

            return start_run(run_dir, job=DEMO_JOB, job_options={"size": size, "seed": SEED}, policy=DEFAULT_POLICY,
                             settings=RunSettings(max_iters=steps, eval_every=0, log_every=1), on_event=turns,
                             **kwargs)

        app = make_app(launch_fn)

        async def drive() -> None:
            async with app.run_test(size=(120, 40)):
                # Wait without polling: the UI loop does only what it does in real use.
                while not await asyncio.get_running_loop().run_in_executor(None, app.runner.done.wait, 1.0):
                    pass

        asyncio.run(drive())
        result = app.runner.result
        if result is None or result.reason != "target":
            raise RuntimeError(f"dashboard run ended early: {app.model.state} {app.model.error}")

    return work


@dataclass
class DashboardRound:
    steps_per_sec: dict[str, float]
    ratio: float  # under the dashboard vs headless, UI time between its turns charged to it
    uncharged_ratio: float  # the same, counting only the dashboard's own turns
    ui_share: float  # UI CPU between its turns, as a share of its turns' wall time
    losses_match: bool


def dashboard_round(size: str, steps: int, chunk: int, threads: int, root: Path) -> DashboardRound:
    """The headless engine and the same run under the dashboard, taking turns like `run_round`.

    The dashboard's UI thread keeps drawing while the headless side computes; the CPU it uses
    between the dashboard's turns is added to the dashboard's next turn, so that work is paid
    by the side that causes it (a conservative count: on two cores part of it would overlap).
    """
    run_root = Path(tempfile.mkdtemp(prefix="dashboard-", dir=root))
    headless = Side(ENGINE, engine_work(size, steps, chunk, DEFAULT_POLICY, run_root / "headless"), threads)
    dashboard = Side(DASHBOARD, dashboard_work(size, steps, chunk, threads, run_root / "dashboard"), threads,
                     charge_background=True)
    sides = [headless, dashboard]
    turns = steps // chunk
    run_interleaved(sides, turns, run_root)
    # Turn 0 holds launch and the first paint; the last, the app closing: neither is timed.
    timed = range(1, turns - 1)
    headless_s = sum(headless.turn_seconds[t] for t in timed)
    own_s = sum(dashboard.turn_seconds[t] for t in timed)
    background_s = sum(dashboard.background_seconds[t - 1] for t in timed)
    dashboard_s = own_s + background_s
    rates = {ENGINE: chunk * len(timed) / headless_s, DASHBOARD: chunk * len(timed) / dashboard_s}
    return DashboardRound(rates, headless_s / dashboard_s, headless_s / own_s, background_s / own_s,
                          dashboard.losses == headless.losses)


def print_dashboard_table(rounds: list[DashboardRound]) -> None:
    ratios = [r.ratio for r in rounds]
    ratio = statistics.median(ratios)
    print()
    print(f"{'side':<25} {'it/s median':>11} {'vs headless':>14} {'min-max':>13}  goal >= {DASHBOARD_GOAL}x")
    headless = statistics.median(r.steps_per_sec[ENGINE] for r in rounds)
    print(f"{ENGINE:<25} {headless:11.2f} {1.0:13.3f}x {'':>13}  (baseline)")
    verdict = "met" if ratio >= DASHBOARD_GOAL else "NOT met"
    spread = f"{min(ratios):.3f}-{max(ratios):.3f}"
    rate = statistics.median(r.steps_per_sec[DASHBOARD] for r in rounds)
    print(f"{DASHBOARD:<25} {rate:11.2f} {ratio:13.3f}x {spread:>13}  {verdict}")
    matched = all(r.losses_match for r in rounds)
    print(f"per-step losses identical headless and under the dashboard: {'yes' if matched else 'NO'}")
    uncharged = statistics.median(r.uncharged_ratio for r in rounds)
    share = statistics.median(r.ui_share for r in rounds)
    print(f"{DASHBOARD}: its own turns alone run at {uncharged:.3f}x; the UI thread's CPU between its turns, "
          f"charged above, is {share:.1%} of their time")


def run_interleaved(sides: list, turns: int, run_root: Path) -> None:
    """Give each side its turns in rotation until all finish; remove their run dirs after."""
    try:
        for turn in range(turns):
            for side in rotated(sides, turn):
                if not side.finished:
                    side.take_turn()
        for side in sides:
            if not side.finished:
                raise RuntimeError(f"{side.name} did not finish in {turns} turns")
            side.join()
    finally:
        shutil.rmtree(run_root, ignore_errors=True)


def rotated(items: list[Side], by: int) -> list[Side]:
    by %= len(items)
    return items[by:] + items[:by]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(DEFAULT_STEPS), default="small", help="demo model size")
    parser.add_argument("--steps", type=int, help="steps per run (default: 200 small, 1000 tiny)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (default: 3)")
    parser.add_argument("--chunk", type=int, default=5, help="steps per turn; the first turn is untimed (default: 5)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads, all sides")
    parser.add_argument("--dashboard-rounds", type=int, default=2,
                        help="rounds of headless engine vs dashboard; 0 skips them (default: 2)")
    args = parser.parse_args(argv)
    steps = args.steps or DEFAULT_STEPS[args.size]
    if args.chunk < 1 or DEFAULT_POLICY.every_steps % args.chunk or steps % args.chunk or steps < 3 * args.chunk:
        parser.error(f"--chunk must divide {DEFAULT_POLICY.every_steps} and --steps, and --steps must be >= 3 chunks")
    torch.set_num_threads(args.threads)
    print(
        f"bench_loop: demo size={args.size}, {steps} steps a run in turns of {args.chunk} "
        f"(first turn untimed), {args.rounds} rounds, torch threads={torch.get_num_threads()}, seed={SEED}, "
        f"load average {load_average()}"
    )
    root = Path(tempfile.mkdtemp(prefix="tui-trainer-bench-loop-"))
    try:
        run_round(args.size, 3 * args.chunk, args.chunk, args.threads, root)  # untimed: warms up kernels and caches
        rounds = []
        for number in range(1, args.rounds + 1):
            rounds.append(run_round(args.size, steps, args.chunk, args.threads, root))
            line = ", ".join(f"{SHORT[name]} {rate:.1f} it/s {rounds[-1].ratio[name]:.3f}x"
                             for name, rate in rounds[-1].steps_per_sec.items())
            print(f"  round {number}: {line}")
        if args.dashboard_rounds > 0:
            dashboard_rounds = []
            for number in range(1, args.dashboard_rounds + 1):
                dashboard_rounds.append(dashboard_round(args.size, steps, args.chunk, args.threads, root))
                rates = dashboard_rounds[-1].steps_per_sec.items()
                line = ", ".join(f"{SHORT[name]} {rate:.1f} it/s" for name, rate in rates)
                print(f"  dashboard round {number}: {line}, {dashboard_rounds[-1].ratio:.3f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_table(rounds, args.chunk)
    if args.dashboard_rounds > 0:
        print_dashboard_table(dashboard_rounds)
    print(f"load average at the end: {load_average()}")
    return 0


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def print_table(rounds: list[RoundResult], chunk: int) -> None:
    print()
    print(f"{'side':<25} {'it/s median':>11} {'vs bare median':>14} {'min-max':>13}  goal >= {GOAL_RATIO}x")
    for name in rounds[0].steps_per_sec:
        rate = statistics.median(r.steps_per_sec[name] for r in rounds)
        ratios = [r.ratio[name] for r in rounds]
        ratio = statistics.median(ratios)
        verdict = {BARE: "(baseline)", BARE_SAVING: "(reference)"}.get(name)
        verdict = verdict or ("met" if ratio >= GOAL_RATIO else "NOT met")
        spread = f"{min(ratios):.3f}-{max(ratios):.3f}"
        print(f"{name:<25} {rate:11.2f} {ratio:13.3f}x {spread:>13}  {verdict}")

    print()
    matched = all(r.losses_match for r in rounds)
    print(f"per-step losses identical on all sides, every round: {'yes' if matched else 'NO: the loops differ'}")
    versus = statistics.median(r.ratio[ENGINE] / r.ratio[BARE_SAVING] for r in rounds)
    print(f"{ENGINE} vs {BARE_SAVING} (same evals, plain torch.save, no fsync): {versus:.3f}x")
    bare_turn = statistics.median(r.bare_turn for r in rounds)
    print(f"one bare turn (median): {bare_turn * 1000:.1f} ms")
    for name in (ENGINE, ENGINE_OFF):
        plain = statistics.median(r.plain_ratio[name] for r in rounds)
        overhead = (1 / plain - 1) * bare_turn / chunk * 1e6
        print(f"{name}: turns without eval or save run at {plain:.3f}x the bare loop "
              f"(about {overhead:+.0f} us a step)")
    saves = len(rounds[0].save_seconds)
    if saves:
        for name in (BARE_SAVING, ENGINE):
            extra = statistics.median(r.extra_seconds[name] for r in rounds) / saves
            print(f"{name}: each of its {saves} evals + saves a run costs about {extra * 1000:.0f} ms "
                  f"({extra / bare_turn * chunk:.1f} bare steps)")
        reported = statistics.median(s for r in rounds for s in r.save_seconds)
        print(f"{ENGINE}: of which the save itself (capture + store, as CheckpointSaved reports it) "
              f"is {reported * 1000:.0f} ms")


if __name__ == "__main__":
    sys.exit(main())
