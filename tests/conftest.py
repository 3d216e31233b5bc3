"""A net under every test: no process a test started outlives it.

Detached trainers and torchrun's ranks run in sessions of their own (that is the point of them),
so a test that fails before its own clean-up would leave them training for the rest of the suite,
on the same two cores. After each test that used `tmp_path`, any process whose command line
names that folder is killed, children before parents.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest


def processes_naming(folder: Path) -> list[int]:
    """Pids (not this one) whose command line mentions `folder`, deepest descendants first."""
    needle = os.fsencode(str(folder))
    found: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                if needle not in f.read():
                    continue
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                parent = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        found[int(entry.name)] = parent

    def depth(pid: int) -> int:
        seen = 0
        while pid in found and seen < 64:
            pid, seen = found[pid], seen + 1
        return seen

    return sorted(found, key=depth, reverse=True)


# Tests that start several processes each (torchrun's ranks, a detached trainer, a terminal in
# tmux, a browser) run one after another on one worker; the other worker takes the in-process tests.
MANY_PROCESSES = ("test_ddp", "test_fsdp", "test_tmux_e2e", "test_detached_trainer", "test_serve_chromium",
                  "test_serve_tabs", "test_early_interrupt", "test_signals", "test_kill9_loop", "test_crash_points",
                  "test_a_users_own_job", "test_on_anomaly", "test_notify_url")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.stem.startswith(MANY_PROCESSES):
            item.add_marker(pytest.mark.xdist_group("many_processes"))


@pytest.fixture(autouse=True)
def no_process_outlives_its_test(request: pytest.FixtureRequest) -> Iterator[None]:
    # Asked for before the test runs, so that tmp_path is torn down after this, not before.
    folder = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if folder is None or not os.path.isdir("/proc"):
        return
    for pid in processes_naming(folder):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
