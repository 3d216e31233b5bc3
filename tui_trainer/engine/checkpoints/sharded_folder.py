"""A sharded checkpoint on disk: a step folder written by every rank, trusted only through its manifest.

Several processes training one model with FSDP each hold a shard of it, so a checkpoint is a
folder: `step_00000300.dcp/` with each rank's Distributed Checkpoint (DCP) files, DCP's own
`.metadata`, `state.pt` (everything but the sharded tensors: data position, RNG streams,
schedule, metadata) and `manifest.json`, written last, with each file's size and SHA-256.

The folder is written as `step_00000300.dcp.partial/` and renamed to its final name by rank 0
once every rank has finished and the manifest is on disk, so a folder under a final name is
always complete; a `.partial` one left by a kill is never loaded and `resume` removes it. A
deleted folder is first renamed to a hidden name, so no half-deleted folder ever sits under a
final name either.

DCP reads `.metadata` with plain pickle. Nothing in a folder is opened before `manifest_problem`
has checked every file against the manifest (and the loader then reads `.metadata` with an
unpickler that builds only DCP's own record types).

This module never imports torch: listing, verify and prune use it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import re
import shutil
import stat
from pathlib import Path
from typing import Any

from tui_trainer.engine.atomic import (
    atomic_write_json,
    fsync_dir,
    pid_alive,
    read_regular,
)
from tui_trainer.engine.checkpoints.meta import CheckpointMeta, now_iso, sidecar_path
from tui_trainer.engine.checkpoints.store_lock import store_lock
from tui_trainer.engine.errors import CheckpointError

SHARDED_SUFFIX = ".dcp"
PARTIAL_SUFFIX = ".partial"
MANIFEST = "manifest.json"
STATE_FILE = "state.pt"
DCP_METADATA = ".metadata"
MANIFEST_FORMAT = "tui-trainer-sharded"
_CHUNK = 1 << 20
_DELETING_RE = re.compile(r"^\.(?P<name>.+\.dcp)\.deleting-(?P<pid>\d+)$")
_FILE_NAME_RE = re.compile(r"^[\w.\-]+$")
_DCP = "torch.distributed.checkpoint"
# Every global a DCP `.metadata` pickle names (torch 2.x), besides torch's dtypes: nothing else is built.
METADATA_GLOBALS = frozenset({
    (f"{_DCP}.metadata", name) for name in (
        "Metadata", "TensorStorageMetadata", "ChunkStorageMetadata", "BytesStorageMetadata", "TensorProperties",
        "MetadataIndex", "StorageMeta", "_MEM_FORMAT_ENCODING",
    )
} | {
    (f"{_DCP}.filesystem", "_StorageInfo"), ("torch", "Size"), ("torch.serialization", "_get_layout"),
    ("pathlib", "PosixPath"), ("pathlib", "PurePosixPath"), ("pathlib", "WindowsPath"), ("pathlib", "PureWindowsPath"),
    ("collections", "OrderedDict"), ("builtins", "set"), ("builtins", "frozenset"),
})
DTYPE_NAMES = frozenset({
    "float32", "float", "float64", "double", "float16", "half", "bfloat16", "uint8", "int8", "int16", "short",
    "int32", "int", "int64", "long", "bool", "complex64", "complex128", "cfloat", "cdouble", "uint16", "uint32",
    "uint64", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu",
})


def is_sharded_name(name: str) -> bool:
    return name.endswith(SHARDED_SUFFIX)


def partial_path(final: Path) -> Path:
    return final.with_name(final.name + PARTIAL_SUFFIX)


def sha256_of(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(f"{path} is not a regular file")
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def describe_files(folder: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """Size and SHA-256 of each of `names` in `folder` (a rank describes the files it wrote)."""
    return {name: {"size": os.stat(folder / name).st_size, "sha256": sha256_of(folder / name)} for name in names}


def files_of_rank(folder: Path, rank: int) -> list[str]:
    """The DCP data files a rank wrote (`__<rank>_<n>.distcp`)."""
    prefix = f"__{rank}_"
    return sorted(e.name for e in os.scandir(folder) if e.name.startswith(prefix) and e.name.endswith(".distcp"))


def write_manifest(folder: Path, files: dict[str, dict[str, Any]], world_size: int, step: int) -> int:
    """Write `manifest.json` (fsynced, then the folder); return the folder's size in bytes, the manifest included."""
    body = json.dumps({"format": MANIFEST_FORMAT, "version": 1, "step": step, "world_size": world_size,
                       "files": files}, indent=1).encode()
    fd = os.open(folder / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(folder)
    return sum(entry["size"] for entry in files.values()) + len(body)


def read_manifest(folder: Path) -> dict[str, Any]:
    """The folder's manifest; ValueError saying why it cannot be believed."""
    try:
        data = json.loads(read_regular(folder / MANIFEST))
    except FileNotFoundError:
        raise ValueError("its manifest.json is missing (the save did not finish)") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise ValueError(f"its manifest.json is unreadable ({exc})") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or not isinstance(files, dict):
        raise ValueError("its manifest.json is not a tui-trainer manifest")
    for name, entry in files.items():
        if (not isinstance(name, str) or not _FILE_NAME_RE.match(name) or name in (".", "..", MANIFEST)
                or not isinstance(entry, dict) or not isinstance(entry.get("size"), int)
                or not isinstance(entry.get("sha256"), str)):
            raise ValueError(f"its manifest.json names an entry it cannot describe ({name!r})")
    for needed in (DCP_METADATA, STATE_FILE):
        if needed not in files:
            raise ValueError(f"its manifest.json does not cover {needed}")
    return data


def manifest_problem(folder: Path, checksums: bool = True) -> str | None:
    """Why this folder cannot be trusted, or None once every file matches the manifest.

    Sizes always; SHA-256 too unless `checksums` is False (listing). A file beside them that
    the manifest does not name is a problem as well: nothing unverified is ever read.
    """
    try:
        if os.path.islink(folder) or not folder.is_dir():
            return "it is not a folder"
        files = read_manifest(folder)["files"]
        present = {e.name for e in os.scandir(folder)} - {MANIFEST}
    except ValueError as exc:
        return str(exc)
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    extra = sorted(present - files.keys())
    if extra:
        return f"it holds files its manifest does not name ({', '.join(extra[:3])})"
    for name, entry in sorted(files.items()):
        path = folder / name
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return f"{name} is missing"
        if not stat.S_ISREG(info.st_mode):
            return f"{name} is not a regular file"
        if info.st_size != entry["size"]:
            return f"{name} is {info.st_size} bytes, the manifest says {entry['size']} (truncated or overwritten)"
        if checksums:
            try:
                if sha256_of(path) != entry["sha256"]:
                    return f"{name} does not match its checksum (the file changed after it was written)"
            except OSError as exc:
                return f"{name} cannot be read ({exc})"
    return None


def metadata_problem(folder: Path) -> str | None:
    """Whether DCP's `.metadata` names anything but DCP's own records: read with inert placeholders."""
    try:
        with open(folder / DCP_METADATA, "rb") as f:
            _InertUnpickler(f).load()
    except _Refused as exc:
        return f"its {DCP_METADATA} names {exc}, which DCP metadata never holds: refused (it would run code on load)"
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RecursionError, OSError) as exc:
        return f"its {DCP_METADATA} is damaged ({type(exc).__name__})"
    return None


