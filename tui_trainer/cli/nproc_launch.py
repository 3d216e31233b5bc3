"""`train --nproc N` and `resume --nproc N`: the same command on N processes, started by torchrun.

This process starts torch's own launcher (`python -m torch.distributed.run`) with the command's
arguments less `--nproc`, and waits for it. A signal sent here goes to the launcher, which sends it
on to every rank; each saves its part of one interrupted checkpoint (rank 0 writes it) and exits
128 + the signal, as this process then does. The launcher runs in a session of its own so a Ctrl+C
on the terminal reaches the ranks once, through it, and not twice.

Each rank (`RANK`, `WORLD_SIZE` set by torchrun, also under a plain `torchrun -m tui_trainer train`)
trains through `engine.loop.distributed`, which imports torch; this module does not.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from typing import Any

from tui_trainer.cli.anomaly_flags import EXIT_ANOMALY
from tui_trainer.cli.arg_types import positive_int
from tui_trainer.engine.errors import NotEnoughDiskSpace, TrainerError
from tui_trainer.engine.words import counted

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
EXIT_DISK_FULL = NotEnoughDiskSpace.exit_code  # as a run in one process exits on a full disk
RESUME_AS = "--tui-trainer-resume-as"  # the launcher's own first argument, before torchrun's


class TooManyProcesses(TrainerError):
    """More processes than GPUs for a job that trains on CUDA."""


class NodeOptionsIncomplete(TrainerError):
    """Several machines asked for without what torchrun needs to find each other."""

    exit_code = 2


# torchrun's options for several machines: given to the launcher, never to the ranks.
NODE_FLAGS = ("--nnodes", "--node-rank", "--rdzv-endpoint", "--rdzv-id")


def add_nproc_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("several processes")
    group.add_argument("--nproc", type=positive_int, metavar="N",
                       help="train on N processes on this machine through torchrun (DDP: gloo on the CPU, NCCL on "
                       "GPUs, one GPU each); rank 0 alone writes the run dir. The dashboard shows a line per rank")
    group.add_argument("--strategy", choices=("ddp", "fsdp"),
                       help="how the processes share the work: ddp (the default for a new run), each with a whole "
                       "copy of the model; fsdp, each with a shard of the model, optimizer and checkpoint (a step "
                       "folder step_N.dcp). resume continues the way the run was trained")
    group.add_argument("--nnodes", type=positive_int, metavar="N",
                       help="with --nproc: train on N machines, --nproc processes each (torchrun's --nnodes); run "
                       "the same command on every machine, each with its --node-rank, all with one --rdzv-endpoint, "
                       "the run dir on a filesystem they all share")
    group.add_argument("--node-rank", type=int, metavar="R", help="this machine's number, 0 to N-1 (0 writes the run dir)")
    group.add_argument("--rdzv-endpoint", metavar="HOST:PORT",
                       help="where the machines meet (torchrun's c10d rendezvous), e.g. node0:29400")
    group.add_argument("--rdzv-id", metavar="ID", help="the rendezvous id, the same on every machine (default: the "
                       "run dir's name)")


def launched_ranks() -> bool:
    """True in one of several processes torchrun started (this command, or a plain `torchrun -m tui_trainer`)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_rank_zero() -> bool:
    return os.environ.get("RANK", "0") == "0"


def rank_argv(argv: list[str]) -> list[str]:
    """The command for each rank: the same arguments, less `--nproc` and torchrun's node options, headless."""
    launcher_only = ("--nproc", *NODE_FLAGS)
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in launcher_only:
            skip = True
        elif not arg.startswith(tuple(f"{flag}=" for flag in launcher_only)):
            out.append(arg)
    return out if "--headless" in out else [*out, "--headless"]


