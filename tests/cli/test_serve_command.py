"""`tui-trainer serve`: the dashboard's page over HTTP on a loopback port, and one-line refusals."""

from __future__ import annotations

import io
import shlex
import socket
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request

import pytest

from ckpt_cli import child_env, run
from tui_trainer.cli.train_commands import on_a_screen

SERVE_TIMEOUT_S = 20.0


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch_page(url: str, server: subprocess.Popen) -> str:
    """The page at `url`, retrying while the server starts; fails after SERVE_TIMEOUT_S."""
    deadline = time.monotonic() + SERVE_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200
                return response.read().decode()
        except (urllib.error.URLError, ConnectionError):
            if server.poll() is not None:
                pytest.fail(f"serve exited with {server.returncode}: {server.stderr.read()}")
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_serves_the_dashboard_page_on_loopback(tmp_path):
    port = free_loopback_port()
    argv = [sys.executable, "-m", "tui_trainer", "serve", "--host", "127.0.0.1", "--port", str(port),
            "train", "--run-dir", str(tmp_path / "run"), "--job-opt", "size=tiny"]
    server = subprocess.Popen(argv, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        page = fetch_page(f"http://127.0.0.1:{port}/", server)
    finally:
        server.terminate()
        server.communicate(timeout=20)
    # textual-serve's terminal page, which opens the app's session over a websocket on the same port
    assert "xterm" in page
    assert f'data-session-websocket-url="ws://127.0.0.1:{port}/ws"' in page


def test_without_textual_serve_it_says_how_to_install_it(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "textual_serve", None)  # makes the import fail
    monkeypatch.setitem(sys.modules, "textual_serve.server", None)
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


class RecordingServer:
    """Stands in for textual-serve's Server: records what would be served instead of serving it."""

    served: list[dict] = []

    def __init__(self, command: str, host: str, port: int, title: str) -> None:
        self.call = {"command": command, "host": host, "port": port, "title": title}

    def serve(self) -> None:
        RecordingServer.served.append(self.call)


def test_serves_the_given_command_with_the_theme(capsys, monkeypatch):
    module = types.ModuleType("textual_serve.server")
    module.Server = RecordingServer
    monkeypatch.setitem(sys.modules, "textual_serve.server", module)
    RecordingServer.served.clear()
    result = run(capsys, "--theme", "mono", "serve", "--port", "8123", "train", "--max-iters", "50")
    assert result.code == 0, result.err
    [call] = RecordingServer.served
    assert call["command"] == shlex.join([sys.executable, "-m", "tui_trainer", "--theme", "mono", "train",
                                          "--max-iters", "50"])
    assert (call["host"], call["port"], call["title"]) == ("127.0.0.1", 8123,
                                                          "tui-trainer --theme mono train --max-iters 50")


def test_a_browser_tab_counts_as_a_screen(monkeypatch):
    """Under textual-serve stdin and stdout are pipes; the dashboard must still open, not a headless run."""
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    monkeypatch.setenv("TEXTUAL_DRIVER", "textual.drivers.web_driver:WebDriver")
    assert on_a_screen()
    monkeypatch.delenv("TEXTUAL_DRIVER")
    assert not on_a_screen()
