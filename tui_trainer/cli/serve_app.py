"""textual-serve's server, made fit to steer a run: a token, an Origin check, an offline page, bounded tabs.

Every request needs the per-launch token (in the URL once, then in an HttpOnly, SameSite=Strict
cookie) and a loopback Host, and a websocket upgrade needs the page's own Origin; all of it is
checked in a middleware, before any handler, so nothing is spawned for a request that fails.
Each tab runs `tui-trainer watch RUN_DIR` (`-P`: nothing imported from the current directory)
under `TabDriver`; when its websocket closes, the tab's process gets `quit`, then SIGTERM, then
SIGKILL, a few seconds apart, and is always reaped.

This leans on textual-serve internals (`Server._make_app`, its routes, `AppService`);
`check_textual_serve` refuses a version that lacks them rather than serving unguarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from tui_trainer.engine.errors import TrainerError

PAGE_DIR = Path(__file__).with_name("serve_page")
TAB_DRIVER = "tui_trainer.tui.web_tab_driver:TabDriver"
# A closed tab's process: time to leave after `quit`, then after SIGTERM, before SIGKILL.
QUIT_GRACE_S = 3.0
TERM_GRACE_S = 2.0
FORBIDDEN = ("403: this page needs the link with its token that `tui-trainer serve` printed "
             "(http://127.0.0.1:PORT/?token=...)\n")
log = logging.getLogger("tui-trainer.serve")


class UnknownTextualServe(TrainerError):
    """A textual-serve whose internals moved: serving it unguarded would be worse than not serving."""


def check_textual_serve() -> None:
    needed = [(Server, "_make_app"), (Server, "handle_index"), (AppService, "_build_environment"),
              (AppService, "_open_app_process"), (AppService, "start"),
              (AppService, "run"), (AppService, "send_meta")]
    missing = [f"{owner.__name__}.{name}" for owner, name in needed if not callable(getattr(owner, name, None))]
    if missing:
        from importlib.metadata import version

        raise UnknownTextualServe(
            f"textual-serve {version('textual-serve')} lacks {', '.join(missing)}, which serve guards; "
            "install one it knows: pip install 'textual-serve>=1.1,<2'"
        )


def tab_command(args: Sequence[str]) -> list[str]:
    """`tui-trainer ARGS` for a tab's process, never importing from the current directory."""
    if sys.version_info >= (3, 11):
        return [sys.executable, "-P", "-m", "tui_trainer", *args]
    from tui_trainer.session.detached import child_command

    return child_command(args)


def same_secret(given: str, secret: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), secret.encode())


def is_loopback_host(host: str) -> bool:
    """`host` as a Host header gives it (`127.0.0.1:8000`, `[::1]:8000`, `localhost`): a loopback name?"""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class TabProcess(AppService):
    """One tab's `tui-trainer watch` process: spawned without a shell, and always ended and reaped."""

    def __init__(self, argv: Sequence[str], **kwargs: Any) -> None:
        super().__init__(" ".join(argv), **kwargs)
        self.argv = list(argv)

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        environment = super()._build_environment(width, height)
        environment["TEXTUAL_DRIVER"] = TAB_DRIVER
        return environment

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Any:
        self._process = process = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=self._build_environment(width, height),
        )
        self._stdin = process.stdin
        return process

    async def stop(self) -> None:
        """Ask the tab's process to quit; SIGTERM it, then SIGKILL it, if it does not."""
        task, self._task = self._task, None
        if task is None:
            return
        with contextlib.suppress(Exception):
            await self._download_manager.cancel_app_downloads(app_service_id=self.app_service_id)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.send_meta({"type": "quit"}), QUIT_GRACE_S)
        await end_process(self._process)
        try:
            await asyncio.wait_for(task, TERM_GRACE_S)  # its output ends with it
        except (asyncio.TimeoutError, asyncio.CancelledError):
            task.cancel()


async def end_process(process: Any, grace: Sequence[float] = (QUIT_GRACE_S, TERM_GRACE_S)) -> None:
    """Wait for `process` to exit, sending SIGTERM and then SIGKILL once each grace period runs out."""
    if process is None:
        return
    steps: list[tuple[int | None, float | None]] = [(None, grace[0]), (signal.SIGTERM, grace[1]),
                                                   (signal.SIGKILL, None)]
    for number, wait in steps:
        if number is not None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(number)
        try:
            await asyncio.wait_for(process.wait(), wait)
            return
        except asyncio.TimeoutError:
            continue


