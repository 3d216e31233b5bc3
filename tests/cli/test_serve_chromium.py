"""`tui-trainer serve` in a real browser (headless Chromium): open the URL, close the tab, open it again.

Skipped when Chromium is missing, except under CI (where `.ci/run` installs it): there it fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from serve_harness import (
    TAB_GONE_S,
    TINY,
    free_loopback_port,
    kill_trainer,
    start_serve,
    stop_serve,
    tab_processes,
    trainer_pid,
    wait_for,
)

pytestmark = pytest.mark.timeout(240)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed; CI must install it (see .ci/run)")
    pytest.skip("chromium is not installed: the browser end-to-end test needs it")


class Browser:
    """Headless Chromium driven over its DevTools HTTP endpoints and protocol."""

    def __init__(self, binary: str, profile: Path, netlog: Path) -> None:
        self.port = free_loopback_port()
        self.process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", f"--remote-debugging-port={self.port}",
             f"--log-net-log={netlog}", "--window-size=1200,800", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        assert wait_for(lambda: self._try("GET", "/json/version") is not None, 30), "chromium did not start"

    def _try(self, method: str, path: str):
        try:
            return asyncio.run(self._call(method, path))
        except (aiohttp.ClientError, OSError):
            return None

    async def _call(self, method: str, path: str):
        async with aiohttp.ClientSession() as session:
            async with session.request(method, f"http://127.0.0.1:{self.port}{path}") as response:
                text = await response.text()
                try:
                    return json.loads(text)
                except ValueError:  # /json/close answers in words
                    return text

    def open(self, url: str) -> dict:
        return asyncio.run(self._call("PUT", f"/json/new?{url}"))

    def close(self, target: dict) -> None:
        asyncio.run(self._call("GET", f"/json/close/{target['id']}"))

    def evaluate(self, target: dict, expression: str):
        async def run():
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(target["webSocketDebuggerUrl"]) as ws:
                    await ws.send_json({"id": 1, "method": "Runtime.evaluate", "params": {"expression": expression}})
                    while True:
                        reply = await ws.receive_json()
                        if reply.get("id") == 1:
                            return reply["result"]["result"].get("value")

        return asyncio.run(run())

    def quit(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def page_requests(netlog: Path) -> list[tuple[str, str]]:
    """(url, initiator) of each request Chromium made; the page's carry its origin as initiator."""
    text = netlog.read_text()
    try:
        log = json.loads(text)
    except ValueError:  # a browser ended by a signal leaves the log unterminated, by design of the format
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [(e["params"]["url"], str(e["params"].get("initiator"))) for e in log["events"]
            if e["type"] == start_job and "url" in e.get("params", {})]


def test_open_close_reopen_in_chromium_same_run_still_training_and_nothing_fetched_elsewhere(tmp_path):
    binary = chromium()
    run_dir = tmp_path / "run"
    served = start_serve(tmp_path, "train", "--run-dir", str(run_dir), *TINY, "--max-iters", "1000000")
    netlog = tmp_path / "net.json"
    browser = Browser(binary, tmp_path / "profile", netlog)
    try:
        pid = trainer_pid(run_dir)
        opened = time.monotonic()
        tab = browser.open(served.url)
        drawn = wait_for(lambda: "-first-byte" in (browser.evaluate(tab, "document.body.className") or ""), 60)
        assert drawn is not None, "the dashboard never drew in the tab"
        print(f"chromium: first frame {time.monotonic() - opened:.2f} s after opening the URL")
        assert len(tab_processes(run_dir)) == 1
        browser.close(tab)
        assert wait_for(lambda: tab_processes(run_dir) == [], TAB_GONE_S) is not None

        again = browser.open(served.origin + "/")  # the cookie alone now
        assert wait_for(lambda: "-first-byte" in (browser.evaluate(again, "document.body.className") or ""), 60)
        assert trainer_pid(run_dir) == pid  # the same trainer, still training
        browser.close(again)
        assert wait_for(lambda: tab_processes(run_dir) == [], TAB_GONE_S) is not None
    finally:
        browser.quit()
        stop_serve(served)
        kill_trainer(run_dir)
    requests = page_requests(netlog)
    from_page = [url for url, initiator in requests if initiator == served.origin]
    assert from_page and all(url.startswith((served.origin, f"ws://127.0.0.1:{served.port}/")) for url in from_page)
    assert not [url for url, _ in requests if "fonts.googleapis" in url or "fonts.gstatic" in url]
