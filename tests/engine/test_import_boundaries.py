"""What importing the engine and asking for help pulls in, checked in fresh interpreters."""

import json
import subprocess

import pytest
from tiny_runs import PYTHON, child_env

ENGINE_MODULES = """
import json, pkgutil, sys
import tui_trainer.engine as engine
names = sorted(m.name for m in pkgutil.walk_packages(engine.__path__, "tui_trainer.engine."))
for name in names:
    __import__(name)
print(json.dumps({"imported": names, "loaded": sorted(m for m in ("textual", "rich") if m in sys.modules)}))
"""

SESSION_MODULES = """
import json, pkgutil, sys
import tui_trainer.session as session
names = sorted(m.name for m in pkgutil.walk_packages(session.__path__, "tui_trainer.session."))
for name in names:
    __import__(name)
print(json.dumps({"imported": names, "loaded": sorted(m for m in ("textual", "rich") if m in sys.modules)}))
"""

METADATA_MODULES = """
import json, sys
import tui_trainer.engine.checkpoints.store, tui_trainer.engine.checkpoints.retention, tui_trainer.engine.rundir.layout
import tui_trainer.engine.checkpoints.meta, tui_trainer.engine.checkpoints.policy
import tui_trainer.engine.rundir.runs_index, tui_trainer.engine.rundir.runs_prune, tui_trainer.engine.rundir.history
print(json.dumps(sorted(m for m in ("torch", "numpy", "textual", "rich") if m in sys.modules)))
"""

SESSION_AND_JOURNAL = """
import json, pkgutil, sys
import tui_trainer.session as session
for m in pkgutil.iter_modules(session.__path__, "tui_trainer.session."):
    __import__(m.name)
import tui_trainer.engine.rundir.journal, tui_trainer.engine.rundir.journal_tail
print(json.dumps(sorted(m for m in ("torch", "textual", "rich") if m in sys.modules)))
"""

HELP = """
import json, sys
from tui_trainer.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = None
print(json.dumps({"code": code, "torch": "torch" in sys.modules}))
"""


def run_python(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([PYTHON, *args], capture_output=True, text=True, env=child_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def last_json_line(output: str):
    return json.loads(output.strip().splitlines()[-1])


def test_the_engine_never_imports_textual_or_rich():
    result = last_json_line(run_python("-c", ENGINE_MODULES).stdout)
    assert {"tui_trainer.engine.loop.trainer", "tui_trainer.engine.loop.launch", "tui_trainer.engine.checkpoints.store"} <= set(
        result["imported"]
    )
    assert result["loaded"] == []


def test_the_session_never_imports_textual_or_rich():
    result = last_json_line(run_python("-c", SESSION_MODULES).stdout)
    assert {"tui_trainer.session.runner", "tui_trainer.session.run_follower", "tui_trainer.session.watch_runner",
            "tui_trainer.session.watch_control", "tui_trainer.session.rollback", "tui_trainer.session.system_stats",
            "tui_trainer.session.job_output"} <= set(result["imported"])
    assert result["loaded"] == []


def test_metadata_modules_do_not_import_torch():
    assert last_json_line(run_python("-c", METADATA_MODULES).stdout) == []


def test_the_session_package_and_the_journal_need_no_textual_and_no_torch():
    assert last_json_line(run_python("-c", SESSION_AND_JOURNAL).stdout) == []


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["resume", "--help"]], ids=" ".join)
def test_help_does_not_import_torch(argv):
    done = run_python("-c", HELP, *argv)
    assert "usage: tui-trainer" in done.stdout
    assert last_json_line(done.stdout) == {"code": 0, "torch": False}


def test_python_m_help_runs_without_torch():
    done = run_python("-X", "importtime", "-m", "tui_trainer", "--help")
    assert "usage: tui-trainer" in done.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert "tui_trainer.cli.main" in imported
    assert "torch" not in imported


# Each layer may import only those below it: cli -> tui -> session -> engine.
LAYERS = ["engine", "session", "tui", "cli"]


def _imported_packages(path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "tui_trainer" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_the_import_direction_is_cli_then_tui_then_session_then_engine(layer):
    from pathlib import Path

    package = Path(__file__).resolve().parents[2] / "tui_trainer" / layer
    above = set(LAYERS[LAYERS.index(layer) + 1:])
    wrong = {str(path.relative_to(package.parent)): sorted(_imported_packages(path) & above)
             for path in package.rglob("*.py") if _imported_packages(path) & above}
    assert wrong == {}


DOCUMENTED_PATHS = """
import json
import tui_trainer.engine.job, tui_trainer.engine.batches, tui_trainer.engine.events, tui_trainer.engine.lr_schedule
from tui_trainer.engine import loop
from tui_trainer.engine.events import CheckpointSaved
from tui_trainer.engine.lr_schedule import WarmupCosine
print(json.dumps([tui_trainer.engine.job.Job is loop.job.Job,
                  tui_trainer.engine.batches.EpochBatches is loop.batches.EpochBatches,
                  tui_trainer.engine.events is loop.events, CheckpointSaved is loop.events.CheckpointSaved,
                  WarmupCosine is loop.lr_schedule.WarmupCosine]))
"""


def test_the_documented_paths_of_a_job_file_are_the_loop_modules_themselves():
    assert last_json_line(run_python("-c", DOCUMENTED_PATHS).stdout) == [True, True, True, True, True]


def test_a_job_file_finds_the_public_names_at_the_top_level_without_torch_at_import():
    code = ("import json, sys, tui_trainer; before = 'torch' in sys.modules; "
            "from tui_trainer import Job, EpochBatches, WarmupCosine; "
            "from tui_trainer.engine.job import Job as J; from tui_trainer.engine.batches import EpochBatches as E; "
            "print(json.dumps([before, Job is J, EpochBatches is E]))")
    assert last_json_line(run_python("-c", code).stdout) == [False, True, True]
