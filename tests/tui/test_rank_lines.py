"""A run trained by several processes: its ranks found from rank 0's pid, one line each in the system panel.

The process list here is a fake `/proc`: a torchrun launcher (pid 500) with two ranks, a third
child of another launch, and an unrelated process.
"""

from __future__ import annotations

import shutil
import types
from pathlib import Path

from textual.app import App, ComposeResult
from tui_pilot import run_async

from tui_trainer.session.rank_processes import RankFinder, find_ranks, launcher_pid
from tui_trainer.session.system_stats import GpuSampler, ProcessSampler, ProcessStats, RankStats, SystemSample, SystemSampler
from tui_trainer.tui.widgets.system_panel import RANK_LINES_SHOWN, SystemPanel, describe_system

PAGE = 4096


def _process(proc: Path, pid: int, parent: int, env: dict[str, str], *, cpu_ticks: int = 100,
             pages: int = 1000, children: tuple[int, ...] = ()) -> None:
    where = proc / str(pid)
    (where / "task" / str(pid)).mkdir(parents=True, exist_ok=True)
    fields = ["S", str(parent)] + ["0"] * 9 + [str(cpu_ticks), "0"] + ["0"] * 8
    (where / "stat").write_text(f"{pid} (python -u (x)) {' '.join(fields)}\n")
    (where / "statm").write_text(f"{pages * 2} {pages} 0 0 0 0 0\n")
    (where / "environ").write_bytes(b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items()))
    (where / "task" / str(pid) / "children").write_text(" ".join(map(str, children)) + (" " if children else ""))


def _rank_env(rank: int, run_id: str = "launch-1", world: int = 2) -> dict[str, str]:
    return {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world),
            "TORCHELASTIC_RUN_ID": run_id, "PATH": "/usr/bin"}


def fake_proc(tmp_path: Path) -> Path:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "meminfo").write_text("MemTotal:       16000000 kB\n")
    _process(proc, 500, 400, {"PATH": "/usr/bin"}, children=(510, 511, 512))
    _process(proc, 510, 500, _rank_env(0), cpu_ticks=300)
    _process(proc, 511, 500, _rank_env(1), cpu_ticks=200, pages=2000)
    _process(proc, 512, 500, _rank_env(0, run_id="another-launch"))
    _process(proc, 600, 1, {"PATH": "/usr/bin"})
    return proc


def test_the_ranks_are_rank_0s_siblings_of_the_same_launch(tmp_path):
    proc = fake_proc(tmp_path)
    assert [(r.rank, r.pid, r.local_rank) for r in find_ranks(510, str(proc))] == [(0, 510, 0), (1, 511, 1)]
    assert find_ranks(600, str(proc)) == ()  # one process: no rank lines
    assert find_ranks(4242, str(proc)) == ()  # gone, or not ours to read
    assert launcher_pid(510, str(proc)) == 500 and launcher_pid(600, str(proc)) is None


def test_the_ranks_are_looked_for_again_only_when_one_is_gone_or_missing(tmp_path, monkeypatch):
    proc = fake_proc(tmp_path)
    finder = RankFinder(str(proc))
    calls = []
    real = find_ranks
    monkeypatch.setattr("tui_trainer.session.rank_processes.find_ranks",
                        lambda *a: calls.append(a) or real(*a))
    for _ in range(3):
        assert [r.pid for r in finder.ranks_of(510)] == [510, 511]
    assert len(calls) == 1  # cheap: a sample a second reads the rank list once
    shutil.rmtree(proc / "511")
    assert [r.pid for r in finder.ranks_of(510)] == [510]  # rank 1 is gone: looked for again
    assert len(calls) == 2
    finder.ranks_of(510)
    assert len(calls) == 3  # one of two ranks only: looked for again until both are there


def test_a_line_per_rank_with_its_gpu_memory_where_nvml_knows_it():
    ranks = tuple(RankStats(r, ProcessStats(510 + r, 98.0, 338_600_000, 16_000_000_000),
                            1_500_000_000 if r else None) for r in range(2))
    text = describe_system(SystemSample(ranks[0].process, (), None, ranks))
    assert text.splitlines() == ["rank 0 pid 510: CPU 98% · RAM 338.6 MB",
                                 "rank 1 pid 511: CPU 98% · RAM 338.6 MB · GPU 1.5 GB"]
    many = tuple(RankStats(r, ProcessStats(510 + r, None, 1, None)) for r in range(RANK_LINES_SHOWN + 3))
    lines = describe_system(SystemSample(many[0].process, (), None, many)).splitlines()
    assert len(lines) == RANK_LINES_SHOWN + 1 and lines[-1] == "... and 3 more ranks"


def test_the_gpu_memory_each_process_holds_through_nvml():
    class Nvml(types.SimpleNamespace):
        def nvmlInit(self): ...

        def nvmlDeviceGetCount(self):
            return 2

        def nvmlDeviceGetHandleByIndex(self, i):
            return i

        def nvmlDeviceGetName(self, h):
            return "Fake GPU"

        def nvmlDeviceGetComputeRunningProcesses(self, h):
            return [types.SimpleNamespace(pid=510 + h, usedGpuMemory=(h + 1) * 10**9),
                    types.SimpleNamespace(pid=999, usedGpuMemory=None)]  # not reported in some containers

    assert GpuSampler(lambda: Nvml()).memory_by_pid() == {510: 10**9, 511: 2 * 10**9}


class _PanelApp(App):
    def __init__(self, panel: SystemPanel) -> None:
        super().__init__()
        self.panel = panel

    def compose(self) -> ComposeResult:
        yield self.panel


def test_the_system_panel_shows_a_line_per_rank_of_the_run(tmp_path):
    proc = fake_proc(tmp_path)

    def missing():
        raise ImportError("No module named 'pynvml'")

    sampler = SystemSampler(ProcessSampler(proc=str(proc)), GpuSampler(missing))
    panel = SystemPanel(sampler, pid_source=lambda: (510, None))  # the pid rank 0 acknowledges commands with

    async def scenario():
        async with _PanelApp(panel).run_test(size=(100, 10)) as pilot:
            while panel.sample is None:
                await pilot.pause(0.05)
            lines = str(panel.render()).splitlines()
            assert lines == ["rank 0 pid 510: CPU - · RAM 4.1 MB", "rank 1 pid 511: CPU - · RAM 8.2 MB"]
            (proc / "511" / "stat").write_text((proc / "511" / "stat").read_text().replace(" 200 0 ", " 300 0 "))
            panel._sample_soon()
            while "CPU -" in str(panel.render()).splitlines()[1]:
                await pilot.pause(0.05)
            assert str(panel.render()).splitlines()[1].startswith("rank 1 pid 511: CPU ")

    run_async(scenario)
