"""Setting checkpoints aside into `superseded/`, and mending what a kill during that left.

Each set-aside gets a new folder of its own, `superseded/<time>[-N]/`, so two in one second never
overwrite each other's files. The folder first records what it is about to receive
(`.moving.json`); then each checkpoint moves before its sidecar, and the record goes last. A
kill at any instant leaves either the record, which `recover` (run by resume) completes, or a
finished move. `recover` also mends what older versions left: a sidecar in the run dir whose
checkpoint went to `superseded/` without it, temporary files, and sidecars without their file.

This module does not import torch, unless a checkpoint in `superseded/` lost its sidecar.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from tui_trainer.engine.atomic import atomic_write_json, fsync_dir, read_regular, remove_temp_files
from tui_trainer.engine.checkpoints.meta import CHECKPOINT_SUFFIX, SIDECAR_SUFFIX, sidecar_path
from tui_trainer.engine.checkpoints.store import FOREIGN_SUFFIXES, CheckpointStore
from tui_trainer.engine.checkpoints.store_lock import store_lock
from tui_trainer.engine.errors import UnsafePath
from tui_trainer.engine.rundir.discover import SUPERSEDED_DIR
from tui_trainer.engine.words import counted

INTENT_FILE = ".moving.json"


def set_aside(run_dir: str | os.PathLike[str], checkpoints: Iterable[Path]) -> Path:
    """Move checkpoints and their sidecars into a new `superseded/<time>/` folder; return it.

    Nothing is deleted: the files stay for inspection, out of the listing and out of the way of
    new saves under the same names. Safe against a kill at any instant (see the module).
    """
    run_dir = Path(run_dir)
    root = _root(run_dir)
    names = list(dict.fromkeys(Path(c).name for c in checkpoints))
    with store_lock(run_dir):
        folder = _new_folder(root)
        atomic_write_json(folder / INTENT_FILE, {"names": names})
        _finish(run_dir, folder, names)
    return folder


def pending_set_aside(folder: Path) -> list[str] | None:
    """The checkpoint names an interrupted set-aside into `folder` was moving, or None if none was."""
    try:
        data = json.loads(read_regular(folder / INTENT_FILE))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError):
        return []  # damaged: nothing is trusted from it, the record itself is cleared
    names = data.get("names") if isinstance(data, dict) else None
    return [n for n in names if _plain_checkpoint_name(n)] if isinstance(names, list) else []


def recover(run_dir: str | os.PathLike[str]) -> list[str]:
    """Complete interrupted set-asides and mend what a kill left in `superseded/`; return notes.

    For the one process that owns the run dir (resume holds its lock), before it lists anything.
    """
    run_dir = Path(run_dir)
    root = run_dir / SUPERSEDED_DIR
    if not root.is_dir() or root.is_symlink():
        return _remove_orphans(run_dir)
    notes = []
    folders = sorted(Path(e.path) for e in os.scandir(root) if e.is_dir(follow_symlinks=False))
    for folder in folders:
        names = pending_set_aside(folder)
        if names is not None:
            with store_lock(run_dir):
                _finish(run_dir, folder, names)
            notes.append(f"finished setting {counted(len(names), 'checkpoint')} aside into "
                         f"{folder.relative_to(run_dir)}/ (the process doing it was killed)")
    notes += _reunite(run_dir, reversed(folders))
    notes += _remove_orphans(run_dir)
    for folder in folders:
        notes += _mend_folder(run_dir, folder)
    return notes


def _root(run_dir: Path) -> Path:
    root = run_dir / SUPERSEDED_DIR
    if not root.resolve().is_relative_to(run_dir.resolve()):
        raise UnsafePath(
            f"{root} leads outside {run_dir} through a symbolic link; checkpoints are only moved within "
            f"the run dir. Replace {root} with a plain directory."
        )
    return root


def _new_folder(root: Path) -> Path:
    """A folder no other set-aside uses: mkdir fails rather than share one made in the same second."""
    root.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1, 10_000):
        folder = root / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        fsync_dir(root)
        fsync_dir(root.parent)
        return folder
    raise FileExistsError(f"{root} holds 10,000 folders of {stamp}")


def _finish(run_dir: Path, folder: Path, names: list[str]) -> None:
    """Move what is still in the run dir of `names`, checkpoint before sidecar, then drop the record."""
    for name in names:
        checkpoint = run_dir / name
        for path in (checkpoint, sidecar_path(checkpoint)):
            target = folder / path.name
            # Never over a file already there: a record names each file once, in a folder of its own.
            if os.path.lexists(path) and not os.path.lexists(target):
                os.rename(path, target)
    fsync_dir(folder)
    fsync_dir(run_dir)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(folder / INTENT_FILE)
    fsync_dir(folder)


def _plain_checkpoint_name(name: object) -> bool:
    """A record from disk names only files directly in the run dir: never `../x.pt`, a dot file or a path."""
    return (isinstance(name, str) and name.endswith(FOREIGN_SUFFIXES) and name[0] != "."
            and "/" not in name and "\\" not in name and name == os.path.basename(name))


def _reunite(run_dir: Path, folders: Iterable[Path]) -> list[str]:
    """A sidecar left in the run dir by an older set-aside joins its checkpoint in `superseded/`."""
    notes = []
    folders = list(folders)  # newest first
    with store_lock(run_dir):
        for orphan in CheckpointStore(run_dir).orphan_sidecars():
            checkpoint = orphan.name.removesuffix(SIDECAR_SUFFIX) + CHECKPOINT_SUFFIX
            for folder in folders:
                if (folder / checkpoint).is_file() and not os.path.lexists(folder / orphan.name):
                    os.rename(orphan, folder / orphan.name)
                    notes.append(f"moved {orphan.name} to {folder.relative_to(run_dir)}/, beside its checkpoint")
                    break
        fsync_dir(run_dir)
    return notes


def _remove_orphans(run_dir: Path) -> list[str]:
    return [f"removed {p.name}: its checkpoint is gone" for p in CheckpointStore(run_dir).remove_orphan_sidecars()]


def _mend_folder(run_dir: Path, folder: Path) -> list[str]:
    """Temporary files, file-less sidecars and sidecar-less checkpoints of one superseded folder."""
    where = folder.relative_to(run_dir)
    notes = [f"removed leftover temporary file {where / p.name}" for p in remove_temp_files(folder)]
    store = CheckpointStore(folder)
    notes += [f"removed {where / p.name}: its checkpoint is gone" for p in store.remove_orphan_sidecars()]
    notes += [f"rebuilt the missing metadata of {where / name}" for name in store.repair_sidecars()]
    with contextlib.suppress(OSError):
        folder.rmdir()  # only if empty: a kill right after making it
    return notes
