"""Jobs written the way users write them: torch's own DataLoader over a TensorDataset, shuffled.

The model has dropout, so every step draws from the global torch RNG: a loader that drew from
it too, or an RNG stream not restored exactly, would show as a different model after a resume.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from tui_trainer import Job, job_factory
from tui_trainer.engine.batches import LoaderBatches

SAMPLES = 96
FEATURES = 8


def regression_data(samples: int = SAMPLES) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    xs = torch.randn(samples, FEATURES, generator=generator)
    weights = torch.randn(FEATURES, 1, generator=generator)
    return xs, xs @ weights + 0.1 * torch.randn(samples, 1, generator=generator)


class CountingDataset(Dataset):
    """A TensorDataset that counts the samples it was asked for, across all instances."""

    fetched = 0

    def __init__(self, *tensors: torch.Tensor) -> None:
        self.inner = TensorDataset(*tensors)

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int):
        CountingDataset.fetched += 1
        return self.inner[index]


@job_factory
def make_job(
    *,
    num_workers: int = 0,
    batch_size: int = 8,
    grad_accum_steps: int = 1,
    dropout: float = 0.1,
    ema: str = "",
    counting: bool = False,
    seed: int = 0,
    size: str = "tiny",
    device: str = "cpu",
) -> Job:
    torch.manual_seed(seed)
    xs, ys = regression_data()
    dataset = CountingDataset(xs, ys) if counting else TensorDataset(xs, ys)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers)
    model = nn.Sequential(nn.Linear(FEATURES, 16), nn.Dropout(dropout), nn.ReLU(), nn.Linear(16, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)

    def loss_fn(model, batch):
        x, y = batch
        return nn.functional.mse_loss(model(x), y)

    averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9)) if ema == "averaged" else None
    return Job(model=model, optimizer=optimizer, batches=LoaderBatches(loader, seed=seed), loss_fn=loss_fn,
               ema=averaged, batch_size=batch_size, grad_accum_steps=grad_accum_steps, device=device,
               name="loader", config={"num_workers": num_workers, "grad_accum_steps": grad_accum_steps})


class Stream(torch.utils.data.IterableDataset):
    """A stream of the regression samples that cannot say where it stands."""

    def __iter__(self):
        xs, ys = regression_data()
        yield from zip(xs, ys)


@job_factory
def make_stream_job(*, size: str = "tiny", device: str = "cpu") -> Job:
    torch.manual_seed(0)
    model = nn.Linear(FEATURES, 1)
    return Job(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
               batches=LoaderBatches(DataLoader(Stream(), batch_size=8)),
               loss_fn=lambda m, b: nn.functional.mse_loss(m(b[0]), b[1]), device=device)
