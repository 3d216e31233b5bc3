"""CPU and memory of the training process, and each GPU's load, memory and temperature.

Plain Python, no Textual: the system panel calls `SystemSampler.sample` about once a second
on a worker thread, never on the training thread. The process is read from `/proc/<pid>`
(the trainer may be another process, under `tui-trainer watch`); GPUs through NVML
(`pynvml`, from the optional `nvidia-ml-py`) when it is installed and a driver answers, and
not at all otherwise: a CPU-only machine simply has no GPU rows. A run trained by several
processes (torchrun) gets one row per rank, found from the trainer's pid (`rank_processes`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tui_trainer.session.rank_processes import RankFinder


@dataclass(frozen=True)
class ProcessStats:
    pid: int
    cpu_percent: float | None  # of one core, as top shows it; None until two samples exist
    rss_bytes: int | None
    mem_total_bytes: int | None


@dataclass(frozen=True)
class GpuStats:
    index: int
    name: str
    util_percent: int | None
    mem_used_bytes: int | None
    mem_total_bytes: int | None
    temperature_c: int | None


@dataclass(frozen=True)
class RankStats:
    rank: int
    process: ProcessStats
    gpu_mem_bytes: int | None = None  # what NVML says the rank's process holds; None without a GPU


@dataclass(frozen=True)
class SystemSample:
    process: ProcessStats | None
    gpus: tuple[GpuStats, ...] = ()
    process_note: str | None = None  # why there is no process row, e.g. the trainer is on another host
    ranks: tuple[RankStats, ...] = ()  # one per rank when several processes train the run, rank 0 first


# --- the process -------------------------------------------------------------------------------


def _clock_ticks() -> int:
    try:
        return os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError, AttributeError):
        return 100


def cpu_seconds(pid: int, proc: str = "/proc") -> float | None:
    """User + system CPU time of `pid` so far; None if it cannot be read."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        if pid == os.getpid():
            times = os.times()
            return times.user + times.system
        return None
    # The command name is in parentheses and may itself hold spaces or parentheses.
    fields = text[text.rfind(")") + 2:].split()
    try:
        return (int(fields[11]) + int(fields[12])) / _clock_ticks()
    except (IndexError, ValueError):
        return None


def rss_bytes(pid: int, proc: str = "/proc") -> int | None:
    try:
        with open(f"{proc}/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return None


def mem_total_bytes(proc: str = "/proc") -> int | None:
    try:
        with open(f"{proc}/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


class ProcessSampler:
    """CPU % between successive samples of the same process, and its resident memory."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, proc: str = "/proc") -> None:
        self.clock = clock
        self.proc = proc
        self._last: tuple[int, float, float] | None = None  # pid, cpu seconds, wall time
        self._mem_total = mem_total_bytes(proc)

    def sample(self, pid: int) -> ProcessStats | None:
        cpu = cpu_seconds(pid, self.proc)
        if cpu is None:
            return None
        now = self.clock()
        percent = None
        if self._last is not None and self._last[0] == pid and now > self._last[2]:
            percent = max(0.0, 100.0 * (cpu - self._last[1]) / (now - self._last[2]))
        self._last = (pid, cpu, now)
        return ProcessStats(pid, percent, rss_bytes(pid, self.proc), self._mem_total)


# --- GPUs ----------------------------------------------------------------------------------------


def _import_nvml() -> Any:
    import pynvml  # optional: pip install 'tui-trainer[gpu]'

    return pynvml


class GpuSampler:
    """Every GPU NVML can see. Without pynvml, or without a driver, it reports none, for good."""

    def __init__(self, nvml_loader: Callable[[], Any] = _import_nvml) -> None:
        self._loader = nvml_loader
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._names: list[str] = []
        self.unavailable: str | None = None  # why there are no GPU rows

    def _start(self) -> bool:
        if self._nvml is not None:
            return True
        if self.unavailable is not None:
            return False
        try:
            nvml = self._loader()
            nvml.nvmlInit()
            count = nvml.nvmlDeviceGetCount()
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            names = [_text(nvml.nvmlDeviceGetName(h)) for h in handles]
        except Exception as exc:  # ImportError, or NVMLError (no driver, no device): no GPU rows
            self.unavailable = f"{type(exc).__name__}: {exc}"
            return False
        self._nvml, self._handles, self._names = nvml, handles, names
        return True

    def sample(self) -> tuple[GpuStats, ...]:
        if not self._start():
            return ()
        nvml = self._nvml
        stats = []
        for index, (handle, name) in enumerate(zip(self._handles, self._names)):
            util = _ask(lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            memory = _ask(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
            temp = _ask(lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
            stats.append(GpuStats(
                index, name, util,
                getattr(memory, "used", None), getattr(memory, "total", None), temp,
            ))
        return tuple(stats)

    def memory_by_pid(self) -> dict[int, int]:
        """GPU memory each compute process holds, summed over the GPUs; {} without NVML."""
        if not self._start():
            return {}
        held: dict[int, int] = {}
        for handle in self._handles:
            for proc in _ask(lambda: self._nvml.nvmlDeviceGetComputeRunningProcesses(handle)) or ():
                used = getattr(proc, "usedGpuMemory", None)
                if isinstance(used, int):
                    held[proc.pid] = held.get(proc.pid, 0) + used
        return held

    def close(self) -> None:
        if self._nvml is not None:
            _ask(self._nvml.nvmlShutdown)
            self._nvml = None


def _ask(call: Callable[[], Any]) -> Any:
    """One NVML query; a metric a GPU does not support (or a lost GPU) is shown as unknown."""
    try:
        return call()
    except Exception:
        return None


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class SystemSampler:
    """The process and the GPUs, sampled together. Use from one thread at a time."""

    def __init__(self, process: ProcessSampler | None = None, gpus: GpuSampler | None = None,
                 ranks: RankFinder | None = None) -> None:
        self.process = process or ProcessSampler()
        self.gpus = gpus or GpuSampler()
        self.ranks = ranks or RankFinder(self.process.proc)
        self._rank_samplers: dict[int, ProcessSampler] = {}

    def sample(self, pid: int | None, note: str | None = None) -> SystemSample:
        process = self.process.sample(pid) if pid is not None else None
        if process is None and note is None:
            note = "the training process is not visible from here" if pid is not None else "no training process"
        gpus = self.gpus.sample()
        ranks = self._sample_ranks(process, bool(gpus)) if process is not None else ()
        return SystemSample(process, gpus, None if process else note, ranks)

    def _sample_ranks(self, rank0: ProcessStats, gpus: bool) -> tuple[RankStats, ...]:
        found = self.ranks.ranks_of(rank0.pid)
        if len(found) < 2:
            return ()
        samplers = {r.pid: self._rank_samplers.get(r.pid) or ProcessSampler(self.process.clock, self.process.proc)
                    for r in found if r.pid != rank0.pid}
        self._rank_samplers = samplers  # a rank that is gone is forgotten
        held = self.gpus.memory_by_pid() if gpus else {}
        stats = []
        for r in found:
            process = rank0 if r.pid == rank0.pid else samplers[r.pid].sample(r.pid)
            if process is not None:
                stats.append(RankStats(r.rank, process, held.get(r.pid)))
        return tuple(stats)

    def close(self) -> None:
        self.gpus.close()
