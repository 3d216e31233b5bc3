"""The trainer a dashboard starts: its own session, no terminal, one report of how it started, a log."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tui_trainer.session.detached import LOG_FILE, DetachedTrainer

TINY = ["--job-opt", "size=tiny", "--job-opt", "device=cpu"]


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _wait(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_it_reports_its_run_dir_trains_in_a_session_of_its_own_and_shrugs_off_a_hang_up(tmp_path):
    run_dir = tmp_path / "run"
    trainer = DetachedTrainer(["train", "--run-dir", str(run_dir), "--max-iters", "100000", "--ckpt-every", "0",
                               *TINY, "--headless"])
    trainer.start()
    try:
        report = trainer.wait_launched(timeout=90)
        assert report is not None and report.error is None and report.run_dir == run_dir.resolve()
        assert any("new run" in note for note in report.notes)
        assert os.getsid(trainer.pid) == trainer.pid  # no controlling terminal of ours to lose
        history = run_dir / "history.jsonl"
        _wait(lambda: history.exists() and history.stat().st_size > 0)
        os.kill(trainer.pid, signal.SIGHUP)
        size = history.stat().st_size
        _wait(lambda: history.stat().st_size > size + 1000)  # still training
        assert trainer.poll_exit() is None
        os.kill(trainer.pid, signal.SIGINT)  # an explicit stop saves and ends it
        assert trainer.process.wait(60) == 130
    finally:
        if trainer.poll_exit() is None:
            trainer.process.kill()
    log = (run_dir / LOG_FILE).read_text()
    assert "started in the background" in log and "saved interrupted checkpoint" in log
    assert log.rstrip().endswith("exits with status 130")


def test_a_trainer_that_cannot_start_says_why_in_one_line_with_its_exit_code(tmp_path):
    trainer = DetachedTrainer(["train", "--job", "no_such_module:make_job", "--run-dir", str(tmp_path / "run"),
                               "--headless"])
    trainer.start()
    report = trainer.wait_launched(timeout=90)
    assert report.run_dir is None and report.exit_code == 2
    assert report.error == "cannot import job module 'no_such_module': No module named 'no_such_module'"
    assert not (tmp_path / "run").exists()


def test_the_dashboards_trainer_pauses_on_a_full_disk_where_a_headless_one_stops(monkeypatch):
    from tui_trainer.cli import train_commands

    asked = {}

    def launch(**kwargs):
        asked.update(kwargs)
        raise RuntimeError("enough")

    monkeypatch.setattr("tui_trainer.session.detached.report_failed", lambda message: None)
    for detached, expected in ((True, "pause"), (False, "stop")):
        with pytest.raises(RuntimeError):
            train_commands._drive_headless(launch, detached=detached)
        assert asked["when_disk_full"] == expected


def test_a_two_rank_run_reports_rank_0s_run_dir_and_save_and_stop_reaches_every_rank(tmp_path):
    from tui_trainer.engine.rundir.lock import lock_holder
    from tui_trainer.session.rank_processes import find_ranks
    from tui_trainer.session.watch_control import WatchControl

    run_dir = tmp_path / "run"
    trainer = DetachedTrainer(["train", "--nproc", "2", "--run-dir", str(run_dir), "--max-iters", "100000",
                               "--ckpt-every", "0", *TINY, "--headless"])
    trainer.start()
    try:
        report = trainer.wait_launched(timeout=90)
        assert report is not None and report.error is None and report.run_dir == run_dir.resolve()
        assert report.pid == trainer.pid  # the process that started torchrun, which passes a signal on
        assert any("training on 2 processes" in note for note in report.notes)  # rank 0's words
        _wait(lambda: (run_dir / "control_ack.json").exists())  # rank 0 listens to the control file
        ranks = find_ranks(lock_holder(run_dir).pid)  # rank 0 holds the run dir
        assert [r.rank for r in ranks] == [0, 1]
        control, errors = WatchControl(run_dir), []
        control.on_error = errors.append
        assert control.end_run(save=True), errors  # through the control file, as the dashboard's q
        assert trainer.process.wait(60) == 0
        assert not any(os.path.exists(f"/proc/{r.pid}") for r in ranks)
    finally:
        if trainer.poll_exit() is None:
            os.kill(trainer.pid, signal.SIGKILL)
    log = (run_dir / LOG_FILE).read_text()
    assert log.startswith("--- ") and f"trainer pid {trainer.pid} started in the background" in log
    assert "saved interrupted checkpoint" in log and "\x1e" not in log
    assert log.rstrip().endswith("exits with status 0 (torchrun, 2 ranks)")


def test_a_two_rank_run_that_cannot_start_says_rank_0s_reason(tmp_path):
    trainer = DetachedTrainer(["train", "--nproc", "2", "--job", "no_such_module:make_job",
                               "--run-dir", str(tmp_path / "run"), "--headless"])
    trainer.start()
    report = trainer.wait_launched(timeout=90)
    assert report.run_dir is None and report.exit_code == 1
    assert report.error == "cannot import job module 'no_such_module': No module named 'no_such_module'"
    assert not (tmp_path / "run").exists()
