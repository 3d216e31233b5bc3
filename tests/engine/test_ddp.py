"""`train --nproc 2` and `resume --nproc 2`: two gloo ranks on the CPU, rank 0 alone writing the run dir."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch
from tiny_runs import PYTHON, REPO_ROOT, checkpoint_kinds, child_env

from tui_trainer.cli import nproc_launch
from tui_trainer.cli.main import main
from tui_trainer.engine.checkpoints.file import load_checkpoint
from tui_trainer.engine.checkpoints.meta import INTERRUPTED, checkpoint_name
from tui_trainer.engine.rundir.history import read_history
from tui_trainer.engine.rundir.layout import HISTORY_FILE

AUDIT_DIR = Path(__file__).parent / "rank_audit"
TINY = ["--job-opt", "size=tiny", "--job-opt", "device=cpu", "--headless"]
TARGET = 150
WAIT_S = 60


def ddp_env(watch: Path | None = None, log: Path | None = None) -> dict[str, str]:
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(AUDIT_DIR), env["PYTHONPATH"]])
    if watch is not None and log is not None:
        env["TUI_TRAINER_AUDIT_DIR"], env["TUI_TRAINER_AUDIT_LOG"] = str(watch), str(log)
    return env


def tui_trainer(*argv: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([PYTHON, "-m", "tui_trainer", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env or ddp_env(), cwd=REPO_ROOT)


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=WAIT_S)
    return process.returncode, out, err


def steps_of(run_dir: Path) -> list[int]:
    return [r["step"] for r in read_history(run_dir / HISTORY_FILE) if "loss" in r]


def interrupt_after_three_losses(run: subprocess.Popen, run_dir: Path) -> tuple[int, str, str]:
    """SIGINT to the launcher once rank 0 has logged three losses, as a user's Ctrl+C mid-run; how it ended."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and run.poll() is None:
        if (run_dir / HISTORY_FILE).exists() and (run_dir / HISTORY_FILE).read_bytes().count(b'"loss"') >= 3:
            break
        time.sleep(0.02)
    run.send_signal(signal.SIGINT)
    return finish(run)


