"""Apply a prune the user previewed: delete under the store lock only what is still due, and say why the rest stayed.

`ckpt prune`, the dashboard's prune and the runs screen's prune show a list first and delete it
after a confirmation; a `ckpt pin`, the trainer or another prune may act in between. The
deleting is `CheckpointStore.prune(keep_last, only=previewed)`, which plans and deletes under one
hold of the store lock, so a pin that reported success is never undone. Under that same hold
this module looks at each previewed checkpoint it did not delete and names the reason, so what
the user is told matches what is on disk.

This module does not import torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tui_trainer.engine.checkpoints.meta import MANUAL
from tui_trainer.engine.checkpoints.store import CheckpointStore, StoredCheckpoint
from tui_trainer.engine.checkpoints.store_lock import store_lock

PINNED_SINCE = "pinned since the preview"


@dataclass(frozen=True)
class PrunedPreview:
    deleted: tuple[tuple[StoredCheckpoint, int], ...]  # each deleted checkpoint, with the bytes it freed
    kept: tuple[tuple[str, str], ...]  # previewed names left in place, and why
    gone: tuple[str, ...]  # previewed names already deleted by someone else

    @property
    def freed_bytes(self) -> int:
        return sum(size for _, size in self.deleted)

    @property
    def deleted_names(self) -> tuple[str, ...]:
        return tuple(stored.meta.name for stored, _ in self.deleted)

    def notes(self, prefix: str = "") -> list[str]:
        """One line per previewed checkpoint that was not deleted here; `prefix` goes before each name."""
        return [f"kept {prefix}{name}: {why}" for name, why in self.kept] + [
            f"{prefix}{name} was already gone: deleted elsewhere since the preview" for name in self.gone
        ]


def prune_previewed(store: CheckpointStore, keep_last: int, previewed: Iterable[str]) -> PrunedPreview:
    """Delete those of `previewed` that keep-last `keep_last` still deletes now; report the others."""
    names = list(dict.fromkeys(previewed))
    with store_lock(store.directory):  # re-entrant: store.prune holds it too, this keeps the look after it
        deleted = store.prune(keep_last, only=names)
        taken = {stored.meta.name for stored, _ in deleted}
        left = [name for name in names if name not in taken]
        now = {stored.meta.name: stored for stored in store.list()} if left else {}
    kept = tuple((name, _why_kept(now[name], keep_last)) for name in left if name in now)
    gone = tuple(name for name in left if name not in now)
    return PrunedPreview(tuple(deleted), kept, gone)


def _why_kept(stored: StoredCheckpoint, keep_last: int) -> str:
    if stored.pinned:
        return PINNED_SINCE
    if stored.meta.kind == MANUAL:
        return "made a manual checkpoint since the preview"
    if stored.best:
        return "it became the best checkpoint since the preview"
    if stored.latest:
        return "it became the latest checkpoint since the preview"
    return f"keep-last {keep_last} no longer deletes it (the run's checkpoints changed since the preview)"
