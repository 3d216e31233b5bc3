"""tui-trainer: train PyTorch models and manage their checkpoints from the terminal.

Importing this package does not import torch; `train()` does, when called.
"""

from typing import Any

__version__ = "0.1.0"


def train(*args: Any, **kwargs: Any) -> Any:
    """See `tui_trainer.api.train`."""
    from tui_trainer.api import train as _train

    return _train(*args, **kwargs)
