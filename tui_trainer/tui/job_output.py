"""Moved to `tui_trainer.session.job_output`, plain Python that needs no Textual."""

from tui_trainer.session.job_output import Sink, capture_job_output

__all__ = ["Sink", "capture_job_output"]
