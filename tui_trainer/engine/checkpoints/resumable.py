"""What resume asks of a checkpoint's contents, checked alike by `resume` and by `ckpt verify`.

`resume` asks it of the state it loaded with torch. `verify` asks it without torch, of the
checkpoint's skeleton: the pickle of a zip-format checkpoint read with every tensor, storage and
other object left as an inert placeholder (nothing is built or called), which costs one small
zip member rather than a load.
"""

from __future__ import annotations

import codecs
import collections
import os
import pickle
import zipfile
from collections.abc import Mapping
from typing import Any

from tui_trainer.engine.checkpoints.meta import FORMAT_NAME, FORMAT_VERSION, file_disagrees

# What `training_state.restore` reads besides the weights; a checkpoint without them cannot continue.
TRAINING_KEYS = ("optimizer", "data", "rng")
_REAL_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): codecs.encode,  # how pickle protocol 2 writes bytes
    ("__builtin__", "set"): set,
    ("builtins", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
    ("builtins", "frozenset"): frozenset,
}


def resume_problem(state: Any, name: str, run_id: str | None) -> str | None:
    """Why `resume` refuses a checkpoint with these contents, or None. `run_id`: the run resuming it."""
    if not isinstance(state, Mapping) or state.get("format") != FORMAT_NAME:
        return "not written by tui-trainer, so it cannot be resumed exactly"
    version = state.get("format_version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version > FORMAT_VERSION:
        return f"format version {version!r}, which this tui-trainer cannot read (it reads up to {FORMAT_VERSION})"
    missing = [key for key in TRAINING_KEYS if not isinstance(state.get(key), Mapping)]
    if not isinstance(state.get("model"), Mapping) or not state["model"]:
        missing.insert(0, "model")
    if missing:
        return f"it lacks the training state needed to resume ({', '.join(missing)})"
    target = state.get("target")
    if target is not None and (isinstance(target, bool) or not isinstance(target, int)):
        return f"its target {target!r} is not a step number"
    embedded = state.get("meta")
    if not isinstance(embedded, Mapping):
        return "its own metadata is missing"
    problem = file_disagrees(name, dict(embedded))
    if problem is None and run_id is not None and embedded.get("run_id") not in (None, run_id):
        problem = f"it was written by run {embedded['run_id']}, not by this run ({run_id})"
    return problem


def read_skeleton(path: str | os.PathLike[str]) -> Any:
    """The checkpoint's pickled structure with inert placeholders for tensors; ValueError if unreadable.

    Never imports torch and never runs anything from the file: every global the pickle names,
    but a few plain containers, becomes a placeholder.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not pickles:
                raise ValueError("not a PyTorch zip checkpoint")
            with archive.open(pickles[0]) as f:
                return _SkeletonUnpickler(f).load()
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise ValueError(f"not a readable zip checkpoint ({exc})") from None
    except (pickle.UnpicklingError, TypeError, AttributeError, IndexError, KeyError, RecursionError) as exc:
        raise ValueError(f"its pickle is damaged ({exc})") from None


class _Placeholder:
    """Stands for a tensor, a storage or any other object a checkpoint's pickle would build."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Placeholder:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _SkeletonUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return _REAL_GLOBALS.get((module, name), _Placeholder)

    def persistent_load(self, pid: Any) -> Any:
        return _Placeholder()
