"""`tui-trainer serve`: the dashboard's page over HTTP on a loopback port, and one-line refusals."""

from __future__ import annotations

import io
import re
import socket
import sys

import pytest
from ckpt_cli import child_env, run
from serve_harness import free_loopback_port

from tests.factories import make_run
from tui_trainer.cli.train_commands import on_a_screen


def test_without_textual_serve_it_says_how_to_install_it(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "textual_serve", None)  # makes the import fail
    monkeypatch.setitem(sys.modules, "textual_serve.server", None)
    monkeypatch.setitem(sys.modules, "tui_trainer.cli.serve_app", None)
    result = run(capsys, "serve", "--port", "8123")
    assert result.code != 0
    assert result.err.strip().splitlines() == [
        "tui-trainer: error: serving in a browser needs textual-serve: pip install 'tui-trainer[serve]'"
    ]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_refuses_a_host_that_is_not_loopback(capsys, host):
    result = run(capsys, "serve", "--host", host)
    assert result.code != 0
    assert "is not a loopback address" in result.err and "ssh -L" in result.err
    assert len(result.err.strip().splitlines()) == 1


def fake_serving(monkeypatch) -> list[list[str]]:
    """Stands in for the server's loop: it starts, says what it serves, and stops at once."""
    from tui_trainer.cli import serve_app

    served: list[list[str]] = []

    def serve(self, debug: bool = False) -> None:
        served.append(self.tab_args)
        self.on_started()

    monkeypatch.setattr(serve_app.GuardedServer, "serve", serve)
    return served


def test_a_finished_run_is_served_read_only_with_the_theme(capsys, monkeypatch, tmp_path):
    run_dir = make_run(tmp_path / "run", steps=(100,))
    served = fake_serving(monkeypatch)
    result = run(capsys, "--theme", "mono", "serve", "--port", str(free_loopback_port()), "watch", run_dir)
    assert result.code == 0, result.err
    assert served == [["--theme", "mono", "watch", str(run_dir)]]
    assert f"nothing trains {run_dir} now: each tab shows it read-only" in result.out
    assert f"each browser tab runs `tui-trainer --theme mono watch {run_dir}`" in result.out
    assert re.search(r"^open http://127\.0\.0\.1:\d+/\?token=[\w-]{40,}$", result.out, re.M)


def test_each_launch_has_its_own_token(capsys, monkeypatch, tmp_path):
    run_dir = make_run(tmp_path / "run", steps=(100,))
    fake_serving(monkeypatch)
    tokens = {re.search(r"token=(\S+)", run(capsys, "serve", "--port", str(free_loopback_port()), "watch",
                                             run_dir).out).group(1) for _ in range(3)}
    assert len(tokens) == 3


@pytest.mark.parametrize("args", [["ckpt", "list"], ["runs"], ["serve"]])
def test_a_command_without_a_dashboard_is_refused_on_one_line(capsys, args):
    result = run(capsys, "serve", "--port", str(free_loopback_port()), *args)
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        f"tui-trainer: error: serve shows the dashboard, and `{args[0]}` has none; serve nothing (the demo), "
        "train ..., resume ..., attach RUN_DIR or watch RUN_DIR"
    ]


def test_attach_to_a_run_nobody_trains_says_so_before_serving(capsys, tmp_path):
    run_dir = make_run(tmp_path / "run", steps=(100,))
    result = run(capsys, "serve", "--port", str(free_loopback_port()), "attach", run_dir)
    assert result.code == 2
    assert "nothing trains" in result.err and f"tui-trainer watch {run_dir}" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_a_trainer_that_cannot_start_is_one_line_and_nothing_is_served(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", child_env()["PYTHONPATH"])
    port = free_loopback_port()
    result = run(capsys, "serve", "--port", str(port), "train", "--job", "no_such_module:make_job",
                 "--run-dir", tmp_path / "run", "--job-opt", "device=cpu")
    assert result.code == 2
    [line] = result.err.strip().splitlines()
    assert line.startswith("tui-trainer: error: ") and "no_such_module" in line
    with socket.socket() as probe:  # the port was never taken
        probe.bind(("127.0.0.1", port))


def test_a_port_in_use_is_one_line_before_anything_starts(capsys, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(capsys, "serve", "--port", str(port))
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        f"tui-trainer: error: cannot serve on 127.0.0.1:{port} (Address already in use); pick another with --port"
    ]
    assert "starting" not in result.out


def test_a_browser_tab_counts_as_a_screen(monkeypatch):
    """Under textual-serve stdin and stdout are pipes; the dashboard must still open, not a headless run."""
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    monkeypatch.setenv("TEXTUAL_DRIVER", "textual.drivers.web_driver:WebDriver")
    assert on_a_screen()
    monkeypatch.setenv("TEXTUAL_DRIVER", "tui_trainer.tui.web_tab_driver:TabDriver")  # serve's own
    assert on_a_screen()
    monkeypatch.delenv("TEXTUAL_DRIVER")
    assert not on_a_screen()
