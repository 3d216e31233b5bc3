"""What a user hands the engine: a model, an optimizer, batches and a loss.

A job is built by a factory, `package.module:factory`, called as `factory(**options)` and
returning a `Job`. The factory must build the same model every time it is called with the same
options, because resume rebuilds the job and loads the checkpoint into it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from tui_trainer.engine.errors import JobLoadError

DEMO_JOB = "tui_trainer.demo.job:make_job"


@runtime_checkable
class BatchSource(Protocol):
    """A stateful stream of training batches whose position can be saved and restored."""

    @property
    def epoch(self) -> int: ...

    def next_batch(self) -> Any: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


@runtime_checkable
class Retargetable(Protocol):
    """An LR schedule that can continue smoothly when the iteration target changes."""

    def retarget(self, step: int, new_total: int) -> str: ...


@dataclass
class Job:
    """Everything the trainer needs for one training run.

    `loss_fn(model, batch)` returns the scalar loss tensor of one step; the trainer runs
    backward, gradient clipping, the optimizer, the scheduler and the EMA update.
    `evaluate(model)` returns metrics such as `{"val_loss": 1.23}`; the trainer calls it in
    eval mode under `torch.no_grad()` and puts the model back in train mode.
    `scheduler` is stepped once per optimizer step; if it also has `retarget(step, total)`,
    a changed iteration target re-anchors it. `ema` needs `update(model)`, `state_dict()` and
    `load_state_dict()`. `config` must be JSON-serialisable: it is stored in every checkpoint.
    """

    model: Any
    optimizer: Any
    batches: BatchSource
    loss_fn: Callable[[Any, Any], Any]
    name: str = "job"
    scheduler: Any | None = None
    evaluate: Callable[[Any], Mapping[str, float]] | None = None
    ema: Any | None = None
    grad_scaler: Any | None = None
    grad_clip: float | None = None
    batch_size: int = 1
    device: str = "cpu"
    config: dict[str, Any] = field(default_factory=dict)


JobFactory = Callable[..., Job]


def spec_of(factory: JobFactory | str) -> str:
    """The `package.module:factory` spec stored in the run, so `resume` can rebuild the job."""
    if isinstance(factory, str):
        return factory
    return f"{factory.__module__}:{factory.__qualname__}"


# Set by `job_factory` on the functions that may be called by name. A run dir names the factory
# that rebuilds its job (`run.json`), and a run dir may come from someone else: a name alone
# must never be enough to call a function (`subprocess:getoutput` with a `cmd` option would run
# a shell command on `resume`).
FACTORY_MARK = "__tui_trainer_job_factory__"


def job_factory(factory: JobFactory) -> JobFactory:
    """Declare `factory` a job factory, so that `--job module:factory` and a run dir may name it."""
    setattr(factory, FACTORY_MARK, True)
    return factory


def import_factory(spec: JobFactory | str) -> JobFactory:
    """The factory itself, or the one named by `package.module:factory`; errors become JobLoadError.

    A factory named by a string must be declared with `@job_factory`; anything else is refused
    before it is called.
    """
    if callable(spec):
        return spec
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise JobLoadError(f"--job must look like package.module:factory, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise JobLoadError(f"cannot import job module {module_name!r}: {exc}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise JobLoadError(f"{module_name!r} has no callable {attr!r}")
    if getattr(factory, FACTORY_MARK, False) is not True:
        raise JobLoadError(
            f"{spec} is not declared a job factory, so it is not called: decorate it with "
            "@tui_trainer.job_factory (a run dir names the function to call, and only job factories may be called)"
        )
    return factory


def load_job(spec: JobFactory | str, **options: Any) -> Job:
    """Build the job named by `spec` with `options`; errors become JobLoadError."""
    factory = import_factory(spec)
    if isinstance(options.get("device"), str):
        check_device(options["device"])  # before the job is built, and so before anything is written
    try:
        job = factory(**options)
    except (TypeError, ValueError) as exc:
        raise JobLoadError(f"{spec_of(spec)} rejected its options {options}: {exc}") from None
    if not isinstance(job, Job):
        raise JobLoadError(f"{spec_of(spec)} returned {type(job).__name__}, expected tui_trainer.engine.job.Job")
    if not isinstance(job.batches, BatchSource):
        raise JobLoadError(
            f"{spec_of(spec)}: job.batches needs next_batch(), epoch, state_dict() and load_state_dict() "
            "(tui_trainer.engine.loop.batches.EpochBatches wraps any indexable dataset)"
        )
    check_device(str(job.device))
    return job


def check_device(device: str) -> None:
    """JobLoadError, naming the devices this machine has, if `device` cannot train here."""
    import torch

    if device == "auto":
        return
    try:
        wanted = torch.device(device)
    except (RuntimeError, TypeError):
        wanted = None
    available = available_devices()
    usable = wanted is not None and wanted.type != "meta" and (
        wanted.type == "cpu" or str(wanted) in available or (wanted.index is None and any(
            d.startswith(f"{wanted.type}:") or d == wanted.type for d in available)))
    if not usable:
        raise JobLoadError(f"device {device!r} cannot train on this machine; it has: {', '.join(available)}")


def available_devices() -> list[str]:
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        found += [f"xpu:{i}" for i in range(xpu.device_count())]
    return found
