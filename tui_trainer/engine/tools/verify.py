"""Checking checkpoint files on disk: complete, matching their recorded checksum, safe to load.

Our checkpoints are checked against their sidecar (size, then SHA-256), then their skeleton is
asked what `resume` asks of them (format, training state, step, run), all without importing
torch. Files without a sidecar are opened, lazily and safely, through `checkpoint_file`.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tui_trainer.engine.atomic import find_temp_files
from tui_trainer.engine.checkpoints import hf_trainer
from tui_trainer.engine.checkpoints.hashing_writer import (
    UnknownChecksum,
    algorithm_of,
    checksum_of_file,
)
from tui_trainer.engine.checkpoints.meta import (
    CHECKPOINT_SUFFIX,
    SHARDED_SUFFIX,
    SIDECAR_SUFFIX,
    CheckpointMeta,
    checkpoint_names_of,
    read_sidecar,
    sidecar_disagrees,
    sidecar_path,
)
from tui_trainer.engine.checkpoints.resumable import read_skeleton, resume_problem
from tui_trainer.engine.checkpoints.safetensors_header import (
    SUFFIX as SAFETENSORS_SUFFIX,
)
from tui_trainer.engine.checkpoints.sharded_folder import PARTIAL_SUFFIX
from tui_trainer.engine.checkpoints.store import FOREIGN_SUFFIXES, CheckpointStore
from tui_trainer.engine.errors import (
    CheckpointCorrupt,
    CheckpointError,
    CheckpointNotFound,
    NotACheckpoint,
    TrainerError,
    UnsafeCheckpoint,
)
from tui_trainer.engine.rundir.discover import RUN_FILE
from tui_trainer.engine.rundir.superseded import INTENT_FILE
from tui_trainer.engine.sizes import human_bytes

_REASON_RE = re.compile(r"\(([^()]*)\)")


@dataclass(frozen=True)
class VerifyResult:
    path: Path
    ok: bool
    problem: str | None = None
    detail: str = ""  # what was checked, for a result that is ok
    listed: bool = False  # training state that is no problem, and not checked (or not fully)


def verify_path(path: str | os.PathLike[str]) -> list[VerifyResult]:
    """Verify one checkpoint file, or every checkpoint under a directory (recursively)."""
    path = Path(path)
    if path.is_dir() and path.name.endswith((SHARDED_SUFFIX, PARTIAL_SUFFIX)):
        from tui_trainer.engine.tools.verify_sharded import verify_sharded

        return [verify_sharded(path, run_id_of(path.parent))]
    if path.is_dir():
        return verify_tree(path)
    if not path.exists():
        raise CheckpointNotFound(f"{path}: no such file or directory")
    if path.name.endswith(SIDECAR_SUFFIX):
        checkpoint = path.with_name(path.name.removesuffix(SIDECAR_SUFFIX) + CHECKPOINT_SUFFIX)
        sharded = path.with_name(checkpoint_names_of(path.name)[1])
        if sharded.is_dir():
            return verify_path(sharded)
        if not checkpoint.exists():
            return [VerifyResult(path, False, f"sidecar without its checkpoint: {checkpoint.name} is missing")]
        path = checkpoint
    return [verify_file(path, run_id_of(path.parent))]


def verify_tree(root: Path) -> list[VerifyResult]:
    results = []
    for directory, subdirs, files in os.walk(root):
        # A sharded step folder is one checkpoint (its state.pt and shards are not checked as files of their own).
        folders = [d for d in subdirs if d.endswith((SHARDED_SUFFIX, PARTIAL_SUFFIX))]
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d not in folders)
        results += verify_directory(Path(directory), [*files, *folders])
    return results


def verify_directory(directory: Path, names: list[str]) -> list[VerifyResult]:
    """The checkpoints, orphaned sidecars and leftover temporary files of one directory."""
    present = set(names)
    if hf_trainer.is_checkpoint_dir(directory):
        from tui_trainer.engine.tools.verify_folder import verify_checkpoint_folder

        return verify_checkpoint_folder(directory, names)
    results = []
    if INTENT_FILE in present:
        problem = "a set-aside into this folder was interrupted; `tui-trainer resume` of the run finishes it"
        results.append(VerifyResult(directory / INTENT_FILE, False, problem))
    run_id = run_id_of(directory) if RUN_FILE in present else None
    outside = CheckpointStore(directory).links_outside()
    for path in outside:
        results.append(VerifyResult(path, False, f"a link to {os.path.realpath(path)}, outside {directory}; not read"))
    for name in sorted(present - {p.name for p in outside}):
        path = directory / name
        if name.startswith("."):
            continue
        if name.endswith((SHARDED_SUFFIX, PARTIAL_SUFFIX)) and path.is_dir() and not path.is_symlink():
            from tui_trainer.engine.tools.verify_sharded import verify_sharded

            results.append(verify_sharded(path, run_id))
        elif name.endswith(SIDECAR_SUFFIX):
            checkpoint = name.removesuffix(SIDECAR_SUFFIX) + CHECKPOINT_SUFFIX
            if not any(n in present for n in checkpoint_names_of(name)):
                results.append(VerifyResult(path, False, f"sidecar without its checkpoint: {checkpoint} is missing"))
        elif name.endswith((*FOREIGN_SUFFIXES, SAFETENSORS_SUFFIX)) and not (directory / name).is_dir():
            results.append(verify_file(path, run_id))
    for temp in find_temp_files(directory):
        size = temp.stat().st_size if temp.exists() else 0
        problem = f"leftover temporary file from an interrupted write ({human_bytes(size)}); safe to delete"
        results.append(VerifyResult(temp, False, problem))
    return results


def run_id_of(directory: Path) -> str | None:
    """The run a run dir holds, whose checkpoints alone `resume` continues from; None for a plain folder."""
    from tui_trainer.engine.rundir.layout import is_run_dir, read_run

    if not is_run_dir(directory):
        return None
    try:
        return read_run(directory).run_id
    except TrainerError:
        return None  # a damaged run.json is every command's one-line error, not a checkpoint's


def verify_file(path: Path, run_id: str | None = None) -> VerifyResult:
    """One file; `run_id`: the run of the run dir it is in, whose checkpoints resume accepts."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        return VerifyResult(path, False, f"cannot read: {exc.strerror or exc}")
    if not path.is_file():
        return VerifyResult(path, False, "not a regular file")
    if path.name.endswith(SAFETENSORS_SUFFIX) or hf_trainer.is_checkpoint_dir(path.parent):
        from tui_trainer.engine.tools.verify_folder import verify_folder_file

        result = verify_folder_file(path)
        if result is not None:
            return result
    if path.name.endswith(CHECKPOINT_SUFFIX) and sidecar_path(path).exists():
        return verify_against_sidecar(path, size, run_id)
    if size == 0:
        return VerifyResult(path, False, "empty file (0 bytes)")
    return verify_loads(path)


