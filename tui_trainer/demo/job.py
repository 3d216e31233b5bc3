"""The demo job: a character-level GPT learning to write like Jane Austen.

Every option is a plain value, so `make_job(**job.config["options"])` rebuilds the same job,
with the same vocabulary, data order and initial weights.
"""

from __future__ import annotations

import dataclasses
import functools
from importlib import resources

import torch
from torch.nn import functional as F

from tui_trainer.demo.model import GPT, ModelConfig
from tui_trainer.engine.loop.batches import EpochBatches
from tui_trainer.engine.loop.job import Job, job_factory
from tui_trainer.engine.loop.lr_schedule import WarmupCosine


@dataclasses.dataclass(frozen=True)
class DemoSize:
    """A model shape with the data windows, batch size and peak LR that suit it."""

    block_size: int
    stride: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float
    batch_size: int
    lr: float
    eval_windows: int


# Windows overlap (stride < block_size) so that each character is seen at several positions.
SIZES = {
    # for tests: about 6k parameters, a few ms a step on a laptop CPU
    "tiny": DemoSize(
        block_size=16,
        stride=8,
        n_layer=1,
        n_head=2,
        n_embd=16,
        dropout=0.0,
        batch_size=16,
        lr=1e-2,
        eval_windows=32,
    ),
    # the demo: about 110k parameters, loss below 2.6 within seconds on two CPU cores
    "small": DemoSize(
        block_size=64,
        stride=16,
        n_layer=2,
        n_head=4,
        n_embd=64,
        dropout=0.0,
        batch_size=32,
        lr=2e-3,
        eval_windows=128,
    ),
}
TRAIN_FRACTION = 0.9
WEIGHT_DECAY = 0.1


@job_factory
def make_job(
    *,
    seed: int = 1337,
    device: str = "auto",
    size: str = "small",
    batch_size: int | None = None,
    lr: float | None = None,
    max_iters: int = 2000,
) -> Job:
    """Build the demo job.

    `max_iters` is the LR schedule's length until the trainer retargets it to its own target.
    """
    if size not in SIZES:
        raise ValueError(f"unknown demo size {size!r}; choose one of: {', '.join(SIZES)}")
    shape = SIZES[size]
    batch_size = shape.batch_size if batch_size is None else batch_size
    lr = shape.lr if lr is None else lr
    check_options(seed=seed, batch_size=batch_size, lr=lr, max_iters=max_iters)
    lr = float(lr)
    target_device = resolve_device(device)

    text = load_corpus()
    vocab = build_vocab(text)
    ids = encode(text, vocab)
    split = int(len(ids) * TRAIN_FRACTION)
    window = shape.block_size + 1
    train_windows = ids[:split].unfold(0, window, shape.stride)
    val_windows = pick_evenly(ids[split:].unfold(0, window, shape.block_size), shape.eval_windows)

    config = ModelConfig(
        vocab_size=len(vocab),
        block_size=shape.block_size,
        n_layer=shape.n_layer,
        n_head=shape.n_head,
        n_embd=shape.n_embd,
        dropout=shape.dropout,
    )
    # Seeding the global RNG (not just a local generator) also makes dropout repeatable.
    torch.manual_seed(seed)
    model = GPT(config).to(target_device)
    optimizer = torch.optim.AdamW(param_groups(model, WEIGHT_DECAY), lr=lr, betas=(0.9, 0.99))
    scheduler = WarmupCosine(
        optimizer,
        peak_lr=lr,
        total_steps=max_iters,
        warmup_steps=min(100, max_iters // 10),
        min_lr=lr / 10,
    )
    options = {
        "seed": seed,
        "device": device,
        "size": size,
        "batch_size": batch_size,
        "lr": lr,
        "max_iters": max_iters,
    }
    return Job(
        name="demo",
        model=model,
        optimizer=optimizer,
        batches=EpochBatches(train_windows, batch_size, seed=seed),
        loss_fn=next_char_loss,
        scheduler=scheduler,
        evaluate=functools.partial(
            validation_loss, windows=val_windows.to(target_device), batch_size=batch_size
        ),
        grad_clip=1.0,
        batch_size=batch_size,
        tokens_per_batch=batch_size * shape.block_size,
        device=str(target_device),
        config={"model": dataclasses.asdict(config), "vocab": vocab, "options": options},
    )


def check_options(*, seed: object, batch_size: object, lr: object, max_iters: object) -> None:
    """Reject option values up front, naming the option, before any work is done."""
    for name, value, minimum in (
        ("seed", seed, None),
        ("batch_size", batch_size, 1),
        ("max_iters", max_iters, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int, got {value!r}")
        if minimum is not None and value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < 1:
        raise ValueError(f"lr must be a number between 0 and 1, got {lr!r}")


def load_corpus() -> str:
    return resources.files("tui_trainer.demo").joinpath("corpus.txt").read_text(encoding="utf-8")


def build_vocab(text: str) -> str:
    """Every character of the text, sorted, so the same text always gives the same ids."""
    return "".join(sorted(set(text)))


def encode(text: str, vocab: str) -> torch.Tensor:
    index = {char: i for i, char in enumerate(vocab)}
    return torch.tensor([index[char] for char in text], dtype=torch.long)


def decode(ids: torch.Tensor, vocab: str) -> str:
    return "".join(vocab[i] for i in ids.tolist())


def pick_evenly(rows: torch.Tensor, count: int) -> torch.Tensor:
    """`count` rows spread evenly from first to last, or all of them if there are fewer."""
    if len(rows) <= count:
        return rows.clone()
    return rows[torch.linspace(0, len(rows) - 1, count).long()]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices and embeddings only: decaying biases and norm gains just hurts."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def next_char_loss(model: torch.nn.Module, windows: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of predicting each window's characters from the ones before them."""
    windows = windows.to(next(model.parameters()).device, non_blocking=True)
    logits = model(windows[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), windows[:, 1:].reshape(-1))


@torch.no_grad()
def validation_loss(
    model: torch.nn.Module, *, windows: torch.Tensor, batch_size: int
) -> dict[str, float]:
    losses = [next_char_loss(model, chunk) * len(chunk) for chunk in windows.split(batch_size)]
    return {"val_loss": float(torch.stack(losses).sum() / len(windows))}
