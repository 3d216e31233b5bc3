"""A run directory: `run.json` (identity, job and policy), the writer lock, and its files.

Layout::

    <run dir>/run.json             run id, job spec and options, policy, settings, state
    <run dir>/history.jsonl        one line per logged step and per evaluation
    <run dir>/journal.jsonl        every other event, the launch's notes, the job's output (journal.py)
    <run dir>/training_history.json
    <run dir>/step_00000300.pt     checkpoints, each with step_00000300.meta.json beside it
    <run dir>/.lock                held (flock) by the one process training here
    <run dir>/superseded/<time>/   checkpoints set aside: newer than a resume point, or not this run's (superseded.py)

This module does not import torch.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tui_trainer.engine.atomic import atomic_write_json, read_regular
from tui_trainer.engine.checkpoints.meta import FORMAT_VERSION, now_iso
from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.checkpoints.store import CheckpointStore
from tui_trainer.engine.errors import RunDirError, UnsafePath
from tui_trainer.engine.rundir.discover import RUN_FILE, SUPERSEDED_DIR  # noqa: F401 (imported from here)
from tui_trainer.engine.rundir.lock import LOCK_FILE, LockHolder, RunLock, is_locked, lock_holder  # noqa: F401 (their old home)
from tui_trainer.engine.rundir.superseded import set_aside  # noqa: F401 (its old home)

HISTORY_FILE = "history.jsonl"
SUMMARY_FILE = "training_history.json"


@dataclass
class RunSettings:
    """How the loop runs, apart from checkpointing; stored so `resume` keeps them."""

    max_iters: int = 2000
    eval_every: int = 0  # 0: evaluate only before checkpoints and at the end
    log_every: int = 1

    def __post_init__(self) -> None:
        from tui_trainer.engine.errors import InvalidPolicy

        for name, low in (("max_iters", 1), ("eval_every", 0), ("log_every", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                flag = "--" + name.replace("_", "-")
                raise InvalidPolicy(f"{flag} must be an integer >= {low}, got {value!r}")


@dataclass
class RunInfo:
    run_id: str
    job: str
    job_options: dict[str, Any] = field(default_factory=dict)
    policy: CheckpointPolicy = field(default_factory=CheckpointPolicy)
    settings: RunSettings = field(default_factory=RunSettings)
    created: str = field(default_factory=now_iso)
    state: str = "new"  # new, running, paused, finished, stopped, interrupted, disk_full, failed, anomaly
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["policy"] = self.policy.to_dict()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunInfo:
        """A run from its JSON; ValueError naming the field when one has the wrong type."""
        if not isinstance(data, dict):
            raise ValueError(f"it holds a JSON {type(data).__name__}, not an object")

        def field(name: str, kind: type | tuple[type, ...], default: Any) -> Any:
            value = data.get(name, default)
            if value is None:
                value = default
            if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
                raise ValueError(f"field {name!r} must be {_KIND_WORDS.get(kind, 'something else')}, "
                                 f"not {type(value).__name__}")
            return value

        for required in ("run_id", "job"):
            if required not in data:
                raise ValueError(f"field {required!r} is missing")
        settings = field("settings", dict, {})
        return cls(
            run_id=str(field("run_id", (str, int), "")),
            job=field("job", str, ""),
            job_options=dict(field("job_options", dict, {})),
            policy=CheckpointPolicy.from_dict(dict(field("policy", dict, {}))),
            settings=RunSettings(**{k: v for k, v in settings.items() if k in RunSettings.__dataclass_fields__}),
            created=str(field("created", str, "")),
            state=field("state", str, "new"),
            format_version=field("format_version", int, FORMAT_VERSION),
        )


_KIND_WORDS = {dict: "an object", str: "a string", int: "an integer", (str, int): "a string"}


def new_run_id() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / RUN_FILE).is_file()


def read_run(run_dir: str | os.PathLike[str]) -> RunInfo:
    path = Path(run_dir) / RUN_FILE
    if path.is_symlink():  # what a run is, read from somewhere else: and later written there
        raise UnsafePath(f"{path} is a symbolic link; tui-trainer never reads or writes a run dir's own "
                         "files through a link (it could lead outside the run dir): remove it, or use another run dir")
    try:
        return RunInfo.from_json(json.loads(read_regular(path)))
    except FileNotFoundError:
        raise RunDirError(f"{run_dir} is not a tui-trainer run dir (no {RUN_FILE})") from None
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise RunDirError(f"{path} is damaged ({exc}); fix or remove it") from None
    except OSError as exc:  # a FIFO, a device or a directory in its place: refused, never waited on
        raise RunDirError(f"{path} cannot be read as a run's file ({exc.strerror or exc}); remove it") from None


def write_run(run_dir: str | os.PathLike[str], info: RunInfo) -> None:
    atomic_write_json(Path(run_dir) / RUN_FILE, info.to_json())


def store_for(run_dir: str | os.PathLike[str]) -> CheckpointStore:
    """The checkpoint store of a run dir, or of a plain folder of checkpoints."""
    if is_run_dir(run_dir):
        info = read_run(run_dir)
        return CheckpointStore(run_dir, info.run_id, info.policy.monitor, info.policy.mode)
    return CheckpointStore(run_dir)


