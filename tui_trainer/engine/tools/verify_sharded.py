"""`ckpt verify` of a sharded step folder (`step_N.dcp/`, saved by several ranks), without torch.

Every file against the manifest (size, SHA-256), the manifest against the sidecar, DCP's
`.metadata` read with inert placeholders (a crafted one that would run code is refused), and
`state.pt`'s skeleton asked what `resume` asks of a checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from tui_trainer.engine.checkpoints import sharded_folder
from tui_trainer.engine.checkpoints.meta import (
    read_sidecar,
    sidecar_disagrees,
    sidecar_path,
)
from tui_trainer.engine.checkpoints.resumable import read_skeleton, resume_problem
from tui_trainer.engine.sizes import human_bytes
from tui_trainer.engine.tools.verify import VerifyResult


def verify_sharded(path: Path, run_id: str | None) -> VerifyResult:
    if path.name.endswith(sharded_folder.PARTIAL_SUFFIX):
        return VerifyResult(path, False, "a save of several processes that was interrupted before it finished: "
                                         "never loaded; `tui-trainer resume` of the run removes it")
    problem = sharded_folder.manifest_problem(path) or sharded_folder.metadata_problem(path)
    if problem is not None:
        return VerifyResult(path, False, problem)
    meta = read_sidecar(sidecar_path(path))
    if meta is None:
        return VerifyResult(path, False, f"sidecar {sidecar_path(path).name} is missing, unreadable or describes "
                                         "another checkpoint; `tui-trainer resume` of the run rebuilds it")
    if meta.sha256 is not None and sharded_folder.manifest_digest(path) != meta.sha256:
        return VerifyResult(path, False, "its manifest does not match the checksum its sidecar recorded "
                                         "(rewritten after the save)")
    try:
        skeleton = read_skeleton(path / sharded_folder.STATE_FILE)
    except ValueError as exc:
        return VerifyResult(path, False, f"resume cannot load its {sharded_folder.STATE_FILE}: {exc}")
    embedded = skeleton.get("meta") if isinstance(skeleton, dict) else None
    lie = sidecar_disagrees(meta, path.name, embedded)
    if lie is not None:
        return VerifyResult(path, False, lie)
    if isinstance(skeleton, dict):  # the weights and optimizer are the shards the manifest covers
        skeleton = {**skeleton, "model": {"shards": True}, "optimizer": {"shards": True}}
    refused = resume_problem(skeleton, path.name, run_id)
    if refused is not None:
        return VerifyResult(path, False, f"resume refuses it: {refused}")
    manifest = sharded_folder.read_manifest(path)
    size = sharded_folder.folder_size(path) or 0
    return VerifyResult(path, True, detail=f"sha256 of {len(manifest['files'])} files match their manifest, "
                                           f"{manifest.get('world_size', '?')} ranks, {human_bytes(size)}")
