"""The dashboard paints before torch loads: it starts the trainer in the background and attaches to it."""

import json
import subprocess
import sys

import pytest
from ckpt_cli import child_env

# Stand in for the attached dashboard: record what the CLI hands it and what is imported by then.
START = """
import json, sys
import tui_trainer.cli.attach_command as attach_command
from tui_trainer.cli import main as cli_main

seen = {}

def fake_start_and_attach(argv, theme=None):
    seen["argv"] = argv
    seen["torch_before_first_frame"] = "torch" in sys.modules
    return 0

attach_command.start_and_attach = fake_start_and_attach
sys.stdin.isatty = sys.stdout.isatty = lambda: True
code = cli_main.main(sys.argv[1:])
print(json.dumps(seen))
"""


@pytest.mark.parametrize("command", [["train", "--max-iters", "5"], ["resume"], [], ["train", "--nproc", "2"]],
                         ids=["train", "resume", "default", "nproc"])
def test_the_dashboard_starts_the_same_command_headless_in_the_background_without_torch(tmp_path, command):
    if command == ["resume"]:
        command = ["resume", str(tmp_path / "missing-run")]
    elif command:
        command = [*command, "--run-dir", str(tmp_path / "run")]
    done = subprocess.run([sys.executable, "-c", START, *command], capture_output=True, text=True, env=child_env(),
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"argv": [*command, "--headless"], "torch_before_first_frame": False}


# Runs the real CLI up to the moment the dashboard app would start its event loop, and records
# which modules the first frame would have had to wait for.
FIRST_FRAME = """
import json, sys
from tui_trainer.cli import main as cli_main
from tui_trainer.tui import app as dashboard

seen = {}

def run_instead(self, *args, **kwargs):
    seen["loaded"] = sorted(m for m in sys.argv[1].split(",") if m in sys.modules)
    return 0

dashboard.TrainerApp.run = run_instead
sys.stdin.isatty = sys.stdout.isatty = lambda: True
cli_main.main(sys.argv[2:])
print(json.dumps(seen))
"""
# Each is loaded after the first paint: the chart's plotting library and numpy when the plot
# mounts, the rest when the run has loaded or a screen is first opened.
NOT_BEFORE_FIRST_FRAME = ["torch", "numpy", "textual_plot", "watchdog", "tui_trainer.engine.rundir.layout",
                          "tui_trainer.engine.checkpoints.store", "tui_trainer.engine.loop.events",
                          "tui_trainer.tui.screens.export_modal", "tui_trainer.tui.screens.rollback_modal",
                          "tui_trainer.cli.ckpt_maintain", "tui_trainer.cli.ckpt_list"]


@pytest.mark.parametrize("command", [["train", "--max-iters", "5"], []], ids=["train", "default"])
def test_the_first_frame_waits_for_none_of_the_heavy_imports(tmp_path, command):
    if command:
        command = [*command, "--run-dir", str(tmp_path / "run")]
    done = subprocess.run([sys.executable, "-c", FIRST_FRAME, ",".join(NOT_BEFORE_FIRST_FRAME), *command],
                          capture_output=True, text=True, env=child_env(), cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"loaded": []}


LIVE_DEMO = """
import json, sys
import tui_trainer.cli.attach_command as attach_command
from tui_trainer.cli import main as cli_main
from tui_trainer.engine.rundir.lock import RunLock

seen = {}
attach_command.attach = lambda run_dir, theme=None, how=None: seen.update(attached=str(run_dir), how=how) or 0
attach_command.start_and_attach = lambda argv, theme=None: seen.update(started=argv) or 0
sys.stdin.isatty = sys.stdout.isatty = lambda: True
with RunLock("checkpoints/demo-live"):
    cli_main.main([])
print(json.dumps(seen))
"""


def test_tui_trainer_attaches_to_a_live_demo_run_instead_of_starting_a_second(tmp_path):
    run_dir = tmp_path / "checkpoints" / "demo-live"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": "r1", "job": "tui_trainer.demo.job:make_job",
                                                  "state": "running", "created": "2026-12-01T00:00:00"}))
    done = subprocess.run([sys.executable, "-c", LIVE_DEMO], capture_output=True, text=True, env=child_env(),
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["attached"] == "checkpoints/demo-live" and "started" not in seen
    assert "attaching to the live demo run" in seen["how"]
