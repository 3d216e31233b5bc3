"""`tui-trainer attach [RUN_DIR]` and `watch RUN_DIR`: help without torch, one-line errors for what they cannot open."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from ckpt_cli import child_env, run

from tui_trainer.engine.rundir.layout import RunInfo, write_run

HELP = """
import json, sys
from tui_trainer.cli.main import main
try:
    main(["watch", "--help"])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "torch": "torch" in sys.modules, "textual": "textual" in sys.modules}))
"""


@pytest.mark.parametrize("command", ["watch", "attach"])
def test_help_explains_it_and_imports_neither_torch_nor_textual(command):
    done = subprocess.run([sys.executable, "-c", HELP.replace('"watch"', repr(command))], capture_output=True,
                          text=True, env=child_env(), timeout=60)
    assert f"usage: tui-trainer {command}" in done.stdout and "never stops the run" in done.stdout.replace("\n", " ")
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"code": 0, "torch": False, "textual": False}


def _a_file(path):
    (path / "file.txt").write_text("x")
    return path / "file.txt"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "does not exist"),
        (_a_file, "is not a directory"),
        (lambda p: p, "is not a tui-trainer run dir (no run.json)"),
    ],
    ids=["missing", "file", "not-a-run"],
)
@pytest.mark.parametrize("command", ["watch", "attach"])
def test_what_cannot_be_watched_is_one_line(capsys, tmp_path, make, message, command):
    result = run(capsys, command, make(tmp_path))
    assert result.code == 2
    assert result.err.count("\n") == 1 and result.err.startswith("tui-trainer: error: ") and message in result.err


def test_without_a_terminal_it_says_so(capsys, tmp_path):
    write_run(tmp_path, RunInfo(run_id="r1", job="tui_trainer.demo.job:make_job"))
    result = run(capsys, "watch", tmp_path)  # pytest's captured stdout is not a terminal
    assert result.code == 2 and "watch needs a terminal" in result.err


def one_line(result) -> str:
    assert result.code == 2 and result.out == ""
    assert result.err.count("\n") == 1 and result.err.startswith("tui-trainer: error: ")
    return result.err


def test_attach_to_a_run_nobody_trains_offers_the_view_and_the_resume_command(capsys, tmp_path):
    write_run(tmp_path, RunInfo(run_id="r1", job="tui_trainer.demo.job:make_job", state="finished"))
    err = one_line(run(capsys, "attach", tmp_path))
    assert "nothing trains" in err and "finished" in err
    assert f"tui-trainer watch {tmp_path}" in err and f"tui-trainer resume {tmp_path}" in err


def test_attach_to_a_run_trained_on_another_host_names_that_host(capsys, tmp_path):
    write_run(tmp_path, RunInfo(run_id="r1", job="tui_trainer.demo.job:make_job", state="running"))
    (tmp_path / ".lock").write_text(json.dumps({"pid": 4242, "host": "gpu-box-7", "since": "x"}))
    err = one_line(run(capsys, "attach", tmp_path))
    assert "trained on gpu-box-7 (pid 4242)" in err and "attach from that machine" in err


def test_attach_with_no_run_dir_and_no_live_run_says_how_to_start_one(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoints" / "old").mkdir(parents=True)
    write_run(tmp_path / "checkpoints" / "old", RunInfo(run_id="r1", job="tui_trainer.demo.job:make_job"))
    err = one_line(run(capsys, "attach"))
    assert "no run is training under checkpoints/" in err


def test_attach_with_no_run_dir_and_several_live_runs_names_them_without_a_terminal(capsys, tmp_path, monkeypatch):
    from tui_trainer.engine.rundir.layout import RunLock

    monkeypatch.chdir(tmp_path)
    dirs = [tmp_path / "checkpoints" / name for name in ("a", "b")]
    for d in dirs:
        d.mkdir(parents=True)
        write_run(d, RunInfo(run_id=d.name, job="tui_trainer.demo.job:make_job", state="running"))
    with RunLock(dirs[0]), RunLock(dirs[1]):
        err = one_line(run(capsys, "attach"))
    assert "2 runs are training" in err and "checkpoints/a" in err and "checkpoints/b" in err


def test_attach_to_a_live_run_without_a_terminal_says_so(capsys, tmp_path):
    from tui_trainer.engine.rundir.layout import RunLock

    write_run(tmp_path, RunInfo(run_id="r1", job="tui_trainer.demo.job:make_job", state="running"))
    with RunLock(tmp_path):
        err = one_line(run(capsys, "attach", tmp_path))
    assert "attach needs a terminal" in err
