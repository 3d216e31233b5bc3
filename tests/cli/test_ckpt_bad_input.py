"""Bad input to any `ckpt` command: a non-zero exit, one line on stderr, no traceback, no change."""

import io
import os
import shutil
import subprocess
import sys

import pytest

from tests.cli.ckpt_cli import child_env, run
from tests.factories import bare_state_dict, make_run, malicious_checkpoint, seed_style_checkpoint, snapshot

# {run}: a run dir; {ckpt}: a periodic checkpoint in it; {latest} and {best}: marked ones;
# {foreign_dir}: a folder of foreign files; {seed} and {bare}: foreign files; {text}: a text file
# named .pt; {evil}: a pickle that would create a file; {sidecar}: a .meta.json; {nope}: missing.
HANDLER_ERRORS = [
    "list {nope}",
    "list {ckpt}",
    "list {run}/run.json --json",
    "show {nope}",
    "show {run}",
    "show {text}",
    "show {evil}",
    "show {sidecar}",
    "history {nope}",
    "history {foreign_dir}",
    "history {bare}",
    "history {text}",
    "compare {ckpt} {nope}",
    "compare {run} {ckpt}",
    "compare {ckpt} {text}",
    "compare {evil} {ckpt}",
    "prune {run} --keep -1 --yes",
    "prune {run} --keep 0 --dry-run",
    "prune {nope} --keep 2",
    "prune {ckpt} --keep 2",
    "prune {foreign_dir} --keep 1 --yes",
    "prune {run} --keep 1",
    "export {nope} {tmp}/w.safetensors",
    "export {ckpt} {run}",
    "export {ckpt} {nope}/w.safetensors",
    "export {ckpt} {run}/run.json/w.safetensors",
    "export {ckpt} {seed}",
    "export {ckpt} {ckpt} --format pt --force",
    "export {ckpt} {latest} --format pt --force",
    "export {ckpt} {tmp}/w.pt --format safetensors",
    "export {ckpt} {tmp}/w.onnx",
    "export {text} {tmp}/w.pt",
    "export {evil} {tmp}/w.pt",
    "export {run} {tmp}/w.pt",
    "verify {nope}",
    "pin {nope}",
    "pin {run}",
    "pin {seed}",
    "pin {sidecar}",
    "pin {run}/run.json",
    "unpin {nope}",
    "delete {nope} --yes",
    "delete {run} --yes",
    "delete {latest} --yes",
    "delete {best} --yes",
    "delete {ckpt}",
    "delete {text} --yes",
]

ARGPARSE_ERRORS = [
    "",
    "bogus",
    "list",
    "prune {run}",
    "prune {run} --keep many",
    "export {ckpt} {tmp}/w.pt --format onnx",
    "compare {ckpt}",
    "verify {run} --deep",
]


@pytest.fixture(scope="module")
def template_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    make_run(root / "run", steps=(100, 200, 300, 400), val_losses={200: 0.5})
    (root / "foreign").mkdir()
    seed_style_checkpoint(root / "foreign" / "seed.pt")
    bare_state_dict(root / "foreign" / "bare.pth")
    (root / "notes.pt").write_text("just some notes")
    malicious_checkpoint(root / "evil.pt", root / "pwned")
    return root


@pytest.fixture
def world(tmp_path, template_world, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # not a terminal
    shutil.copytree(template_world, tmp_path, dirs_exist_ok=True)
    run_dir = tmp_path / "run"
    places = {
        "tmp": tmp_path,
        "run": run_dir,
        "ckpt": run_dir / "step_00000100.pt",
        "best": run_dir / "step_00000200.pt",
        "latest": run_dir / "step_00000400.pt",
        "sidecar": run_dir / "step_00000100.meta.json",
        "foreign_dir": tmp_path / "foreign",
        "seed": tmp_path / "foreign" / "seed.pt",
        "bare": tmp_path / "foreign" / "bare.pth",
        "text": tmp_path / "notes.pt",
        "evil": tmp_path / "evil.pt",
        "nope": tmp_path / "nope",
    }
    yield tmp_path, places
    assert not (template_world / "pwned").exists()  # where the malicious pickle would write


def argv(template, places):
    return ["ckpt", *template.format(**places).split()] if template else ["ckpt"]


@pytest.mark.parametrize("template", HANDLER_ERRORS)
def test_user_errors_are_one_line_and_change_nothing(capsys, world, template):
    tmp_path, places = world
    before = snapshot(tmp_path)
    result = run(capsys, *argv(template, places))
    assert result.code != 0
    assert result.err.count("\n") == 1 and result.err.startswith("tui-trainer: error: "), result.err
    assert "Traceback" not in result.err + result.out
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("template", ARGPARSE_ERRORS)
def test_usage_errors_are_one_line(capsys, world, template):
    tmp_path, places = world
    before = snapshot(tmp_path)
    result = run(capsys, *argv(template, places))
    assert result.code == 2 and result.out == ""
    assert result.err.count("\n") == 1 and result.err.startswith("tui-trainer") and ": error: " in result.err
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_export_target(capsys, world):
    tmp_path, places = world
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    result = run(capsys, "ckpt", "export", places["ckpt"], locked / "w.safetensors")
    assert result.code != 0 and result.err.startswith("tui-trainer: error:") and result.err.count("\n") == 1
    assert list(locked.iterdir()) == []


def test_a_real_process_reports_bad_input_on_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tui_trainer", "ckpt", "show", str(tmp_path)],
        capture_output=True,
        text=True,
        env=child_env(),
    )
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr == (
        f"tui-trainer: error: {tmp_path} is a directory, not a checkpoint file; "
        "use `tui-trainer ckpt list` for a directory\n"
    )
