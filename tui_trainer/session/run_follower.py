"""Following a run that another process trains, as the engine events the dashboard already reads.

`RunFollower.poll()` looks at the run dir: new lines of `history.jsonl` (tailed, each byte
read once), `run.json` (state, target, keep-last), `control_ack.json` (who trains it, which
commands it applied) and the checkpoint sidecars, and turns what changed into `Started`,
`StepCompleted`, `Evaluated`, `Paused`, `CheckpointSaved`... events. A run whose trainer keeps a
journal (`journal.jsonl`) is followed through it: every event the trainer reported, with its
own words and numbers (a disk-full pause, a target change's LR note, the job's output), the
recent backlog first; `run.json` and the sidecars are read for what an older run, or a trainer
killed without a word, leaves behind. `WatchRunner`
(`watch_runner.py`) runs it on a thread worker with TrainingRunner's interface.
No Textual here.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tui_trainer.engine.atomic import pid_alive
from tui_trainer.engine.checkpoints.meta import CHECKPOINT_SUFFIX, SIDECAR_SUFFIX, CheckpointMeta, read_sidecar
from tui_trainer.engine.errors import RunDirError
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.loop.step_rate import StepRate
from tui_trainer.engine.rundir.commands import ACK_FILE, Ack, file_key, read_ack
from tui_trainer.engine.rundir.history import ANOMALY_KEY, STEP_RECORD_KEYS
from tui_trainer.engine.rundir.history_tail import HistoryTail, parse_record
from tui_trainer.engine.rundir.journal_records import JOURNAL_FILE, JournalLine
from tui_trainer.engine.rundir.journal_tail import JournalTail
from tui_trainer.engine.rundir.layout import HISTORY_FILE, RUN_FILE, RunInfo, read_run
from tui_trainer.engine.rundir.runs_index import last_logged_step
from tui_trainer.session.runner import CurveLoaded, Launched
from tui_trainer.session.watch_control import WatchControl

SLOW_CHECK_S = 1.0  # sidecars and the trainer's liveness: a directory listing, a kill(pid, 0)
# The sparklines' first values: the last step records before the curve's end, read from at most
# this many bytes before it, so attaching costs the same whatever the history's length.
SEED_STEPS = 24
SEED_BYTES = 64 << 10
ENDED = {"finished": "target", "stopped": "stopped", "interrupted": "interrupted", "disk_full": "disk_full",
         "anomaly": "anomaly"}


def _float(value: Any) -> float:
    return float(value) if _is_number(value) else math.nan


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class LastSteps:
    """The history's last steps within the curve just loaded: the LR, gradient norm, throughput and
    the job's scalars, with their sparklines, which the curve alone does not carry."""

    steps: tuple[ev.StepCompleted, ...]
    time: float = dataclasses.field(kw_only=True, default=0.0)


def step_event(record: dict[str, Any], at: float, rate: float, target: int) -> ev.StepCompleted:
    """A step record of the history as the event the trainer reported for it."""
    elapsed = _float(record.get("elapsed"))
    epoch = record.get("epoch")
    lr = _float(record.get("lr"))
    lrs = record.get("lrs")
    grad_norm, samples, tokens = (_float(record.get(k)) for k in ("grad_norm", "samples_per_sec", "tokens_per_sec"))
    scalars = {k: _float(v) for k, v in record.items() if k not in STEP_RECORD_KEYS and (v is None or _is_number(v))}
    return ev.StepCompleted(
        record["step"], epoch if isinstance(epoch, int) else 0, _float(record["loss"]), lr, rate,
        samples if math.isfinite(samples) else 0.0, target,
        elapsed if math.isfinite(elapsed) else None,
        tuple(map(_float, lrs)) if isinstance(lrs, list) else (lr,),
        grad_norm if "grad_norm" in record else None, tokens if math.isfinite(tokens) else None, scalars,
        time=at,
    )


