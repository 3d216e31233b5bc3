"""The processes of a run trained by several ranks, found from outside, from rank 0's pid.

Rank 0 holds the run's lock and acknowledges its commands, so its pid is what a viewer knows.
torchrun starts every rank of this machine as a child of one launcher process, each with `RANK`,
`WORLD_SIZE` and the launch's `TORCHELASTIC_RUN_ID` in its environment: the ranks are rank 0's
parent's children that carry the same run id. Read-only, from `/proc` (Linux); elsewhere, or for a
process of another user, no ranks are found and the panel shows the one process as before.
The answer is kept per rank 0 and looked for again only when a rank is gone or missing, so the
panel's once-a-second sample costs a few small reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RankProcess:
    rank: int
    pid: int
    local_rank: int | None = None  # its GPU under torchrun's one-GPU-per-rank convention


def read_environ(pid: int, proc: str = "/proc") -> dict[str, str] | None:
    """Another process's environment, or None where it cannot be read (gone, another user's, no /proc)."""
    try:
        raw = Path(proc, str(pid), "environ").read_bytes()
    except OSError:
        return None
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


def parent_pid(pid: int, proc: str = "/proc") -> int | None:
    try:
        text = Path(proc, str(pid), "stat").read_text(errors="replace")
        return int(text[text.rfind(")") + 2:].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def child_pids(pid: int, proc: str = "/proc") -> list[int]:
    """`pid`'s children, from each of its threads' `children` file (any thread may have started one)."""
    found: set[int] = set()
    try:
        tasks = list(Path(proc, str(pid), "task").iterdir())
    except OSError:
        return []
    for task in tasks:
        try:
            found.update(int(word) for word in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return sorted(found)


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def find_ranks(rank0_pid: int, proc: str = "/proc") -> tuple[RankProcess, ...]:
    """Every rank of `rank0_pid`'s launch on this machine, by rank; () unless it is one of several."""
    mine = read_environ(rank0_pid, proc)
    if mine is None or (_int(mine.get("WORLD_SIZE")) or 1) < 2 or "RANK" not in mine:
        return ()
    launcher = parent_pid(rank0_pid, proc)
    if launcher is None:
        return ()
    run_id = mine.get("TORCHELASTIC_RUN_ID")
    ranks = []
    for pid in child_pids(launcher, proc):
        env = mine if pid == rank0_pid else read_environ(pid, proc)
        if env is None or env.get("TORCHELASTIC_RUN_ID") != run_id or _int(env.get("RANK")) is None:
            continue
        ranks.append(RankProcess(int(env["RANK"]), pid, _int(env.get("LOCAL_RANK"))))
    return tuple(sorted(ranks, key=lambda r: r.rank))


def launcher_pid(rank0_pid: int, proc: str = "/proc") -> int | None:
    """torchrun's launcher of `rank0_pid` when it is one of several ranks: the pid a signal reaches them all by."""
    return parent_pid(rank0_pid, proc) if find_ranks(rank0_pid, proc) else None


class RankFinder:
    """`find_ranks`, kept while every rank it found lives and all of this machine's ranks are there."""

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc
        self._for: int | None = None
        self._ranks: tuple[RankProcess, ...] = ()
        self._complete = False

    def ranks_of(self, rank0_pid: int) -> tuple[RankProcess, ...]:
        if self._for == rank0_pid and self._complete and all(self._alive(r.pid) for r in self._ranks):
            return self._ranks
        env = read_environ(rank0_pid, self.proc)
        self._for, self._ranks = rank0_pid, find_ranks(rank0_pid, self.proc)
        # A process that is no rank stays so; ranks still starting, or unreadable, are looked for again.
        self._complete = env is not None and len(self._ranks) >= (_int(env.get("LOCAL_WORLD_SIZE")) or 0)
        return self._ranks

    def _alive(self, pid: int) -> bool:
        return Path(self.proc, str(pid)).exists()
