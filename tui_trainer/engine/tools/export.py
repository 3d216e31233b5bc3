"""Exporting a checkpoint's model weights alone, as safetensors or as a plain PyTorch state dict.

Works on our checkpoints and on foreign ones, always onto the CPU, so a checkpoint saved on a
GPU exports on a machine without one. Names lose the prefixes of torch.compile (`_orig_mod.`)
and DataParallel/DDP (`module.`), and on request another (Lightning's `model.`), so the export
loads into the plain model. Tied weights are written once, as Hugging Face writes them. The
output is written atomically: a failed export leaves no file behind and never a partial one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tui_trainer.engine.atomic import atomic_open
from tui_trainer.engine.checkpoints.file import is_own_format, load_checkpoint, model_state_of
from tui_trainer.engine.checkpoints.hf_trainer import checkpoint_bytes
from tui_trainer.engine.checkpoints.meta import sidecar_path
from tui_trainer.engine.checkpoints.plain_keys import plain_state
from tui_trainer.engine.errors import TrainerError, WriteDidNotFit, is_disk_full
from tui_trainer.engine.tools.tensor_summary import alias_key, summarize_tensors

FORMATS = ("safetensors", "pt")
SUFFIX_FORMATS = {".safetensors": "safetensors", ".pt": "pt", ".pth": "pt"}


class ExportError(TrainerError):
    """The export's output path or format cannot be used."""


@dataclass(frozen=True)
class ExportResult:
    out_path: Path
    fmt: str
    checkpoint_bytes: int
    weights_bytes: int
    tensors: int
    parameters: int  # a tied tensor counted once
    skipped: tuple[str, ...] = ()  # non-tensor entries that safetensors cannot hold
    tied: tuple[tuple[str, str], ...] = ()  # (left out, the name it shares its data with)
    stripped: int = 0  # names that lost --strip-prefix

    @property
    def ratio(self) -> float:
        return self.weights_bytes / self.checkpoint_bytes if self.checkpoint_bytes else 0.0


