"""Themes in the dashboard: the start-up theme, `t` to cycle, and remembering the choice."""

from __future__ import annotations

import time
from typing import Any

from textual.binding import Binding

from tui_trainer.tui.run_model import LogLine
from tui_trainer.tui.theme_library import ThemeLibrary, default_theme_name, load_themes
from tui_trainer.tui.ui_settings import load_settings, save_setting

THEME_BINDINGS = [
    Binding("t", "cycle_theme", "Theme", tooltip="Switch to the next theme (remembered)", id="dashboard.theme"),
]


class ThemeSwitching:
    """Mixed into the dashboard app. Any theme change after start-up (`t`, the palette) is remembered."""

    theme_library: ThemeLibrary
    _theme_problems: list[str]
    _remember_theme: bool

    def setup_themes(self: Any, requested: str | None) -> None:
        """Register the theme files and pick the first of: `requested`, the remembered one, the default."""
        self.theme_library = load_themes()
        self._theme_problems = list(self.theme_library.problems)
        self._remember_theme = False
        for theme in self.theme_library.themes.values():
            self.register_theme(theme)
        remembered = load_settings().get("theme")
        candidates = [requested, remembered if isinstance(remembered, str) else None, default_theme_name()]
        for name in candidates:
            if name and name in self.available_themes:
                self.theme = name
                break
        if requested and self.theme != requested:
            self._theme_problems.append(f"no theme named {requested!r}; using {self.theme}")

    def report_theme_problems(self: Any) -> None:
        """Show the theme files that failed to load, then start remembering theme changes."""
        from tui_trainer.tui.widgets.event_log import EventLog

        for problem in self._theme_problems:
            self.notify(problem, title="theme", severity="warning", timeout=8)
            self.query_one(EventLog).add([LogLine(time.time(), problem, "warning")])
        self._remember_theme = True

    def action_cycle_theme(self: Any) -> None:
        self.theme = self.theme_library.next_after(self.theme)
        self.notify(f"theme: {self.theme}", timeout=2)

    def watch_theme(self: Any, name: str) -> None:
        if not getattr(self, "_remember_theme", False):
            return
        try:
            save_setting("theme", name)
        except OSError as exc:
            self.notify(f"could not remember the theme: {exc.strerror or exc}", severity="warning", timeout=5)