def last_step_records(path: Path, end: int, count: int = SEED_STEPS) -> list[dict[str, Any]]:
    """The last `count` step records that end by byte `end`, from at most SEED_BYTES before it."""
    start = max(0, end - SEED_BYTES)
    try:
        with open(path, "rb") as f:
            f.seek(start)
            chunk = f.read(end - start)
    except OSError:
        return []
    lines = chunk.split(b"\n")[1 if start else 0:]  # the first line read from mid-file is a record's end
    records = [r for r in map(parse_record, lines) if r and "loss" in r and isinstance(r.get("step"), int)]
    return records[-count:]


class RunFollower:
    """Turns what a run dir shows into engine events for `put`. Used from one thread."""

    def __init__(self, run_dir: str | os.PathLike[str], put: Callable[[Any], None],
                 control: WatchControl | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.run_dir = Path(run_dir)
        self.put = put
        self.control = control
        self.clock = clock
        self.tail = HistoryTail(self.run_dir / HISTORY_FILE)
        self.info: RunInfo | None = None
        self.ack: Ack | None = None
        self.state: str | None = None  # as shown: run.json's state, or "gone" for a dead trainer
        self.step = 0
        self.target: int | None = None
        self.keep_last: int | None = None
        self.alive: bool | None = None
        self._speed = StepRate()  # over the history's training time, as the trainer computes it
        self._started = False
        self._run_key: Any = None
        self._ack_key: Any = None
        self._next_slow = -math.inf
        self._sidecars: dict[str, CheckpointMeta | None] | None = None
        self.journal = JournalTail(self.run_dir)
        self.has_journal = False
        self._pending: list[Any] = []  # journal records waiting for the history to catch up

    def poll(self) -> None:
        now = self.clock()
        slow = now >= self._next_slow
        if slow:
            self._next_slow = now + SLOW_CHECK_S
        self._read_ack()
        if slow:
            self.alive = self._trainer_alive()
        self._read_run()  # after the liveness check: a trainer writes its end state before it exits
        if self.info is None:
            return
        if not self._started:
            self._start()
        for record in self.tail.read():
            self._record(record)
        self._pending.extend(self.journal.read())
        if self.tail.caught_up:  # an event (an end above all) must not overtake the steps before it
            for item in self._pending:
                self._journaled(item)
            self._pending.clear()
            self._follow_state()
        if slow:
            self.has_journal = self.has_journal or (self.run_dir / JOURNAL_FILE).exists()
            if not self.has_journal:
                self._scan_checkpoints()

    def close(self) -> None:
        self.journal.close()

    # --- reading --------------------------------------------------------------------------------

    def _read_run(self) -> None:
        key = file_key(self.run_dir / RUN_FILE)
        if key is None or key == self._run_key:
            return
        try:
            self.info = read_run(self.run_dir)
        except RunDirError:
            return  # garbled for a moment (someone editing it): keep what we had
        self._run_key = key

    def _read_ack(self) -> None:
        key = file_key(self.run_dir / ACK_FILE)
        if key == self._ack_key:
            return
        self._ack_key = key
        self.ack = read_ack(self.run_dir) if key is not None else None
        if self.control is not None:
            done = self.control.new_ack(self.ack)
            if done:
                self.note("the trainer applied: " + ", ".join(c.describe() for c in done))

    def _trainer_alive(self) -> bool | None:
        """False only when the trainer's process is known to be gone (killed: its ack stayed)."""
        if self.ack is None or self.ack.pid is None or not self.ack.on_this_host:
            return None
        return pid_alive(self.ack.pid)

    # --- events ---------------------------------------------------------------------------------

    def _start(self) -> None:
        """What a viewer needs at once: the journal's recent backlog, then the whole curve."""
        info = self.info
        assert info is not None
        self._started = True
        self.target, self.keep_last = info.settings.max_iters, info.policy.keep_last
        backlog = self.journal.read()
        self.has_journal = bool(backlog) or (self.run_dir / JOURNAL_FILE).exists()
        if not any(isinstance(item, ev.Started) for item in backlog):
            self.put(ev.Started(str(self.run_dir), info.run_id, info.job, 0, self.target, self._device(),
                                time=self._first_step_time() or time.time()))
        for item in backlog:
            self._journaled(item)
        # The true state (stopped, finished, a trainer that is gone) from the first frame, not
        # after the whole curve and the history's tail have been replayed as if it were running.
        self.step = max(self.step, last_logged_step(self.run_dir / HISTORY_FILE) or 0)
        self._follow_state()
        self._load_curve()
        self.put(Launched((self._describe_trainer(),), time=time.time()))

    def _load_curve(self) -> None:
        """The whole curve at once from the history's index; the tail follows from where it ends."""
        from tui_trainer.engine.rundir.history_index import read_curves  # numpy: on the worker, after the first frame

        curves = read_curves(self.run_dir, self.info.policy.monitor if self.info is not None else "val_loss")
        self.tail = HistoryTail(self.run_dir / HISTORY_FILE, offset=curves.tail_offset, generation=curves.generation)
        if len(curves.steps):
            self.step = int(curves.steps[-1])
        records = last_step_records(self.run_dir / HISTORY_FILE, curves.tail_offset)
        if records:  # before the curve, so that no frame shows the curve without them
            self.put(LastSteps(tuple(step_event(r, _float(r.get("time")), 0.0, self.target or r["step"])
                                     for r in records), time=time.time()))
        self.put(CurveLoaded(curves.steps, curves.losses, curves.val_steps, curves.val_losses, curves.note,
                             curves.metric, time=time.time()))

    def _first_step_time(self) -> float | None:
        """When the run's first logged step was, from the first line of its history."""
        try:
            with open(self.run_dir / HISTORY_FILE, "rb") as f:
                record = parse_record(f.readline(64 << 10))
        except OSError:
            return None
        at = _float(record.get("time")) if record else math.nan
        return at if math.isfinite(at) else None

    def _journaled(self, item: Any) -> None:
        """One journal record as the dashboard takes it; the state it implies is noted here too."""
        if isinstance(item, JournalLine):
            self.put(item)
            return
        if isinstance(item, ev.Started):
            # The trainer may have named its run dir relative to its own working dir.
            item = dataclasses.replace(item, run_dir=str(self.run_dir))
            self.state, self.target, self.step = "running", item.target, item.step
        elif isinstance(item, ev.Paused | ev.DiskFull):
            self.state = "paused"
        elif isinstance(item, ev.Resumed):
            self.state = "running"
        elif isinstance(item, ev.Finished):
            self.state = {v: k for k, v in ENDED.items()}.get(item.reason, "stopped")
        elif isinstance(item, ev.Failed):
            self.state = "failed"
        elif isinstance(item, ev.TargetChanged):
            self.target = item.new_target
        elif isinstance(item, ev.PolicyChanged):
            self.keep_last = item.keep_last
        if self.control is not None and isinstance(item, ev.Paused | ev.DiskFull | ev.Resumed | ev.Started):
            self.control.run_paused(self.state == "paused")
        self.put(item)

    def _record(self, record: dict[str, Any]) -> None:
        step, at = record["step"], _float(record.get("time"))
        at = at if math.isfinite(at) else time.time()
        if "loss" in record:
            self.put(self._step_event(record, step, at))
        elif ANOMALY_KEY in record:
            return  # the journal tells of it, as an event
        else:
            metrics = {k: _float(v) for k, v in record.items() if k not in ("step", "time", "epoch")}
            self.put(ev.Evaluated(step, metrics, time=at))

    def _step_event(self, record: dict[str, Any], step: int, at: float) -> ev.StepCompleted:
        """A step record as the trainer reported it; an older run's (no training time) is timed
        by its clock, pauses and all."""
        self.step = step
        elapsed = _float(record.get("elapsed"))
        rate = self._speed.add(step, elapsed if math.isfinite(elapsed) else at)
        return step_event(record, at, rate, self.target or step)

    def _follow_state(self) -> None:
        info = self.info
        assert info is not None
        if self.has_journal and self.state is not None:
            # The journal said what happened; run.json adds only a trainer that died without a word.
            if self.state in ("new", "running", "paused") and info.state in ("new", "running", "paused") \
                    and self.alive is False:
                self.state = "gone"
                self._say_gone()
            return
        if info.settings.max_iters != self.target:
            old, self.target = self.target, info.settings.max_iters
            self.put(ev.TargetChanged(self.step, old or 0, self.target, "as run.json now says", time=time.time()))
        if info.policy.keep_last != self.keep_last:
            self.keep_last = info.policy.keep_last
            self.put(ev.PolicyChanged(self.keep_last, time=time.time()))
        state = info.state
        if state in ("new", "running", "paused") and self.alive is False:
            state = "gone"
        if state == self.state:
            return
        previous, self.state = self.state, state
        now = time.time()
        if self.control is not None:
            self.control.run_paused(state == "paused")
        if state == "paused":
            self.put(ev.Paused(self.step, time=now))
        elif state in ("new", "running"):
            if previous == "paused":
                self.put(ev.Resumed(self.step, time=now))
            elif previous is not None:  # a new trainer (a resume) took the run over
                self.put(Launched((self._describe_trainer(),), time=now))
                self.put(ev.Started(str(self.run_dir), info.run_id, info.job, self.step, self.target or 0,
                                    self._device(), time=now))
        elif state in ENDED:
            self.put(ev.Finished(self.step, ENDED[state], time=now))
        elif state == "failed":
            self.put(ev.Failed(self.step, "the trainer stopped on an error; its own output says which", time=now))
        elif state == "gone":
            self._say_gone()

    def _say_gone(self) -> None:
        self.note("the process training this run is gone (killed?); "
                  f"continue it with `tui-trainer resume {self.run_dir}`", "warning")
        self.put(ev.Finished(self.step, "stopped", time=time.time()))

    def _scan_checkpoints(self) -> None:
        try:
            with os.scandir(self.run_dir) as entries:
                names = {e.name for e in entries if e.name.endswith(SIDECAR_SUFFIX) and not e.name.startswith(".")}
        except OSError:
            return
        if self._sidecars is None:  # the first look: what is there already is no news
            self._sidecars = {name: None for name in names}
            return
        now = time.time()
        for name in sorted(names - self._sidecars.keys()):
            meta = read_sidecar(self.run_dir / name)
            self._sidecars[name] = meta
            if meta is not None:
                self.put(ev.CheckpointSaved(str(self.run_dir / meta.name), meta.step, meta.kind, meta.size_bytes or 0,
                                            0.0, time=now))
        gone = sorted(self._sidecars.keys() - names)
        if gone:
            metas = [self._sidecars.pop(name) for name in gone]
            paths = tuple(str(self.run_dir / (n.removesuffix(SIDECAR_SUFFIX) + CHECKPOINT_SUFFIX)) for n in gone)
            self.put(ev.CheckpointPruned(paths, sum((m.size_bytes or 0) for m in metas if m), time=now))

    # --- wording --------------------------------------------------------------------------------

    def _device(self) -> str:
        return (self.ack.device if self.ack else None) or "-"

    def _describe_trainer(self) -> str:
        ack = self.ack
        if ack is None:
            return f"watching {self.run_dir}: no trainer is listening for commands now"
        where = f"pid {ack.pid}" + ("" if ack.on_this_host else f" on {ack.host}")
        return f"watching {self.run_dir}, trained by {where}; quitting leaves it running"

    def note(self, text: str, level: str = "info") -> None:
        # Launched carries notes for the log; the run model adds them as they are.
        self.put(Launched((text if level == "info" else f"{level}: {text}",), time=time.time()))
