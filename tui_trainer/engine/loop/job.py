"""What a user hands the engine: a model, an optimizer, batches and a loss.

A job is built by a factory, `package.module:factory`, called as `factory(**options)` and
returning a `Job`. The factory must build the same model every time it is called with the same
options, because resume rebuilds the job and loads the checkpoint into it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
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

    `loss_fn(model, batch)` returns the scalar loss tensor of one micro-batch, or a dict with that
    tensor under `loss` and named scalars to log beside it (`{"loss": loss, "accuracy": acc}`:
    numbers or one-value tensors, read on logged steps only); the trainer runs backward,
    gradient clipping, the optimizer, the scheduler and the EMA update. With
    `grad_accum_steps=K`, one step takes K batches, backpropagates each loss divided by K and
    then steps the optimizer once: a step is one optimizer step everywhere (target, history,
    checkpoints, schedule). `batch_size` is the size of one of those batches, and
    `tokens_per_batch`, if given, how many tokens one holds (for tokens/s).
    `evaluate(model)` returns metrics such as `{"val_loss": 1.23}`; the trainer calls it in
    eval mode under `torch.no_grad()` and puts the model back in train mode.
    `scheduler` is stepped once per optimizer step; if it also has `retarget(step, total)`,
    a changed iteration target re-anchors it. `ema` needs `update(model)` (or
    `update_parameters(model)`, as `torch.optim.swa_utils.AveragedModel` has), `state_dict()` and
    `load_state_dict()`. `config` holds plain values (str, numbers, bools, None, lists, dicts): it
    is stored in every checkpoint; a `Path` or a numpy scalar is turned into its plain value when
    the job is loaded, anything else is refused then.
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
    grad_accum_steps: int = 1
    tokens_per_batch: int | None = None


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


def import_factory(spec: JobFactory | str, not_from: Path | None = None) -> JobFactory:
    """The factory itself, or the one named by `package.module:factory`; errors become JobLoadError.

    A factory named by a string must be declared with `@job_factory`; anything else is refused
    before it is called. A module that is not installed is looked for in the current directory,
    as `python -m` would, unless that directory is `not_from` or inside it (a run dir: data, not code).
    """
    if callable(spec):
        return spec
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise JobLoadError(f"--job must look like package.module:factory, got {spec!r}")
    try:
        module = _import_job_module(module_name, not_from)
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


def _import_job_module(name: str, not_from: Path | None) -> Any:
    """`importlib.import_module`, and if the module is nowhere on `sys.path`, from the current directory.

    The current directory goes last on `sys.path`, never first: a file there named like an
    installed module (`torch.py`, `random.py`) must not shadow it.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        top = name.partition(".")[0]
        here = Path.cwd()
        if exc.name != top or not (here / f"{top}.py").is_file() and not (here / top).is_dir():
            raise
        if not_from is not None and here.resolve().is_relative_to(Path(not_from).resolve()):
            raise ModuleNotFoundError(
                f"{exc}; {top} is in the current directory, but that is the run dir, whose files are "
                "data and are never imported: run this from the directory that holds your job's code"
            ) from None
    if str(here) not in sys.path:
        sys.path.append(str(here))
    importlib.invalidate_caches()
    return importlib.import_module(name)


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
    accum = job.grad_accum_steps
    if isinstance(accum, bool) or not isinstance(accum, int) or accum < 1:
        raise JobLoadError(f"{spec_of(spec)}: job.grad_accum_steps must be an int >= 1, got {accum!r}")
    check_device(str(job.device))
    job.config = plain_config(job.config, spec_of(spec))
    return job


def plain_config(config: Any, spec: str) -> dict[str, Any]:
    """`config` as plain values a checkpoint can hold and `torch.load(weights_only=True)` can read.

    A `Path` becomes its string and a numpy scalar its Python number; any other object (which
    would make every checkpoint unloadable for resume) is a JobLoadError naming its key.
    """
    if not isinstance(config, Mapping):
        raise JobLoadError(f"{spec}: job.config must be a dict of plain values, got {type(config).__name__}")
    return _plain(dict(config), "job.config", spec)


_PLAIN_KEYS = (str, int, float, bool, type(None))


def _plain(value: Any, where: str, spec: str) -> Any:
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, PurePath):
        return str(value)
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic):
        return _plain(value.item(), where, spec)
    for kind in (int, float, str):  # a subclass (an IntEnum, a StrEnum) would be pickled as its class
        if isinstance(value, kind):
            return kind.__str__(value) if kind is str else kind(value)
    if isinstance(value, Mapping):
        plain = {}
        for key, item in value.items():
            plain_key = _plain(key, f"{where}[{key!r}]", spec)
            if not isinstance(plain_key, _PLAIN_KEYS):
                raise JobLoadError(f"{spec}: {where} has a key {key!r} of type {type(key).__name__}; use a string")
            plain[plain_key] = _plain(item, f"{where}[{key!r}]", spec)
        return plain
    if type(value) in (list, tuple):
        return type(value)(_plain(item, f"{where}[{i}]", spec) for i, item in enumerate(value))
    kind = type(value)
    raise JobLoadError(
        f"{spec}: {where} is a {kind.__module__}.{kind.__qualname__}, which a checkpoint cannot hold "
        "for resume; give a plain value (str, number, bool, None, list or dict), e.g. str(...) or .tolist()"
    )


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
