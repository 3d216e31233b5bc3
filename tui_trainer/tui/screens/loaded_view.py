"""A read-only screen whose content is loaded on a worker thread, then shown (or why not)."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.worker import get_current_worker

from tui_trainer.tui.error_text import describe_error


class LoadedView(ModalScreen[None]):
    """Subclasses compose a Vertical (the framed box styled here) holding a VerticalScroll, load in
    `load()` (torch work is fine: it runs on a worker thread), and render in `show_result()` /
    `show_problem()` on the UI thread."""

    DEFAULT_CSS = """
    LoadedView { align: center middle; }
    LoadedView > Vertical {
        width: 100%;
        max-width: 110;
        height: 100%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    LoadedView VerticalScroll { height: 1fr; }
    """

    problem: str | None = None

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()
        self._load_in_worker()

    def action_close(self) -> None:
        self.dismiss(None)

    def load(self) -> Any:
        raise NotImplementedError

    def show_result(self, result: Any) -> None:
        raise NotImplementedError

    def show_problem(self, problem: str) -> None:
        raise NotImplementedError

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _load_in_worker(self) -> None:
        try:
            result, problem = self.load(), None
        except Exception as exc:
            result, problem = None, describe_error(exc)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._finish, result, problem)

    def _finish(self, result: Any, problem: str | None) -> None:
        self.problem = problem
        if problem is not None:
            self.show_problem(problem)
        else:
            self.show_result(result)
