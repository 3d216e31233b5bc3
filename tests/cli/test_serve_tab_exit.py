"""A served tab's process (`watch` under TabDriver) leaves within seconds of SIGTERM, SIGHUP or its server going.

Textual's own web driver only posts an exit message; an app that does not handle it ran on at
100% CPU after a tab closed early. Here each way out is tried on a real process, at once after
it starts talking and again in its first fraction of a second.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from serve_harness import serve_env

from tests.factories import make_run

GONE_WITHIN_S = 6.0  # the driver's grace (2 s) plus a loaded machine's slack


def start_tab(run_dir) -> subprocess.Popen:
    env = {**serve_env(), "TEXTUAL_DRIVER": "tui_trainer.tui.web_tab_driver:TabDriver", "COLUMNS": "100", "ROWS": "30"}
    return subprocess.Popen([sys.executable, "-P", "-m", "tui_trainer", "watch", str(run_dir)], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def wait_started(tab: subprocess.Popen) -> None:
    for _ in range(50):
        if tab.stdout.readline() == b"__GANGLION__\n":
            return
    pytest.fail("the tab's app never started")


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "SIGINT", "server gone"])
@pytest.mark.parametrize("when", ["started", "starting"])
def test_the_tab_process_leaves_promptly(tmp_path, how, when):
    run_dir = make_run(tmp_path / "run", steps=(100,))
    tab = start_tab(run_dir)
    try:
        if when == "started":
            wait_started(tab)
        else:
            time.sleep(0.3)
        sent = time.monotonic()
        if how == "server gone":
            tab.stdin.close()
        else:
            tab.send_signal(getattr(signal, how))
        tab.wait(timeout=GONE_WITHIN_S if when == "started" else GONE_WITHIN_S + 10)
        assert time.monotonic() - sent < (GONE_WITHIN_S if when == "started" else GONE_WITHIN_S + 10)
    finally:
        if tab.poll() is None:
            tab.kill()
            tab.wait()
            pytest.fail(f"the tab process ignored {how}")