def weights(path: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(path, map_location="cpu")
    flat = {f"model.{k}": v for k, v in state["model"].items()}
    for index, moments in state["optimizer"]["state"].items():
        flat.update({f"optimizer.{index}.{k}": v for k, v in moments.items() if isinstance(v, torch.Tensor)})
    return flat


def test_two_ranks_train_one_run_and_rank_1_writes_nothing_there(tmp_path):
    run_dir = tmp_path / "run"
    log = tmp_path / "audit"
    # Through torchrun's rendezvous, as several machines would meet (here one, at a local port).
    nodes = ["--nnodes", "1", "--node-rank", "0", "--rdzv-endpoint", f"127.0.0.1:{free_port()}"]
    code, out, err = finish(tui_trainer("train", "--nproc", "2", *nodes, "--run-dir", str(run_dir), "--max-iters", "12",
                                        "--ckpt-every", "6", *TINY, env=ddp_env(run_dir, log)))
    assert code == 0, err
    assert "training on 2 processes" in out
    assert steps_of(run_dir) == list(range(1, 13))  # one history, each step once
    assert sorted(checkpoint_kinds(run_dir)) == [6, 12]
    state = load_checkpoint(run_dir / checkpoint_name(12), map_location="cpu")
    assert not any(key.startswith("module.") for key in state["model"])
    assert [rank["data"]["position"] for rank in state["ranks"]] == [12, 12]
    assert Path(f"{log}.rank0").read_text()  # the audit is on: rank 0 wrote the run dir
    assert not Path(f"{log}.rank1").exists(), Path(f"{log}.rank1").read_text()

    # Saved by two processes, it resumes on one: the same weights, the epoch where the two had reached together.
    code, out, err = finish(tui_trainer("resume", str(run_dir), "--max-iters", "16", *TINY))
    assert code == 0, err
    assert "saved by 2 processes and resumes on 1" in out
    assert steps_of(run_dir) == list(range(1, 17))
    state = load_checkpoint(run_dir / checkpoint_name(16), map_location="cpu")
    assert state["data"]["position"] == 12 * 2 + 4  # the 24 batches the two ranks drew, then 4 more


def test_sigint_saves_once_and_the_resumed_run_is_bit_exact(tmp_path):
    common = ["--max-iters", str(TARGET), "--ckpt-every", "1000", "--keep-last", "0", *TINY]
    whole = tui_trainer("train", "--nproc", "2", "--run-dir", str(tmp_path / "whole"), *common)
    cut_dir = tmp_path / "cut"
    cut = tui_trainer("train", "--nproc", "2", "--run-dir", str(cut_dir), *common)
    code, _, err = interrupt_after_three_losses(cut, cut_dir)
    assert code == 130, err
    kinds = checkpoint_kinds(cut_dir)
    assert list(kinds.values()) == [INTERRUPTED], kinds  # one save, and none under a final name
    stopped_at = next(iter(kinds))
    assert 3 <= stopped_at < TARGET
    assert "Traceback" not in err

    code, _, err = finish(tui_trainer("resume", "--nproc", "2", str(cut_dir), *TINY))
    assert code == 0, err
    assert finish(whole)[0] == 0
    assert steps_of(cut_dir) == list(range(1, TARGET + 1))
    resumed, uninterrupted = weights(cut_dir / checkpoint_name(TARGET)), weights(tmp_path / "whole" / checkpoint_name(TARGET))
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_rank_saves_its_part_and_exits_130_on_sigint(tmp_path):
    """The ranks as torchrun starts them (its environment), each sent SIGINT as torchrun forwards it."""
    run_dir = tmp_path / "run"
    port = str(free_port())
    ranks = []
    for rank in range(2):
        env = {**ddp_env(), "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
        ranks.append(tui_trainer("train", "--run-dir", str(run_dir), "--max-iters", "100000",
                                 "--ckpt-every", "100000", *TINY, env=env))
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and not (run_dir / HISTORY_FILE).exists():
        time.sleep(0.05)
    time.sleep(0.5)
    for process in ranks:
        process.send_signal(signal.SIGINT)
    outcomes = [finish(process) for process in ranks]
    assert [code for code, _, _ in outcomes] == [130, 130], [err for _, _, err in outcomes]
    assert list(checkpoint_kinds(run_dir).values()) == [INTERRUPTED]


@pytest.mark.parametrize("nproc", ["0", "-1"])
def test_nproc_below_one_is_one_line(nproc, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["train", "--nproc", nproc, "--run-dir", str(tmp_path / "run"), "--headless"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--nproc" in err
    assert not any(tmp_path.iterdir())


def test_more_processes_than_gpus_for_a_cuda_job_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(nproc_launch.TooManyProcesses, match="--nproc 1 or less"):
        nproc_launch.check_devices(2, {"device": "cuda"})
    nproc_launch.check_devices(4, {"device": "cpu"})  # the CPU takes any number


def test_each_rank_gets_the_command_less_nproc_and_headless():
    assert nproc_launch.rank_argv(["train", "--nproc", "2", "--max-iters", "5"]) == [
        "train", "--max-iters", "5", "--headless"]
    assert nproc_launch.rank_argv(["train", "--nproc", "2", "--nnodes", "2", "--node-rank=1", "--rdzv-endpoint",
                                   "n0:29400", "--rdzv-id", "x", "--max-iters", "5"]) == [
        "train", "--max-iters", "5", "--headless"]


def test_several_machines_meet_at_one_endpoint_and_what_is_missing_is_one_line(tmp_path, capsys):
    from argparse import Namespace

    args = Namespace(nproc=4, nnodes=2, node_rank=1, rdzv_endpoint="node0:29400", rdzv_id=None, run_dir=tmp_path / "r")
    assert nproc_launch.torchrun_args(args) == [
        "--nnodes", "2", "--node-rank", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", "node0:29400",
        "--rdzv-id", "r", "--nproc-per-node", "4"]
    assert nproc_launch.torchrun_args(Namespace(nproc=2, nnodes=None, rdzv_endpoint=None)) == [
        "--standalone", "--nproc-per-node", "2"]
    for argv, said in ((["--nproc", "2", "--nnodes", "2", "--node-rank", "0"], "--rdzv-endpoint"),
                       (["--nproc", "2", "--nnodes", "2", "--rdzv-endpoint", "n0:1"], "--node-rank"),
                       (["--nproc", "2", "--nnodes", "2", "--node-rank", "2", "--rdzv-endpoint", "n0:1"], "0..1"),
                       (["--nnodes", "2"], "goes with --nproc")):
        code = main(["train", *argv, "--run-dir", str(tmp_path / "run"), "--headless"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and said in err, err
    assert not any(tmp_path.iterdir())
    assert nproc_launch.rank_argv(["resume", "--nproc=3", "r", "--headless"]) == ["resume", "r", "--headless"]
