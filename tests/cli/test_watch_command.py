"""`tui-trainer watch RUN_DIR`: help without torch, and one-line errors for what it cannot watch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ckpt_cli import child_env, run
from tui_trainer.engine.run_dir import RunInfo, write_run

HELP = """
import json, sys
from tui_trainer.cli.main import main
try:
    main(["watch", "--help"])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "torch": "torch" in sys.modules, "textual": "textual" in sys.modules}))
"""


def test_help_explains_it_and_imports_neither_torch_nor_textual():
    done = subprocess.run([sys.executable, "-c", HELP], capture_output=True, text=True, env=child_env(), timeout=60)
    assert "usage: tui-trainer watch" in done.stdout and "never stops the run" in done.stdout.replace("\n", " ")
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
def test_what_cannot_be_watched_is_one_line(capsys, tmp_path, make, message):
    result = run(capsys, "watch", make(tmp_path))
    assert result.code == 2
    assert result.err.count("\n") == 1 and result.err.startswith("tui-trainer: error: ") and message in result.err


def test_without_a_terminal_it_says_so(capsys, tmp_path):
    write_run(tmp_path, RunInfo(run_id="r1", job="tui_trainer.demo.job:make_job"))
    result = run(capsys, "watch", tmp_path)  # pytest's captured stdout is not a terminal
    assert result.code == 2 and "watch needs a terminal" in result.err
