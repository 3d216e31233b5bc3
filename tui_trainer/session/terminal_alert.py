"""A bell and a desktop notification, as escape sequences a terminal turns into one.

OSC 9 (iTerm2's; also WezTerm and Ghostty) and OSC 777 (urxvt's; also foot, and the VTE
terminals that carry Fedora's patch, such as GNOME Terminal there) travel inside the terminal's
output, so they reach the local machine through SSH; a terminal that knows neither ignores them.
One of the two is sent, not both, so a terminal that knows both shows one notification: OSC 777
where TERM or VTE_VERSION names such a terminal, OSC 9 elsewhere. Inside tmux they are
wrapped for its passthrough, which tmux passes on with `set -g allow-passthrough on` (3.3+)
and drops otherwise; the bell is tmux's own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

BELL = "\a"
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def prefers_osc_777(environ: Mapping[str, str] = os.environ) -> bool:
    """Terminals that show OSC 777 and not OSC 9; TERM reaches an SSH session, VTE_VERSION a local one."""
    term = environ.get("TERM", "")
    return term.startswith(("rxvt", "foot")) or bool(environ.get("VTE_VERSION"))


def desktop_notification(title: str, body: str, environ: Mapping[str, str] = os.environ) -> str:
    """The OSC sequence that asks the terminal for a desktop notification of `title` and `body`."""
    title, body = _plain(title), _plain(body)
    if prefers_osc_777(environ):
        sequence = f"\x1b]777;notify;{title.replace(';', ',')};{body.replace(';', ',')}\a"
    else:
        sequence = f"\x1b]9;{title}: {body}\a"  # never starts with a digit: ConEmu reads "9;N" as a command
    if environ.get("TMUX"):
        sequence = "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"
    return sequence


def alert(title: str, body: str, *, osc: bool = True, environ: Mapping[str, str] = os.environ) -> str:
    """The bell, then (with `osc`) the desktop notification."""
    return BELL + (desktop_notification(title, body, environ) if osc else "")


def _plain(text: str, limit: int = 200) -> str:
    return _UNSAFE.sub(" ", text).strip()[:limit]
