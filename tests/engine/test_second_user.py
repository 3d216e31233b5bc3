"""A second local user on a shared box: they can neither read a run, nor stall it, nor steer it.

The second user is a real one (`nobody`), acting from its own process; root is needed to become
it, so elsewhere these tests are skipped, saying why.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from tiny_runs import TINY, TinyRun, wait_until

from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.loop import launch
from tui_trainer.engine.rundir.commands import CONTROL_FILE, read_ack
from tui_trainer.engine.rundir.layout import RunSettings

SECOND_USER = "nobody"
SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")


def second_user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("acting as a second user needs root")
    try:
        return pwd.getpwnam(SECOND_USER)
    except KeyError:
        pytest.skip(f"no {SECOND_USER!r} user on this machine")


def as_second_user(code: str) -> str:
    """Run `code` (plain Python, no imports of ours) as the second user; return what it printed."""
    user = second_user()

    def become() -> None:
        os.setgid(user.pw_gid)
        os.setgroups([])
        os.setuid(user.pw_uid)

    for python in (*SYSTEM_PYTHONS, sys.executable):
        try:
            done = subprocess.run([python, "-c", textwrap.dedent(code)], preexec_fn=become, capture_output=True,
                                  text=True, timeout=30, cwd="/")
        except (PermissionError, FileNotFoundError):
            continue  # a Python under root's home: not the second user's to run
        break
    else:
        pytest.skip(f"no Python here that {SECOND_USER!r} may run")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def shared_box() -> Iterator[Path]:
    """A folder every user can reach, as a shared /data or /scratch is."""
    second_user()
    root = Path(tempfile.mkdtemp(prefix="shared-box-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def start_on(run_dir: Path, max_iters: int) -> TinyRun:
    events: list[ev.Event] = []
    trainer = launch.start_run(run_dir, job_options=TINY, settings=RunSettings(max_iters=max_iters),
                               on_event=events.append)
    return TinyRun(trainer, events)


def test_a_new_run_dir_is_private_so_another_user_cannot_read_it_or_hold_its_locks(shared_box):
    run = start_on(shared_box / "run", 10)
    run_dir = run.run_dir
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    tried = as_second_user(f"""
        import fcntl, os
        for what, path in [("folder", {str(run_dir)!r}), ("lock", {str(run_dir / ".lock")!r})]:
            try:
                fd = os.open(path, os.O_RDONLY)
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                print(what, "got in")
            except PermissionError:
                print(what, "refused")
    """)
    assert tried.splitlines() == ["folder refused", "lock refused"]
    assert run.run().reason == "target"


def test_an_older_run_dir_open_to_others_is_named_at_resume_and_its_lock_made_private(tiny_run, resume):
    run = tiny_run(max_iters=10)
    assert run.run().reason == "target"
    run.run_dir.chmod(0o755)  # as older versions made them
    (run.run_dir / ".lock").chmod(0o644)
    again = resume(run.run_dir, max_iters=12)
    note = next(n for n in again.trainer.notes if "open to other users" in n)
    assert "drwxr-xr-x" in note and f"chmod 700 {run.run_dir}" in note
    assert stat.S_IMODE((run.run_dir / ".lock").stat().st_mode) == 0o600
    assert again.run().reason == "target"


def _stop_command(run_dir: Path, trainer: str) -> str:
    """Python that writes a `stop` for `trainer` into the run's control file, as a dashboard would."""
    return f"""
        import json, os
        path = {str(run_dir / CONTROL_FILE)!r}
        with open(path + ".new", "w") as f:
            json.dump({{"format": 1, "trainer": {trainer!r}, "commands": [{{"seq": 1, "op": "stop"}}]}}, f)
        os.replace(path + ".new", path)
    """


def test_commands_another_user_writes_into_a_run_dir_opened_to_all_do_not_steer_the_run(shared_box):
    run = start_on(shared_box / "run", 1_000_000)
    run_dir = run.run_dir
    run_dir.chmod(0o777)  # opened to everyone, by hand
    run.start_thread()
    wait_until(lambda: read_ack(run_dir) is not None and run.last_step() > 5)
    ack = read_ack(run_dir)
    assert ack is not None
    as_second_user(_stop_command(run_dir, ack.trainer))
    at = run.last_step()
    wait_until(lambda: run.last_step() > at + 100)  # many polls later, still training
    assert not run.of(ev.Finished)

    exec(textwrap.dedent(_stop_command(run_dir, ack.trainer)))  # the same command, from the run's own user
    assert run.join().reason == "stopped"