def verify_against_sidecar(path: Path, size: int, run_id: str | None = None) -> VerifyResult:
    meta = read_sidecar(sidecar_path(path))
    if meta is None:
        problem = f"sidecar {sidecar_path(path).name} is unreadable, damaged or describes another file"
        return VerifyResult(path, False, problem)
    if size == 0:
        recorded = f" (recorded {meta.size_bytes} bytes)" if meta.size_bytes else ""
        return VerifyResult(path, False, f"empty file (0 bytes){recorded}")
    checksum = meta.recorded_checksum
    if meta.size_bytes is None or checksum is None:
        result = verify_loads(path)
        if result.ok:
            detail = f"loads safely, {human_bytes(size)}; the sidecar records no checksum"
            return VerifyResult(path, True, detail=detail)
        return result
    if size != meta.size_bytes:
        why = "truncated?" if size < meta.size_bytes else "grown or replaced?"
        return VerifyResult(path, False, f"size {size} != recorded {meta.size_bytes} ({why})")
    try:
        algorithm = algorithm_of(checksum)
        actual = checksum_of_file(path, algorithm)
    except UnknownChecksum as exc:
        return VerifyResult(path, False, f"{exc}; it cannot be checked")
    except OSError as exc:
        return VerifyResult(path, False, f"cannot read: {exc.strerror or exc}")
    if actual != checksum:
        digest, recorded = actual.partition(":")[2], checksum.partition(":")[2]
        return VerifyResult(
            path, False, f"checksum mismatch: {algorithm} {digest[:12]}... != recorded {recorded[:12]}... (damaged)"
        )
    problem = _resume_would_refuse(path, meta, run_id)
    if problem is not None:
        return VerifyResult(path, False, problem)
    return VerifyResult(path, True, detail=f"{algorithm} matches, {human_bytes(size)}")


