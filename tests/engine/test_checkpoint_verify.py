import hashlib
import json
import os
import random
import subprocess
import sys

import pytest
import torch
from tiny_runs import child_env

from tests.factories import (
    add_checkpoint,
    bare_state_dict,
    make_run,
    malicious_checkpoint,
    seed_style_checkpoint,
)
from tui_trainer.engine.errors import CheckpointNotFound
from tui_trainer.engine.tools.verify import verify_path


def flip_byte(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def problem_of(path):
    [result] = verify_path(path)
    return result.problem


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path / "run", steps=(100, 200))


def test_intact_checkpoints_pass(run):
    results = verify_path(run)
    assert [r.path.name for r in results] == ["step_00000100.pt", "step_00000200.pt"]
    assert all(r.ok and r.problem is None and "xxh3_128 matches" in r.detail for r in results)


def test_truncated(run):
    path = run / "step_00000100.pt"
    size = path.stat().st_size
    os.truncate(path, size // 2)
    assert problem_of(path) == f"size {size // 2} != recorded {size} (truncated?)"


def test_zero_length(run):
    os.truncate(run / "step_00000100.pt", 0)
    assert problem_of(run / "step_00000100.pt").startswith("empty file")


def test_flipped_byte(run):
    path = run / "step_00000100.pt"
    flip_byte(path, path.stat().st_size // 2)
    assert problem_of(path).startswith("checksum mismatch")


def as_old_sidecar(path):
    """Rewrite the sidecar as versions before `checksum` wrote it: the file's SHA-256 under `sha256`."""
    sidecar = path.with_name(path.name.removesuffix(".pt") + ".meta.json")
    recorded = json.loads(sidecar.read_text())
    del recorded["checksum"]
    sidecar.write_text(json.dumps(recorded | {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()}))


def test_an_old_sha256_sidecar_still_verifies(run):
    path = run / "step_00000100.pt"
    as_old_sidecar(path)
    [result] = verify_path(path)
    assert result.ok and "sha256 matches" in result.detail
    flip_byte(path, path.stat().st_size // 2)
    assert problem_of(path).startswith("checksum mismatch: sha256 ")


def test_a_checksum_this_version_cannot_compute_is_reported(run):
    sidecar = run / "step_00000100.meta.json"
    sidecar.write_text(json.dumps(json.loads(sidecar.read_text()) | {"checksum": "md7:00ff"}))
    assert "unknown checksum algorithm 'md7'" in problem_of(run / "step_00000100.pt")


def test_random_bytes_of_the_right_size(run):
    path = run / "step_00000100.pt"
    path.write_bytes(os.urandom(path.stat().st_size))
    assert problem_of(path).startswith("checksum mismatch")


def test_missing_sidecar_and_orphaned_sidecar(run):
    (run / "step_00000100.meta.json").unlink()
    (run / "step_00000200.pt").unlink()
    problems = {r.path.name: r.problem for r in verify_path(run)}
    assert problems["step_00000100.pt"].startswith("no sidecar")
    assert problems["step_00000200.meta.json"] == "sidecar without its checkpoint: step_00000200.pt is missing"


def test_damaged_sidecar(run):
    (run / "step_00000100.meta.json").write_text("[]")
    assert "sidecar step_00000100.meta.json is unreadable" in problem_of(run / "step_00000100.pt")


def test_leftover_temporary_file_is_reported(run):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    temp = run / f".step_00000300.pt.tmp-{dead.stdout.strip()}-0123abcd"
    temp.write_bytes(b"x" * 10)
    [leftover] = [r for r in verify_path(run) if not r.ok]
    assert leftover.path == temp and "leftover temporary file" in leftover.problem


def test_foreign_files(tmp_path):
    seed = seed_style_checkpoint(tmp_path / "seed.pt")
    bare = bare_state_dict(tmp_path / "bare.pth")
    assert all(r.ok and "foreign" in r.detail for r in verify_path(tmp_path))
    weights = torch.load(seed, weights_only=True)["model_state_dict"]["weight"].numpy().tobytes()
    flip_byte(seed, seed.read_bytes().index(weights) + 5)  # inside the data, not zip padding
    os.truncate(bare, bare.stat().st_size - 30)
    problems = {r.path.name: r.problem for r in verify_path(tmp_path)}
    assert problems["seed.pt"].startswith("damaged")
    assert problems["bare.pth"].startswith("damaged")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty file (0 bytes)"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "not a checkpoint"),
        (b'{"step": 1}', "not a checkpoint"),
        (b"hello, this is plain text", "not a checkpoint"),
    ],
)
def test_wrong_file_types(tmp_path, content, expected):
    (tmp_path / "x.pt").write_bytes(content)
    assert problem_of(tmp_path / "x.pt").startswith(expected)


@pytest.mark.parametrize("seed", range(40))
def test_random_bytes_without_sidecar(tmp_path, seed):
    (tmp_path / "x.pt").write_bytes(random.Random(seed).randbytes(4096))
    [result] = verify_path(tmp_path / "x.pt")
    assert not result.ok and result.problem.startswith(("not a checkpoint", "damaged", "refused"))


def test_zip_that_is_not_pytorch(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "x.pt", "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert problem_of(tmp_path / "x.pt") == "not a checkpoint (a zip archive, but not a PyTorch one)"


@pytest.mark.parametrize("zipped", [True, False])
def test_malicious_pickle_is_refused_and_not_run(tmp_path, zipped):
    marker = tmp_path / "pwned"
    path = malicious_checkpoint(tmp_path / "evil.pt", marker, zipped=zipped)
    assert problem_of(path).startswith("refused: would run code")
    assert not marker.exists()


def test_recursive_over_a_root_of_runs(tmp_path):
    make_run(tmp_path / "root" / "a", steps=(100,))
    make_run(tmp_path / "root" / "b", steps=(100, 200))
    add_checkpoint(tmp_path / "root" / "b", 300)
    results = verify_path(tmp_path / "root")
    assert len(results) == 4 and all(r.ok for r in results)


def test_a_sidecar_path_verifies_its_checkpoint(run):
    [result] = verify_path(run / "step_00000100.meta.json")
    assert result.ok and result.path.name == "step_00000100.pt"


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(CheckpointNotFound):
        verify_path(tmp_path / "nope")


def test_verify_does_not_import_torch_for_our_checkpoints(run):
    code = (
        "import sys; from tui_trainer.engine.tools.verify import verify_path; "
        f"assert all(r.ok for r in verify_path({str(run)!r})); print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), check=True)
    assert done.stdout.strip() == "False"
