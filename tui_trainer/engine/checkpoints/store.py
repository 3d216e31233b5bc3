"""A directory of checkpoints: atomic saves, listing from sidecars, marks, pins and pruning.

This module never imports torch. Saving takes a `write(file)` callback that serialises the
state; only a checkpoint that lacks a sidecar (a foreign file, or one whose sidecar was lost
in a crash) is opened, lazily, through `checkpoint_file`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from tui_trainer.engine.atomic import (
    atomic_write_json,
    fsync_dir,
    remove_temp_files,
    temp_path_for,
)
from tui_trainer.engine.checkpoints import retention, sharded_folder
from tui_trainer.engine.checkpoints.hashing_writer import (
    HashingWriter,
    UnknownChecksum,
    checksum_of_file,
    file_matches,
)
from tui_trainer.engine.checkpoints.meta import (
    CHECKPOINT_SUFFIX,
    FOREIGN,
    PERIODIC,
    SHARDED_SUFFIX,
    SIDECAR_SUFFIX,
    CheckpointMeta,
    checkpoint_names_of,
    file_size,
    now_iso,
    read_sidecar,
    sidecar_path,
)
from tui_trainer.engine.checkpoints.store_lock import store_lock
from tui_trainer.engine.errors import (
    CheckpointError,
    CheckpointNotFound,
    NotEnoughDiskSpace,
    RunDirError,
    UnsafePath,
)
from tui_trainer.engine.sizes import human_bytes

FOREIGN_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
# Room kept free beyond the expected size of a save: filesystem overhead and the sidecar.
SPACE_MARGIN_BYTES = 1 << 20
SPACE_MARGIN_FRACTION = 0.05


def bytes_needed_for(expected_bytes: int) -> int:
    """The free space a save of `expected_bytes` asks for: the size plus a margin."""
    return int(expected_bytes * (1 + SPACE_MARGIN_FRACTION)) + SPACE_MARGIN_BYTES


@dataclass(frozen=True)
class StoredCheckpoint:
    path: Path
    meta: CheckpointMeta
    best: bool = False
    latest: bool = False

    @property
    def pinned(self) -> bool:
        return self.meta.pinned

    @property
    def marks(self) -> tuple[str, ...]:
        return tuple(m for m, on in (("best", self.best), ("latest", self.latest), ("pinned", self.pinned)) if on)


class CheckpointStore:
    """The checkpoints in one directory; `run_id` scopes retention to one run's files."""

    def __init__(
        self, directory: str | os.PathLike[str], run_id: str | None = None, monitor: str = "val_loss", mode: str = "min"
    ) -> None:
        self.directory = Path(directory)
        self.run_id = run_id
        self.monitor = monitor
        self.mode = mode

    # --- reading ------------------------------------------------------------------------------

    def scan(self, sidecars_only: bool = False) -> list[CheckpointMeta]:
        """Metadata of every checkpoint file in the directory, sorted by step.

        A checkpoint without a readable sidecar is read itself (torch), unless `sidecars_only`.
        """
        directory = os.fspath(self.directory)
        names, links = self._checkpoint_names()
        outside = {path.name for path in self._outside(links)}
        metas = []
        for name in sorted(names):
            if name in outside:
                continue
            meta = None
            if name.endswith(CHECKPOINT_SUFFIX):
                meta = read_sidecar(os.path.join(directory, name[: -len(CHECKPOINT_SUFFIX)] + SIDECAR_SUFFIX))
            elif name.endswith(SHARDED_SUFFIX):
                meta = read_sidecar(os.path.join(directory, name[: -len(SHARDED_SUFFIX)] + SIDECAR_SUFFIX))
            if meta is None and not sidecars_only:
                meta = self._meta_from_file(self.directory / name)
            if meta is not None:
                metas.append(meta)
        return sorted(metas, key=lambda m: (m.step, m.created or "", m.name))

    def links_outside(self) -> list[Path]:
        """Checkpoint names in the directory that are symbolic links to files outside it.

        The store leaves them alone: they are not listed, loaded, pruned or resumed from.
        """
        return self._outside(self._checkpoint_names()[1])

    def _checkpoint_names(self) -> tuple[list[str], list[str]]:
        """The names of checkpoint files in the directory, and those of them that are links."""
        # Plain strings, not Path objects: pathlib's parsing was most of a 1,000-file listing.
        names, links = [], []
        try:
            with os.scandir(self.directory) as entries:
                for e in entries:
                    if e.name.endswith(FOREIGN_SUFFIXES) and e.name[0] != ".":
                        names.append(e.name)
                        if e.is_symlink():
                            links.append(e.name)
                    elif e.name.endswith(SHARDED_SUFFIX) and e.name[0] != ".":  # a sharded step folder
                        if e.is_symlink():
                            names.append(e.name)
                            links.append(e.name)
                        elif e.is_dir(follow_symlinks=False):
                            names.append(e.name)
        except FileNotFoundError:
            raise RunDirError(f"{self.directory} does not exist") from None
        except NotADirectoryError:
            raise RunDirError(f"{self.directory} is not a directory") from None
        return names, links

    def _outside(self, links: list[str]) -> list[Path]:
        directory = os.path.realpath(self.directory)
        paths = [self.directory / name for name in sorted(links)]
        return [p for p in paths if os.path.commonpath([directory, os.path.realpath(p)]) != directory]

    def list(self) -> list[StoredCheckpoint]:
        metas = self.scan()
        best, latest = retention.best_and_latest(self._markable(metas), None, self.monitor, self.mode)
        best_name = best.name if best is not None else None
        latest_name = latest.name if latest is not None else None
        return [
            StoredCheckpoint(self.directory / m.name, m, best=m.name == best_name, latest=m.name == latest_name)
            for m in metas
        ]

    def get(self, name: str) -> StoredCheckpoint:
        for stored in self.list():
            if stored.meta.name == name:
                return stored
        raise CheckpointNotFound(f"no checkpoint named {name!r} in {self.directory}")

    def latest(self) -> StoredCheckpoint | None:
        return next((c for c in self.list() if c.latest), None)

    def best(self) -> StoredCheckpoint | None:
        return next((c for c in self.list() if c.best), None)

    def integrity_problem(self, stored: StoredCheckpoint) -> str | None:
        """Why this checkpoint cannot be trusted, or None if its size and checksum match."""
        if sharded_folder.is_sharded_name(stored.path.name):
            return sharded_folder.folder_problem(stored.path, stored.meta.sha256)
        size = file_size(stored.path)
        if size is None:
            return "file is missing"
        if size == 0:
            return "empty file (0 bytes)"
        recorded = stored.meta.size_bytes
        if recorded is not None and size != recorded:
            return f"size {size} != recorded {recorded} (truncated or overwritten)"
        checksum = stored.meta.recorded_checksum
        if checksum is None:
            return None  # no sidecar to check against; loading the file is the remaining test
        try:
            if not file_matches(stored.path, checksum):
                return "checksum mismatch (the file changed after it was written)"
        except UnknownChecksum as exc:
            return f"{exc}; it cannot be checked"
        return None

    def _markable(self, metas: list[CheckpointMeta]) -> list[CheckpointMeta]:
        """Marks go to this run's checkpoints; a folder of foreign files marks among those."""
        own = retention.own_checkpoints(metas, self.run_id)
        if own or self.run_id is not None:
            return own
        # Retention never ranks foreign files, so rank copies of those with a known step.
        return [replace(m, kind=PERIODIC) for m in metas if m.kind == FOREIGN and m.step >= 0]

    def _meta_from_file(self, path: Path) -> CheckpointMeta | None:
        from tui_trainer.engine.checkpoints import (
            file as checkpoint_file,  # imports torch
        )

        try:
            return checkpoint_file.read_meta(path)
        except CheckpointError:
            return None

    # --- writing ------------------------------------------------------------------------------

    def save(
        self, meta: CheckpointMeta, write: Callable[[IO[bytes]], None], expected_bytes: int | None = None
    ) -> StoredCheckpoint:
        """Write a checkpoint atomically, then its sidecar; return it.

        The checkpoint goes to a temporary file in the same directory, is fsynced, renamed into
        place, its sidecar is renamed beside it, and the directory is fsynced. A failure at any
        point, ENOSPC included, removes the temporary file and leaves every existing checkpoint as
        it was. The two renames happen under the store lock, so a pin never sees the file alone.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        if expected_bytes:
            self.check_space(expected_bytes)
        final = self._safe_path(meta.name)
        temp = temp_path_for(final)
        writer: HashingWriter | None = None
        try:
            with open(temp, "x+b", buffering=0) as f:  # new, never through a planted link
                writer = HashingWriter(f)
                try:
                    write(writer)
                except BaseException:
                    writer.abandon()
                    raise
                checksum = writer.finish()  # fsyncs the file too
                size = writer.bytes_written
            meta.checksum, meta.sha256, meta.size_bytes = checksum, None, size
            meta.created = meta.created or now_iso()
            with store_lock(self.directory):
                os.replace(temp, final)
                # The sidecar can be rebuilt from the checkpoint (resume does), so it skips its own
                # fsyncs; one directory fsync makes both renames durable.
                atomic_write_json(sidecar_path(final), meta.to_json(), durable=False)
            fsync_dir(self.directory)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                written = writer.bytes_written if writer is not None else 0
                raise self._full_while_writing(final.name, expected_bytes, written) from None
            raise
        return StoredCheckpoint(final, meta)

    def commit_folder(self, partial: Path, meta: CheckpointMeta) -> StoredCheckpoint:
        """Give a finished sharded step folder its final name, then its sidecar (`sharded_folder.commit`)."""
        final = self._safe_path(meta.name)
        sharded_folder.commit(partial, final, meta)
        return StoredCheckpoint(final, meta)

    def check_space(self, expected_bytes: int) -> None:
        needed = bytes_needed_for(expected_bytes)
        free = shutil.disk_usage(self.directory).free
        if free < needed:
            raise NotEnoughDiskSpace(
                f"the next checkpoint needs about {human_bytes(needed)} but only {human_bytes(free)} is free "
                f"under {self.directory}; free space (e.g. `tui-trainer ckpt prune`) and resume",
                needed_bytes=needed, free_bytes=free, directory=str(self.directory),
            )

    def _full_while_writing(self, name: str, expected_bytes: int | None, written: int) -> NotEnoughDiskSpace:
        # The disk filled after `written` bytes, so the file needs at least that much more room
        # than there was; the size of the previous save is the better guess when known.
        needed = max(bytes_needed_for(expected_bytes or 0), bytes_needed_for(written))
        try:
            free: int | None = shutil.disk_usage(self.directory).free
        except OSError:
            free = None
        return NotEnoughDiskSpace(
            f"disk full while writing {name}; nothing was overwritten. "
            f"Free space under {self.directory} (e.g. `tui-trainer ckpt prune`) and resume.",
            needed_bytes=needed, free_bytes=free, directory=str(self.directory),
        )

    def set_pinned(self, name: str, pinned: bool) -> StoredCheckpoint:
        """Pin or unpin a checkpoint; CheckpointNotFound if it is gone, also if a prune took it just now.

        Under the store lock: retention either sees the pin or has already deleted the file, and
        a sidecar is never written for a file that is gone.
        """
        with store_lock(self.directory):
            stored = self.get(name)
            if stored.meta.kind == FOREIGN:
                raise CheckpointError(f"{name} was not written by tui-trainer; only its own checkpoints can be pinned")
            stored.meta.pinned = pinned
            self._write_sidecar(stored.meta)
            return self.get(name)

    def write_meta(self, meta: CheckpointMeta) -> None:
        """Rewrite a checkpoint's sidecar after its kind or metrics changed; the file itself stays.

        The pin is the user's, so the one on disk is kept. CheckpointNotFound if the file is gone.
        """
        with store_lock(self.directory):
            current = read_sidecar(sidecar_path(self._safe_path(meta.name)))
            if current is not None:
                meta.pinned = current.pinned
            self._write_sidecar(meta)

    def _write_sidecar(self, meta: CheckpointMeta) -> None:
        """Write a sidecar beside its checkpoint, never beside nothing. Hold the store lock."""
        path = self._safe_path(meta.name)
        present = os.path.isdir(path) if sharded_folder.is_sharded_name(meta.name) else os.path.isfile(path)
        if not present or os.path.islink(path):  # a sidecar describing a deleted file would be an orphan
            raise CheckpointNotFound(f"no checkpoint named {meta.name!r} in {self.directory}")
        atomic_write_json(sidecar_path(path), meta.to_json())

    def repair_sidecars(self) -> list[str]:
        """Rebuild missing or damaged sidecars of this tool's checkpoints; return their names.

        A crash between renaming a checkpoint into place and writing its sidecar leaves a
        complete file (it was fsynced before the rename), so its checksum is taken now.
        """
        repaired = []
        for meta in self.scan():
            path = self.directory / meta.name
            # A sidecar that is damaged, unreadable or not a file (a FIFO) is rebuilt, as a missing one is.
            if meta.kind == FOREIGN or read_sidecar(sidecar_path(path)) is not None:
                continue
            try:
                if sharded_folder.is_sharded_name(meta.name):
                    meta.sha256, meta.size_bytes = sharded_folder.digest_and_size(path)
                else:
                    meta.checksum, meta.sha256, meta.size_bytes = checksum_of_file(path), None, file_size(path)
                with store_lock(self.directory):
                    if read_sidecar(sidecar_path(path)) is None:  # nobody wrote one meanwhile
                        self._write_sidecar(meta)
                        repaired.append(meta.name)
            except (FileNotFoundError, CheckpointNotFound):
                continue  # deleted meanwhile: nothing to describe
        return repaired

    def orphan_sidecars(self) -> list[Path]:
        """Sidecars whose checkpoint is not beside them: left by a crash or an older version's race."""
        try:
            with os.scandir(self.directory) as entries:
                names = {e.name for e in entries}
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [
            self.directory / name for name in sorted(names)
            if name.endswith(SIDECAR_SUFFIX) and name[0] != "."
            and not any(checkpoint in names for checkpoint in checkpoint_names_of(name))
        ]

    def remove_orphan_sidecars(self) -> list[Path]:
        """Remove sidecars whose checkpoint is gone; return their paths."""
        removed = []
        with store_lock(self.directory):
            for path in self.orphan_sidecars():
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
        return removed

    def delete(self, name: str) -> int:
        """Delete one checkpoint and its sidecar; return the bytes freed.

        Raises CheckpointNotFound when it is not there, also when another pruner (the trainer's
        retention, a `ckpt prune` beside it) deletes it while this call runs.
        """
        path = self._safe_path(name)
        gone = CheckpointNotFound(f"no checkpoint named {name!r} in {self.directory}")
        folder = sharded_folder.is_sharded_name(name) and os.path.isdir(path) and not os.path.islink(path)
        with store_lock(self.directory):
            size = sharded_folder.folder_size(path) if folder else file_size(path)
            if size is None:
                raise gone
            # Sidecar first: a crash in between leaves a complete checkpoint whose sidecar resume
            # rebuilds, never a sidecar describing a file that is gone.
            with contextlib.suppress(FileNotFoundError):
                sidecar_path(path).unlink()
            try:
                if folder:
                    sharded_folder.remove_folder(path)  # renamed away first: never half-deleted under its name
                else:
                    path.unlink()
            except FileNotFoundError:
                raise gone from None
        fsync_dir(self.directory)
        return size

    def plan_prune(self, keep_last: int) -> list[StoredCheckpoint]:
        """What `prune(keep_last)` would delete, without deleting anything."""
        if self.run_id is None:
            raise RunDirError(
                f"{self.directory} is not a tui-trainer run dir; prune only acts on checkpoints it wrote"
            )
        metas = self.scan()
        doomed = {m.name for m in retention.checkpoints_to_prune(metas, keep_last, self.run_id, self.monitor, self.mode)}
        return [c for c in self.list() if c.meta.name in doomed]

    def prune(self, keep_last: int, only: Iterable[str] | None = None) -> list[tuple[StoredCheckpoint, int]]:
        """Delete what `plan_prune(keep_last)` names now, of `only` if given; return each with its bytes.

        Planned and deleted under the store lock: a pin that lands meanwhile either keeps its
        checkpoint or finds it gone, and a preview shown earlier deletes only what is still due.
        """
        chosen = None if only is None else set(only)
        deleted = []
        with store_lock(self.directory):
            for stored in self.plan_prune(keep_last):
                if chosen is not None and stored.meta.name not in chosen:
                    continue
                try:
                    deleted.append((stored, self.delete(stored.meta.name)))
                except CheckpointNotFound:
                    continue  # taken by a pruner that does not lock (another filesystem's)
        return deleted

    def remove_temp_files(self) -> list[Path]:
        """Remove temporary files left by a killed writer; return their paths."""
        return remove_temp_files(self.directory)

    def _safe_path(self, name: str) -> Path:
        if not name or "/" in name or "\\" in name or name.startswith(".") or name != os.path.basename(name):
            raise UnsafePath(f"refusing checkpoint name {name!r}: it must be a plain file name inside {self.directory}")
        return self.directory / name