def resolve_format(out_path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """The format named by `fmt`, else by the out file's suffix; the two must agree."""
    out = Path(out_path)
    suffix = out.suffix.lower()
    from_suffix = SUFFIX_FORMATS.get(suffix)
    if fmt is None:
        if suffix and from_suffix is None:
            raise ExportError(
                f"cannot tell the export format from {out.name!r}: "
                "name it .safetensors, .pt or .pth, or pass --format safetensors|pt"
            )
        return from_suffix or "safetensors"
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of: {', '.join(FORMATS)}")
    if from_suffix is not None and from_suffix != fmt:
        raise ExportError(
            f"{out.name} has a {suffix} suffix but the format is {fmt}; "
            f"name the file {out.with_suffix('.safetensors' if fmt == 'safetensors' else '.pt').name} "
            "or drop --format"
        )
    return fmt


def check_out_path(checkpoint_path: Path, out: Path, overwrite: bool) -> None:
    """Refuse an output that cannot be written, or that would destroy something."""
    if out.is_dir():
        raise ExportError(f"{out} is a directory; give a file name, e.g. {out / 'weights.safetensors'}")
    parent = out.parent
    if not parent.exists():
        raise ExportError(f"cannot write {out}: the directory {parent} does not exist; create it first")
    if not parent.is_dir():
        raise ExportError(f"cannot write {out}: {parent} is not a directory")
    if out.exists():
        if out.resolve() == checkpoint_path.resolve():
            raise ExportError(f"{out} is the checkpoint being exported; choose another output name")
        if checkpoint_path.is_dir() and out.resolve().parent == checkpoint_path.resolve():
            raise ExportError(f"{out} is a file of the checkpoint folder being exported; choose another output name")
        if sidecar_path(out).exists() and out.suffix == ".pt":
            raise ExportError(f"{out} is a tui-trainer checkpoint; choose another output name")
        if not overwrite:
            raise ExportError(f"{out} already exists; pass --force to replace it")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {out}: no write permission in {parent}")


def export_weights(
    checkpoint_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    fmt: str | None = None,
    overwrite: bool = False,
    strip_prefix: str | None = None,
) -> ExportResult:
    """Write the checkpoint's model weights to `out_path` and describe what was written."""
    source, out = Path(checkpoint_path), Path(out_path)
    fmt = resolve_format(out, fmt)
    check_out_path(source, out, overwrite)
    obj = load_checkpoint(source, map_location="cpu", mmap=True)
    state = plain_state(model_state_of(obj, source))  # loads into the bare model, however it was wrapped
    stripped = 0
    if strip_prefix:
        state, stripped = without_prefix(state, strip_prefix)
    summary = summarize_tensors(state)
    skipped: tuple[str, ...] = ()
    tied: tuple[tuple[str, str], ...] = ()
    try:
        if fmt == "safetensors":
            once, tied = tied_once(state)
            tensors, skipped = safetensors_ready(once)
            _write_safetensors(out, tensors, _safetensors_metadata(source, obj))
            written = len(tensors) + len(tied)
        else:
            with atomic_open(out, "wb") as f:
                torch.save(pt_ready(state), f)
            written = summary.tensors
    except OSError as exc:
        if is_disk_full(exc):  # exit 4, as every full disk is; the temporary file is gone
            raise WriteDidNotFit(out, exc, "; nothing was written: make room, or export to another disk") from None
        raise ExportError(f"could not write {out}: {exc.strerror or exc}") from None
    return ExportResult(
        out_path=out,
        fmt=fmt,
        checkpoint_bytes=checkpoint_bytes(source),
        weights_bytes=out.stat().st_size,
        tensors=written,
        parameters=summary.parameters,
        skipped=skipped,
        tied=tied,
        stripped=stripped,
    )


def without_prefix(state: Mapping[str, Any], prefix: str) -> tuple[dict[str, Any], int]:
    """`state` with `prefix` taken off the names that have it; ExportError if none has it."""
    renamed = {key.removeprefix(prefix): value for key, value in state.items()}
    stripped = sum(key.startswith(prefix) for key in state)
    if not stripped:
        shown = ", ".join(list(state)[:3])
        raise ExportError(f"--strip-prefix {prefix!r} matches no weight name (they look like: {shown})")
    if len(renamed) != len(state):
        clash = next(k for k in state if k.startswith(prefix) and k.removeprefix(prefix) in state)
        raise ExportError(f"--strip-prefix {prefix!r} would make {clash!r} clash with {clash.removeprefix(prefix)!r}")
    return renamed, stripped


def tied_once(state: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[tuple[str, str], ...]]:
    """`state` with each tied tensor under its first name only, and the (left out, kept) pairs.

    Tied weights (an output head sharing the embedding's matrix) are one tensor under two
    names; safetensors writes it once, as `save_model` does, and `load_model` (or a model that
    ties its own weights) restores the second name.
    """
    kept: dict[Any, str] = {}
    once: dict[str, Any] = {}
    tied = []
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and not value.is_sparse and value.device.type != "meta" and value.numel():
            identity = alias_key(value)
            if identity in kept:
                tied.append((key, kept[identity]))
                continue
            kept[identity] = key
        once[key] = value
    return once, tuple(tied)


def safetensors_ready(state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    """Contiguous CPU tensors of which none shares memory with another; every key is kept.

    safetensors refuses tensors that share storage (tied weights such as a language model's
    embedding and output head): the second and later users of a storage get their own copy.
    """
    ready: dict[str, torch.Tensor] = {}
    skipped = []
    claimed: set[int] = set()
    for key, value in state.items():
        if not isinstance(value, torch.Tensor) or value.is_sparse or value.device.type == "meta":
            skipped.append(key)
            continue
        tensor = value.detach()
        ptr = tensor.untyped_storage().data_ptr()
        if ptr in claimed or not _owns_storage(tensor):
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        else:
            claimed.add(ptr)
        ready[key] = tensor
    return ready, tuple(skipped)


def pt_ready(state: Mapping[str, Any]) -> dict[str, Any]:
    """A plain state dict; tied tensors stay tied, and views are copied so a slice does not
    drag the whole storage it came from into the file."""
    ready: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and not value.is_sparse and not _owns_storage(value):
            value = value.detach().clone(memory_format=torch.contiguous_format)
        ready[key] = value
    return ready


def _owns_storage(tensor: torch.Tensor) -> bool:
    """Contiguous and exactly covering its storage: saving it writes no extra bytes."""
    return (
        tensor.is_contiguous()
        and tensor.storage_offset() == 0
        and tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
    )


def _write_safetensors(out: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    from safetensors.torch import save

    try:
        data = save(tensors, metadata=metadata)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise ExportError(f"safetensors cannot hold these weights ({exc}); export with --format pt") from None
    # Serialized in memory: `save_file` replaces the file at its path rather than writing into
    # the open one, which would bypass this atomic write's fsync.
    with atomic_open(out, "wb") as f:
        f.write(data)


def _safetensors_metadata(source: Path, obj: Any) -> dict[str, str]:
    metadata = {"format": "pt", "source": source.name}  # "format": "pt" is what loaders expect
    if is_own_format(obj) and isinstance(obj.get("meta"), Mapping):
        step = obj["meta"].get("step")
        if isinstance(step, int):
            metadata["step"] = str(step)
    return metadata
