"""Prune: a keep-last number, a live preview of exactly what it deletes and frees, then confirm.

The preview is `CheckpointStore.plan_prune`, recomputed in a thread worker as the number
changes; the modal returns the names it showed, and only those are ever deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Static
from textual.worker import get_current_worker

from tui_trainer.engine.sizes import human_bytes
from tui_trainer.engine.words import counted
from tui_trainer.tui.error_text import describe_error
from tui_trainer.tui.screens.form_modal import FormModal


@dataclass(frozen=True)
class PrunePreview:
    keep_last: int
    doomed: tuple[tuple[str, int, int], ...]  # name, step, size in bytes
    kept: tuple[tuple[str, tuple[str, ...]], ...]  # protected checkpoints and why

    @property
    def freed_bytes(self) -> int:
        return sum(size for _, _, size in self.doomed)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _, _ in self.doomed)


@dataclass(frozen=True)
class PruneRequest:
    keep_last: int
    names: tuple[str, ...]


def parse_keep_last(text: str) -> tuple[int | None, str | None]:
    """(keep_last, None) for a valid number of checkpoints to keep, else (None, what is wrong)."""
    cleaned = text.strip().replace("_", "")
    if not cleaned.isdigit():
        return None, f"{text.strip() or 'an empty value'!r} is not a whole number; type how many to keep, e.g. 3"
    keep = int(cleaned)
    if keep < 1:
        return None, ("keep-last must be at least 1 (0 would mean 'keep everything', so nothing to prune); "
                      "the best, latest, pinned and manual checkpoints are kept in any case")
    return keep, None


def preview_prune(run_dir: str | Path, keep_last: int) -> PrunePreview:
    """What `prune(keep_last)` would delete now, and what it keeps whatever the number. Reads sidecars."""
    from tui_trainer.engine.rundir.layout import store_for

    store = store_for(run_dir)
    doomed = store.plan_prune(keep_last)
    kept = []
    for c in store.list():
        reasons = tuple(c.marks) + (("manual",) if c.meta.kind == "manual" else ())
        if reasons:
            kept.append((c.meta.name, reasons))
    return PrunePreview(
        keep_last,
        tuple((c.meta.name, c.meta.step, c.meta.size_bytes or 0) for c in doomed),
        tuple(kept),
    )


def preview_lines(preview: PrunePreview) -> list[str]:
    if not preview.doomed:
        lines = [f"keep-last {preview.keep_last}: nothing to delete."]
    else:
        lines = [f"keep-last {preview.keep_last} deletes {counted(len(preview.doomed), 'checkpoint')}, "
                 f"freeing {human_bytes(preview.freed_bytes)}:"]
        lines += [f"  {name}  step {step}  {human_bytes(size)}" for name, step, size in preview.doomed]
    if preview.kept:
        kept = ", ".join(f"{name} ({' '.join(why)})" for name, why in preview.kept)
        lines.append(f"always kept: {kept}")
    return lines


class PruneScreen(FormModal[PruneRequest | None]):
    """Dismissed with the keep-last value and the previewed names to delete, or None."""

    DEFAULT_CSS = """
    PruneScreen { align: center middle; }
    PruneScreen > Vertical {
        width: 84;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $warning;
        background: $surface;
        padding: 1 2;
    }
    PruneScreen #prune-error { color: $error; height: auto; width: 100%; }
    PruneScreen #prune-error.-hidden { display: none; }
    PruneScreen #prune-scroll { height: auto; max-height: 16; }
    PruneScreen #prune-preview { height: auto; width: 100%; }
    PruneScreen #prune-live { height: auto; width: 100%; }  /* wraps: a long note is not cut off */
    PruneScreen Horizontal { height: auto; margin-top: 1; }
    PruneScreen Button { margin-right: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="prune.cancel")]
    OK_BUTTON_ID = "prune-ok"
    INTRO = "Keep the newest N rotating checkpoints; delete the older ones."

    def __init__(self, run_dir: str | Path, keep_last: int, live: bool) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.default_keep = keep_last
        self.live = live
        self.preview: Any = None  # a PrunePreview here; a subclass's own kind of preview

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.INTRO)
            yield Input(str(self.default_keep), id="prune-keep")
            yield Label("", id="prune-error", classes="-hidden")
            with VerticalScroll(id="prune-scroll"):
                yield Static("working out what would be deleted ...", id="prune-preview")
            if self.live:
                yield Label("Training is running: the trainer keeps this number from now on, so the "
                            "checkpoints do not grow back.", id="prune-live")
            with Horizontal():
                yield Button("Prune", variant="error", id="prune-ok")
                yield Button("Cancel", id="prune-cancel")

    def on_mount(self) -> None:
        field = self.query_one(Input)
        field.focus()
        field.select_all()
        self._preview(self.default_keep)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        keep, problem = parse_keep_last(event.value)
        self._show_error(problem or "")
        if keep is None:
            self.preview = None
            self.query_one("#prune-preview", Static).update("")
        elif self.preview is None or self.preview.keep_last != keep:
            self._preview(keep)

    def _submit(self) -> None:
        keep, problem = parse_keep_last(self.query_one(Input).value)
        if problem is not None or keep is None:
            self._show_error(problem or "")
            self.query_one(Input).focus()
            return
        if self.preview is None or self.preview.keep_last != keep:
            self._show_error("the preview for this number is still being worked out; confirm again in a moment")
            return
        if not self.preview.doomed and not self.live:
            self._show_error(f"keep-last {keep} deletes nothing; type a smaller number, or cancel")
            return
        self.dismiss(PruneRequest(keep, self.preview_names(self.preview)))

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _preview(self, keep: int) -> None:
        try:
            preview: Any = self.compute_preview(keep)
            problem = None
        except Exception as exc:  # a run dir gone or damaged: said here, not raised
            preview, problem = None, describe_error(exc)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_preview, keep, preview, problem)

    # What a subclass (the prune across runs) replaces: the preview, its wording, the names it returns.

    def compute_preview(self, keep: int) -> Any:
        """Called on a thread worker."""
        return preview_prune(self.run_dir, keep)

    def preview_text(self, preview: Any) -> str:
        return "\n".join(preview_lines(preview))

    def preview_names(self, preview: Any) -> tuple[str, ...]:
        return tuple(preview.names)

    def _show_preview(self, keep: int, preview: Any, problem: str | None) -> None:
        if parse_keep_last(self.query_one(Input).value)[0] != keep:
            return  # the number changed while this preview was worked out; a newer one is coming
        self.preview = preview
        if problem is not None:
            self._show_error(problem)
        self.query_one("#prune-preview", Static).update(Text(self.preview_text(preview) if preview else ""))

    def _show_error(self, text: str) -> None:
        error = self.query_one("#prune-error", Label)
        error.update(Text(text))
        error.set_class(not text, "-hidden")
