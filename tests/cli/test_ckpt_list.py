import json
import math
import subprocess
import sys

import pytest

from tests.cli.ckpt_cli import child_env, run
from tests.factories import add_checkpoint, bare_state_dict, make_run, make_run_dir, seed_style_checkpoint

LIST_KEYS = {
    "path", "step", "epoch", "train_loss", "val_loss", "size_bytes", "created",
    "best", "latest", "pinned", "name", "kind", "run_id", "metrics",
}  # fmt: skip


@pytest.fixture
def run_dir(tmp_path):
    path = make_run(tmp_path / "run", steps=(300, 100, 200), val_losses={200: 1.0})
    add_checkpoint(path, 250, kind="manual", val_loss=None, train_loss=math.nan, epoch=None)
    add_checkpoint(path, 150, pinned=True, val_loss=2.5)
    return path


def test_table_rows_sorted_by_step_with_marks_and_footer(capsys, run_dir):
    result = run(capsys, "ckpt", "list", run_dir)
    assert result.code == 0 and result.err == ""
    lines = result.out.splitlines()
    assert lines[0].split()[:3] == ["name", "step", "epoch"]
    rows = {line.split()[0]: line for line in lines[1:-1]}
    assert list(rows) == [f"step_{s:08d}.pt" for s in (100, 150, 200, 250, 300)]
    assert rows["step_00000200.pt"].endswith("best")
    assert rows["step_00000300.pt"].endswith("latest")
    assert rows["step_00000150.pt"].endswith("pinned")
    assert rows["step_00000250.pt"].endswith("manual")
    assert "nan" in rows["step_00000250.pt"].split()
    assert lines[-1].startswith("5 checkpoints, ")
    assert "best step_00000200.pt (val_loss 1.0000)" in lines[-1] and "latest step_00000300.pt" in lines[-1]


def test_json_keys_and_values(capsys, run_dir):
    result = run(capsys, "ckpt", "list", run_dir, "--json")
    records = json.loads(result.out)
    assert [r["step"] for r in records] == [100, 150, 200, 250, 300]
    assert all(set(r) == LIST_KEYS for r in records)
    by_step = {r["step"]: r for r in records}
    assert by_step[200]["best"] and not by_step[200]["latest"] and by_step[200]["val_loss"] == 1.0
    assert by_step[200]["metrics"] == {"val_loss": 1.0}
    assert by_step[300]["latest"] and by_step[150]["pinned"]
    manual = by_step[250]
    assert manual["kind"] == "manual" and manual["val_loss"] is None and manual["epoch"] is None
    assert manual["train_loss"] is None  # NaN becomes null, so the output stays valid JSON
    assert manual["size_bytes"] == (run_dir / "step_00000250.pt").stat().st_size
    assert manual["created"][:4].isdigit() and "T" in manual["created"]
    assert manual["path"] == str(run_dir / "step_00000250.pt") and manual["run_id"] == records[0]["run_id"]


def test_foreign_folder_unknowns_are_null(capsys, tmp_path):
    bare_state_dict(tmp_path / "bare.pth")
    seed_style_checkpoint(tmp_path / "seed.pt", iteration=500)
    records = {r["name"]: r for r in json.loads(run(capsys, "ckpt", "list", tmp_path, "--json").out)}
    bare, seed = records["bare.pth"], records["seed.pt"]
    assert bare["step"] is None and bare["epoch"] is None and bare["val_loss"] is None and bare["run_id"] is None
    assert bare["kind"] == "foreign" and not bare["best"] and not bare["latest"]
    assert seed["step"] == 500 and seed["val_loss"] == 1.25 and seed["best"] and seed["latest"]


def test_empty_dir(capsys, tmp_path):
    result = run(capsys, "ckpt", "list", tmp_path)
    assert (result.code, result.out) == (0, f"no checkpoints in {tmp_path}\n")
    assert json.loads(run(capsys, "ckpt", "list", tmp_path, "--json").out) == []


def test_a_folder_of_runs_lists_each_runs_checkpoints_under_its_name(capsys, tmp_path):
    make_run(tmp_path / "run-a", steps=(100, 200))
    make_run_dir(tmp_path / "run-b")  # started, nothing saved yet
    make_run(tmp_path / "group" / "run-c", steps=(300,))  # one folder further down, as `tui-trainer runs` finds it
    (tmp_path / "run-d").mkdir()
    (tmp_path / "run-d" / "run.json").write_text("[]")  # damaged: named, and the others still list
    result = run(capsys, "ckpt", "list", tmp_path)
    assert result.code == 0 and result.err == ""
    *blocks, end = result.out.split("\n\n")
    c, a, b = (block.splitlines() for block in blocks)  # in path order, as `tui-trainer runs` lists them
    assert a[0] == str(tmp_path / "run-a") and a[1].split()[:2] == ["name", "step"]
    assert [line.split()[0] for line in a[2:-1]] == ["step_00000100.pt", "step_00000200.pt"]
    assert a[-1].startswith("2 checkpoints, ") and "latest step_00000200.pt" in a[-1]
    assert b == [str(tmp_path / "run-b"), "no checkpoints yet"]
    assert c[0] == str(tmp_path / "group" / "run-c") and c[2].split()[0] == "step_00000300.pt"
    last = end.splitlines()
    assert last[0].startswith(f"unreadable: {tmp_path / 'run-d'}: ")
    assert last[1].startswith(f"4 runs in {tmp_path}: 3 checkpoints, ")

    records = json.loads(run(capsys, "ckpt", "list", tmp_path, "--json").out)
    assert [(r["path"], r["step"]) for r in records] == [
        (str(tmp_path / "group" / "run-c" / "step_00000300.pt"), 300),
        (str(tmp_path / "run-a" / "step_00000100.pt"), 100),
        (str(tmp_path / "run-a" / "step_00000200.pt"), 200),
    ]


def test_narrow_terminal_drops_columns_not_rows(capsys, run_dir, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    lines = run(capsys, "ckpt", "list", run_dir).out.splitlines()
    assert all(len(line) <= 60 for line in lines[:-1])
    assert "created" not in lines[0] and "marks" in lines[0] and len(lines) == 7


def test_listing_our_run_dir_imports_neither_torch_nor_rich_for_json(run_dir):
    code = (
        "import sys, io, contextlib\n"
        "from tui_trainer.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['ckpt', 'list', {str(run_dir)!r}, '--json']) == 0\n"
        "print('torch' in sys.modules, 'rich' in sys.modules)\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['ckpt', 'list', {str(run_dir)!r}]) == 0\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), check=True)
    assert done.stdout.split() == ["False", "False", "False"]


def test_real_process(run_dir):
    done = subprocess.run(
        [sys.executable, "-m", "tui_trainer", "ckpt", "list", str(run_dir), "--json"],
        capture_output=True,
        text=True,
        env=child_env(),
    )
    assert done.returncode == 0 and done.stderr == ""
    assert len(json.loads(done.stdout)) == 5


def test_a_folder_whose_checkpoint_files_all_fail_to_load_is_not_reported_empty(capsys, tmp_path):
    (tmp_path / "a.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "b.pth").write_bytes(b"")
    result = run(capsys, "ckpt", "list", tmp_path)
    assert result.code == 1 and result.out == "" and result.err.count("\n") == 1
    assert "2 files that look like checkpoints do not load (a.pt, b.pth)" in result.err
    assert "ckpt verify" in result.err
