"""Every key's action in the command palette (ctrl+p), by name, so no one has to remember keys.

Generated from the app's bindings: a new key shows up here with its tooltip as its name.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui_trainer.tui.screens.help_screen import app_bindings, screen_bindings

# Textual's palette already offers these itself.
OWN_COMMANDS = frozenset({"command_palette", "quit"})


def binding_commands(app: Any, screen: Any = None) -> list[tuple[str, str, Callable[[], Any]]]:
    """(name, help, run) for every bound action, named by its tooltip or description.

    A screen's own keys (the runs screen's) come first, run on that screen.
    """
    commands = []
    own = [(b, screen) for b in screen_bindings(screen)] if screen is not None else []
    for binding, namespace in own + [(b, None) for b in app_bindings(app)]:
        if binding.action in OWN_COMMANDS or not binding.description:
            continue
        name = binding.tooltip or binding.description
        help_text = f"{binding.description} (key: {app.get_key_display(binding)})"
        commands.append((name, help_text, partial(app.run_action, binding.action, namespace)))
    return commands


class BindingCommands(Provider):
    async def discover(self) -> Hits:
        for name, help_text, run in binding_commands(self.app, self.screen):
            yield DiscoveryHit(name, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, run in binding_commands(self.app, self.screen):
            # Match the short footer word too: "prune" finds "Prune old checkpoints ...".
            score = max(matcher.match(name), matcher.match(help_text))
            if score > 0:
                yield Hit(score, matcher.highlight(name), run, help=help_text)