def check_node_flags(args: argparse.Namespace) -> None:
    """NodeOptionsIncomplete for torchrun's node options given without --nproc (they would do nothing)."""
    given = [flag for flag in NODE_FLAGS if getattr(args, flag[2:].replace("-", "_"), None) is not None]
    if given and not getattr(args, "nproc", None):
        raise NodeOptionsIncomplete(f"{given[0]} goes with --nproc N (the processes on each machine)")


def torchrun_args(args: argparse.Namespace) -> list[str]:
    """torchrun's options: one machine (`--standalone`), or several meeting at `--rdzv-endpoint`."""
    nnodes = getattr(args, "nnodes", None)
    endpoint = getattr(args, "rdzv_endpoint", None)
    if not nnodes and not endpoint:
        return ["--standalone", "--nproc-per-node", str(args.nproc)]
    nnodes = nnodes or 1
    node_rank = getattr(args, "node_rank", None)
    missing = [flag for flag, value in (("--rdzv-endpoint HOST:PORT", endpoint), ("--node-rank R", node_rank))
               if value is None and (nnodes > 1 or flag.startswith("--rdzv"))]
    if missing:
        raise NodeOptionsIncomplete(f"--nnodes {nnodes} needs {' and '.join(missing)} on every machine "
                                    "(the same endpoint everywhere, each machine its own rank from 0)")
    if node_rank is not None and not 0 <= node_rank < nnodes:
        raise NodeOptionsIncomplete(f"--node-rank {node_rank} is not one of 0..{nnodes - 1} (--nnodes {nnodes})")
    where = getattr(args, "path", None) or getattr(args, "run_dir", None)
    run_id = getattr(args, "rdzv_id", None) or (os.path.basename(os.path.normpath(str(where))) if where else "tui-trainer")
    return ["--nnodes", str(nnodes), "--node-rank", str(node_rank or 0), "--rdzv-backend", "c10d",
            "--rdzv-endpoint", endpoint, "--rdzv-id", run_id, "--nproc-per-node", str(args.nproc)]


def check_devices(nproc: int, job_options: dict[str, Any]) -> None:
    """TooManyProcesses, before anything starts, if a CUDA job asks for more processes than GPUs."""
    device = str(job_options.get("device", "auto"))
    if not (device.startswith("cuda") or device == "auto"):
        return
    import torch

    if device == "auto" and not torch.cuda.is_available():
        return
    count = torch.cuda.device_count()
    if nproc > count:
        raise TooManyProcesses(
            f"--nproc {nproc} asks for more processes than the {counted(count, 'GPU')} here (one GPU each); "
            f"use --nproc {count} or less, or --job-opt device=cpu"
        )


def run_on_ranks(args: argparse.Namespace, job_options: dict[str, Any], *, detached: bool = False) -> int:
    """Start the launcher for `--nproc` ranks and wait for it; the exit code of the whole run.

    `detached`: this is the trainer a dashboard started (`session.detached`); the ranks' output
    and rank 0's start report come through this process (`session.rank_relay`), and a hang-up
    means nothing to it.
    """
    check_devices(args.nproc, job_options)
    from tui_trainer.cli.strategy import preflight

    preflight(args, job_options)
    where = getattr(args, "path", None) or getattr(args, "run_dir", None) or "RUN_DIR"
    nodes = torchrun_args(args)
    resume_as = f"tui-trainer resume --nproc {args.nproc} {where}"
    if "--standalone" not in nodes:
        resume_as += " (on every machine, with the same --nnodes and --rdzv-endpoint)"
    command = [sys.executable, "-m", __name__, RESUME_AS, resume_as, *nodes,
               "-m", "tui_trainer", *rank_argv(list(args.argv))]
    env = {"OMP_NUM_THREADS": "1", **os.environ}  # torchrun's own default, without its warning
    relay, output = None, None
    if detached:
        from tui_trainer.session.rank_relay import RankOutputRelay

        relay = RankOutputRelay()
        env, output = relay.env(env), relay.write_fd
    try:
        launcher = subprocess.Popen(command, env=env, start_new_session=True, stdout=output, stderr=output)
    finally:
        if relay is not None:
            relay.start()
    caught: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if not caught:
            caught.append(signum)
        launcher.send_signal(signum)

    forwarded = [sig for sig in FORWARDED if not (detached and sig == signal.SIGHUP)]
    previous = {sig: signal.signal(sig, forward) for sig in forwarded}
    try:
        code = launcher.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if relay is not None:
            relay.finish(launcher.returncode)
    if caught:
        return 128 + caught[0]
    return 0 if code == 0 else max(code, 1)


