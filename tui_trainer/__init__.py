"""tui-trainer: train PyTorch models and manage their checkpoints from the terminal.

Importing this package does not import torch: `train()` and the names below are loaded when
first used. A job file needs only this package's top level::

    from tui_trainer import EpochBatches, Job

The longer paths (`tui_trainer.engine.job.Job`, `tui_trainer.engine.batches.EpochBatches`, ...)
keep working.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# The public names a job file or a script uses, and the module each lives in.
_PUBLIC = {
    "Job": "tui_trainer.engine.loop.job",
    "job_factory": "tui_trainer.engine.loop.job",
    "EpochBatches": "tui_trainer.engine.loop.batches",
    "LoaderBatches": "tui_trainer.engine.loop.loader_batches",
    "WarmupCosine": "tui_trainer.engine.loop.lr_schedule",
    "CheckpointPolicy": "tui_trainer.engine.checkpoints.policy",
    "RunSettings": "tui_trainer.engine.rundir.layout",
    "start_run": "tui_trainer.engine.loop.launch",
    "resume_run": "tui_trainer.engine.loop.launch",
    "events": "tui_trainer.engine.loop",
}

__all__ = ["train", "__version__", *_PUBLIC]


def train(*args: Any, **kwargs: Any) -> Any:
    """See `tui_trainer.api.train`."""
    from tui_trainer.api import train as _train

    return _train(*args, **kwargs)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'tui_trainer' has no attribute {name!r}")
    home = import_module(module)
    # A submodule (`events`) is an attribute of its package only once it has been imported.
    value = getattr(home, name) if hasattr(home, name) else import_module(f"{module}.{name}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
