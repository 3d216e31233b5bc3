import json
import math

import pytest
import torch

from tui_trainer.demo.job import SIZES, build_vocab, decode, encode, load_corpus, make_job
from tui_trainer.demo.model import GPT, ModelConfig
from tui_trainer.engine.loop.job import DEMO_JOB, BatchSource, Job, Retargetable, load_job


def tiny_job(**options) -> Job:
    return make_job(size="tiny", device="cpu", **options)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_make_job_builds_a_complete_job():
    job = tiny_job()
    assert isinstance(job, Job)
    assert job.name == "demo"
    assert isinstance(job.batches, BatchSource)
    assert isinstance(job.scheduler, Retargetable)
    assert job.grad_clip == 1.0
    assert job.device == "cpu"
    assert job.batch_size == SIZES["tiny"].batch_size
    assert len(job.config["vocab"]) == job.config["model"]["vocab_size"]
    assert json.loads(json.dumps(job.config)) == job.config


def test_the_demo_spec_loads_through_load_job():
    job = load_job(DEMO_JOB, size="tiny", device="cpu")
    assert job.name == "demo"


def test_tiny_is_tiny():
    parameters = sum(p.numel() for p in tiny_job().model.parameters())
    assert 1_000 < parameters < 10_000


def test_same_seed_gives_identical_weights_and_batches():
    first, second = tiny_job(seed=3), tiny_job(seed=3)
    assert same_weights(first.model, second.model)
    assert torch.equal(first.batches.next_batch(), second.batches.next_batch())
    assert not same_weights(first.model, tiny_job(seed=4).model)


def test_the_stored_options_rebuild_the_same_job():
    job = tiny_job(seed=5, lr=3e-3, batch_size=8)
    rebuilt = make_job(**job.config["options"])
    assert same_weights(job.model, rebuilt.model)
    assert rebuilt.config == job.config


def test_batches_are_windows_of_block_size_plus_one():
    job = tiny_job()
    batch = job.batches.next_batch()
    assert batch.shape == (job.batch_size, job.config["model"]["block_size"] + 1)
    assert batch.dtype == torch.long


def test_tiny_loss_falls_over_a_hundred_steps():
    job = tiny_job()
    model = job.model.train()
    losses = []
    for _ in range(100):
        loss = job.loss_fn(model, job.batches.next_batch())
        job.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), job.grad_clip)
        job.optimizer.step()
        job.scheduler.step()
        losses.append(loss.item())
    start, end = sum(losses[:5]) / 5, sum(losses[-10:]) / 10
    assert start == pytest.approx(math.log(job.config["model"]["vocab_size"]), abs=0.3)
    assert end < start - 1.0


def test_evaluate_returns_a_finite_deterministic_val_loss():
    job = tiny_job()
    job.model.eval()
    metrics = job.evaluate(job.model)
    assert set(metrics) == {"val_loss"}
    assert math.isfinite(metrics["val_loss"])
    assert job.evaluate(job.model) == metrics


def test_the_default_small_job_builds():
    job = make_job(device="cpu")
    assert job.config["options"]["size"] == "small"
    assert job.batches.batches_per_epoch > 100


def test_corpus_ships_with_the_package_and_encodes_both_ways():
    text = load_corpus()
    assert 100_000 < len(text.encode("utf-8")) < 400_000
    vocab = build_vocab(text)
    assert vocab == build_vocab(text) == "".join(sorted(vocab))
    sample = text[:500]
    assert decode(encode(sample, vocab), vocab) == sample


@pytest.mark.parametrize(
    "options, message",
    [
        ({"size": "huge"}, "size"),
        ({"device": "toaster"}, "device"),
        ({"max_iters": 0}, "max_iters"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": -1.0}, "lr"),
        ({"lr": "fast"}, "lr"),
        ({"seed": "1"}, "seed"),
    ],
)
def test_bad_options_fail_with_a_clear_message(options, message):
    with pytest.raises(ValueError, match=message):
        make_job(**options)


def test_model_generates_within_the_vocabulary():
    config = ModelConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
    model = GPT(config).eval()
    out = model.generate(
        torch.zeros(2, 3, dtype=torch.long), 10, generator=torch.Generator().manual_seed(0)
    )
    assert out.shape == (2, 13)
    assert out.min() >= 0 and out.max() < 11


def test_model_config_rejects_heads_that_do_not_divide_the_width():
    with pytest.raises(ValueError, match="multiple of n_head"):
        ModelConfig(vocab_size=10, n_embd=10, n_head=4)
