"""`tui-trainer runs [ROOT] [--json]`: the runs table, its total, and one-line errors."""

import json
import os
import subprocess
import sys

from tests.cli.ckpt_cli import child_env, run
from tests.factories import make_run, write_history
from tui_trainer.engine.rundir.layout import RunLock, read_run, write_run
from tui_trainer.engine.sizes import human_bytes


def _size(folder):
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _two_runs(root):
    gpu0 = make_run(root / "model_gpu0", steps=(100, 200, 300))
    write_history(gpu0, 350)
    gpu1 = make_run(root / "model_gpu1", steps=(100, 200), val_losses={100: 1.5, 200: 1.75})
    info = read_run(gpu1)
    info.state = "finished"
    write_run(gpu1, info)
    return gpu0, gpu1


def test_table_has_one_row_per_run_and_the_total(capsys, tmp_path):
    gpu0, gpu1 = _two_runs(tmp_path)
    with RunLock(gpu0):
        result = run(capsys, "runs", tmp_path)
        total = _size(gpu0) + _size(gpu1)  # the lock file names its holder while held
    assert result.code == 0 and result.err == ""
    lines = result.out.splitlines()
    assert lines[0].split()[:3] == ["run", "state", "step"]
    # A live run says who trains it: the lock holder's pid, and "detached" when it has no terminal.
    assert lines[1].split()[:4] == ["model_gpu0", "running", "(pid", f"{os.getpid()},"]
    assert lines[1].split(")", 1)[1].split()[:3] == ["350/2000", "2.7000", "3"]
    assert lines[2].split()[:5] == ["model_gpu1", "finished", "200/2000", "1.5000", "2"]
    assert lines[3] == f"2 runs, 5 checkpoints, {human_bytes(total)}"


def test_json_for_scripts(capsys, tmp_path):
    gpu0, gpu1 = _two_runs(tmp_path)
    result = run(capsys, "runs", tmp_path, "--json")
    data = json.loads(result.out)
    assert [r["name"] for r in data["runs"]] == ["model_gpu0", "model_gpu1"]
    first = data["runs"][0]
    assert first["trainer"] is None  # nobody trains it
    assert (first["state"], first["last_step"], first["checkpoints"], first["best_checkpoint"]) == (
        "gone", 350, 3, "step_00000300.pt")  # run.json says "new" but no process holds the lock
    assert first["disk_bytes"] == _size(gpu0)
    assert data["total"] == {"runs": 2, "checkpoints": 5, "disk_bytes": _size(gpu0) + _size(gpu1)}


def test_bad_roots_get_one_line_errors(capsys, tmp_path):
    for root, says in ((tmp_path / "nowhere", "does not exist"), (tmp_path / "file.txt", "not a directory")):
        (tmp_path / "file.txt").write_text("x")
        result = run(capsys, "runs", root)
        assert result.code == 2 and result.out == ""
        assert result.err.count("\n") == 1 and says in result.err and "Traceback" not in result.err
    empty = run(capsys, "runs", tmp_path)
    assert empty.code == 0 and empty.out == f"no runs under {tmp_path}\n"


def test_runs_does_not_import_torch(tmp_path):
    _two_runs(tmp_path)
    code = "import sys; from tui_trainer.cli.main import main; main(sys.argv[1:]); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code, "runs", str(tmp_path)], capture_output=True, text=True,
                          env=child_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False"
