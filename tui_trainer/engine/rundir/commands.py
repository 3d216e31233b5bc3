"""Steering a trainer in another process through small files in its run dir.

`tui-trainer watch` cannot reach a headless trainer's TrainingControl, so it writes commands
to `control.json`; the trainer looks at that file between steps (a `stat`, at most every
`POLL_INTERVAL_S`), applies the commands it has not applied yet, and says so in
`control_ack.json`::

    control_ack.json  (trainer)    {"format": 1, "trainer": ID, "applied": SEQ, "pid": ..., "host": ..., "device": ...,
                                    "lr": {...}}
    control.json      (dashboards) {"format": 1, "trainer": ID, "commands": [{"seq": 7, "op": "pause"}, ...]}

- A `target` command may carry a re-warm, `{"op": "target", "value": 5000, "rewarm": {"fraction":
  0.5, "steps": 200}}` (`steps` optional); one whose re-warm is garbled is skipped whole.
- The ack's `lr` holds what a dashboard needs to preview the LR on a new target
  (`lr_preview.LrFacts`). It is refreshed with the ack (when commands are applied, a pause and a
  new target included), never every step; the dashboard brings it up to date with the LR the
  history reports.

- The ack exists while a trainer listens; it is removed when the trainer ends. Its `trainer`
  id is new for every trainer, and commands name the id they are meant for, so a file left
  by an earlier trainer (a stale pause) never steers the next one.
- Each command has a sequence number, one above the last. The trainer applies, in order,
  those above its `applied`, so a burst written between two polls is neither lost nor
  applied twice; writers keep the unapplied ones when they add a command.
- Both files are replaced atomically (a temporary file, then a rename), so a reader sees the
  old file or the new one. A garbled file (hand-edited, truncated by another tool) is ignored
  until it changes; it never stops training.
- Writers take `.control.lock` (flock) around read-modify-write, so two dashboards watching
  the same run do not drop each other's commands.

This module does not import torch.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui_trainer.engine.atomic import atomic_write_bytes, read_regular
from tui_trainer.engine.errors import TrainerError, UnsafePath
from tui_trainer.engine.loop.control import TrainingControl
from tui_trainer.engine.loop.lr_preview import LrFacts
from tui_trainer.engine.loop.rewarm import Rewarm
from tui_trainer.engine.words import counted

CONTROL_FILE = "control.json"
ACK_FILE = "control_ack.json"
WRITER_LOCK_FILE = ".control.lock"
FORMAT = 1
# A stat every 0.05 s (a few microseconds) costs nothing next to a step; a key's command is
# applied within 0.05 s of being written, plus the step in flight.
POLL_INTERVAL_S = 0.05
# Commands the trainer has not applied yet are kept; a writer far ahead of a stuck trainer
# keeps only the newest ones.
MAX_PENDING = 64

PAUSE, RESUME, SAVE_NOW, TARGET, KEEP_LAST = "pause", "resume", "save_now", "target", "keep_last"
# Ending the run from an attached dashboard: save a checkpoint and stop, or stop without saving.
INTERRUPT, STOP = "interrupt", "stop"
# Paused on an anomaly: back to the last healthy checkpoint, skipping the batches since.
ROLL_BACK = "roll_back"
OPS = frozenset({PAUSE, RESUME, SAVE_NOW, TARGET, KEEP_LAST, INTERRUPT, STOP, ROLL_BACK})


class NotListening(TrainerError):
    """No trainer is polling this run dir's control file."""


@dataclass(frozen=True)
class Command:
    seq: int
    op: str
    value: int | None = None
    rewarm: Rewarm | None = None  # with a new target only

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"seq": self.seq, "op": self.op}
        if self.value is not None:
            data["value"] = self.value
        if self.rewarm is not None:
            data["rewarm"] = rewarm_to_json(self.rewarm)
        return data

    def describe(self) -> str:
        rewarm = "" if self.rewarm is None else f" (re-warm to {self.rewarm.fraction:g} of the peak" + (
            f" over {counted(self.rewarm.steps, 'step')})" if self.rewarm.steps else ")")
        return self.op.replace("_", " ") + ("" if self.value is None else f" {self.value}") + rewarm


@dataclass(frozen=True)
class ControlFile:
    trainer: str
    commands: tuple[Command, ...]

    @property
    def last_seq(self) -> int:
        return max((c.seq for c in self.commands), default=0)


@dataclass(frozen=True)
class Ack:
    trainer: str
    applied: int
    pid: int | None = None
    host: str | None = None
    device: str | None = None
    lr: LrFacts | None = None  # what the LR does on a new target, as of the ack's writing

    @property
    def on_this_host(self) -> bool:
        return self.host == socket.gethostname()


