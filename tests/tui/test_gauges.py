"""The disk and system panels, and the sampler behind the system panel (with and without NVML)."""

from __future__ import annotations

import os
import time
import types
from dataclasses import dataclass

import pytest
from rich.cells import cell_len
from scripted_run import ScriptedLaunch, freeze_dashboard
from textual.app import App, ComposeResult
from tui_pilot import driving, run_async, shown_text, wait_for

from tui_trainer.engine.checkpoints.disk_forecast import DiskState, forecast
from tui_trainer.engine.checkpoints.meta import CheckpointMeta
from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.session.system_stats import GpuSampler, GpuStats, ProcessSampler, SystemSample, SystemSampler
from tui_trainer.tui.app import make_app
from tui_trainer.tui.widgets.disk_panel import DiskPanel, describe_disk, disk_forms
from tui_trainer.tui.widgets.system_panel import SystemPanel, describe_system

MB = 1_000_000


def _state(free: int, keep_last: int = 0) -> DiskState:
    metas = tuple(CheckpointMeta(f"step_{s:08d}.pt", s, run_id="r1", size_bytes=10 * MB) for s in (100, 200))
    return DiskState(metas, "r1", CheckpointPolicy(every_steps=100, keep_last=keep_last), 1000, free)


def test_disk_text_says_fits_or_warns_in_words():
    text, warning = describe_disk(forecast(_state(free=10_000 * MB), step=200))
    assert not warning and "20.0 MB in 2 ckpts" in text and "fits" in text and "end ~110 MB" in text
    text, warning = describe_disk(forecast(_state(free=45 * MB), step=200))
    assert warning and text.startswith("DISK FULL AT STEP 600")
    assert describe_disk(None) == ("disk: waiting for the run", False)
    empty = DiskState((), "r1", CheckpointPolicy(), 1000, 5 * MB)
    assert describe_disk(forecast(empty, step=0))[0] == "disk: no checkpoints yet · 5.0 MB free"



def test_a_narrow_disk_line_leaves_out_whole_parts_least_useful_first():
    result = forecast(_state(free=812_300 * MB), step=200)
    forms, _ = disk_forms(result, run_bytes=12_345 * MB)
    assert forms == [
        "disk: run 12.3 GB, 20.0 MB in 2 ckpts · 812.3 GB free · end ~110 MB, fits",
        "disk: run 12.3 GB · 812.3 GB free · end ~110 MB, fits",
        "disk: 812.3 GB free · end ~110 MB, fits",
        "disk: end ~110 MB, fits",
    ]
    for width in range(cell_len(forms[-1]), 90):
        text, _ = describe_disk(result, run_bytes=12_345 * MB, width=width)
        assert text == next(form for form in forms if cell_len(form) <= width)  # the longest that fits
    assert describe_disk(result, run_bytes=12_345 * MB, width=10)[0] == forms[-1]  # wraps, but no shorter


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (120, 40)], ids=["80x24", "100x30", "120x40"])
def test_the_disk_line_is_whole_on_one_line_in_the_dashboard(tmp_path, monkeypatch, size):
    freeze_dashboard(monkeypatch)
    app = make_app(ScriptedLaunch(tmp_path))

    async def scenario():
        async with driving(app, size=size) as pilot:
            disk = app.query_one(DiskPanel)
            await wait_for(pilot, lambda: disk.forecast is not None and disk.run_bytes is not None,
                           what="the disk forecast")
            await pilot.pause()
            text = shown_text(disk)
            assert disk.size.height == 1 and cell_len(text) <= disk.content_size.width  # not wrapped
            assert text.startswith("disk: run 4.2 MB") and text.endswith(" · 81.3 GB free · end ~8.1 MB, fits")
            if size[0] < 110:  # the whole width: room for the checkpoints' size too
                assert "4.2 MB in 3 ckpts" in text

    try:
        run_async(scenario)
    finally:
        monkeypatch.undo()
        time.tzset()


@dataclass
class _Model:
    step: int = 200
    target: int | None = None
    steps_per_sec: float = 0.0


class _PanelsApp(App):
    def __init__(self, sampler: SystemSampler) -> None:
        super().__init__()
        self.sampler = sampler

    def compose(self) -> ComposeResult:
        yield DiskPanel()
        yield SystemPanel(self.sampler)


