"""A run dir is data, not code: the job it names is called only if it is a declared job factory."""

from __future__ import annotations

import json
import shutil

import pytest

from ckpt_cli import run
from tui_trainer.engine.errors import JobLoadError
from tui_trainer.engine.loop.job import import_factory, job_factory


def _forge(run_dir, job: str, options: dict) -> None:
    """A run made by the demo, then edited by someone else to name another function."""
    data = json.loads((run_dir / "run.json").read_text())
    data["job"], data["job_options"] = job, options
    (run_dir / "run.json").write_text(json.dumps(data))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from tui_trainer.engine.loop import launch
    from tui_trainer.engine.rundir.layout import RunSettings

    run_dir = tmp_path_factory.mktemp("hostile") / "run"
    trainer = launch.start_run(run_dir, job_options={"size": "tiny", "device": "cpu"},
                               settings=RunSettings(max_iters=5))
    assert trainer.run().reason == "target"
    return run_dir


@pytest.mark.parametrize("job, options", [
    ("subprocess:getoutput", {"cmd": "touch {pwned}"}),
    ("os:system", {"command": "touch {pwned}"}),
    ("builtins:exec", {"source": "open({pwned!r}, 'w')"}),
])
def test_resume_refuses_a_run_dir_naming_any_function_but_a_job_factory(capsys, tmp_path, demo_run, job, options):
    run_dir = tmp_path / "run"
    shutil.copytree(demo_run, run_dir)
    pwned = tmp_path / "pwned"
    _forge(run_dir, job, {k: v.format(pwned=str(pwned)) for k, v in options.items()})
    result = run(capsys, "resume", run_dir, "--max-iters", "10", "--headless")
    assert result.code == 2 and not pwned.exists()
    assert result.err.count("\n") == 1 and "is not declared a job factory" in result.err
    assert "@tui_trainer.job_factory" in result.err


def test_train_refuses_to_call_a_function_that_is_not_a_job_factory(capsys, tmp_path):
    pwned = tmp_path / "pwned"
    result = run(capsys, "train", "--job", "subprocess:getoutput", "--job-opt", f"cmd=touch {pwned}",
                 "--run-dir", tmp_path / "run", "--headless")
    assert result.code == 2 and not pwned.exists() and not (tmp_path / "run").exists()
    assert "is not declared a job factory" in result.err


def test_a_declared_factory_is_found_by_name_and_an_undeclared_one_is_told_how_to_declare_itself():
    assert import_factory("tui_trainer.demo.job:make_job").__name__ == "make_job"
    with pytest.raises(JobLoadError, match="decorate it with @tui_trainer.job_factory"):
        import_factory("json:dumps")

    def plain(**options):
        raise AssertionError("never called")

    assert import_factory(plain) is plain  # a function handed over in Python is the caller's own choice
    assert job_factory(plain) is plain and import_factory(plain) is plain


@pytest.mark.parametrize("name", [".lock", "history.jsonl", "history.idx", "journal.jsonl", "run.json"])
def test_resume_never_writes_through_a_link_planted_in_the_run_dir(capsys, tmp_path, demo_run, name):
    run_dir = tmp_path / "run"
    shutil.copytree(demo_run, run_dir)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (run_dir / name).unlink(missing_ok=True)
    (run_dir / name).symlink_to(victim)
    result = run(capsys, "resume", run_dir, "--max-iters", "10", "--headless")
    assert result.code == 2
    assert result.err.count("\n") == 1 and f"{run_dir / name} is a symbolic link" in result.err
    assert victim.read_text() == "precious\n"


def test_a_dashboard_command_is_never_written_through_a_linked_control_lock(tmp_path):
    from tui_trainer.engine.errors import UnsafePath
    from tui_trainer.engine.rundir.commands import PAUSE, ControlClient

    outside = tmp_path / "outside"
    (tmp_path / ".control.lock").symlink_to(outside)
    with pytest.raises(UnsafePath, match="symbolic link"):
        ControlClient(tmp_path).send(PAUSE)
    assert not outside.exists()


BROKEN_RUN_JSON = {
    "settings-a-string": {"run_id": "b", "job": "x:y", "settings": "str"},
    "policy-a-list": {"run_id": "b", "job": "x:y", "policy": [1]},
    "job-a-list": {"run_id": "b", "job": ["x"]},
    "target-a-word": {"run_id": "b", "job": "x:y", "settings": {"max_iters": "ten"}},
    "a-list": [1, 2],
    "state-an-object": {"run_id": "b", "job": "x:y", "state": {"a": 1}},
    "no-run-id": {"job": "x:y"},
    "deep": {"run_id": "b", "job": "x:y", "job_options": {"a": {"b": {"c": {"d": [[[[1]]]]}}}}, "settings": 7},
}


@pytest.mark.parametrize("shape", list(BROKEN_RUN_JSON), ids=list(BROKEN_RUN_JSON))
def test_a_run_json_of_the_wrong_shape_is_one_line_everywhere_and_the_other_runs_still_list(capsys, tmp_path, shape):
    good, broken = tmp_path / "good", tmp_path / "broken"
    from tui_trainer.engine.rundir.layout import RunInfo, write_run

    good.mkdir()
    write_run(good, RunInfo(run_id="g", job="tui_trainer.demo.job:make_job"))
    broken.mkdir()
    (broken / "run.json").write_text(json.dumps(BROKEN_RUN_JSON[shape]))
    for command in (["ckpt", "list", broken], ["resume", broken, "--headless"], ["ckpt", "prune", broken, "--keep", "1"]):
        result = run(capsys, *command)
        assert result.code == 2 and result.err.count("\n") == 1, (command, result.err)
        assert f"{broken / 'run.json'} is damaged" in result.err and "Traceback" not in result.err
    listed = run(capsys, "runs", tmp_path)
    assert listed.code == 0 and "good" in listed.out and "unreadable" in listed.out


@pytest.mark.parametrize("name", ["run.json", "step_00000005.meta.json", "control.json", "history.jsonl"])
def test_a_fifo_in_place_of_a_run_file_never_hangs_a_listing(capsys, tmp_path, demo_run, name):
    import os

    run_dir = tmp_path / "run"
    shutil.copytree(demo_run, run_dir)
    (run_dir / name).unlink(missing_ok=True)
    os.mkfifo(run_dir / name)  # nobody ever writes to it: a blocking read would wait forever
    for command in (["ckpt", "list", run_dir], ["runs", tmp_path], ["ckpt", "verify", run_dir]):
        result = run(capsys, *command)  # the test's own timeout catches a hang
        assert "Traceback" not in result.err and result.err.count("\n") <= 2, (command, result.err)
    result = run(capsys, "resume", run_dir, "--max-iters", "10", "--headless")
    if name.endswith(".meta.json"):  # a sidecar is rebuilt from its checkpoint, replacing the FIFO
        assert result.code == 0 and (run_dir / name).is_file()
    else:  # the run's own file: refused in one line, nothing written through it
        assert result.code == 2 and result.err.count("\n") == 1
