"""A run's checkpoint writer: when to save, writing with room on disk, and retention.

The trainer decides what state to save; this decides whether a periodic save is due, makes room
when the disk is short, writes through the store, and prunes what the policy lets go.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tui_trainer.engine.checkpoints import retention
from tui_trainer.engine.checkpoints.meta import CheckpointMeta, checkpoint_name, read_sidecar, sidecar_path
from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.checkpoints.saver import BackgroundSaver
from tui_trainer.engine.checkpoints.store import CheckpointStore, StoredCheckpoint
from tui_trainer.engine.checkpoints.store_lock import store_lock
from tui_trainer.engine.errors import CheckpointNotFound, NotEnoughDiskSpace
from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.rundir.layout import set_aside


@dataclass
class SaveOutcome:
    """What one save did, for `Checkpointer.report`: its checkpoint or its error, and its prunes' events."""

    meta: CheckpointMeta
    stored: StoredCheckpoint | None  # None: it failed, with `error`
    error: BaseException | None  # with `stored`: the prune after it failed
    before: list[ev.Event]  # prunes that made room for it
    after: list[ev.Event]  # prunes that retention made after it
    seconds: float


class Checkpointer:
    """Saves and prunes the checkpoints of one run. Used from the training thread, except
    `write_quietly`, which its `saver` runs on a thread of its own (`begin_write`)."""

    def __init__(
        self,
        run_dir: Path,
        run_id: str,
        policy: CheckpointPolicy,
        emit: Callable[[ev.Event], None],
        notes: list[str],
    ) -> None:
        self.run_dir = run_dir
        self.run_id = run_id
        self.policy = policy
        self.store = CheckpointStore(run_dir, run_id, policy.monitor, policy.mode)
        self.last_path: Path | None = None
        self._emit = emit
        self._notes = notes
        self._last_size: int | None = None
        self._last_time = time.monotonic()
        self.saver = BackgroundSaver(self.write_quietly)

    def periodic_due(self, step: int) -> bool:
        p = self.policy
        if p.every_steps and step % p.every_steps == 0:
            return True
        return bool(p.every_minutes) and time.monotonic() - self._last_time >= p.every_minutes * 60

    def saved_at(self, step: int, name: str | None = None) -> CheckpointMeta | None:
        """This run's checkpoint at `step` (named `name`, by default the one-file name), if one is on disk.

        Any other file under that name (another run's, or a damaged one) is moved aside, since
        skipping the save or overwriting the file would both lose data; returns None then.
        """
        path = self.run_dir / (name or checkpoint_name(step))
        if not path.exists():
            return None
        saved = read_sidecar(sidecar_path(path))
        if saved is not None and saved.run_id == self.run_id and saved.step == step:
            return saved
        folder = set_aside(self.run_dir, [path]).relative_to(self.run_dir)
        self._notes.append(f"moved {path.name} to {folder}/: it is not a readable checkpoint of this run")
        return None

    def write(self, meta: CheckpointMeta, state: dict[str, Any]) -> StoredCheckpoint:
        """Save `state` atomically, then prune; events say how it went."""
        return self.report(self.write_quietly(meta, state))

    def begin_write(self, meta: CheckpointMeta, state: dict[str, Any]) -> None:
        """`write` on the saver thread, from a snapshot of `state`; `saver.take` gives its outcome to `report`."""
        self._last_time = time.monotonic()  # a save every T minutes counts from its start, as it is under way
        self.saver.start(meta, state)

    def write_quietly(self, meta: CheckpointMeta, state: dict[str, Any]) -> SaveOutcome:
        """Save and prune, holding the events back for `report`.

        Safe on the saver thread while the training thread prunes or amends: every change on disk
        is made under the store lock, and a checkpoint deleted by the other is skipped.
        """
        started = time.perf_counter()
        before: list[ev.Event] = []
        try:  # an error is reported, and raised, on the training thread
            stored = self._write_with_room(meta, state, before)
        except BaseException as exc:
            return SaveOutcome(meta, None, exc, before, [], time.perf_counter() - started)
        seconds = time.perf_counter() - started
        try:
            return SaveOutcome(meta, stored, None, before, self._prune_events(), seconds)
        except BaseException as exc:  # saved all the same
            return SaveOutcome(meta, stored, exc, before, [], seconds)

    def report(self, outcome: SaveOutcome) -> StoredCheckpoint:
        """Emit a save's events in the order a sync save has them; raise its error, if it failed."""
        for event in outcome.before:
            self._emit(event)
        meta, exc = outcome.meta, outcome.error
        if outcome.stored is None:
            assert exc is not None
            if isinstance(exc, (NotEnoughDiskSpace, OSError)):
                reason = str(exc) if isinstance(exc, NotEnoughDiskSpace) else f"{type(exc).__name__}: {exc}"
                self._emit(ev.CheckpointFailed(meta.step, meta.kind, reason))
            raise exc
        stored = outcome.stored
        assert stored is not None
        self._last_size = stored.meta.size_bytes
        self._last_time = time.monotonic()
        self.last_path = stored.path
        self._emit(ev.CheckpointSaved(str(stored.path), meta.step, meta.kind, stored.meta.size_bytes or 0,
                                      outcome.seconds))
        for event in outcome.after:
            self._emit(event)
        if exc is not None:
            raise exc
        return stored

    def commit_sharded(self, partial: Path, meta: CheckpointMeta, seconds: float) -> StoredCheckpoint:
        """A finished sharded step folder (`engine.loop.sharding`) under its final name, announced and pruned after."""
        stored = self.store.commit_folder(partial, meta)
        try:
            after, error = self._prune_events(), None
        except BaseException as exc:  # saved all the same
            after, error = [], exc
        return self.report(SaveOutcome(meta, stored, error, [], after, seconds))

    def amend(self, meta: CheckpointMeta, announce: bool) -> Path:
        """Rewrite the sidecar of an existing checkpoint (a new kind or fresh metrics), then prune."""
        path = self.run_dir / meta.name
        try:
            self.store.write_meta(meta)
        except CheckpointNotFound:  # deleted (`ckpt delete --force`) since `saved_at` read it
            self._notes.append(f"{meta.name} was deleted meanwhile; its metadata was not rewritten")
            return path
        self.prune()
        if announce:
            self._emit(ev.CheckpointSaved(str(path), meta.step, meta.kind, meta.size_bytes or 0, 0.0))
        self.last_path = path
        return path

    def _write_with_room(self, meta: CheckpointMeta, state: dict[str, Any], events: list[ev.Event]) -> StoredCheckpoint:
        """If the disk is short, first delete what retention would delete after this save anyway."""

        def serialize(f: Any) -> None:
            torch.save(state, f)

        try:
            return self.store.save(meta, serialize, expected_bytes=self._last_size)
        except NotEnoughDiskSpace:
            with store_lock(self.run_dir):  # planned and deleted with no pin in between
                doomed = self._prunable([*self.store.scan(), meta])
                if not doomed:
                    raise
                events += self._delete(doomed)
            return self.store.save(meta, serialize, expected_bytes=self._last_size)

    def set_keep_last(self, keep_last: int) -> None:
        self.policy = self.policy.with_overrides(keep_last=keep_last)
        self.prune()

    def prune(self) -> None:
        """Delete what retention lets go, planned under the store lock so a pin from elsewhere is seen."""
        for event in self._prune_events():
            self._emit(event)

    def _prune_events(self) -> list[ev.Event]:
        if not self.policy.keep_last:
            return []
        with store_lock(self.run_dir):
            return self._delete(self._prunable(self.store.scan()))

    def _prunable(self, checkpoints: list[CheckpointMeta]) -> list[CheckpointMeta]:
        p = self.policy
        return retention.checkpoints_to_prune(checkpoints, p.keep_last, self.run_id, p.monitor, p.mode)

    def _delete(self, doomed: list[CheckpointMeta]) -> list[ev.Event]:
        freed, removed = 0, []
        for meta in doomed:
            try:
                freed += self.store.delete(meta.name)
            except CheckpointNotFound:
                continue  # someone else (a `ckpt prune` beside us) deleted it first
            removed.append(str(self.run_dir / meta.name))
        return [ev.CheckpointPruned(tuple(removed), freed)] if removed else []
