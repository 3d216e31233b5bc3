"""Every route of `tui-trainer serve`, asked without its secret: 403 (or a 404 that says nothing), nothing spawned.

Requests go out byte for byte (a raw socket), so paths arrive as an attacker would write them
(`/static/../`, `*`, no Host at all). The same table with the secret works, so the refusals are
the guard's and not a broken route. The token is this launch's alone: it is in no file, no
command line and no environment that serve or its tabs leave, and serve listens on 127.0.0.1.
"""

from __future__ import annotations

import base64
import os
import socket
import stat
from pathlib import Path

import pytest
from serve_harness import (
    TAB_GONE_S,
    Served,
    children_of,
    raw_request,
    start_serve,
    stop_serve,
    wait_for,
)

from tests.factories import make_run
from tui_trainer.cli.serve_app import FORBIDDEN

pytestmark = pytest.mark.timeout(180)
WS_KEY = base64.b64encode(b"sixteen byte key").decode()


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Served:
    """A finished run served read-only, with a home and a temp dir of its own to search afterwards."""
    cwd = tmp_path_factory.mktemp("serve-guard")
    home = cwd / "home"
    home.mkdir()
    run_dir = make_run(cwd / "run", steps=(100,))
    served = start_serve(cwd, "watch", str(run_dir),
                         env={"HOME": str(home), "TMPDIR": str(home), "XDG_CONFIG_HOME": str(home / ".config")})
    served.run_dir = run_dir  # type: ignore[attr-defined]
    try:
        yield served
    finally:
        stop_serve(served)


def request(served: Served, line: str, *headers: str, host: str | None = "127.0.0.1:{port}") -> str:
    """`line` and `headers` with {token}, {port} and {origin} filled in; a Host unless `host` is None."""
    fields = [line, *([f"Host: {host}"] if host is not None else []), *headers, "Connection: close"]
    return "\r\n".join(fields).format(token=served.token, port=served.port, origin=served.origin)


COOKIE = "Cookie: tui-trainer-{port}={token}"
UPGRADE = ("Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {WS_KEY}", "Sec-WebSocket-Version: 13")
ORIGIN = "Origin: {origin}"

