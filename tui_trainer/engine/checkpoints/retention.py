"""Which checkpoints to keep: small pure functions over checkpoint metadata.

Ordering is always by step, never by file time. Only checkpoints of the given run are ever
candidates for removal; the best, the latest, pinned and manual ones never are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from tui_trainer.engine.checkpoints.meta import FOREIGN, MANUAL, ROTATING_KINDS, CheckpointMeta


def own_checkpoints(checkpoints: Iterable[CheckpointMeta], run_id: str | None) -> list[CheckpointMeta]:
    """Checkpoints written by this run, sorted by step."""
    own = [c for c in checkpoints if c.kind != FOREIGN and (run_id is None or c.run_id == run_id)]
    return sorted(own, key=lambda c: (c.step, c.created or ""))


def latest_checkpoint(checkpoints: Sequence[CheckpointMeta], run_id: str | None) -> CheckpointMeta | None:
    own = own_checkpoints(checkpoints, run_id)
    return own[-1] if own else None


def score_for_ranking(value: float | None, mode: str) -> float:
    """Lower is better after this transform; a missing or NaN metric is the worst score."""
    if value is None or math.isnan(value):
        return math.inf
    return value if mode == "min" else -value


def best_checkpoint(
    checkpoints: Sequence[CheckpointMeta], run_id: str | None, monitor: str = "val_loss", mode: str = "min"
) -> CheckpointMeta | None:
    """The checkpoint with the best monitored metric; the earliest wins a tie."""
    return _best_among(own_checkpoints(checkpoints, run_id), monitor, mode)


def best_and_latest(
    checkpoints: Sequence[CheckpointMeta], run_id: str | None, monitor: str = "val_loss", mode: str = "min"
) -> tuple[CheckpointMeta | None, CheckpointMeta | None]:
    """`best_checkpoint` and `latest_checkpoint` from one pass over the run's checkpoints."""
    own = own_checkpoints(checkpoints, run_id)
    return _best_among(own, monitor, mode), (own[-1] if own else None)


def _best_among(own: list[CheckpointMeta], monitor: str, mode: str) -> CheckpointMeta | None:
    scored = [(score_for_ranking(value, mode), c.step, c) for c in own if (value := c.metric(monitor)) is not None]
    if not scored:
        return None
    score, _, best = min(scored, key=lambda t: (t[0], t[1]))
    return best if math.isfinite(score) else None


def is_protected(checkpoint: CheckpointMeta, best: CheckpointMeta | None, latest: CheckpointMeta | None) -> bool:
    return (
        checkpoint.pinned
        or checkpoint.kind == MANUAL
        or (best is not None and checkpoint.name == best.name)
        or (latest is not None and checkpoint.name == latest.name)
    )


def checkpoints_to_prune(
    checkpoints: Sequence[CheckpointMeta],
    keep_last: int,
    run_id: str | None,
    monitor: str = "val_loss",
    mode: str = "min",
) -> list[CheckpointMeta]:
    """Rotating checkpoints of this run beyond the newest `keep_last`, minus protected ones.

    `keep_last == 0` keeps everything.
    """
    if keep_last <= 0:
        return []
    own = own_checkpoints(checkpoints, run_id)
    rotating = [c for c in own if c.kind in ROTATING_KINDS]
    best = best_checkpoint(own, run_id, monitor, mode)
    latest = own[-1] if own else None
    return [c for c in rotating[:-keep_last] if not is_protected(c, best, latest)]
