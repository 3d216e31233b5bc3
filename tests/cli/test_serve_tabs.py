"""A real `tui-trainer serve train ...` on 127.0.0.1: the token, the Origin, and tabs that come and go.

One trainer per served run: tabs (an aiohttp websocket client, as the page's script would) are
viewers, so closing one never stops training and the next shows the same run; a tab closed at
any instant leaves no process behind; a request without the token spawns nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from serve_harness import (
    TAB_GONE_S,
    TINY,
    Served,
    kill_trainer,
    open_tab,
    start_serve,
    status_of,
    stop_serve,
    tab_processes,
    trainer_pid,
    wait_for,
)

pytestmark = pytest.mark.timeout(240)
PLANTED = "import pathlib; pathlib.Path(__file__).with_name('IMPORTED-FROM-CWD').touch()\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Served:
    cwd = tmp_path_factory.mktemp("serve-cwd")
    for shadow in ("textual.py", "rich.py", "aiohttp.py"):  # a tab that imported from here would say so
        (cwd / shadow).write_text(PLANTED)
    run_dir = cwd / "run"
    served = start_serve(cwd, "train", "--run-dir", str(run_dir), *TINY, "--max-iters", "1000000",
                         "--ckpt-every", "500")
    served.run_dir = run_dir  # type: ignore[attr-defined]
    try:
        yield served
    finally:
        stop_serve(served)
        kill_trainer(run_dir)


def logged_steps(run_dir: Path) -> int:
    with open(run_dir / "history.jsonl", "rb") as f:
        return sum(1 for _ in f)


def run_id(run_dir: Path) -> str:
    return json.loads((run_dir / "run.json").read_text())["run_id"]


def test_it_says_what_runs_where(served):
    out = served.output()
    pid = trainer_pid(served.run_dir)
    assert pid is not None
    assert f"trainer: pid {pid}, in the background" in out
    assert f"each browser tab runs `tui-trainer watch {served.run_dir}`" in out
    assert re.search(rf"open http://127\.0\.0\.1:{served.port}/\?token=[\w-]{{40,}}$", out, re.M)


@pytest.mark.parametrize("what", ["page", "token wrong", "static file", "websocket", "websocket token wrong"])
def test_without_the_token_403_and_nothing_spawned(served, what):
    path = {"page": "/", "token wrong": "/?token=guess", "static file": "/static/js/textual.js",
            "websocket": "/ws", "websocket token wrong": f"/ws?token={served.token[:-1]}x"}[what]
    headers = {"Origin": served.origin} if what.startswith("websocket") else None
    assert status_of(served, path, headers=headers, websocket=what.startswith("websocket")) == 403
    assert tab_processes(served.run_dir) == []


def test_the_token_url_sets_an_httponly_strict_cookie_and_goes_to_the_bare_url(served):
    import asyncio

    import aiohttp

    async def visit() -> tuple[int, str, str, int]:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            async with session.get(served.url, allow_redirects=False) as first:
                cookie = first.headers.get("Set-Cookie", "")
                status, location = first.status, first.headers.get("Location", "")
            async with session.get(served.origin + "/", allow_redirects=False) as again:  # the cookie alone
                return status, location, cookie, again.status

    status, location, cookie, again = asyncio.run(visit())
    assert (status, location, again) == (303, "/", 200)
    assert cookie.startswith(f"tui-trainer-{served.port}={served.token};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert status_of(served, "/", cookies={f"tui-trainer-{served.port}": served.token}) == 200
    assert status_of(served, "/", cookies={f"tui-trainer-{served.port}": "guess"}) == 403


@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1:1", "null", None])
def test_a_websocket_from_another_origin_is_refused(served, origin):
    cookies = {f"tui-trainer-{served.port}": served.token}
    headers = {"Origin": origin} if origin else {}
    assert status_of(served, "/ws", cookies=cookies, headers=headers, websocket=True) == 403
    assert tab_processes(served.run_dir) == []


def test_a_host_name_that_is_not_loopback_is_refused(served):
    """DNS rebinding: a page at evil.example that resolves to 127.0.0.1 reaches the port with its own Host."""
    cookies = {f"tui-trainer-{served.port}": served.token}
    assert status_of(served, "/", cookies=cookies, headers={"Host": f"evil.example:{served.port}"}) == 403


def test_the_page_fetches_nothing_from_another_site(served):
    import urllib.request

    request = urllib.request.Request(served.origin + "/", headers={"Cookie": f"tui-trainer-{served.port}={served.token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        page = response.read().decode()
    # no other site, not even protocol-relative: the only host named is serve's own (the websocket's)
    assert set(re.findall(r"//([\w.-]+)", page)) == {"127.0.0.1"}
    assert f'data-session-websocket-url="ws://127.0.0.1:{served.port}/ws"' in page
    assert "/static/fonts/RobotoMono" in page  # the terminal's font, from serve itself


def test_closing_and_reopening_a_tab_shows_the_same_run_still_training(served):
    run_dir = served.run_dir
    pid, rid = trainer_pid(run_dir), run_id(run_dir)
    first = open_tab(served, hold_s=12, want="step")
    assert first.first_frame_s is not None, first.text[-2000:]
    assert wait_for(lambda: tab_processes(run_dir) == [], TAB_GONE_S) is not None
    steps_after_close = logged_steps(run_dir)
    assert wait_for(lambda: logged_steps(run_dir) > steps_after_close + 5, 30) is not None  # training goes on
    second = open_tab(served, hold_s=12, want="step")
    assert second.first_frame_s is not None
    assert (trainer_pid(run_dir), run_id(run_dir)) == (pid, rid)  # the same trainer, the same run
    assert wait_for(lambda: tab_processes(run_dir) == [], TAB_GONE_S) is not None
    assert logged_steps(run_dir) > steps_after_close
    print(f"first frame in a tab: {first.first_frame_s:.2f} s, then {second.first_frame_s:.2f} s")


@pytest.mark.parametrize("hold_s", [0.05, 0.4, 1.0])
def test_a_tab_closed_in_its_first_second_leaves_no_process(served, hold_s):
    pid = trainer_pid(served.run_dir)
    open_tab(served, hold_s=hold_s)
    gone = wait_for(lambda: tab_processes(served.run_dir) == [], TAB_GONE_S)
    assert gone is not None, f"a tab process outlived its tab: {tab_processes(served.run_dir)}"
    assert trainer_pid(served.run_dir) == pid  # and the trainer is untouched


def test_no_served_process_imported_from_the_current_directory(served):
    open_tab(served, hold_s=3)
    assert not (served.cwd / "IMPORTED-FROM-CWD").exists()
