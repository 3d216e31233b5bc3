"""The dashboard paints before torch loads: the CLI hands it a launch function that imports torch on call."""

import json
import subprocess
import sys

import pytest

from ckpt_cli import child_env

# Stand in for the dashboard: record what is imported when it would paint its first frame,
# then call the launch function as its worker would.
START = """
import json, sys
import tui_trainer.tui
from tui_trainer.cli import main as cli_main

seen = {}

def fake_dashboard(launch, theme=None):
    seen["torch_before_first_frame"] = "torch" in sys.modules
    try:
        launch(on_event=lambda event: None)
    except Exception as exc:
        seen["launch_error"] = type(exc).__name__
    seen["torch_in_worker"] = "torch" in sys.modules
    return 0

tui_trainer.tui.run_dashboard = fake_dashboard
sys.stdin.isatty = sys.stdout.isatty = lambda: True
code = cli_main.main(sys.argv[1:])
print(json.dumps(seen))
"""


@pytest.mark.parametrize("command", [["train", "--max-iters", "5"], ["resume"], []], ids=["train", "resume", "default"])
def test_the_dashboard_is_handed_control_before_torch_is_imported(tmp_path, command):
    if command == ["resume"]:
        command = ["resume", str(tmp_path / "missing-run")]
    elif command:
        command = [*command, "--run-dir", str(tmp_path / "run")]
    done = subprocess.run([sys.executable, "-c", START, *command], capture_output=True, text=True, env=child_env(),
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["torch_before_first_frame"] is False
    assert seen["torch_in_worker"] is True