def _resume_would_refuse(path: Path, meta: CheckpointMeta, run_id: str | None) -> str | None:
    """What `resume` would refuse in a file whose checksum matches: verify says OK only where resume agrees.

    A sidecar can match its file's checksum and still lie about what it holds, so the file's
    name and its own embedded metadata are the witnesses, read from its skeleton (no torch).
    """
    lie = sidecar_disagrees(meta, path.name)
    if lie is not None:
        return lie
    try:
        skeleton = read_skeleton(path)
    except ValueError as exc:
        return f"resume cannot load it: {exc}"
    embedded = skeleton.get("meta") if isinstance(skeleton, dict) else None
    lie = sidecar_disagrees(meta, path.name, embedded)
    if lie is not None:
        return lie
    refused = resume_problem(skeleton, path.name, run_id)
    if refused is None and run_id is not None and meta.run_id not in (None, run_id):
        refused = f"its sidecar says run {meta.run_id}, not this run dir's ({run_id})"
    return None if refused is None else f"resume refuses it: {refused}"


def verify_loads(path: Path) -> VerifyResult:
    """A file without a sidecar: is it an intact PyTorch checkpoint that loads without running code?"""
    damaged = zip_problem(path)
    if damaged is not None:
        return VerifyResult(path, False, damaged)
    from tui_trainer.engine.checkpoints import file as checkpoint_file  # imports torch

    try:
        obj = checkpoint_file.load_checkpoint(path, mmap=True)
    except UnsafeCheckpoint as exc:
        found = re.search(r"\(([\w.]+)\)", str(exc))
        return VerifyResult(path, False, "refused: would run code on load" + (f" ({found.group(1)})" if found else ""))
    except NotACheckpoint as exc:
        return VerifyResult(path, False, "not a checkpoint" + _reason(exc, path))
    except CheckpointCorrupt as exc:
        return VerifyResult(path, False, "damaged or truncated" + _reason(exc, path))
    except CheckpointError as exc:
        return VerifyResult(path, False, str(exc))
    try:
        state = checkpoint_file.model_state_of(obj, path)
    except NotACheckpoint:
        return VerifyResult(path, False, "not a checkpoint (loads, but holds no model weights)")
    if checkpoint_file.is_own_format(obj):
        return VerifyResult(
            path, False, f"no sidecar ({sidecar_path(path).name} is missing), so its checksum cannot be checked"
        )
    detail = f"foreign checkpoint, loads safely ({len(state)} entries), {human_bytes(path.stat().st_size)}"
    return VerifyResult(path, True, detail=detail)


def zip_problem(path: Path) -> str | None:
    """For a zip-format checkpoint: a CRC error, or a zip that is not a PyTorch archive."""
    try:
        if not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as archive:
            if not any(n.endswith("data.pkl") for n in archive.namelist()):
                return "not a checkpoint (a zip archive, but not a PyTorch one)"
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        return f"damaged or truncated ({exc})"
    if bad is not None:
        return f"damaged: CRC mismatch in {bad}"
    return None


def _reason(exc: Exception, path: Path) -> str:
    found = _REASON_RE.findall(str(exc).replace(str(path), ""))
    return f" ({found[-1]})" if found else ""
