"""What a trainer process tells about its run's notices: a webhook POST each, and a bell and a
desktop notification on the terminal when the run ends there (a headless run in a terminal)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from tui_trainer.session.terminal_alert import alert
from tui_trainer.session.webhook import NOTIFY_URL_ENV, WebhookNotifier, redacted

if TYPE_CHECKING:  # with the engine's events, imported by a trainer, not before a dashboard's first frame
    from tui_trainer.session.run_notices import Notice

NOTIFY_FLAG = "--notify-url"


class RunNotify:
    """Sees every event of the run (on the training thread: cheap, never blocks)."""

    def __init__(self, url: str | None, say: Callable[[str], None], terminal: TextIO | None = None) -> None:
        from tui_trainer.session.run_notices import NoticeWatcher

        self.watcher = NoticeWatcher()
        self.webhook = WebhookNotifier(url, say) if url else None
        self.terminal = terminal
        self.last: Notice | None = None

    @property
    def note(self) -> str | None:
        """The line that says where notices go, for the run's log and journal."""
        if self.webhook is None:
            return None
        return f"notices (end, failure, full disk) are POSTed to {redacted(self.webhook.url)}"

    def see(self, event: Any) -> None:
        notice = self.watcher.see(event)
        if notice is None:
            return
        self.last = notice
        if self.webhook is not None:
            self.webhook.post(notice)

    def close(self) -> None:
        """The run is over: the bell on a terminal, and the last POST sent (waiting one timeout at most)."""
        if self.terminal is not None and self.last is not None:
            with contextlib.suppress(OSError, ValueError):  # the terminal may be gone (a dropped SSH session)
                self.terminal.write(alert(self.last.title, self.last.text))
                self.terminal.flush()
        if self.webhook is not None:
            self.webhook.close()


def notify_url(args: Any) -> str | None:
    return getattr(args, "notify_url", None) or os.environ.get(NOTIFY_URL_ENV) or None


def hand_to_children(args: Any) -> None:
    """Processes this one starts (a detached trainer, ranks, a dashboard's resume) get the URL in their
    environment, not on a command line that `ps` shows every user of the machine."""
    url = notify_url(args)
    if url:
        os.environ[NOTIFY_URL_ENV] = url
        args.argv = without_url(args.argv)


def without_url(argv: Sequence[str]) -> list[str]:
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == NOTIFY_FLAG:
            skip = True
        elif not arg.startswith(NOTIFY_FLAG + "="):
            kept.append(arg)
    return kept
