"""`--notify-url URL`: one JSON POST per notice, sent off the training thread.

The body is one JSON object whose `text` field is the whole message, so a Slack-compatible
incoming webhook shows it as it is, and ntfy (which takes any body) shows the JSON; the other
fields are for scripts. A POST is sent by a daemon thread from a bounded queue, with a bounded
timeout: a slow, failing or unreachable endpoint never slows or stops training, and the log
says so once. The URL's path and query often hold its secret (an ntfy topic, a Slack token),
so only its scheme and host are ever printed (`redacted`).
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:  # a trainer has the engine's events anyway; a dashboard must not wait for them at start
    from tui_trainer.session.run_notices import Notice

NOTIFY_URL_ENV = "TUI_TRAINER_NOTIFY_URL"  # the flag's default, so a secret need not be on a command line
TIMEOUT_S = 3.0  # one POST; also the most the end of a run waits for its last notice
QUEUE_SIZE = 16
_DONE = object()


class BadNotifyUrl(ValueError):
    """A --notify-url that cannot be POSTed to."""


def check_url(url: str) -> str:
    """The URL if it names an http(s) host; else BadNotifyUrl saying what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadNotifyUrl(f"expected an http:// or https:// URL with a host, got {redacted(url)!r}")
    return url


def redacted(url: str) -> str:
    """The URL with what may be secret (user, path, query) replaced by '...': safe to print."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        host = f"{parts.scheme}://{parts.hostname}{port}" if parts.scheme and parts.hostname else "a URL"
    except ValueError:
        return "a URL"
    return host + ("/..." if parts.path.strip("/") or parts.query or parts.fragment else "")


def payload(notice: Notice, host: str | None = None) -> dict[str, object]:
    """The JSON a notice is POSTed as."""
    at = notice.time or time.time()
    return {
        "text": f"tui-trainer: {notice.text}",
        "event": notice.kind,
        "run_dir": notice.run_dir,
        "run_id": notice.run_id,
        "job": notice.job,
        "step": notice.step,
        "target": notice.target,
        "reason": notice.reason,
        "metrics": notice.metrics,
        "host": host if host is not None else socket.gethostname(),
        "time": datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="seconds"),
    }


class WebhookNotifier:
    """POSTs notices to one URL from a daemon thread. `post` never blocks; `close` waits a bounded time.

    `say(line)` is called, from that thread, once for the first failure (and once if notices
    come faster than they can be sent); never with the URL's path or query.
    """

    def __init__(self, url: str, say: Callable[[str], None], timeout: float = TIMEOUT_S,
                 queue_size: int = QUEUE_SIZE) -> None:
        self.url = check_url(url)
        self.timeout = timeout
        self.sent = 0
        self._say = say
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._failed_once = self._dropped_once = False
        self._thread = threading.Thread(target=self._send_all, name="notify-url", daemon=True)
        self._thread.start()

    def post(self, notice: Notice) -> None:
        try:
            self._queue.put_nowait(notice)
        except queue.Full:
            if not self._dropped_once:
                self._dropped_once = True
                self._say(f"notify-url: notices come faster than {redacted(self.url)} takes them; "
                          "some are dropped (training is not affected)")

    def close(self, wait_s: float | None = None) -> bool:
        """Send what is queued, waiting at most `wait_s` (default: one timeout); True if all went."""
        deadline = time.monotonic() + (self.timeout + 0.5 if wait_s is None else wait_s)
        try:
            self._queue.put(_DONE, timeout=max(0.0, deadline - time.monotonic()))
        except queue.Full:
            return False
        self._thread.join(max(0.0, deadline - time.monotonic()))
        return not self._thread.is_alive()

    def _send_all(self) -> None:
        while (notice := self._queue.get()) is not _DONE:
            try:
                self._send(notice)
                self.sent += 1
            except Exception as exc:  # noqa: BLE001 (whatever the endpoint does, it never stops the run)
                self._failed(notice, exc)

    def _send(self, notice: Notice) -> None:
        body = json.dumps(payload(notice)).encode()
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "tui-trainer",
            "Title": notice.title.encode("ascii", "replace").decode(),  # ntfy's title; others ignore it
        })
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # an http(s) URL: check_url
            response.read(4096)

    def _failed(self, notice: Notice, exc: Exception) -> None:
        if self._failed_once:
            return
        self._failed_once = True
        self._say(f"notify-url: the {notice.kind} notice to {redacted(self.url)} was not sent "
                  f"({self._why(exc)}); training is not affected, and later failures are not logged")

    def _why(self, exc: Exception) -> str:
        if isinstance(exc, urllib.error.HTTPError):
            return f"HTTP {exc.code}"
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return f"no answer within {self.timeout:g} s"
        text = str(getattr(reason, "strerror", None) or reason) or type(exc).__name__
        parts = urlsplit(self.url)
        for secret in (self.url, parts.path, parts.query, parts.netloc.rpartition("@")[0]):
            if secret and secret != "/":
                text = text.replace(secret, "...")
        return text
