import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.cli.ckpt_cli import child_env, run
from tests.factories import make_run, tied_checkpoint
from tests.full_disk import FullDisk
from tui_trainer.engine.sizes import human_bytes


def test_export_prints_both_sizes(capsys, tmp_path):
    source = make_run(tmp_path / "run", steps=(300,)) / "step_00000300.pt"
    result = run(capsys, "ckpt", "export", source, tmp_path / "demo.safetensors")
    out = tmp_path / "demo.safetensors"
    ratio = round(100 * out.stat().st_size / source.stat().st_size)
    first, second = result.out.splitlines()
    assert result.code == 0
    assert first == (
        f"step_00000300.pt {human_bytes(source.stat().st_size)} -> demo.safetensors "
        f"{human_bytes(out.stat().st_size)} of weights ({ratio}%)"
    )
    assert second == "2 tensors, 15 parameters, safetensors"


def test_export_pt_format_and_force(capsys, tmp_path):
    source = tied_checkpoint(tmp_path / "tied.pt")
    out = tmp_path / "weights.bin"
    assert run(capsys, "ckpt", "export", source, out, "--format", "pt").code == 0
    assert set(torch.load(out, weights_only=True)) == {"embed.weight", "head.weight", "norm.weight", "norm.bias"}
    again = run(capsys, "ckpt", "export", source, out, "--format", "pt")
    assert again.code != 0 and "already exists" in again.err
    assert run(capsys, "ckpt", "export", source, out, "--format", "pt", "--force").code == 0


def test_export_tied_weights_to_safetensors_in_a_real_process(tmp_path):
    source = tied_checkpoint(tmp_path / "tied.pt")
    done = subprocess.run(
        [sys.executable, "-m", "tui_trainer", "ckpt", "export", str(source), str(tmp_path / "tied.safetensors")],
        capture_output=True,
        text=True,
        env=child_env(),
    )
    assert done.returncode == 0 and done.stderr == ""
    assert "4 tensors, 72 parameters" in done.stdout
    assert "tied weights written once (head.weight = embed.weight)" in done.stdout
    assert set(load_file(tmp_path / "tied.safetensors")) == {"embed.weight", "norm.weight", "norm.bias"}


def test_verify_all_ok(capsys, tmp_path):
    run_dir = make_run(tmp_path / "run", steps=(100, 200))
    result = run(capsys, "ckpt", "verify", run_dir)
    lines = result.out.splitlines()
    assert result.code == 0
    assert lines[0].startswith(f"OK       {run_dir / 'step_00000100.pt'}  xxh3_128 matches")
    assert lines[-1] == "2 checked: 2 OK, 0 with problems"


def test_verify_problems_exit_1_one_line_each(capsys, tmp_path):
    run_dir = make_run(tmp_path / "run", steps=(100, 200, 300))
    os.truncate(run_dir / "step_00000100.pt", 100)
    os.truncate(run_dir / "step_00000200.pt", 0)
    (tmp_path / "run" / "notes.pt").write_text("not a checkpoint")
    result = run(capsys, "ckpt", "verify", run_dir)
    lines = result.out.splitlines()
    assert result.code == 1 and result.err == ""
    assert f"PROBLEM  {run_dir / 'notes.pt'}: not a checkpoint" in result.out
    assert any(line.startswith(f"PROBLEM  {run_dir / 'step_00000100.pt'}: size 100 != recorded") for line in lines)
    assert any(line.startswith(f"PROBLEM  {run_dir / 'step_00000200.pt'}: empty file") for line in lines)
    assert lines[-1] == "4 checked: 1 OK, 3 with problems"


def test_verify_in_a_real_process(tmp_path):
    run_dir = make_run(tmp_path / "run", steps=(100,))
    (run_dir / "step_00000100.pt").write_bytes(os.urandom(64))
    argv = [sys.executable, "-m", "tui_trainer", "ckpt", "verify", str(run_dir)]
    done = subprocess.run(argv, capture_output=True, text=True, env=child_env())
    assert done.returncode == 1 and "size 64 != recorded" in done.stdout and "Traceback" not in done.stderr


@pytest.mark.parametrize("name", ["demo.safetensors", "demo.pt"])
def test_export_onto_a_full_disk_is_one_line_exit_4_and_leaves_nothing(capsys, tmp_path, monkeypatch, name):
    source = make_run(tmp_path / "run", steps=(300,)) / "step_00000300.pt"
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    FullDisk(monkeypatch).refuse(name)
    result = run(capsys, "ckpt", "export", source, out_dir / name)
    assert result.code == 4
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert result.err.startswith(f"tui-trainer: error: the disk is full: {out_dir / name} could not be written")
    assert "make room" in result.err or "room" in result.err
    assert list(out_dir.iterdir()) == []  # neither the export nor its temporary file


def test_pin_on_a_full_disk_is_one_line_exit_4_and_the_sidecar_stays_whole(capsys, tmp_path, monkeypatch):
    run_dir = make_run(tmp_path / "run", steps=(100, 200))
    sidecar = run_dir / "step_00000100.meta.json"
    before = sidecar.read_bytes()
    FullDisk(monkeypatch).refuse(sidecar.name)
    result = run(capsys, "ckpt", "pin", run_dir / "step_00000100.pt")
    assert result.code == 4 and result.err.count("\n") == 1, result
    assert "the disk is full" in result.err and "make room" in result.err
    assert sidecar.read_bytes() == before
    assert sorted(p.name for p in run_dir.iterdir() if ".tmp-" in p.name) == []