class _Refused(Exception):
    pass


class _Inert:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _InertUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in METADATA_GLOBALS or module == "torch" and name in DTYPE_NAMES:
            return _Inert
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("a persistent object")


def manifest_digest(folder: Path) -> str:
    """The SHA-256 of the manifest itself: the folder's checksum in its sidecar."""
    return sha256_of(folder / MANIFEST)


def folder_size(folder: Path) -> int | None:
    try:
        return sum(e.stat(follow_symlinks=False).st_size for e in os.scandir(folder))
    except OSError:
        return None


def digest_and_size(folder: Path) -> tuple[str, int | None]:
    """What a step folder's sidecar records of it: the manifest's SHA-256 and the folder's size."""
    return manifest_digest(folder), folder_size(folder)


def folder_problem(folder: Path, recorded_sha256: str | None) -> str | None:
    """Why a stored step folder cannot be trusted: every file against its manifest, the manifest against the sidecar."""
    if not os.path.lexists(folder):
        return "folder is missing"
    problem = manifest_problem(folder)
    if problem is not None:
        return problem
    if recorded_sha256 is not None and manifest_digest(folder) != recorded_sha256:
        return "its manifest does not match the checksum its sidecar recorded (rewritten after the save)"
    return None


def commit(partial: Path, final: Path, meta: CheckpointMeta) -> None:
    """Give a finished step folder (its manifest written last) its final name, then its sidecar.

    Never over an existing checkpoint: DCP writing into an existing folder can leave a mix that
    loads without error, so a folder of the same name is an error, and `partial` stays. The rename
    and the sidecar happen under the store lock, so a pin never sees the folder alone.
    """
    meta.sha256, meta.size_bytes = digest_and_size(partial)
    meta.created = meta.created or now_iso()
    with store_lock(final.parent):
        if os.path.lexists(final):
            raise CheckpointError(f"{final.name} already exists; the new save stays in {partial.name}")
        os.rename(partial, final)
        atomic_write_json(sidecar_path(final), meta.to_json(), durable=False)
    fsync_dir(final.parent)


def remove_folder(folder: Path) -> None:
    """Delete a step folder so that it is never seen half-deleted under its own name.

    It is renamed to a hidden `.step_N.dcp.deleting-<pid>` first (one atomic rename), then
    removed; a kill in between leaves the hidden folder, which `remove_leftovers` clears.
    """
    hidden = folder.with_name(f".{folder.name}.deleting-{os.getpid()}")
    os.rename(folder, hidden)
    fsync_dir(folder.parent)
    shutil.rmtree(hidden, ignore_errors=True)


def leftovers(directory: Path) -> list[Path]:
    """Step folders a kill left behind: unfinished saves (`*.dcp.partial`) and half-removed folders."""
    found = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    for entry in entries:
        if entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
            continue
        if entry.name.endswith(SHARDED_SUFFIX + PARTIAL_SUFFIX) and entry.name[0] != "." or (match := _DELETING_RE.match(entry.name)) and not pid_alive(int(match["pid"])):
            found.append(Path(entry.path))
    return sorted(found)


def remove_leftovers(directory: Path, keep: Path | None = None) -> list[Path]:
    """Remove what `leftovers` finds (never through a link); return what was removed."""
    removed = []
    for path in leftovers(directory):
        if keep is not None and path == keep:
            continue
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(path)
            removed.append(path)
    return removed
