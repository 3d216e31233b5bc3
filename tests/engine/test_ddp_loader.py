"""`--nproc 2` over a job whose batches come from a torch DataLoader (`LoaderBatches.shard`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from loader_jobs import make_job, make_stream_job
from test_ddp import TINY, ddp_env, finish, steps_of, tui_trainer, weights

from tui_trainer.engine.checkpoints.file import load_checkpoint
from tui_trainer.engine.checkpoints.meta import checkpoint_name
from tui_trainer.engine.rundir.history import read_history
from tui_trainer.engine.rundir.layout import HISTORY_FILE

LOADER = ["--job", "loader_jobs:make_job", *TINY]


def jobs_env() -> dict[str, str]:
    """The ranks' environment, with this folder importable so `loader_jobs` is found."""
    env = ddp_env()
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env["PYTHONPATH"]])
    return env


def batch_ids(batch: tuple[torch.Tensor, torch.Tensor]) -> list[float]:
    return batch[0][:, 0].tolist()


def test_two_shards_split_each_epoch_and_each_resumes_exactly():
    whole = make_job().batches
    epoch = [x for _ in range(12) for x in batch_ids(whole.next_batch())]
    shards = [make_job().batches for _ in range(2)]
    for rank, shard in enumerate(shards):
        shard.shard(rank, 2)
    drawn = [[batch_ids(shard.next_batch()) for _ in range(6)] for shard in shards]
    assert sorted(x for rank in drawn for b in rank for x in b) == sorted(epoch)  # each sample once
    assert drawn[1][0] == epoch[8:16]  # rank 1 takes the second batch of the order

    walked = make_job().batches
    walked.shard(1, 2)
    for _ in range(4):
        walked.next_batch()
    state = walked.state_dict()
    ahead = [batch_ids(walked.next_batch()) for _ in range(5)]  # into the next epoch
    restored = make_job().batches
    restored.load_state_dict(state)
    restored.shard(1, 2)
    assert [batch_ids(restored.next_batch()) for _ in range(5)] == ahead


def test_a_dataloader_job_trains_on_two_ranks_and_resumes_bit_exact(tmp_path):
    whole_dir, cut_dir = tmp_path / "whole", tmp_path / "cut"
    whole = tui_trainer("train", "--nproc", "2", "--run-dir", str(whole_dir), "--max-iters", "16", *LOADER, env=jobs_env())
    cut = tui_trainer("train", "--nproc", "2", "--run-dir", str(cut_dir), "--max-iters", "8", *LOADER, env=jobs_env())
    code, out, err = finish(cut)
    assert code == 0, err
    assert "training on 2 processes" in out
    state = load_checkpoint(cut_dir / checkpoint_name(8), map_location="cpu")
    assert [rank["data"]["position"] for rank in state["ranks"]] == [2, 2]  # 6 batches each an epoch: mid-epoch 1

    code, _, err = finish(tui_trainer("resume", "--nproc", "2", str(cut_dir), "--max-iters", "16", *TINY, env=jobs_env()))
    assert code == 0, err
    assert finish(whole)[0] == 0
    assert steps_of(cut_dir) == steps_of(whole_dir) == list(range(1, 17))  # one continuous history
    resumed, uninterrupted = weights(cut_dir / checkpoint_name(16)), weights(whole_dir / checkpoint_name(16))
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)


def test_a_streamed_dataloader_is_refused_with_what_to_do():
    # A rank's refusal reaching the launcher as one line is shown by the failure tests
    # (tests/engine/test_ddp_failures.py); here, without starting ranks, what it says.
    with pytest.raises(ValueError, match=r"cannot be shared between processes here; train it in one process "
                                         r"\(without --nproc\)"):
        make_stream_job().batches.shard(0, 2)


def losses_of(run_dir: Path) -> list[float]:
    return [r["loss"] for r in read_history(run_dir / HISTORY_FILE) if "loss" in r]


def test_the_logged_loss_is_the_global_batchs_as_one_process_would_log_it(tmp_path):
    """Two ranks of 8 samples a batch log what one process logs with batches of 16 (the same samples)."""
    plain = ["--max-iters", "10", "--job", "loader_jobs:make_job", "--job-opt", "dropout=0.0", *TINY]
    ranks = tui_trainer("train", "--nproc", "2", "--run-dir", str(tmp_path / "ranks"), "--job-opt", "batch_size=8",
                        *plain, env=jobs_env())
    code, _, err = finish(tui_trainer("train", "--run-dir", str(tmp_path / "one"), "--job-opt", "batch_size=16",
                                      *plain, env=jobs_env()))
    assert code == 0, err
    code, _, err = finish(ranks)
    assert code == 0, err
    two, one = losses_of(tmp_path / "ranks"), losses_of(tmp_path / "one")
    assert len(two) == len(one) == 10
    assert torch.allclose(torch.tensor(two), torch.tensor(one), rtol=1e-5, atol=0), (two, one)
