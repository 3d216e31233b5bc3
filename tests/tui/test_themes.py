"""Themes: the packaged files load, --theme applies, t cycles and is remembered, broken files are reported."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tui_pilot import driving, run_async, wait_for
from tui_trainer.tui.app import make_app
from tui_trainer.tui.theme_library import (
    PACKAGED_DIR, ThemeFileError, UnknownTheme, check_theme_name, load_theme_file, load_themes,
)
from tui_trainer.tui.ui_settings import load_settings, save_setting
from tui_trainer.tui.widgets.event_log import EventLog

REPO_THEMES = Path(__file__).resolve().parents[2] / "themes"


class HeldLaunch:
    """A launch_fn that never trains: the theme tests need the screen, not a run."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    def __call__(self, **kwargs: object) -> object:
        self.gate.wait(30)
        raise RuntimeError("no run in the theme tests")


def test_packaged_themes_load_and_build_a_colour_system():
    library = load_themes([PACKAGED_DIR])
    assert library.problems == []
    assert {"dark", "light", "mono"} <= set(library.names)
    for theme in library.themes.values():
        theme.to_color_system()
    assert library.themes["light"].dark is False


def test_the_example_themes_in_the_repo_load():
    examples = sorted(REPO_THEMES.glob("*.toml"))
    assert examples, "themes/ holds at least one example theme file"
    for path in examples:
        load_theme_file(path).to_color_system()


@pytest.mark.parametrize("text, complaint", [
    ("primary = \"#123456\"\n[broken", "not valid TOML"),
    ("primary = \"#123456\"\nprimery = \"#123456\"\n", "unknown field primery"),
    ("primary = \"bluish\"\n", "not a colour"),
    ("secondary = \"#123456\"\n", "`primary` is required"),
    ("primary = \"#123456\"\ndark = \"yes\"\n", "dark must be true or false"),
])
def test_a_broken_theme_file_says_what_is_wrong(tmp_path, text, complaint):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ThemeFileError, match=complaint) as caught:
        load_theme_file(path)
    assert str(path) in str(caught.value)


def test_user_themes_load_after_the_packaged_ones_and_broken_ones_are_skipped(own_config_dir):
    user = own_config_dir / "themes"
    user.mkdir(parents=True)
    (user / "ocean.toml").write_text("primary = \"#0077BE\"\nbackground = \"#001522\"\n")
    (user / "mono.toml").write_text("primary = \"#EEEEEE\"\n")  # replaces the packaged mono
    (user / "bad.toml").write_text("primary = 3\n")
    library = load_themes()
    assert library.names[-1] == "ocean" and "bad" not in library.names
    assert library.themes["mono"].primary == "#EEEEEE"
    assert len(library.problems) == 1 and "bad.toml" in library.problems[0]
    assert library.next_after("ocean") == library.names[0]


def test_no_color_picks_the_monochrome_theme(monkeypatch):
    assert make_app(HeldLaunch()).theme == "dark"
    monkeypatch.setenv("NO_COLOR", "1")
    assert make_app(HeldLaunch()).theme == "mono"


def test_an_unknown_theme_name_is_an_error_that_lists_the_themes():
    check_theme_name("light")
    check_theme_name("nord")  # Textual's own themes work too
    with pytest.raises(UnknownTheme, match="themes: dark, light, mono"):
        check_theme_name("no-such-theme")


def test_settings_are_saved_atomically_and_a_bad_file_is_ignored(own_config_dir):
    save_setting("theme", "mono")
    save_setting("other", 1)
    path = own_config_dir / "settings.json"
    assert json.loads(path.read_text()) == {"theme": "mono", "other": 1}
    assert [p.name for p in own_config_dir.iterdir()] == ["settings.json"]  # no temporary left
    path.write_text("{not json")
    assert load_settings() == {}
    path.write_text("[1, 2]")
    assert load_settings() == {}
    save_setting("theme", "light")  # a bad file is replaced, not fatal
    assert load_settings() == {"theme": "light"}


def test_theme_flag_applies():
    app = make_app(HeldLaunch(), theme="mono")

    async def scenario():
        async with driving(app, size=(80, 24)) as pilot:
            await pilot.pause()
            assert app.theme == "mono"
            assert app.current_theme.background == "#000000"

    run_async(scenario)
    assert load_settings() == {}  # a theme given on the command line is not remembered


def test_t_cycles_themes_and_the_choice_is_remembered(own_config_dir):
    first = make_app(HeldLaunch())

    async def cycle():
        async with driving(first) as pilot:
            assert first.theme == "dark"  # nothing remembered yet
            await pilot.press("t")
            assert first.theme == "light"
            await pilot.press("t")
            assert first.theme == "mono"
            await wait_for(pilot, lambda: load_settings().get("theme") == "mono", timeout=5, what="the saved theme")

    run_async(cycle)
    assert json.loads((own_config_dir / "settings.json").read_text())["theme"] == "mono"

    second = make_app(HeldLaunch())

    async def reopen():
        async with driving(second) as pilot:
            await pilot.pause()
            assert second.theme == "mono"

    run_async(reopen)

    # --theme applies to one launch; it does not replace what t chose.
    assert make_app(HeldLaunch(), theme="light").theme == "light"
    assert load_settings()["theme"] == "mono"


def test_a_broken_theme_file_is_reported_and_the_app_still_starts(own_config_dir):
    user = own_config_dir / "themes"
    user.mkdir(parents=True)
    (user / "broken.toml").write_text("primary = \"#12345\"\nthis is not toml\n")
    app = make_app(HeldLaunch(), theme="broken")

    async def scenario():
        async with driving(app) as pilot:
            await pilot.pause()
            assert app.theme == "dark"  # fell back to the default
            messages = [n.message for n in app._notifications]
            assert any("broken.toml" in m and "not valid TOML" in m for m in messages), messages
            assert any("no theme named 'broken'" in m for m in messages), messages
            assert any("broken.toml" in line for line in app.query_one(EventLog).lines_written)

    run_async(scenario)
