"""Runs `tui-trainer` commands in forked children of one process that has already imported torch.

Starting a fresh interpreter costs seconds of torch import; a fork costs milliseconds, so a test
can kill many real training processes. Protocol, one JSON line each way:

    stdin:  {"argv": [...], "log": "path"}     run `tui-trainer argv`, stdout and stderr to `log`
            optional "crash": [trace, n, "before"|"after"]: SIGKILL at its nth file operation (crash_points.py)
    stdout: {"pid": N}                         the child started
    stdout: {"pid": N, "status": S}            it ended: its exit code, or -signal if killed

`Forkserver` is the tests' side: it starts this file as a process and talks to it.

Building the tiny demo job once first pulls in what torch imports lazily (the optimizer
alone imports dynamo: seconds); with one OpenMP thread this leaves the process single-threaded,
so forking it is safe.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tui_trainer.cli.main import main
from tui_trainer.engine.loop.job import DEMO_JOB
from tui_trainer.engine.loop.launch import build_job


def run_child(argv: list[str], log: str, crash: list | None = None) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    code = 1
    try:
        if crash:
            import crash_points  # beside this file, which runs as a script

            crash_points.install(*crash)
        code = main(argv)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    build_job(DEMO_JOB, {"size": "tiny", "device": "cpu"}, max_iters=1)
    assert threading.active_count() == 1, "forking a process with threads could deadlock its children"
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            run_child(request["argv"], request["log"], request.get("crash"))
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        print(json.dumps({"pid": pid, "status": code}), flush=True)


class Forkserver:
    """`tui-trainer` commands run as forked children of one process that imported torch once."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        assert self._reply() == {"ready": True}
        self.child: int | None = None

    def start(self, argv: list[str], log: Path, crash: tuple[Path, int, str] | None = None) -> int:
        """Start `tui-trainer argv` with its output to `log`; return its pid.

        `crash`: (trace, n, "before" or "after"): trace its file operations, SIGKILL at the nth.
        """
        assert self.child is None, "one child at a time"
        request = {"argv": argv, "log": str(log)}
        if crash is not None:
            request["crash"] = [str(crash[0]), crash[1], crash[2]]
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        self.child = self._reply()["pid"]
        return self.child

    def wait(self) -> int:
        """The child's exit code, or minus the signal that ended it."""
        reply = self._reply()
        assert reply["pid"] == self.child
        self.child = None
        return reply["status"]

    def run(self, argv: list[str], log: Path, crash: tuple[Path, int, str] | None = None) -> int:
        self.start(argv, log, crash)
        return self.wait()

    def kill_child(self) -> None:
        if self.child is not None:
            os.kill(self.child, signal.SIGKILL)
            self.wait()

    def close(self) -> None:
        self.kill_child()
        self.process.stdin.close()
        self.process.wait(timeout=30)

    def _reply(self) -> dict:
        line = self.process.stdout.readline()
        assert line, "the forkserver died"
        return json.loads(line)


if __name__ == "__main__":
    serve()