# --- reading ---------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def rewarm_to_json(rewarm: Rewarm) -> dict[str, Any]:
    data: dict[str, Any] = {"fraction": rewarm.fraction}
    if rewarm.steps is not None:
        data["steps"] = rewarm.steps
    return data


def parse_rewarm_json(data: Any) -> Rewarm | None:
    """A re-warm as a command carries it, or None if it is not one."""
    if not isinstance(data, dict) or set(data) - {"fraction", "steps"}:
        return None
    fraction, steps = data.get("fraction"), data.get("steps")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not math.isfinite(fraction):
        return None
    if steps is not None and not _is_int(steps):
        return None
    try:
        return Rewarm(float(fraction), steps)
    except ValueError:
        return None


def parse_command(data: Any) -> Command | None:
    """A well-formed command, or None (unknown op, bad value or re-warm, no sequence number)."""
    if not isinstance(data, dict) or not _is_int(data.get("seq")) or data["seq"] < 1:
        return None
    op, value = data.get("op"), data.get("value")
    if op not in OPS:
        return None
    if op == TARGET and not (_is_int(value) and value >= 1):
        return None
    if op == KEEP_LAST and not (_is_int(value) and value >= 0):
        return None
    rewarm = None
    if data.get("rewarm") is not None:
        rewarm = parse_rewarm_json(data["rewarm"]) if op == TARGET else None
        if rewarm is None:
            return None  # a re-warm that cannot be read must not become a plain new target
    return Command(data["seq"], op, value if op in (TARGET, KEEP_LAST) else None, rewarm)


def parse_control(data: Any) -> ControlFile | None:
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("trainer"), str):
        return None
    raw = data.get("commands")
    if not isinstance(raw, list):
        return None
    commands = (parse_command(c) for c in raw)
    return ControlFile(data["trainer"], tuple(sorted((c for c in commands if c), key=lambda c: c.seq)))


def parse_ack(data: Any) -> Ack | None:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    trainer, applied = data.get("trainer"), data.get("applied")
    if not isinstance(trainer, str) or not _is_int(applied) or applied < 0:
        return None
    pid = data.get("pid") if _is_int(data.get("pid")) else None
    host = data.get("host") if isinstance(data.get("host"), str) else None
    device = data.get("device") if isinstance(data.get("device"), str) else None
    lr = LrFacts.from_json(data["lr"]) if data.get("lr") is not None else None
    return Ack(trainer, applied, pid, host, device, lr)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(read_regular(path))
    except (OSError, ValueError, RecursionError):
        return None


def read_control(run_dir: str | os.PathLike[str]) -> ControlFile | None:
    """The commands in the run dir's control file; None if it is missing or garbled."""
    return parse_control(_read_json(Path(run_dir) / CONTROL_FILE))


def read_ack(run_dir: str | os.PathLike[str]) -> Ack | None:
    """The listening trainer's acknowledgement; None if no trainer listens (or it is garbled)."""
    return parse_ack(_read_json(Path(run_dir) / ACK_FILE))


def _written_by_us(path: Path) -> bool:
    try:
        return os.stat(path, follow_symlinks=False).st_uid == os.geteuid()
    except OSError:
        return False


def file_key(path: Path) -> tuple[int, int, int] | None:
    """Changes whenever the file is replaced or rewritten: inode, size and mtime."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


# --- writing ---------------------------------------------------------------------------------


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace `path` with `data` through a temporary file and a rename.

    No fsync: these files steer a live process and mean nothing after a crash; what matters
    is that a reader never sees half a file.
    """
    atomic_write_bytes(path, (json.dumps(data) + "\n").encode(), durable=False)


@contextlib.contextmanager
def _writer_lock(run_dir: Path) -> Iterator[None]:
    path = run_dir / WRITER_LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(f"{path} is a symbolic link; commands are never written through one") from None
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


