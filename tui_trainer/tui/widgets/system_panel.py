"""CPU and memory of the training process (a line per rank when several train the run), and a line per GPU.

A CPU-only machine has no GPU lines.

Sampled every `SAMPLE_INTERVAL_S` on a worker thread (NVML calls can stall on a busy GPU),
one sample at a time: a stalled one is skipped, not queued behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from textual import work
from textual.widgets import Static

from tui_trainer.engine.sizes import human_bytes
from tui_trainer.session.system_stats import GpuStats, RankStats, SystemSample, SystemSampler
from tui_trainer.tui.widgets.live_text import show_text

SAMPLE_INTERVAL_S = 1.0
HOT_GPU_C = 85
RANK_LINES_SHOWN = 8  # more ranks than this are counted on one line, so the panel stays a few lines high

# () -> (pid of the training process, or None and why it cannot be seen)
PidSource = Callable[[], tuple[int | None, str | None]]


def this_process() -> tuple[int | None, str | None]:
    return os.getpid(), None


def describe_system(sample: SystemSample | None) -> str:
    if sample is None:
        return "process: sampling..."
    proc = sample.process
    if proc is None:
        lines = [f"process: {sample.process_note or '-'}"]
    elif sample.ranks:
        lines = [describe_rank(rank) for rank in sample.ranks[:RANK_LINES_SHOWN]]
        if len(sample.ranks) > RANK_LINES_SHOWN:
            lines.append(f"... and {len(sample.ranks) - RANK_LINES_SHOWN} more ranks")
    else:
        cpu = "-" if proc.cpu_percent is None else f"{proc.cpu_percent:.0f}%"
        rss = human_bytes(proc.rss_bytes)
        share = f" ({100 * proc.rss_bytes / proc.mem_total_bytes:.0f}% of {human_bytes(proc.mem_total_bytes)})" if (
            proc.rss_bytes and proc.mem_total_bytes) else ""
        lines = [f"process {proc.pid}: CPU {cpu} · RAM {rss}{share}"]
    lines += [describe_gpu(gpu) for gpu in sample.gpus]
    return "\n".join(lines)


def describe_rank(rank: RankStats) -> str:
    proc = rank.process
    cpu = "-" if proc.cpu_percent is None else f"{proc.cpu_percent:.0f}%"
    gpu = "" if rank.gpu_mem_bytes is None else f" · GPU {rank.gpu_mem_bytes / 1e9:.1f} GB"
    return f"rank {rank.rank} pid {proc.pid}: CPU {cpu} · RAM {human_bytes(proc.rss_bytes)}{gpu}"


def describe_gpu(gpu: GpuStats) -> str:
    util = "-" if gpu.util_percent is None else f"{gpu.util_percent}%"
    if gpu.mem_used_bytes is not None and gpu.mem_total_bytes:
        memory = f"{gpu.mem_used_bytes / 1e9:.1f}/{gpu.mem_total_bytes / 1e9:.1f} GB"
    else:
        memory = "- GB"
    temp = "-" if gpu.temperature_c is None else f"{gpu.temperature_c}°C"
    if gpu.temperature_c is not None and gpu.temperature_c >= HOT_GPU_C:
        temp += " HOT"
    return f"GPU{gpu.index}: {util} · {memory} · {temp}"


class SystemPanel(Static):
    DEFAULT_CSS = """
    SystemPanel {
        height: auto;
        padding: 0 1;
        color: $text-muted;
    }
    """

    def __init__(self, sampler: SystemSampler | None = None, pid_source: PidSource = this_process,
                 **kwargs: Any) -> None:
        super().__init__("process: sampling...", markup=False, **kwargs)
        self.sampler = sampler or SystemSampler()
        self.pid_source = pid_source
        self.sample: SystemSample | None = None
        self._busy = False
        self._shown: str | None = None

    def on_mount(self) -> None:
        self.set_interval(SAMPLE_INTERVAL_S, self._sample_soon)
        self._sample_soon()

    def on_unmount(self) -> None:
        if not self._busy:
            self.sampler.close()

    def _sample_soon(self) -> None:
        if not self._busy:
            self._busy = True
            self._sample()

    @work(thread=True, group="system-panel", exit_on_error=False)
    def _sample(self) -> None:
        try:
            pid, note = self.pid_source()
            sample = self.sampler.sample(pid, note)
        except Exception as exc:  # a broken sample must not take the dashboard down
            sample = SystemSample(None, (), f"cannot sample: {type(exc).__name__}")
        try:
            self.app.call_from_thread(self.show_sample, sample)
        except RuntimeError:
            pass  # the app is closing

    def show_sample(self, sample: SystemSample) -> None:
        self._busy = False
        self.sample = sample
        text = describe_system(sample)
        if text != self._shown:
            self._shown = text
            show_text(self, text)
