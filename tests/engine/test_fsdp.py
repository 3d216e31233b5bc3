"""`train --nproc 2 --strategy fsdp`: two gloo ranks each holding a shard, each checkpoint a step folder.

One 2-rank run (a module fixture, ~15 s) is copied for each test that reads or damages its
checkpoints; the interrupt test starts its own.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_ddp import (
    TINY,
    WAIT_S,
    ddp_env,
    finish,
    interrupt_after_three_losses,
    steps_of,
    tui_trainer,
)
from test_ddp_failures import rank_pid
from tiny_runs import PYTHON, REPO_ROOT, checkpoint_kinds

from tui_trainer.demo.job import make_job
from tui_trainer.engine.checkpoints import sharded_folder
from tui_trainer.engine.checkpoints.file import load_checkpoint
from tui_trainer.engine.checkpoints.meta import (
    INTERRUPTED,
    read_sidecar,
    sharded_checkpoint_name,
    sidecar_path,
)
from tui_trainer.engine.rundir.history import read_history
from tui_trainer.engine.rundir.layout import HISTORY_FILE

FSDP = ["--strategy", "fsdp"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A 12-step FSDP run saved at 6 and 12, with the audit of every write each rank made in it."""
    root = tmp_path_factory.mktemp("fsdp")
    run_dir, log = root / "run", root / "audit"
    code, out, err = finish(tui_trainer("train", "--nproc", "2", *FSDP, "--run-dir", str(run_dir), "--max-iters", "12",
                                        "--ckpt-every", "6", *TINY, env=ddp_env(run_dir, log)))
    assert code == 0, err
    assert "FSDP" in out
    return run_dir, log


def copy_of(trained: tuple[Path, Path], tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(trained[0], run_dir, symlinks=True)
    return run_dir


def ckpt(capsys, *argv: str):
    """A `ckpt` command in this process (no torch start-up per call): its code and output."""
    from tests.cli.ckpt_cli import run

    return run(capsys, "ckpt", *argv)


def cli(*argv: str) -> subprocess.CompletedProcess:
    env = ddp_env()
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env["PYTHONPATH"]])  # loader_jobs
    return subprocess.run([PYTHON, "-m", "tui_trainer", *argv], check=False, capture_output=True, text=True, env=env,
                          timeout=WAIT_S, cwd=REPO_ROOT)


def test_two_ranks_save_step_folders_each_rank_writing_only_its_shard(trained):
    run_dir, log = trained
    assert steps_of(run_dir) == list(range(1, 13))
    assert sorted(checkpoint_kinds(run_dir)) == [6, 12]
    folder = run_dir / sharded_checkpoint_name(12)
    manifest = json.loads((folder / sharded_folder.MANIFEST).read_text())
    assert manifest["world_size"] == 2
    assert {"__0_0.distcp", "__1_0.distcp", ".metadata", "state.pt"} == set(manifest["files"])
    assert read_sidecar(sidecar_path(folder)).sha256 == sharded_folder.manifest_digest(folder)
    assert not list(run_dir.glob("*.partial"))
    # Rank 1 wrote its shard into the unfinished folder, and nothing else of the run dir.
    written = Path(f"{log}.rank1").read_text().splitlines()
    assert written and all(line.split(" ", 1)[1].split("/")[-2 if ".partial/" in line else -1].endswith(".dcp.partial")
                           for line in written), written


def test_list_verify_show_and_export_read_a_step_folder_without_ranks(trained, tmp_path, capsys):
    run_dir, _ = trained
    listed = ckpt(capsys, "list", str(run_dir), "--json")
    assert listed.code == 0, listed.err
    assert [c["name"] for c in json.loads(listed.out)] == [sharded_checkpoint_name(6), sharded_checkpoint_name(12)]
    verified = ckpt(capsys, "verify", str(run_dir))
    assert verified.code == 0, verified.out + verified.err
    assert "2 checked: 2 OK" in verified.out
    folder = run_dir / sharded_checkpoint_name(12)
    shown = ckpt(capsys, "show", str(folder))
    assert shown.code == 0 and "checksum matches" in shown.out, shown.out + shown.err

    out = tmp_path / "weights.safetensors"
    exported = ckpt(capsys, "export", str(folder), str(out))
    assert exported.code == 0, exported.err
    model = make_job(size="tiny", device="cpu").model
    model.load_state_dict(load_file(out), strict=True)  # one file, every tensor whole
    whole = load_checkpoint(folder)["model"]
    assert all(torch.equal(model.state_dict()[k], whole[k]) for k in whole)