class ControlClient:
    """The dashboard's side: send commands to whichever trainer listens in `run_dir`."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)

    def send(self, op: str, value: int | None = None, rewarm: Rewarm | None = None) -> Command:
        """Append one command for the listening trainer; return it (with its sequence number).

        Raises NotListening when no trainer polls this run dir, ValueError for a bad command.
        """
        with _writer_lock(self.run_dir):
            ack = read_ack(self.run_dir)
            if ack is None:
                raise NotListening(
                    f"no trainer is running in {self.run_dir}; continue it with `tui-trainer resume {self.run_dir}`"
                )
            current = read_control(self.run_dir)
            pending: tuple[Command, ...] = ()
            last = ack.applied
            if current is not None and current.trainer == ack.trainer:
                pending = tuple(c for c in current.commands if c.seq > ack.applied)
                last = max(last, current.last_seq)
            command = parse_command({"seq": last + 1, "op": op, "value": value,
                                     "rewarm": None if rewarm is None else rewarm_to_json(rewarm)})
            if command is None:
                raise ValueError(f"not a valid command: {op} {value!r}" + (f" with {rewarm}" if rewarm else ""))
            commands = [*pending, command][-MAX_PENDING:]
            write_json_atomic(
                self.run_dir / CONTROL_FILE,
                {"format": FORMAT, "trainer": ack.trainer, "commands": [c.to_json() for c in commands]},
            )
            return command


# --- the trainer's side ----------------------------------------------------------------------


def apply_command(command: Command, control: TrainingControl) -> None:
    if command.op == PAUSE:
        control.pause()
    elif command.op == RESUME:
        control.resume()
    elif command.op == SAVE_NOW:
        control.save_now()
    elif command.op == TARGET and command.value is not None:
        if command.rewarm is None:
            control.set_target(command.value)
        else:
            control.set_target(command.value, command.rewarm)
    elif command.op == KEEP_LAST and command.value is not None:
        control.set_keep_last(command.value)
    elif command.op == INTERRUPT:
        control.stop("interrupted")
    elif command.op == STOP:
        control.stop("stopped")
    elif command.op == ROLL_BACK:
        control.roll_back()


class ControlFilePoller:
    """The trainer's side: apply new commands from `control.json` to `control`.

    `lr_facts`, set by the trainer, tells the ack's `lr` (called when the ack is written, and
    once more at the poll after commands were applied, when the trainer has acted on them).
    Called from the training thread only. `poll()` is cheap enough for every step: it reads a
    clock, and at most every `interval` seconds stats the control file; it reads the file only
    when that changed. It never raises: a problem with these files must not stop training.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        control: TrainingControl,
        *,
        device: str | None = None,
        interval: float = POLL_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.control = control
        self.device = device
        self.interval = interval
        self.clock = clock
        self.trainer_id = secrets.token_hex(6)
        self.applied = 0
        self.listening = False
        self._next_poll = 0.0
        self._seen: tuple[int, int, int] | None = None
        self.lr_facts: Callable[[], dict[str, Any]] | None = None
        self._stale_lr = False

    def start(self) -> None:
        """Announce this trainer; commands written before now are not for it."""
        self._seen = file_key(self.run_dir / CONTROL_FILE)
        self.listening = True
        self._write_ack()
        self._next_poll = self.clock() + self.interval

    def poll(self) -> list[Command]:
        """Apply commands written since the last poll; return them."""
        if self._stale_lr:  # the commands applied last time have taken effect by now
            self._stale_lr = False
            self._write_ack()
        now = self.clock()
        if now < self._next_poll:
            return []
        if not self.listening:
            self.start()
            return []
        self._next_poll = now + self.interval
        path = self.run_dir / CONTROL_FILE
        key = file_key(path)
        if key is None or key == self._seen:
            return []
        self._seen = key
        if not _written_by_us(path):
            return []  # a run dir others may write to (chmod-ed open): their commands do not steer our run
        current = read_control(self.run_dir)
        if current is None or current.trainer != self.trainer_id:
            return []  # garbled, or left for an earlier trainer
        new = [c for c in current.commands if c.seq > self.applied]
        for command in new:
            apply_command(command, self.control)
        if new:
            self.applied = new[-1].seq
            self._write_ack()
            self._stale_lr = True
        return new

    def close(self) -> None:
        """Stop listening: remove the ack if it is still this trainer's."""
        if not self.listening:
            return
        self.listening = False
        ack = read_ack(self.run_dir)
        if ack is not None and ack.trainer == self.trainer_id:
            with contextlib.suppress(OSError):
                (self.run_dir / ACK_FILE).unlink()

    def _write_ack(self) -> None:
        data = {
            "format": FORMAT, "trainer": self.trainer_id, "applied": self.applied,
            "pid": os.getpid(), "host": socket.gethostname(), "device": self.device,
        }
        if self.lr_facts is not None:
            with contextlib.suppress(Exception):  # a preview's facts are a courtesy too; training goes on
                data["lr"] = self.lr_facts()
        with contextlib.suppress(OSError):  # a full disk must not stop training over a courtesy file
            write_json_atomic(self.run_dir / ACK_FILE, data)