def launcher_main(argv: list[str]) -> int:
    """torchrun's `main`, with its own tracebacks (after a signal, or a rank that failed) as one line.

    torchrun's log lines are left out: what they say of a failed rank, the last line here says
    once. A rank that died (killed, not by the launcher's own SIGTERM to the others) ends the run
    for all; the line says how to resume it from its last checkpoint.
    """
    resume_as = "tui-trainer resume --nproc N RUN_DIR"
    if argv[:1] == [RESUME_AS]:
        resume_as, argv = argv[1], argv[2:]
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main

    if "LOGLEVEL" not in os.environ:  # torchrun's own setting for its logs, if someone wants them
        _quiet_torchrun_logs()
    try:
        main(argv)
    except SignalException as exc:  # the ranks had it too, and have said what they did
        return 128 + int(exc.sigval)
    except ChildFailedError as exc:
        agreed = agreed_stop(exc.failures)
        if agreed != EXIT_ANOMALY:  # rank 0's own line named the anomaly's step: nothing to add
            print(f"tui-trainer: {failure_line(exc.failures, resume_as)}", file=sys.stderr)
        return agreed or 1
    return 0


def agreed_stop(failures: dict[int, Any]) -> int | None:
    """The exit code of a stop every rank made together at one step (rank 0's full disk, an anomaly),
    some ranks perhaps sent SIGTERM by torchrun as the first ended; None for any other failure."""
    codes = {f.exitcode for f in failures.values()} - {-signal.SIGTERM}
    return codes.pop() if len(codes) == 1 and codes <= {EXIT_DISK_FULL, EXIT_ANOMALY} else None


def stopped_on_a_full_disk(failures: dict[int, Any]) -> bool:
    """Every rank ended on rank 0's full disk (or was sent SIGTERM by torchrun as it ended)."""
    return agreed_stop(failures) == EXIT_DISK_FULL


def _quiet_torchrun_logs() -> None:
    import logging

    for name in ["torch.distributed.elastic", *logging.root.manager.loggerDict]:
        if name.startswith(("torch.distributed.elastic", "torch.distributed.run")):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def failure_line(failures: dict[int, Any], resume_as: str) -> str:
    """One line for ranks that failed: which died of a signal (and how to resume), or their exit statuses."""
    if stopped_on_a_full_disk(failures):
        return f"the disk is full, so every rank stopped (rank 0 said where, above); make room, then: {resume_as}"
    died = {rank: -f.exitcode for rank, f in failures.items() if f.exitcode < 0 and -f.exitcode != signal.SIGTERM}
    if died:
        names = {int(sig): sig.name for sig in signal.Signals}
        how = ", ".join(f"rank {rank} died ({names.get(sig, f'signal {sig}')})" for rank, sig in sorted(died.items()))
        return f"{how}, so the other ranks stopped; continue from the last checkpoint with: {resume_as}"
    return ", ".join(f"rank {rank} exited with status {f.exitcode}" for rank, f in sorted(failures.items()))


class SilentReporter:
    """The console reporter of a rank other than 0: rank 0 speaks for the run."""

    def start(self) -> None: ...

    def handle(self, _event: object) -> None: ...

    def note(self, _note: str) -> None: ...

    def close(self, _result: object) -> None: ...


if __name__ == "__main__":
    raise SystemExit(launcher_main(sys.argv[1:]))