def test_a_two_rank_checkpoint_resumes_on_one_process_and_a_partial_folder_is_never_loaded(trained, tmp_path):
    run_dir = copy_of(trained, tmp_path)
    # As if killed before the rename: the newest save is a .partial folder without a sidecar.
    newest = run_dir / sharded_checkpoint_name(12)
    sidecar_path(newest).unlink()
    newest.rename(sharded_folder.partial_path(newest))
    verified = cli("ckpt", "verify", str(run_dir))
    assert verified.returncode == 1 and "interrupted before it finished" in verified.stdout, verified.stdout
    assert [c["name"] for c in json.loads(cli("ckpt", "list", str(run_dir), "--json").stdout)] == [
        sharded_checkpoint_name(6)]

    resumed = cli("resume", str(run_dir), "--max-iters", "10", "--headless")
    assert resumed.returncode == 0, resumed.stderr
    assert "saved by 2 processes and resumes on 1" in resumed.stdout
    assert f"removed {sharded_checkpoint_name(12)}.partial" in resumed.stdout
    assert "resuming from step_00000006.dcp" in resumed.stdout
    assert not list(run_dir.glob("*.partial"))
    history = [r["step"] for r in read_history(run_dir / HISTORY_FILE) if "loss" in r]
    assert history == list(range(1, 11))  # one history: the steps past 6 cut, then trained again
    assert checkpoint_kinds(run_dir)[10] == "final"


def test_a_changed_byte_in_a_shard_is_caught_and_resume_takes_the_one_before(trained, tmp_path):
    run_dir = copy_of(trained, tmp_path)
    shard = run_dir / sharded_checkpoint_name(12) / "__1_0.distcp"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    verified = cli("ckpt", "verify", str(run_dir))
    assert verified.returncode == 1 and "__1_0.distcp does not match its checksum" in verified.stdout, verified.stdout
    resumed = cli("resume", "--nproc", "2", str(run_dir), "--max-iters", "14", "--headless")
    assert resumed.returncode == 0, resumed.stderr
    assert "skipped step_00000012.dcp: __1_0.distcp does not match its checksum" in resumed.stdout
    assert "FSDP" in resumed.stdout  # resumed the way it was trained, without --strategy
    assert (run_dir / sharded_checkpoint_name(14)).is_dir()


def test_a_crafted_metadata_that_would_run_code_is_refused_even_with_a_matching_manifest(trained, tmp_path, capsys):
    run_dir = copy_of(trained, tmp_path)
    folder = run_dir / sharded_checkpoint_name(12)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (folder / ".metadata").write_bytes(pickle.dumps(Payload()))
    manifest = json.loads((folder / sharded_folder.MANIFEST).read_text())  # forged to match, as an attacker would
    manifest["files"][".metadata"] = {"size": (folder / ".metadata").stat().st_size,
                                      "sha256": sharded_folder.sha256_of(folder / ".metadata")}
    (folder / sharded_folder.MANIFEST).write_text(json.dumps(manifest))
    meta = read_sidecar(sidecar_path(folder))
    meta.sha256 = sharded_folder.manifest_digest(folder)
    sidecar_path(folder).write_text(json.dumps(meta.to_json()))

    verified = ckpt(capsys, "verify", str(folder))
    assert verified.code == 1 and "refused (it would run code on load)" in verified.out, verified.out
    for argv in (["export", str(folder), str(tmp_path / "w.safetensors")], ["show", str(folder)],
                 ["compare", str(folder), str(run_dir / sharded_checkpoint_name(6))]):
        result = ckpt(capsys, *argv)
        assert result.code != 0 and result.err.count("\n") == 1 and "would run code" in result.err, result.err
    assert not marker.exists()


