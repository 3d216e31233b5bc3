"""The real CLI in a real terminal (tmux at 120x40), driven by keystrokes as a user would.

Skipped when tmux is missing, except under CI (where `.ci/run` installs it): there it fails.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tui_trainer.engine.rundir.history import read_history
from tui_trainer.engine.rundir.layout import lock_holder, store_for
from tui_trainer.engine.tools.verify import verify_file

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 40.0  # torch's import and the first steps, on a slow shared runner
STEP_TIMEOUT_S = 15.0


@pytest.fixture
def tmux() -> str:
    path = shutil.which("tmux")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is not installed; CI must install it (see .ci/run)")
        pytest.skip("tmux is not installed: the end-to-end dashboard test needs it")
    return path


class Terminal:
    """One detached tmux session on a private server, running one command."""

    def __init__(self, tmux: str, socket: str) -> None:
        self.tmux = tmux
        self.socket = socket

    def __call__(self, *args: str, check: bool = True) -> str:
        done = subprocess.run([self.tmux, "-L", self.socket, *args], capture_output=True, text=True, timeout=10,
                              check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def start(self, command: str, cwd: Path) -> None:
        self("-f", os.devnull, "new-session", "-d", "-s", "e2e", "-x", "120", "-y", "40", "-c", str(cwd), command)

    def hang_up(self) -> None:
        """Close the session (its processes get SIGHUP, as for a dropped SSH session) and wait for the server to go.

        Killing the last session makes the private server exit; a `new-session` sent while it is on its way out
        fails with "server exited unexpectedly", so this waits until nothing listens on the socket.
        """
        self("kill-session", "-t", "e2e")
        wait_until(lambda: "no server running" in subprocess.run(
            [self.tmux, "-L", self.socket, "list-sessions"], capture_output=True, text=True, timeout=10,
            check=False).stderr, "the tmux server to exit", 10.0)

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "e2e", check=False)

    def header(self) -> str:
        return self.screen().split("\n", 1)[0]

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", "e2e", *keys)

    def pane_pid(self) -> int:
        return int(self("display-message", "-p", "-t", "e2e", "#{pane_pid}").strip())


@pytest.fixture
def terminal(tmux: str, tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(tmux, f"tui-trainer-e2e-{os.getpid()}-{tmp_path.name}")
    try:
        yield term
    finally:
        term("kill-server", check=False)


def train_command(run_dir: Path, config: Path, *, ckpt_every: int = 50, exit_file: Path | None = None,
                  max_iters: int = 2000, nproc: int | None = None) -> str:
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1", "XDG_CONFIG_HOME": str(config)}
    argv = [sys.executable, "-m", "tui_trainer", "train", "--run-dir", str(run_dir), "--max-iters", str(max_iters),
            "--ckpt-every", str(ckpt_every), "--job-opt", "size=tiny", "--job-opt", "device=cpu"]
    argv += ["--nproc", str(nproc)] if nproc else []
    command = "env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + shlex.join(argv)
    if exit_file is None:
        return "exec " + command  # the dashboard itself gets the terminal's SIGHUP
    return f"{command}; echo $? > {shlex.quote(str(exit_file))}"


def wait_until(condition: Callable[[], object], what: str, timeout: float = STEP_TIMEOUT_S,
               screen: Callable[[], str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            shown = f"\nscreen:\n{screen()}" if screen else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{shown}")
        time.sleep(0.1)


def history_size(run_dir: Path) -> int:
    try:
        return (run_dir / "history.jsonl").stat().st_size
    except FileNotFoundError:
        return 0


def checkpoint_files(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("step_*.pt"))


def header_step(header: str) -> int:
    return int(header.split("step ", 1)[1].split("/", 1)[0])


def test_a_user_pauses_saves_retargets_and_quits(terminal, tmp_path):
    run_dir, exit_file = tmp_path / "run", tmp_path / "exit_code"
    terminal.start(train_command(run_dir, tmp_path / "config", exit_file=exit_file), tmp_path)
    header = terminal.header
    wait_until(lambda: "RUNNING" in header(), "the RUNNING header", START_TIMEOUT_S, terminal.screen)

    terminal.keys("p")
    wait_until(lambda: "PAUSED" in header(), "the PAUSED header", screen=terminal.screen)
    size = history_size(run_dir)
    time.sleep(0.8)
    assert history_size(run_dir) == size, "history.jsonl grew while paused"

    terminal.keys("p")
    wait_until(lambda: "RUNNING" in header(), "RUNNING again", screen=terminal.screen)
    wait_until(lambda: history_size(run_dir) > size, "history to grow after resuming")

    # Pause again, so that periodic saves cannot blur the count and the step stays below 600.
    step = pause_off_a_periodic_step(terminal)
    assert step < 600, f"the run went past 600 before the test could retarget it: {header()}"
    before = checkpoint_files(run_dir)
    terminal.keys("s")
    wait_until(lambda: len(checkpoint_files(run_dir)) == len(before) + 1, "the saved checkpoint",
               screen=terminal.screen)
    time.sleep(0.5)
    added = sorted(set(checkpoint_files(run_dir)) - set(before))
    assert len(added) == 1 and len(checkpoint_files(run_dir)) == len(before) + 1
    kinds = {c.path.name: c.meta.kind for c in store_for(run_dir).list()}
    assert kinds[added[0].name] == "manual"

    terminal.keys("r")
    wait_until(lambda: "New iteration target" in terminal.screen(), "the target modal", screen=terminal.screen)
    terminal.keys("600", "Enter")
    wait_until(lambda: "/600" in header(), "the new target in the header", screen=terminal.screen)
    terminal.keys("p")
    wait_until(lambda: "FINISHED" in header(), "the FINISHED header", screen=terminal.screen)
    assert header_step(header()) == 600
    assert max(c.meta.step for c in store_for(run_dir).list()) == 600

    terminal.keys("q")
    wait_until(exit_file.exists, "the dashboard to exit after q", screen=terminal.screen)
    assert exit_file.read_text().strip() == "0"


def pause_off_a_periodic_step(terminal: Terminal, every: int = 50) -> int:
    """Pause on a step with no checkpoint yet, and return it.

    Save-now on a step that a periodic save has just written marks that checkpoint manual
    instead of adding one; and a pause asked for during a save lands right after it.
    """
    for _ in range(4):
        terminal.keys("p")
        wait_until(lambda: "PAUSED" in terminal.header(), "the pause", screen=terminal.screen)
        step = header_step(terminal.header())
        if step % every:
            return step
        terminal.keys("p")
        wait_until(lambda: "RUNNING" in terminal.header(), "RUNNING again", screen=terminal.screen)
    raise AssertionError(f"paused on a periodic step four times: {terminal.header()}")


def test_a_dropped_terminal_never_stops_training_and_attach_brings_the_dashboard_back(terminal, tmp_path):
    run_dir = tmp_path / "checkpoints" / "run"
    terminal.start(train_command(run_dir, tmp_path / "config"), tmp_path)
    wait_until(lambda: "RUNNING" in terminal.header(), "the RUNNING header", START_TIMEOUT_S, terminal.screen)
    wait_until(lambda: header_step(terminal.header()) >= 300, "some steps", screen=terminal.screen)
    viewer, trainer = terminal.pane_pid(), trainer_pid(run_dir)
    assert trainer != viewer

    terminal.hang_up()  # the terminal goes away: SIGHUP, as for a dropped SSH session
    wait_until(lambda: not _alive(viewer), "the dashboard to go with its terminal")
    size = history_size(run_dir)
    wait_until(lambda: history_size(run_dir) > size + 2000, "training to go on without a terminal")
    assert _alive(trainer) and trainer_pid(run_dir) == trainer

    # From another terminal, in the folder that holds checkpoints/: no run dir to type.
    terminal.start(attach_command(tmp_path / "config"), tmp_path)
    wait_until(lambda: "RUNNING" in terminal.header(), "the re-attached dashboard", START_TIMEOUT_S, terminal.screen)
    wait_until(lambda: chart_starts_near_step_one(terminal.screen()), "the chart from step 1",
               screen=terminal.screen)
    terminal.keys("p")
    wait_until(lambda: "PAUSED" in terminal.header(), "the PAUSED header", screen=terminal.screen)
    size = history_size(run_dir)
    time.sleep(0.8)
    assert history_size(run_dir) == size, "history.jsonl grew while paused"
    terminal.keys("p")
    wait_until(lambda: "RUNNING" in terminal.header(), "RUNNING again", screen=terminal.screen)

    terminal.keys("q")
    wait_until(lambda: "Leave the dashboard?" in terminal.screen(), "the question q asks", screen=terminal.screen)
    terminal.keys("q")  # detach, the first choice
    wait_until(lambda: "re-attach:" in terminal.screen(), "the word on leaving", screen=terminal.screen)
    assert "left the dashboard; training goes on in the background" in terminal.screen()
    assert "tui-trainer attach checkpoints/run" in terminal.screen()
    size = history_size(run_dir)
    wait_until(lambda: history_size(run_dir) > size, "training to go on after detaching")

    os.kill(trainer, signal.SIGINT)  # an explicit stop still saves
    wait_until(lambda: not _alive(trainer), "the trainer to exit after SIGINT", timeout=30)
    assert "exits with status 130" in (run_dir / "trainer.log").read_text()
    # The step it stopped at is saved: as "interrupted", or as the periodic save that step already
    # had when the signal landed during it (an evaluation and a save make those steps the longest).
    newest = max(store_for(run_dir).list(), key=lambda c: c.meta.step)
    steps = [r["step"] for r in read_history(run_dir / "history.jsonl") if "loss" in r]
    assert newest.meta.step == steps[-1] and newest.meta.kind in ("interrupted", "periodic"), newest.meta
    assert verify_file(newest.path).ok
    assert steps == list(range(1, newest.meta.step + 1))  # one continuous run


def test_a_two_rank_run_pauses_extends_detaches_and_finishes_under_the_dashboard(terminal, tmp_path):
    """`train --nproc 2` opens the dashboard on the ranks torchrun starts: a line each, and every key reaches both."""
    run_dir, exit_file = tmp_path / "checkpoints" / "run", tmp_path / "exit_code"
    command = train_command(run_dir, tmp_path / "config", ckpt_every=500, max_iters=600, nproc=2, exit_file=exit_file)
    terminal.start(command + "; sleep 30", tmp_path)  # the shell stays, so the words on leaving can be read
    wait_until(lambda: "RUNNING" in terminal.header(), "the RUNNING header", 2 * START_TIMEOUT_S, terminal.screen)
    terminal.keys("p")
    wait_until(lambda: "PAUSED" in terminal.header(), "the PAUSED header", screen=terminal.screen)
    paused_at = header_step(terminal.header())
    assert paused_at < 600
    wait_until(lambda: len(rank_lines(terminal.screen())) == 2, "a line per rank in the system panel",
               screen=terminal.screen)
    ranks = rank_lines(terminal.screen())
    assert ranks[0] == trainer_pid(run_dir) and ranks[1] != ranks[0]  # rank 0 holds the run dir

    # Both ranks wait: rank 0 writes no step, and neither spends the CPU a training rank does.
    step, cpu = last_step(run_dir), [cpu_seconds(pid) for pid in ranks.values()]
    time.sleep(1.0)
    assert last_step(run_dir) == step == paused_at
    assert all(cpu_seconds(pid) - before < 0.4 for pid, before in zip(ranks.values(), cpu)), "a rank trained on"

    terminal.keys("r")
    wait_until(lambda: "New iteration target" in terminal.screen(), "the target modal", screen=terminal.screen)
    terminal.keys("800", "Enter")
    wait_until(lambda: "/800" in terminal.header(), "the new target in the header", screen=terminal.screen)

    terminal.keys("q")
    wait_until(lambda: "Leave the dashboard?" in terminal.screen(), "the question q asks", screen=terminal.screen)
    terminal.keys("q")  # detach: both ranks stay, paused
    wait_until(lambda: "re-attach:" in terminal.screen(), "the word on leaving", screen=terminal.screen)
    wait_until(exit_file.exists, "the dashboard to exit after detaching", screen=terminal.screen)
    assert "torchrun pid" in terminal.screen() and exit_file.read_text().strip() == "0"
    assert all(_alive(pid) for pid in ranks.values())

    terminal.hang_up()
    terminal.start(attach_command(tmp_path / "config"), tmp_path)
    wait_until(lambda: "PAUSED" in terminal.header() and "/800" in terminal.header(), "the re-attached dashboard",
               START_TIMEOUT_S, terminal.screen)
    wait_until(lambda: rank_lines(terminal.screen()) == ranks, "the same two ranks", screen=terminal.screen)
    terminal.keys("p")
    wait_until(lambda: "FINISHED" in terminal.header(), "the FINISHED header", 2 * START_TIMEOUT_S, terminal.screen)
    assert header_step(terminal.header()) == 800
    steps = [r["step"] for r in read_history(run_dir / "history.jsonl") if "loss" in r]
    assert steps == list(range(1, 801))  # one continuous history, each step once
    assert max(c.meta.step for c in store_for(run_dir).list()) == 800
    wait_until(lambda: not any(_alive(pid) for pid in ranks.values()), "both ranks to exit")
    wait_until(lambda: "exits with status 0 (torchrun, 2 ranks)" in (run_dir / "trainer.log").read_text(),
               "the launcher's exit line in trainer.log")


def rank_lines(screen: str) -> dict[int, int]:
    """{rank: pid} from the system panel's rank lines."""
    return {int(rank): int(pid) for rank, pid in re.findall(r"rank (\d+) pid (\d+): CPU", screen)}


def last_step(run_dir: Path) -> int:
    return max((r["step"] for r in read_history(run_dir / "history.jsonl") if "loss" in r), default=0)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def attach_command(config: Path) -> str:
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "XDG_CONFIG_HOME": str(config)}
    argv = [sys.executable, "-m", "tui_trainer", "attach"]
    # Not exec: the shell stays, so what the dashboard says on leaving can be read in the pane.
    return "env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + shlex.join(argv) + "; sleep 30"


def trainer_pid(run_dir: Path) -> int:
    holder = lock_holder(run_dir)
    assert holder is not None, f"nothing holds {run_dir}'s lock"
    return holder.pid


def chart_starts_near_step_one(screen: str) -> bool:
    """The chart's step axis starts within the first few hundred steps, not at the re-attach."""
    for line in screen.splitlines():
        ticks = [int(t) for t in line.replace("│", " ").split() if t.isdigit()]
        if len(ticks) >= 3 and ticks == sorted(ticks) and "┃" not in line and "┫" not in line:
            return ticks[0] <= 300
    return False


def _alive(pid: int) -> bool:
    if Path("/proc").is_dir():  # Linux: a zombie has exited, though its pid still answers
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