LISTEN_WAIT_S = 10.0


class GuardedServer(Server):
    """Serves `tab_args` (a `tui-trainer` command) to browser tabs that hold the launch's token."""

    def __init__(self, tab_args: Sequence[str], *, host: str, port: int, token: str, title: str,
                 on_started: Callable[[], None] | None = None) -> None:
        super().__init__(" ".join(tab_command(tab_args)), host=host, port=port, title=title,
                         templates_path=PAGE_DIR)
        self.tab_args = list(tab_args)
        self.token = token
        self.cookie_name = f"tui-trainer-{port}"
        self.on_started = on_started
        self._tabs: set[web.WebSocketResponse] = set()

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self.guard)
        return app

    @web.middleware
    async def guard(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """The token (or its cookie), a loopback Host and, for a websocket, this page's Origin; else 403."""
        # No Host at all (HTTP/1.0) would make aiohttp fall back to this machine's name.
        if not is_loopback_host(request.headers.get("Host", "")):
            return forbidden()
        given = request.query.get("token")
        if given is not None:
            if not same_secret(given, self.token):
                return forbidden()
            if request.path == "/" and not _is_websocket(request):
                return self._welcome(request)
        elif not same_secret(request.cookies.get(self.cookie_name, ""), self.token):
            return forbidden()
        if _is_websocket(request) and request.headers.get("Origin") != f"http://{request.host}":
            return forbidden()
        return await handler(request)

    def _welcome(self, request: web.Request) -> web.StreamResponse:
        """First visit: keep the token in a cookie and show the bare URL, so it is not left in history."""
        rest = request.query.copy()
        rest.popall("token", None)
        location = str(request.rel_url.with_query(rest)) if rest else "/"
        response = web.Response(status=303, headers={"Location": location})
        response.set_cookie(self.cookie_name, self.token, httponly=True, samesite="Strict", path="/")
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    async def handle_index(self, request: web.Request) -> web.StreamResponse:  # type: ignore[override]
        """Our page (`serve_page/`), not textual-serve's, which loads a web font."""
        context = {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": f"ws://{request.host}/ws",
            "config": {"static": {"url": "/static/"}},
            "application": {"name": self.title},
        }
        response = aiohttp_jinja2.render_template("app_index.html", request, context)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "connect-src 'self' ws://" + request.host
        )
        return response

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """One tab: its own `tui-trainer watch` process for as long as its websocket is open."""
        websocket = web.WebSocketResponse(heartbeat=15)
        width = to_int(request.query.get("width", "80"), 80)
        height = to_int(request.query.get("height", "24"), 24)
        tab: TabProcess | None = None
        self._tabs.add(websocket)
        try:
            await websocket.prepare(request)
            tab = TabProcess(tab_command(self.tab_args), write_bytes=websocket.send_bytes,
                             write_str=websocket.send_str, close=websocket.close,
                             download_manager=self.download_manager)
            await tab.start(width, height)
            await self._process_messages(websocket, tab)
        except asyncio.CancelledError:
            await websocket.close()
        except Exception as error:  # a tab's failure must not end the server
            log.exception(error)
        finally:
            self._tabs.discard(websocket)
            if tab is not None:
                await asyncio.shield(tab.stop())
        return websocket

    async def on_startup(self, app: web.Application) -> None:
        if self.on_started is not None:
            self._announcing = asyncio.get_running_loop().create_task(self._announce_when_listening())

    async def _announce_when_listening(self) -> None:
        """aiohttp starts the app before its socket listens: the URL is printed once it does, so that
        opening it at once never meets a refused connection."""
        assert self.on_started is not None
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LISTEN_WAIT_S
        while loop.time() < deadline:
            try:
                _, writer = await asyncio.open_connection(host, self.port)
            except OSError:
                await asyncio.sleep(0.01)
                continue
            writer.close()
            break
        self.on_started()

    async def on_shutdown(self, app: web.Application) -> None:
        """Close every tab, so that each ends its process and the server does not wait on them."""
        for websocket in list(self._tabs):
            with contextlib.suppress(Exception):
                await websocket.close()

    def initialize_logging(self) -> None:
        logging.basicConfig(level=logging.WARNING, format="tui-trainer serve: %(message)s")


def _is_websocket(request: web.Request) -> bool:
    return request.path == "/ws" or request.headers.get("Upgrade", "").lower() == "websocket"


def forbidden() -> web.Response:
    return web.Response(status=403, text=FORBIDDEN)
