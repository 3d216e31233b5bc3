"""Theme files: the packaged ones and the user's, read into Textual themes.

A theme file is TOML with the fields of `textual.theme.Theme` (colours as strings, `dark` a
boolean, `[variables]` a table of strings); its name is the file name without `.toml`. The
packaged themes live next to this module (`themes/`), so they reach an installed wheel; the
user's live in `$XDG_CONFIG_HOME/tui-trainer/themes/` and win on a name clash. A file that
fails to load is listed in `problems` and skipped, never fatal.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from textual.color import Color, ColorParseError
from textual.theme import BUILTIN_THEMES, Theme

from tui_trainer.engine.errors import TrainerError
from tui_trainer.tui.ui_settings import config_dir

PACKAGED_DIR = Path(__file__).with_name("themes")
DEFAULT_THEME = "dark"
NO_COLOR_THEME = "mono"
COLOUR_FIELDS = ("primary", "secondary", "accent", "foreground", "background", "surface", "panel", "boost",
                 "success", "warning", "error")
OTHER_FIELDS = ("dark", "luminosity_spread", "text_alpha", "variables")


class ThemeFileError(ValueError):
    """A theme file that cannot be used; the message says which file and why."""


class UnknownTheme(TrainerError):
    """`--theme NAME` names no packaged or user theme."""


@dataclass
class ThemeLibrary:
    """The themes that loaded, in cycling order (packaged first), and the files that did not."""

    themes: dict[str, Theme] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return list(self.themes)

    def next_after(self, name: str) -> str:
        """The theme that `t` switches to from `name` (the first one if `name` is not ours)."""
        names = self.names
        if name not in names:
            return names[0]
        return names[(names.index(name) + 1) % len(names)]


def user_themes_dir() -> Path:
    return config_dir() / "themes"


def default_theme_name() -> str:
    # https://no-color.org: someone who asks for no colour gets the theme made for that.
    return NO_COLOR_THEME if os.environ.get("NO_COLOR") else DEFAULT_THEME


def load_themes(dirs: Iterable[Path] | None = None) -> ThemeLibrary:
    """Every `*.toml` in the packaged dir, then in the user's dir (missing dirs are fine)."""
    library = ThemeLibrary()
    for folder in dirs if dirs is not None else (PACKAGED_DIR, user_themes_dir()):
        try:
            paths = sorted(folder.glob("*.toml"))
        except OSError as exc:
            library.problems.append(f"theme dir {folder}: {exc.strerror or exc}")
            continue
        for path in paths:
            try:
                theme = load_theme_file(path)
            except ThemeFileError as exc:
                library.problems.append(str(exc))
            else:
                library.themes.pop(theme.name, None)  # a user's file replaces a packaged one, in its place
                library.themes[theme.name] = theme
    return library


def load_theme_file(path: Path) -> Theme:
    """The theme in `path`, or ThemeFileError saying what to fix."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ThemeFileError(f"theme file {path}: cannot read it ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ThemeFileError(f"theme file {path}: not valid TOML ({exc})") from None
    return theme_from_fields(path.stem, data, where=f"theme file {path}")


def theme_from_fields(name: str, data: dict[str, object], where: str) -> Theme:
    unknown = sorted(set(data) - set(COLOUR_FIELDS) - set(OTHER_FIELDS))
    if unknown:
        raise ThemeFileError(f"{where}: unknown field {', '.join(unknown)} "
                             f"(fields: {', '.join(COLOUR_FIELDS + OTHER_FIELDS)})")
    if "primary" not in data:
        raise ThemeFileError(f"{where}: `primary` is required, e.g. primary = \"#4C9BE8\"")
    for key in COLOUR_FIELDS:
        if key in data:
            _check_colour(data[key], f"{where}: {key}")
    if not isinstance(data.get("dark", True), bool):
        raise ThemeFileError(f"{where}: dark must be true or false")
    for key in ("luminosity_spread", "text_alpha"):
        if key in data and not isinstance(data[key], (int, float)):
            raise ThemeFileError(f"{where}: {key} must be a number")
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        raise ThemeFileError(f"{where}: [variables] must map names to strings")
    return Theme(name=name, **data)  # type: ignore[arg-type]


def _check_colour(value: object, where: str) -> None:
    if not isinstance(value, str):
        raise ThemeFileError(f"{where} must be a string such as \"#4C9BE8\"")
    try:
        Color.parse(value)
    except ColorParseError:
        raise ThemeFileError(f"{where}: {value!r} is not a colour (try \"#RRGGBB\")") from None


def check_theme_name(name: str) -> None:
    """Raise UnknownTheme, with the names there are, unless `name` is ours, the user's or Textual's."""
    library = load_themes()
    if name not in library.themes and name not in BUILTIN_THEMES:
        raise UnknownTheme(f"no theme named {name!r} (themes: {', '.join(library.names)}); "
                           f"add your own as {user_themes_dir() / (name + '.toml')}")
