"""Every run dir under a root (`checkpoints/`), summed up from small files: the runs screen and `runs`.

A run is summed up from `run.json`, the checkpoint sidecars, the last lines of `history.jsonl`
and the sizes of its files; no checkpoint is opened, so a root of many runs lists in a blink.
Its state comes from the writer lock first: a run whose lock no live process holds is not
running, whatever its `run.json` still says (a trainer killed with -9 never wrote its end).

This module does not import torch.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from tui_trainer.engine.checkpoints import retention
from tui_trainer.engine.checkpoints.meta import CheckpointMeta
from tui_trainer.engine.checkpoints.store import CheckpointStore
from tui_trainer.engine.errors import RunDirError, UnsafePath
from tui_trainer.engine.rundir.discover import find_run_dirs
from tui_trainer.engine.rundir.history_tail import parse_record
from tui_trainer.engine.rundir.layout import HISTORY_FILE, LockHolder, lock_holder, read_run
from tui_trainer.engine.sizes import human_bytes
from tui_trainer.engine.words import counted

# `run.json` states a trainer writes while it lives; without the lock held they mean it died.
LIVE_STATES = frozenset({"new", "running", "paused"})
GONE = "gone"  # as `watch` says of a run whose trainer died without writing its end state
TAIL_BYTES = 64 << 10  # the last lines of a history, enough for its last step


@dataclass(frozen=True)
class RunSummary:
    """One run as the runs table shows it."""

    path: Path
    name: str  # relative to the root
    run_id: str
    job: str
    state: str  # running, paused, finished, stopped, interrupted, failed, gone (or new)
    last_step: int | None
    target: int
    monitor: str
    best_value: float | None  # the best checkpoint's monitored metric, val_loss by default
    best_checkpoint: str | None
    checkpoints: int
    disk_bytes: int  # every file under the run dir, superseded ones included, as `du` counts them
    created: str
    holder: LockHolder | None = None  # the live process training it, if any

    @property
    def live(self) -> str | None:
        """Who trains it, in words (`pid 4242, detached`), while a live process does."""
        return self.holder.describe() if self.holder is not None and self.running else None

    @property
    def running(self) -> bool:
        """A live process holds its lock: it is being trained right now."""
        return self.state in ("running", "paused")


@dataclass(frozen=True)
class RunsIndex:
    root: Path
    runs: tuple[RunSummary, ...]
    problems: tuple[str, ...] = ()  # run dirs that could not be read, and why

    @property
    def disk_bytes(self) -> int:
        return sum(r.disk_bytes for r in self.runs)

    @property
    def checkpoints(self) -> int:
        return sum(r.checkpoints for r in self.runs)

    def total(self) -> str:
        """"3 runs, 1 checkpoint, 4.2 MB": the line under a listing (`runs`, the runs screen)."""
        return (f"{counted(len(self.runs), 'run')}, {counted(self.checkpoints, 'checkpoint')}, "
                f"{human_bytes(self.disk_bytes)}")

    def find(self, path: str | os.PathLike[str]) -> RunSummary | None:
        wanted = os.path.realpath(path)
        return next((r for r in self.runs if os.path.realpath(r.path) == wanted), None)


def list_runs(root: str | os.PathLike[str]) -> RunsIndex:
    """The runs under `root` (its run dirs, and those one folder further down), by name.

    `root` may itself be a run dir: then it is the one run listed.
    """
    root = Path(root)
    if not root.exists():
        raise RunDirError(f"{root} does not exist; give the folder that holds your run dirs (e.g. checkpoints/)")
    if not root.is_dir():
        raise RunDirError(f"{root} is not a directory; give the folder that holds your run dirs")
    runs, problems = [], []
    for run_dir in find_run_dirs(root):
        try:
            runs.append(summarize_run(run_dir, os.path.relpath(run_dir, root) if run_dir != root else root.name))
        except (RunDirError, UnsafePath, OSError) as exc:  # one bad run dir never hides the others
            problems.append(f"{run_dir}: {exc}")
    return RunsIndex(root, tuple(sorted(runs, key=lambda r: r.name)), tuple(problems))


def summarize_run(run_dir: str | os.PathLike[str], name: str | None = None) -> RunSummary:
    run_dir = Path(run_dir)
    info = read_run(run_dir)
    metas = read_sidecars(run_dir)
    best = retention.best_checkpoint(metas, info.run_id, info.policy.monitor, info.policy.mode)
    own = retention.own_checkpoints(metas, info.run_id)
    holder = lock_holder(run_dir)
    last_step = last_logged_step(run_dir / HISTORY_FILE)
    if last_step is None and own:
        last_step = own[-1].step
    return RunSummary(
        path=run_dir,
        name=name or run_dir.name,
        run_id=info.run_id,
        job=info.job,
        state=run_state(holder, info.state),
        last_step=last_step,
        target=info.settings.max_iters,
        monitor=info.policy.monitor,
        best_value=best.metric(info.policy.monitor) if best is not None else None,
        best_checkpoint=best.name if best is not None else None,
        checkpoints=len(metas),
        disk_bytes=run_disk_bytes(run_dir),
        created=info.created,
        holder=holder,
    )


def best_label(runs: list[RunSummary]) -> str:
    """The header over the runs' best values: 'best val' for val_loss, 'best accuracy' when every
    run monitors accuracy; plain 'best' when they differ, and each value then names its metric."""
    monitors = {run.monitor for run in runs}
    if len(monitors) != 1:
        return "best"
    return "best val" if monitors == {"val_loss"} else f"best {monitors.pop()}"


def run_state(holder: LockHolder | None, recorded: str) -> str:
    """The state `run.json` records, corrected by whether a live process holds the lock."""
    if holder is not None:
        return "paused" if recorded == "paused" else "running"
    return GONE if recorded in LIVE_STATES else recorded


def read_sidecars(run_dir: Path) -> list[CheckpointMeta]:
    """The metadata of the checkpoints in a run dir, from their sidecars only (no torch).

    The store's own scan, so a run here holds exactly the checkpoints `ckpt list` shows: links
    out of the run dir are left out, as everywhere else.
    """
    return CheckpointStore(run_dir).scan(sidecars_only=True)


def last_logged_step(history: Path) -> int | None:
    """The step of the last complete record in a history file, read from its end."""
    try:  # never blocks on a FIFO planted in its place
        fd = os.open(history, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        tail = os.pread(fd, TAIL_BYTES, max(0, st.st_size - TAIL_BYTES))
    except OSError:
        return None
    finally:
        os.close(fd)
    for line in reversed(tail.splitlines()):
        record = parse_record(line)
        if record is not None:
            return int(record["step"])
    return None


def run_disk_bytes(folder: str | os.PathLike[str]) -> int:
    """A run's size: the bytes of every file under it (checkpoints, exports, history, journal), links
    not followed. The one measure `runs`, the runs screen and the dashboard's disk panel all show."""
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue  # removed while we walked (a prune, a rotation)
    return total
