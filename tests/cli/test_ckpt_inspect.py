"""`ckpt show`, `ckpt history` and `ckpt compare` on our checkpoints and foreign layouts."""

import json

import pytest
import torch
from torch import nn

from tests.cli.ckpt_cli import run
from tests.factories import (
    bare_state_dict,
    make_run,
    malicious_checkpoint,
    seed_style_checkpoint,
    tied_checkpoint,
    write_history,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect")
    run_dir = make_run(root / "run", steps=(100, 200, 300), val_losses={200: 1.0})
    write_history(run_dir, 300, eval_every=50)
    foreign = root / "foreign"
    foreign.mkdir()
    return {
        "run": run_dir,
        "first": run_dir / "step_00000100.pt",
        "best": run_dir / "step_00000200.pt",
        "last": run_dir / "step_00000300.pt",
        "seed": seed_style_checkpoint(foreign / "seed.pt", iteration=500),
        "bare": bare_state_dict(foreign / "bare.pth"),
        "tied": tied_checkpoint(foreign / "tied.pt"),
    }


def test_show_ours(capsys, files):
    result = run(capsys, "ckpt", "show", files["best"])
    assert result.code == 0
    text = result.out
    assert "tui-trainer checkpoint" in text and "marks       best" in text
    assert "step        200" in text and "val_loss    1.0000" in text
    assert "sidecar     present, checksum matches" in text
    assert "2 tensors, 15 parameters" in text and "float32 x2" in text
    assert "exp_avg" in text and '"position": 7' in text and "tests.factories:no_job" in text


def test_show_json(capsys, files):
    shown = json.loads(run(capsys, "ckpt", "show", files["last"], "--json").out)
    assert shown["format"] == "tui-trainer" and shown["marks"] == ["latest"]
    assert shown["meta"]["step"] == 300 and shown["checksum"] == "matches" and shown["sidecar_differences"] == []
    assert shown["weights"]["shapes"] == {"weight": [3, 4], "bias": [3]}
    assert shown["data"] == {"epoch": 1, "position": 7, "seed": 1337} and shown["config"]["n_embd"] == 4
    assert shown["optimizer"]["param_groups"] == 1 and shown["target"] == 1000


def test_show_reports_a_checksum_mismatch(capsys, tmp_path):
    run_dir = make_run(tmp_path / "run", steps=(100,))
    path = run_dir / "step_00000100.pt"
    sidecar = run_dir / "step_00000100.meta.json"
    sidecar.write_text(json.dumps(json.loads(sidecar.read_text()) | {"checksum": "xxh3_128:" + "0" * 32}))
    assert "checksum MISMATCH" in run(capsys, "ckpt", "show", path).out


def test_show_foreign_seed_style(capsys, files):
    text = run(capsys, "ckpt", "show", files["seed"]).out
    assert "foreign checkpoint" in text and "step        500   epoch 3" in text and "val_loss    1.2500" in text
    for key in ("model_state_dict", "optimizer_state_dict", "iteration", "training_history"):
        assert f"{key}:" in text
    assert "momentum_buffer" in text and "ckpt history" in text


def test_show_bare_and_tied(capsys, files):
    bare = json.loads(run(capsys, "ckpt", "show", files["bare"], "--json").out)
    assert bare["weights"]["tensors"] == 2 and bare["meta"]["step"] == -1 and bare["optimizer"] is None
    tied = run(capsys, "ckpt", "show", files["tied"]).out
    assert "tied (sharing memory): head.weight" in tied and "72 parameters" in tied


def test_show_refuses_a_malicious_pickle(capsys, tmp_path):
    marker = tmp_path / "pwned"
    result = run(capsys, "ckpt", "show", malicious_checkpoint(tmp_path / "evil.pt", marker))
    assert result.code != 0 and result.out == ""
    assert result.err.startswith("tui-trainer: error:") and "refused" in result.err
    assert not marker.exists()


def test_history_of_a_run_is_downsampled(capsys, files):
    result = run(capsys, "ckpt", "history", files["run"])
    lines = result.out.splitlines()
    assert result.code == 0 and lines[0] == f"history of {files['run']}"
    assert lines[1].split()[:2] == ["steps", "loss"]
    rows = lines[2 : lines.index(next(line for line in lines if line.startswith("300 steps shown as 30 rows")))]
    assert len(rows) == 30 and rows[0].split()[0] == "1-10" and rows[-1].split()[0] == "291-300"
    assert "300 steps logged (steps 1-300), 6 evaluations" in result.out
    assert "val_loss best" in result.out


def test_history_json_prints_every_record(capsys, files):
    records = json.loads(run(capsys, "ckpt", "history", files["run"], "--json").out)
    assert len(records) == 300 + 6 and records[0]["step"] == 1 and "val_loss" in records[50]


def test_history_of_one_of_our_checkpoints_stops_at_its_step(capsys, files):
    records = json.loads(run(capsys, "ckpt", "history", files["first"], "--json").out)
    assert records[-1]["step"] == 100


def test_history_embedded_in_a_foreign_checkpoint(capsys, files):
    result = run(capsys, "ckpt", "history", files["seed"])
    assert result.code == 0 and "(embedded)" in result.out and "10 steps logged" in result.out
    records = json.loads(run(capsys, "ckpt", "history", files["seed"], "--json").out)
    assert len(records) == 10 and records[0] == {"step": 1, "loss": 3.0, "lr": 0.1}


def test_compare_ours(capsys, files):
    result = run(capsys, "ckpt", "compare", files["first"], files["last"])
    assert result.code == 0
    rows = {line.split()[0]: line.split() for line in result.out.splitlines() if line.strip()}
    assert rows["step"][1:] == ["100", "300", "+200"]
    assert rows["val_loss"][-1] == "-0.2000"
    assert "relative" in result.out and result.out.splitlines()[-1].startswith("total: |B - A|")


def test_compare_json(capsys, files):
    data = json.loads(run(capsys, "ckpt", "compare", files["first"], files["seed"], "--json").out)
    assert data["comparable"] and data["a"]["format"] == "tui-trainer" and data["b"]["format"] == "foreign"
    assert data["deltas"]["step"] == 400 and data["b"]["metrics"] == {"val_loss": 1.25}
    relatives = [c["relative"] for c in data["changes"]]
    assert relatives == sorted(relatives, reverse=True) and {c["key"] for c in data["changes"]} == {"weight", "bias"}
    assert data["total"]["change_norm"] > 0


def test_compare_different_architectures_lists_keys(capsys, files, tmp_path):
    torch.save(nn.Linear(5, 3).state_dict(), tmp_path / "wider.pt")
    result = run(capsys, "ckpt", "compare", files["first"], tmp_path / "wider.pt")
    assert result.code == 0 and "weight: A [3, 4], B [3, 5]" in result.out
    result = run(capsys, "ckpt", "compare", files["bare"], files["tied"], "--json")
    data = json.loads(result.out)
    assert not data["comparable"] and data["changes"] is None
    assert data["only_in_a"] == ["bias", "weight"] and "embed.weight" in data["only_in_b"]