class _FakeNvml(types.SimpleNamespace):
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, count: int = 2, fail_init: bool = False) -> None:
        super().__init__()
        self.count, self.fail_init, self.shut = count, fail_init, False

    def nvmlInit(self):
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlDeviceGetCount(self):
        return self.count

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        return b"Fake GPU"

    def nvmlDeviceGetUtilizationRates(self, h):
        return types.SimpleNamespace(gpu=87 if h == 0 else 3)

    def nvmlDeviceGetMemoryInfo(self, h):
        return types.SimpleNamespace(used=10_200_000_000, total=80_000_000_000)

    def nvmlDeviceGetTemperature(self, h, sensor):
        if h == 1:
            raise RuntimeError("not supported")  # a metric one GPU lacks is unknown, not an error
        return 88

    def nvmlShutdown(self):
        self.shut = True


def test_gpus_through_nvml_and_none_without_it():
    nvml = _FakeNvml()
    sampler = GpuSampler(lambda: nvml)
    gpus = sampler.sample()
    assert [(g.index, g.util_percent, g.temperature_c) for g in gpus] == [(0, 87, 88), (1, 3, None)]
    assert gpus[0].name == "Fake GPU" and gpus[0].mem_total_bytes == 80_000_000_000
    sampler.close()
    assert nvml.shut

    def missing():
        raise ImportError("No module named 'pynvml'")

    for broken in (GpuSampler(missing), GpuSampler(lambda: _FakeNvml(fail_init=True))):
        assert broken.sample() == () and broken.sample() == ()
        assert broken.unavailable


def test_process_cpu_and_memory_of_this_process():
    clock = [0.0]
    sampler = ProcessSampler(clock=lambda: clock[0])
    first = sampler.sample(os.getpid())
    assert first.cpu_percent is None and first.rss_bytes > 0 and first.mem_total_bytes > first.rss_bytes
    sum(i * i for i in range(300_000))  # burn some CPU
    clock[0] = 1.0
    assert sampler.sample(os.getpid()).cpu_percent > 0
    assert sampler.sample(2**22 + 12345) is None  # no such process


def test_system_text_hides_gpus_when_there_are_none():
    text = describe_system(SystemSample(None, (), "trained on gpu-box-3"))
    assert text == "process: trained on gpu-box-3"
    gpu = GpuStats(0, "x", 87, 10_200_000_000, 80_000_000_000, 88)
    from tui_trainer.session.system_stats import ProcessStats

    text = describe_system(SystemSample(ProcessStats(42, 97.4, 1_200_000_000, 32_000_000_000), (gpu,)))
    assert text.splitlines() == ["process 42: CPU 97% · RAM 1.2 GB (4% of 32.0 GB)", "GPU0: 87% · 10.2/80.0 GB · 88°C HOT"]


def test_panels_render_and_warn_in_an_app():
    async def scenario():
        app = _PanelsApp(SystemSampler(gpus=GpuSampler(lambda: _FakeNvml(count=1))))
        async with app.run_test(size=(100, 10)) as pilot:
            disk = app.query_one(DiskPanel)
            disk._got(_state(free=45 * MB), None)
            disk.show(_Model())
            assert disk.has_class("-warning") and "DISK FULL AT STEP 600" in str(disk.render())
            disk._got(_state(free=10_000 * MB), None)
            assert not disk.has_class("-warning")

            system = app.query_one(SystemPanel)
            while system.sample is None:
                await pilot.pause(0.05)
            lines = str(system.render()).splitlines()
            assert lines[0].startswith(f"process {os.getpid()}: CPU") and lines[1].startswith("GPU0: 87%")

    run_async(scenario)


def test_the_system_panel_shows_no_gpu_line_on_a_cpu_only_machine():
    def missing():
        raise ImportError("No module named 'pynvml'")

    async def scenario():
        app = _PanelsApp(SystemSampler(gpus=GpuSampler(missing)))
        async with app.run_test(size=(100, 10)) as pilot:
            system = app.query_one(SystemPanel)
            while system.sample is None:
                await pilot.pause(0.05)
            assert "GPU" not in str(system.render()) and len(str(system.render()).splitlines()) == 1

    run_async(scenario)


def test_the_forecast_is_said_to_two_digits_so_it_does_not_repaint_with_every_change_of_speed():
    from tui_trainer.tui.widgets.disk_panel import rough_bytes

    assert rough_bytes(26.4e9) == rough_bytes(26.1e9) == "26 GB"
    assert rough_bytes(803.7e3) == "800 KB" and rough_bytes(1.6e6) == "1.6 MB"
    assert rough_bytes(512) == "512 B"
