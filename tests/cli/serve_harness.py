"""A real `tui-trainer serve` on a free loopback port, and browser tabs played by an aiohttp websocket client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from ckpt_cli import child_env

START_TIMEOUT_S = 90.0
# What a closed tab's process may take to go: serve's quit, SIGTERM and SIGKILL steps, with margin.
TAB_GONE_S = 10.0
TINY = ["--job-opt", "size=tiny", "--job-opt", "device=cpu"]
_ANSI = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][A-Z0-9]|\x1b[=>78]")


SEEN_HOLD_S = 1.0


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_env() -> dict[str, str]:
    return {**child_env(), "OMP_NUM_THREADS": "1"}


@dataclass
class Served:
    """`tui-trainer serve ARGS` running in `cwd`, with what it printed."""

    process: subprocess.Popen
    port: int
    cwd: Path
    lines: list[str] = field(default_factory=list)
    token: str = ""

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.origin}/?token={self.token}"

    def output(self) -> str:
        return "\n".join(self.lines)


def start_serve(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Served:
    """Start serve and wait until it prints its URL (the trainer, if any, has started by then)."""
    port = free_loopback_port()
    argv = [sys.executable, "-P", "-m", "tui_trainer", "serve", "--port", str(port), *args]
    process = subprocess.Popen(argv, cwd=cwd, env={**serve_env(), **(env or {})}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    served = Served(process, port, cwd)
    found = threading.Event()

    def read() -> None:
        for line in process.stdout:
            served.lines.append(line.rstrip("\n"))
            match = re.search(r"/\?token=(\S+)", line)
            if match:
                served.token = match.group(1)
                found.set()
        found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(START_TIMEOUT_S) or not served.token:
        stop_serve(served)
        raise AssertionError(f"serve printed no URL:\n{served.output()}")
    return served


def stop_serve(served: Served) -> None:
    if served.process.poll() is None:
        served.process.send_signal(signal.SIGINT)
        try:
            served.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            served.process.kill()
            served.process.wait(timeout=10)


def trainer_pid(run_dir: Path) -> int | None:
    from tui_trainer.engine.rundir.layout import lock_holder

    holder = lock_holder(run_dir)
    return holder.pid if holder else None


def kill_trainer(run_dir: Path, timeout: float = 30.0) -> None:
    """End the run's detached trainer (it outlives serve by design) and wait until it is gone."""
    pid = trainer_pid(run_dir)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def processes_running(*words: str) -> list[int]:
    """Live processes (orphans included) whose command line holds every word."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(word in cmdline for word in words) and alive(int(entry)):
            found.append(int(entry))
    return found


def children_of(pid: int) -> list[int]:
    """Live processes whose parent is `pid` (serve starts each tab's process itself)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def tab_processes(run_dir: Path) -> list[int]:
    return processes_running("tui_trainer", "watch", str(run_dir))


def wait_for(condition, timeout: float, step: float = 0.1) -> float | None:
    """Seconds until `condition()` held, or None if it did not within `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(step)
    return None


def screen_text(raw: bytes) -> str:
    return _ANSI.sub("", raw.decode(errors="replace"))


@dataclass
class TabVisit:
    first_frame_s: float | None
    text: str
    closed_by_server: bool


async def _visit(served: Served, hold_s: float, want: str | None) -> TabVisit:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.get(served.url) as page:
            assert page.status == 200
        start = time.monotonic()
        raw, first, closed = b"", None, False
        async with session.ws_connect(f"ws://127.0.0.1:{served.port}/ws?width=120&height=40",
                                      origin=served.origin) as ws:
            until = hold_s
            while (left := until - (time.monotonic() - start)) > 0:
                try:
                    message = await asyncio.wait_for(ws.receive(), timeout=left)
                except asyncio.TimeoutError:
                    break
                if message.type == aiohttp.WSMsgType.BINARY:
                    raw += message.data
                    if first is None and want is not None and want in screen_text(raw):
                        first = time.monotonic() - start
                        until = min(hold_s, first + SEEN_HOLD_S)  # seen: close the tab soon after
                elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    closed = True
                    break
        return TabVisit(first, screen_text(raw), closed)


def open_tab(served: Served, hold_s: float, want: str | None = None) -> TabVisit:
    """A browser tab open for `hold_s` seconds, then closed; when `want` first showed on its screen.

    Once `want` has shown, the tab closes `SEEN_HOLD_S` later rather than waiting out `hold_s`."""
    return asyncio.run(_visit(served, hold_s, want))


async def _status(served: Served, path: str, cookies: dict[str, str] | None, headers: dict[str, str] | None,
                  websocket: bool) -> int:
    async with aiohttp.ClientSession(cookies=cookies or {}) as session:
        url = f"{served.origin}{path}"
        if websocket:
            try:
                async with session.ws_connect(url.replace("http:", "ws:"), headers=headers or {}):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status
        async with session.get(url, headers=headers or {}, allow_redirects=False) as response:
            return response.status


def status_of(served: Served, path: str, cookies: dict[str, str] | None = None,
              headers: dict[str, str] | None = None, websocket: bool = False) -> int:
    return asyncio.run(_status(served, path, cookies, headers, websocket))


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def raw_request(served: Served, head: str, timeout: float = 10.0) -> RawResponse:
    """Send `head` (request line and headers, `\r\n` between them) byte for byte, as no client library would.

    The path goes out exactly as written (`/static/../x`, `*`), which aiohttp's client would tidy up.
    """
    with socket.create_connection(("127.0.0.1", served.port), timeout=timeout) as connection:
        connection.sendall(head.rstrip("\r\n").encode() + b"\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                break
            data += chunk
        top, _, body = data.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        status = int(lines[0].split()[1])
        want = 0 if head.startswith("HEAD ") or status == 101 else int(headers.get("Content-Length", "0"))
        while len(body) < want:
            chunk = connection.recv(65536)
            if not chunk:
                break
            body += chunk
    return RawResponse(status, headers, body)
