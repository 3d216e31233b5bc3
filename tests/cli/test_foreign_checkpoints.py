"""Checkpoints users already have: a Hugging Face Trainer output dir, Lightning `.ckpt` files and
tied weights, through `ckpt list`, `verify`, `show`, `compare` and `export`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, load_model
from torch import nn

from tests.cli.ckpt_cli import child_env, run
from tests.foreign_layouts import TinyGPT2, hf_output_dir, lightning_checkpoint


@pytest.fixture(scope="module")
def hf(tmp_path_factory) -> tuple[Path, Path]:
    """An output dir, and the marker file that appears if anything unpickles training_args.bin."""
    root = tmp_path_factory.mktemp("hf")
    return hf_output_dir(root / "outputs", root / "UNPICKLED"), root / "UNPICKLED"


def rows(out: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in out.splitlines()[1:] if line.startswith("checkpoint-")}


def test_an_output_dir_lists_one_row_per_checkpoint_with_the_best_marked(capsys, hf):
    output_dir, marker = hf
    result = run(capsys, "ckpt", "list", output_dir)
    assert result.code == 0, result.err
    found = rows(result.out)
    assert found["checkpoint-500"][1:5] == ["500", "1", "1.8400", "1.9200"]
    assert found["checkpoint-500"][-1] == "best"  # trainer_state.json's best, though not the newest
    assert found["checkpoint-1000"][1:5] == ["1000", "2", "1.4100", "2.0500"]
    assert found["checkpoint-1000"][-1] == "latest"
    assert "best checkpoint-500 (val_loss 1.9200)" in result.out.splitlines()[-1]
    records = json.loads(run(capsys, "ckpt", "list", output_dir, "--json").out)
    assert [(r["name"], r["step"], r["best"]) for r in records] == [("checkpoint-500", 500, True),
                                                                     ("checkpoint-1000", 1000, False)]
    assert records[1]["metrics"] == {"val_loss": 2.05, "eval_accuracy": 0.58}
    assert not marker.exists()


def test_listing_an_output_dir_reads_no_checkpoint(hf):
    code = ("import sys; from tui_trainer.cli.main import main; code = main(['ckpt', 'list', '--json', sys.argv[1]]); "
            "assert 'torch' not in sys.modules and 'safetensors' not in sys.modules; sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code, str(hf[0])], capture_output=True, text=True, env=child_env(),
                          check=False)
    assert done.returncode == 0, done.stderr


def test_verify_passes_a_healthy_output_dir_and_never_loads_training_args(capsys, hf):
    output_dir, marker = hf
    result = run(capsys, "ckpt", "verify", output_dir)
    assert result.code == 0, result.out
    lines = result.out.splitlines()
    assert lines[-1] == "8 checked: 8 OK, 0 with problems; 4 training-state files listed, not loaded"
    assert not [line for line in lines if line.startswith("PROBLEM")]
    args_line = next(line for line in lines if "checkpoint-500/training_args.bin" in line)
    assert args_line.startswith("LISTED") and "never loaded" in args_line
    assert any(line.startswith("OK") and "checkpoint-1000/model.safetensors" in line for line in lines)
    assert not marker.exists()


def test_verify_names_a_truncated_model_safetensors(capsys, hf, tmp_path):
    output_dir = shutil.copytree(hf[0], tmp_path / "outputs")
    weights = output_dir / "checkpoint-1000" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    result = run(capsys, "ckpt", "verify", output_dir)
    assert result.code == 1
    [problem] = [line for line in result.out.splitlines() if line.startswith("PROBLEM")]
    assert problem.startswith(f"PROBLEM  {weights}: truncated")
    assert result.out.splitlines()[-1].startswith("8 checked: 7 OK, 1 with problems")


def test_show_takes_a_checkpoint_folder_or_the_output_dir(capsys, hf):
    output_dir, _ = hf
    folder = run(capsys, "ckpt", "show", output_dir / "checkpoint-1000")
    assert folder.code == 0, folder.err
    assert "  step        1000   epoch 2   kind foreign" in folder.out
    assert "  best        checkpoint-500 (1.9200, per trainer_state.json)" in folder.out
    assert "  optimizer   1 param group, lr 5e-05" in folder.out
    whole = run(capsys, "ckpt", "show", output_dir)
    assert whole.code == 0
    assert whole.err == f"{output_dir}: using checkpoint-500, its best checkpoint (trainer_state.json)\n"
    assert whole.out.startswith("checkpoint-500  (foreign checkpoint") and "  marks       best" in whole.out


def test_training_args_are_never_opened(capsys, hf):
    output_dir, marker = hf
    for command in ("show", "export"):
        args = [output_dir / "checkpoint-500" / "training_args.bin"] + ([output_dir / "a.pt"] if command == "export" else [])
        result = run(capsys, "ckpt", command, *args)
        assert result.code == 2 and result.err.count("\n") == 1 and "never loaded" in result.err
    assert not marker.exists() and not (output_dir / "a.pt").exists()


def test_compare_takes_two_checkpoint_folders(capsys, hf):
    output_dir, _ = hf
    result = run(capsys, "ckpt", "compare", output_dir / "checkpoint-500", output_dir / "checkpoint-1000", "--json")
    assert result.code == 0, result.err
    record = json.loads(result.out)
    assert (record["a"]["step"], record["b"]["step"], record["deltas"]["step"]) == (500, 1000, 500)
    assert record["deltas"]["val_loss"] == pytest.approx(0.13)
    assert record["comparable"] and {c["key"] for c in record["changes"]} == {"weight", "bias"}


def test_export_of_a_checkpoint_folder_loads_into_the_plain_model(capsys, hf, tmp_path):
    output_dir, _ = hf
    out = tmp_path / "w.safetensors"
    assert run(capsys, "ckpt", "export", output_dir / "checkpoint-1000", out).code == 0
    model = nn.Linear(4, 3)
    model.load_state_dict(load_file(out), strict=True)
    source = load_file(output_dir / "checkpoint-1000" / "model.safetensors")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in source.items())


# --- Lightning ----------------------------------------------------------------------------------


@pytest.fixture
def lightning_dir(tmp_path) -> Path:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for epoch, score in ((1, 0.38), (2, 0.41)):
        torch.manual_seed(epoch)
        lightning_checkpoint(folder / f"epoch={epoch}-step={epoch * 100}.ckpt", nn.Linear(4, 3), epoch=epoch,
                             step=epoch * 100, score=score, best=0.38, best_name="epoch=1-step=100.ckpt")
    return folder


def test_show_says_lightnings_monitored_score_and_best(capsys, lightning_dir):
    latest = run(capsys, "ckpt", "show", lightning_dir / "epoch=2-step=200.ckpt")
    assert latest.code == 0, latest.err
    assert "  monitor     val_loss 0.4100 (this checkpoint, mode min)" in latest.out
    assert "  best        val_loss 0.3800 in epoch=1-step=100.ckpt" in latest.out
    assert "  marks" not in latest.out
    best = run(capsys, "ckpt", "show", lightning_dir / "epoch=1-step=100.ckpt", "--json")
    record = json.loads(best.out)
    assert record["marks"] == ["best"] and record["monitored"]["current_score"] == pytest.approx(0.38)


def test_list_shows_lightnings_score_as_its_metric(capsys, lightning_dir):
    result = run(capsys, "ckpt", "list", lightning_dir, "--json")
    records = {r["name"]: r for r in json.loads(result.out)}
    assert records["epoch=2-step=200.ckpt"]["val_loss"] == pytest.approx(0.41)
    assert records["epoch=1-step=100.ckpt"]["best"] and records["epoch=2-step=200.ckpt"]["step"] == 200


def test_export_strips_a_prefix_so_the_plain_model_loads_it_strictly(capsys, lightning_dir, tmp_path):
    out = tmp_path / "plain.safetensors"
    result = run(capsys, "ckpt", "export", lightning_dir / "epoch=2-step=200.ckpt", out, "--strip-prefix", "model.")
    assert result.code == 0, result.err
    assert "took 'model.' off 2 of 2 names" in result.out
    nn.Linear(4, 3).load_state_dict(load_file(out), strict=True)
    wrong = run(capsys, "ckpt", "export", lightning_dir / "epoch=2-step=200.ckpt", tmp_path / "x.safetensors",
                "--strip-prefix", "net.")
    assert wrong.code == 2 and wrong.err.count("\n") == 1 and "matches no weight name" in wrong.err
    assert not (tmp_path / "x.safetensors").exists()


# --- tied weights -------------------------------------------------------------------------------


def test_tied_weights_are_written_once_and_load_back_tied(capsys, tmp_path):
    torch.manual_seed(0)
    model = TinyGPT2()
    source = tmp_path / "gpt2.pt"
    torch.save({"model": model.state_dict(), "iter_num": 10}, source)
    out = tmp_path / "gpt2.safetensors"
    result = run(capsys, "ckpt", "export", source, out)
    assert result.code == 0, result.err
    assert "tied weights written once (lm_head.weight = transformer.wte.weight)" in result.out
    one_copy = sum(p.numel() * p.element_size() for p in model.parameters())  # parameters() counts a tie once
    assert one_copy < out.stat().st_size < one_copy * 1.05
    assert "lm_head.weight" not in load_file(out)
    loaded = TinyGPT2()
    load_model(loaded, out, strict=True)
    assert loaded.lm_head.weight is loaded.transformer["wte"].weight
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)