def test_sigint_saves_one_step_folder_all_ranks_exit_130_and_the_resumed_run_is_bit_exact(tmp_path):
    target = 80  # room for the steps a quiet machine trains between the third logged loss and the signal's arrival
    common = ["--max-iters", str(target), "--ckpt-every", "1000", "--keep-last", "0", *FSDP, *TINY]
    whole = tui_trainer("train", "--nproc", "2", "--run-dir", str(tmp_path / "whole"), *common)
    cut_dir = tmp_path / "cut"
    cut = tui_trainer("train", "--nproc", "2", "--run-dir", str(cut_dir), *common)
    code, _, err = interrupt_after_three_losses(cut, cut_dir)
    assert code == 130, err
    kinds = checkpoint_kinds(cut_dir)
    assert list(kinds.values()) == [INTERRUPTED], kinds
    stopped_at = next(iter(kinds))
    assert 1 <= stopped_at < target and "Traceback" not in err

    code, _, err = finish(tui_trainer("resume", "--nproc", "2", str(cut_dir), *TINY))
    assert code == 0, err
    assert finish(whole)[0] == 0
    assert steps_of(cut_dir) == list(range(1, target + 1))
    resumed = load_checkpoint(cut_dir / sharded_checkpoint_name(target))
    uninterrupted = load_checkpoint(tmp_path / "whole" / sharded_checkpoint_name(target))
    for part in ("model",):
        assert resumed[part].keys() == uninterrupted[part].keys()
        assert all(torch.equal(resumed[part][k], uninterrupted[part][k]) for k in resumed[part])
    moments = [(resumed["optimizer"]["state"][k], uninterrupted["optimizer"]["state"][k])
               for k in uninterrupted["optimizer"]["state"]]
    assert all(torch.equal(a["exp_avg_sq"], b["exp_avg_sq"]) for a, b in moments)


def test_a_rank_killed_mid_run_leaves_every_step_folder_whole_and_the_run_resumes(tmp_path):
    run_dir = tmp_path / "run"
    launcher = tui_trainer("train", "--nproc", "2", *FSDP, "--run-dir", str(run_dir), "--max-iters", "100000",
                           "--ckpt-every", "2", "--keep-last", "3", *TINY)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and launcher.poll() is None and len(list(run_dir.glob("*.dcp"))) < 2:
        time.sleep(0.02)
    victim = rank_pid(run_dir, 1)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    code, _, err = finish(launcher)
    assert code == 1 and "rank 1 died (SIGKILL)" in err and "Traceback" not in err, err
    verified = cli("ckpt", "verify", str(run_dir))
    lines = [line for line in verified.stdout.splitlines() if line.startswith(("OK", "PROBLEM"))]
    # Every folder under a final name is whole; an unfinished one may be left, flagged, never loaded.
    assert all(line.startswith("OK") or "interrupted before it finished" in line for line in lines), verified.stdout
    saved = max(checkpoint_kinds(run_dir))
    code, _, err = finish(tui_trainer("resume", "--nproc", "2", str(run_dir), "--max-iters", str(saved + 3), *TINY))
    assert code == 0, err
    assert steps_of(run_dir) == list(range(1, saved + 4))
    assert not list(run_dir.glob("*.partial"))


def test_a_job_fsdp_cannot_take_is_one_line_and_nothing_is_written(tmp_path):
    run_dir = tmp_path / "run"
    result = cli("train", "--nproc", "2", *FSDP, "--run-dir", str(run_dir), "--job", "loader_jobs:make_job",
                 "--job-opt", "ema=averaged", "--max-iters", "4", "--headless")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "EMA" in result.stderr, result.stderr
    assert not run_dir.exists()


def test_resuming_a_step_folder_into_a_model_that_does_not_fit_is_one_line_and_changes_nothing(trained, tmp_path):
    run_dir = copy_of(trained, tmp_path)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in run_dir.iterdir() if p.name != ".lock")
    result = cli("resume", str(run_dir), "--job-opt", "size=small", "--max-iters", "14", "--headless")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "does not fit this model" in result.stderr, result.stderr
    assert sorted((p.name, p.stat().st_mtime_ns) for p in run_dir.iterdir() if p.name != ".lock") == before