# (what, request line, headers, Host): each lacks the secret, or has it where it does not count.
WITHOUT_THE_SECRET = {
    "page": ("GET / HTTP/1.1", ()),
    "page, HEAD": ("HEAD / HTTP/1.1", ()),
    "page, OPTIONS": ("OPTIONS / HTTP/1.1", ()),
    "OPTIONS *": ("OPTIONS * HTTP/1.1", ()),
    "page, POST": ("POST / HTTP/1.1", ("Content-Length: 0",)),
    "absolute URL": ("GET http://127.0.0.1:{port}/ HTTP/1.1", ()),
    "static file": ("GET /static/js/textual.js HTTP/1.1", ()),
    "static file, HEAD": ("HEAD /static/js/textual.js HTTP/1.1", ()),
    "static listing": ("GET /static/ HTTP/1.1", ()),
    "static font": ("GET /static/fonts/RobotoMono-VariableFont_wght.ttf HTTP/1.1", ()),
    "traversal": ("GET /static/../server.py HTTP/1.1", ()),
    "traversal, encoded": ("GET /static/%2e%2e/%2e%2e/__init__.py HTTP/1.1", ()),
    "traversal to /etc": ("GET /static/../../../../../../etc/passwd HTTP/1.1", ()),
    "favicon": ("GET /favicon.ico HTTP/1.1", ()),
    "download": ("GET /download/0123456789abcdef HTTP/1.1", ()),
    "unknown path (404 page)": ("GET /no/such/page HTTP/1.1", ()),
    "double slash": ("GET //ws HTTP/1.1", UPGRADE + (ORIGIN,)),
    "websocket": ("GET /ws HTTP/1.1", UPGRADE + (ORIGIN,)),
    "websocket, plain GET": ("GET /ws HTTP/1.1", ()),
    "token wrong": ("GET /?token=guess HTTP/1.1", ()),
    "token empty": ("GET /?token= HTTP/1.1", ()),
    "token one char short": ("GET /?token={token}x HTTP/1.1", ()),
    "token under another name": ("GET /?Token={token} HTTP/1.1", ()),
    "token first wrong, then right": ("GET /?token=guess&token={token} HTTP/1.1", ()),
    "token as the path": ("GET /{token} HTTP/1.1", ()),
    "token in a static path": ("GET /static/{token}/js/textual.js HTTP/1.1", ()),
    "token as a bearer header": ("GET / HTTP/1.1", ("Authorization: Bearer {token}",)),
    "token in a header of its own": ("GET / HTTP/1.1", ("X-Token: {token}", "Token: {token}")),
    "token in the Referer": ("GET / HTTP/1.1", ("Referer: {origin}/?token={token}",)),
    "cookie wrong": ("GET / HTTP/1.1", ("Cookie: tui-trainer-{port}=guess",)),
    "cookie empty": ("GET / HTTP/1.1", ("Cookie: tui-trainer-{port}=",)),
    "cookie under another port's name": ("GET / HTTP/1.1", ("Cookie: tui-trainer-1={token}",)),
    "cookie under another name": ("GET / HTTP/1.1", ("Cookie: token={token}",)),
    "websocket, token wrong": ("GET /ws?token=guess HTTP/1.1", UPGRADE + (ORIGIN,)),
    "websocket, cookie, no Origin": ("GET /ws HTTP/1.1", UPGRADE + (COOKIE,)),
    "websocket, cookie, another site": ("GET /ws HTTP/1.1", UPGRADE + (COOKIE, "Origin: http://evil.example")),
    "websocket, cookie, another port": ("GET /ws HTTP/1.1", UPGRADE + (COOKIE, "Origin: http://127.0.0.1:1")),
    "websocket, cookie, null Origin": ("GET /ws HTTP/1.1", UPGRADE + (COOKIE, "Origin: null")),
    "websocket, token, another site": ("GET /ws?token={token} HTTP/1.1", UPGRADE + ("Origin: http://evil.example",)),
    "websocket, cookie, https Origin": ("GET /ws HTTP/1.1", UPGRADE + (COOKIE, "Origin: https://127.0.0.1:{port}")),
}
# The secret itself, but from a Host that is not loopback (DNS rebinding) or from no Host at all.
WRONG_HOST = {
    "page, another host": ("GET / HTTP/1.1", (COOKIE,), "evil.example:{port}"),
    "page, a host ending like loopback": ("GET / HTTP/1.1", (COOKIE,), "127.0.0.1.evil.example:{port}"),
    "token URL, another host": ("GET /?token={token} HTTP/1.1", (), "evil.example:{port}"),
    "websocket, another host": ("GET /ws HTTP/1.1", UPGRADE + (COOKIE, "Origin: http://evil.example:{port}"),
                                "evil.example:{port}"),
    "static file, empty Host": ("GET /static/js/textual.js HTTP/1.1", (COOKIE,), ""),
    "page, no Host (HTTP/1.0)": ("GET / HTTP/1.0", (COOKIE,), None),
}


def refused_and_nothing_spawned(served: Served, raw: str) -> None:
    response = raw_request(served, raw)
    assert response.status == 403, (raw, response)
    assert response.body in (FORBIDDEN.encode(), b"")  # b"" for HEAD: nothing of the page, nor of the run
    assert served.token not in str(response.headers) and "Set-Cookie" not in response.headers
    assert children_of(served.process.pid) == []


@pytest.mark.parametrize("what", WITHOUT_THE_SECRET)
def test_without_the_secret_every_route_is_403_and_nothing_is_spawned(served, what):
    line, headers = WITHOUT_THE_SECRET[what]
    refused_and_nothing_spawned(served, request(served, line, *headers))


@pytest.mark.parametrize("what", WRONG_HOST)
def test_with_the_secret_from_a_host_that_is_not_loopback_403(served, what):
    line, headers, host = WRONG_HOST[what]
    refused_and_nothing_spawned(served, request(served, line, *headers, host=host))


# With the secret the same routes work: the refusals above are the guard's.
WITH_THE_SECRET = {
    "token URL": ("GET /?token={token} HTTP/1.1", (), 303),
    "page": ("GET / HTTP/1.1", (COOKIE,), 200),
    "page, HEAD": ("HEAD / HTTP/1.1", (COOKIE,), 200),
    "page, localhost": ("GET / HTTP/1.1", (COOKIE, "Host: localhost:{port}"), 200),
    "static file": ("GET /static/js/textual.js HTTP/1.1", (COOKIE,), 200),
    "static file, token in the query": ("GET /static/js/textual.js?token={token} HTTP/1.1", (), 200),
    "static font": ("GET /static/fonts/RobotoMono-VariableFont_wght.ttf HTTP/1.1", (COOKIE,), 200),
    "traversal finds nothing": ("GET /static/../server.py HTTP/1.1", (COOKIE,), 404),
    "encoded traversal finds nothing": ("GET /static/%2e%2e/%2e%2e/__init__.py HTTP/1.1", (COOKIE,), 404),
    "traversal to /etc finds nothing": ("GET /static/../../../../../../etc/passwd HTTP/1.1", (COOKIE,), 404),
    "unknown path": ("GET /no/such/page HTTP/1.1", (COOKIE,), 404),
    "favicon": ("GET /favicon.ico HTTP/1.1", (COOKIE,), 404),
    "OPTIONS": ("OPTIONS / HTTP/1.1", (COOKIE,), 405),
}


@pytest.mark.parametrize("what", WITH_THE_SECRET)
def test_with_the_secret_the_same_routes_work(served, what):
    line, headers, status = WITH_THE_SECRET[what]
    host = None if any(h.startswith("Host:") for h in headers) else "127.0.0.1:{port}"
    response = raw_request(served, request(served, line, *headers, host=host))
    assert response.status == status, response
    if status == 404:  # says it is not there, and nothing else (no file, no path of this machine)
        assert response.body == b"404: Not Found"
    assert children_of(served.process.pid) == []


@pytest.mark.parametrize("how", ["cookie", "token in the query"])
def test_with_the_secret_and_its_own_origin_a_websocket_opens_a_tab(served, how):
    line, secret = ("GET /ws HTTP/1.1", (COOKIE,)) if how == "cookie" else ("GET /ws?token={token} HTTP/1.1", ())
    response = raw_request(served, request(served, line, *UPGRADE, ORIGIN, *secret))
    assert response.status == 101
    assert wait_for(lambda: children_of(served.process.pid) == [], TAB_GONE_S) is not None  # gone with its socket


def _cmdline_and_environ(pid: int) -> bytes:
    found = b""
    for name in ("cmdline", "environ"):
        try:
            with open(f"/proc/{pid}/{name}", "rb") as f:
                found += f.read()
        except OSError:
            pass
    return found


def test_the_token_is_in_no_file_command_line_or_environment(served):
    """Any local user reads /proc/PID/cmdline; files under the run, the home or the temp dir could be shared."""
    token = served.token.encode()
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as tab:  # a tab, held open
        tab.sendall(request(served, "GET /ws HTTP/1.1", *UPGRADE, ORIGIN, COOKIE).encode() + b"\r\n\r\n")
        assert tab.recv(12) == b"HTTP/1.1 101"
        assert wait_for(lambda: children_of(served.process.pid) != [], 10) is not None
        for pid in [served.process.pid, *children_of(served.process.pid)]:
            assert token not in _cmdline_and_environ(pid), pid
    loose = []
    for path in served.cwd.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert token not in path.read_bytes(), path
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_relative_to(served.cwd / "home") and path != served.cwd / "home" and mode & 0o077:
            loose.append(f"{path} {mode:o}")
    assert loose == []  # what serve or a tab wrote for this user alone is readable by this user alone
    assert wait_for(lambda: children_of(served.process.pid) == [], TAB_GONE_S) is not None


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp* writes them) with a socket listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for row in Path(table).read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.append(address)
    return found


def test_by_default_it_listens_on_127_0_0_1_only(served):
    assert _listening(served.port) == ["0100007F"]  # 127.0.0.1, little-endian; not 0.0.0.0 nor ::
