"""Run dirs, checkpoints and foreign files for tests, written directly through the store."""

from __future__ import annotations

import copy
import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tui_trainer.engine.checkpoints.meta import FORMAT_NAME, FORMAT_VERSION, PERIODIC, CheckpointMeta, checkpoint_name
from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.checkpoints.store import CheckpointStore, StoredCheckpoint
from tui_trainer.engine.rundir.layout import HISTORY_FILE, RunInfo, write_run

RUN_ID = "20240101-000000-abcdef"
JOB = "tests.factories:no_job"


def tiny_model(step: int = 0, in_features: int = 4, out_features: int = 3) -> nn.Linear:
    """The same start for every call, moved a little further for each step."""
    torch.manual_seed(0)
    model = nn.Linear(in_features, out_features)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(step * 1e-3)
    return model


def our_state(meta: CheckpointMeta, model: nn.Module) -> dict[str, Any]:
    """A checkpoint dict in our format, as the trainer writes it; `model` is saved unchanged."""
    stepped = copy.deepcopy(model)  # only for an optimizer state with moments in it
    optimizer = torch.optim.AdamW(stepped.parameters(), lr=1e-3)
    stepped(torch.ones(2, stepped.in_features)).sum().backward()
    optimizer.step()
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "meta": meta.to_json(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": {"last_epoch": meta.step},
        "data": {"epoch": meta.epoch or 0, "position": 7, "seed": 1337},
        "rng": {"python": (3, tuple(range(5)), None), "torch": torch.get_rng_state()},
        "config": {"n_embd": 4, "lr": 1e-3},
        "target": 1000,
        "job": JOB,
        "job_options": {"size": "tiny"},
    }


def make_run_dir(path: Path, run_id: str = RUN_ID, keep_last: int = 5) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    write_run(path, RunInfo(run_id=run_id, job=JOB, policy=CheckpointPolicy(keep_last=keep_last)))
    return path


def add_checkpoint(
    directory: Path,
    step: int,
    *,
    val_loss: float | None = None,
    train_loss: float | None = 2.0,
    epoch: int | None = 0,
    kind: str = PERIODIC,
    pinned: bool = False,
    run_id: str | None = RUN_ID,
    model: nn.Module | None = None,
) -> StoredCheckpoint:
    metrics = {} if val_loss is None else {"val_loss": val_loss}
    meta = CheckpointMeta(
        name=checkpoint_name(step),
        step=step,
        epoch=epoch,
        kind=kind,
        train_loss=train_loss,
        metrics=metrics,
        metrics_step=step if metrics else None,
        run_id=run_id,
        pinned=pinned,
    )
    state = our_state(meta, model if model is not None else tiny_model(step))
    return CheckpointStore(directory, run_id).save(meta, lambda f: torch.save(state, f))


def make_run(path: Path, steps: tuple[int, ...] = (100, 200, 300), val_losses: dict[int, float] | None = None) -> Path:
    """A run dir with one checkpoint per step; val_loss falls with the step unless given."""
    make_run_dir(path)
    for step in steps:
        val = (val_losses or {}).get(step, 3.0 - step / 1000)
        add_checkpoint(path, step, val_loss=val, train_loss=2.5 - step / 1000, epoch=step // 200)
    return path


def write_history(run_dir: Path, last_step: int, eval_every: int = 50) -> None:
    lines = []
    for step in range(1, last_step + 1):
        loss = 3.0 - step / last_step
        lines.append({"step": step, "epoch": step // 200, "loss": loss, "lr": 1e-3, "time": step * 0.1})
        if step % eval_every == 0:
            lines.append({"step": step, "val_loss": 3.1 - step / last_step, "time": step * 0.1})
    (run_dir / HISTORY_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))


# --- foreign files ------------------------------------------------------------------------------


def seed_style_checkpoint(path: Path, iteration: int = 500, model: nn.Module | None = None) -> Path:
    """The plain dict many training scripts save."""
    model = model if model is not None else tiny_model(iteration)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    torch.save(
        {
            "model_state_dict": model.state_dict(),
            "optimizer_state_dict": optimizer.state_dict(),
            "iteration": iteration,
            "epoch": 3,
            "val_loss": 1.25,
            "training_history": {
                "train_loss": [3.0 - i * 0.1 for i in range(10)],
                "val_loss": [3.1 - i * 0.2 for i in range(5)],
                "lr": [0.1] * 10,
            },
        },
        path,
    )
    return path


def bare_state_dict(path: Path, step: int = 0) -> Path:
    torch.save(tiny_model(step).state_dict(), path)
    return path


class TiedModel(nn.Module):
    """An embedding and an output head that share one weight, as language models do."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 6)
        self.head = nn.Linear(6, 10, bias=False)
        self.head.weight = self.embed.weight
        self.norm = nn.LayerNorm(6)


def tied_checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    torch.save({"model": TiedModel().state_dict(), "iter_num": 42}, path)
    return path


class _CreatesFile:
    """Unpickling this calls open(marker, "w"): a file appears if the load runs code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def malicious_checkpoint(path: Path, marker: Path, zipped: bool = True) -> Path:
    payload = {"model": {"w": torch.zeros(2)}, "hook": _CreatesFile(marker)}
    if zipped:
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=2)
    return path


# --- inspection ---------------------------------------------------------------------------------


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file under `directory` with its size and mtime, to show a command changed nothing."""
    found = {}
    for root, _, files in os.walk(directory):
        for name in files:
            stat = os.stat(os.path.join(root, name))
            found[os.path.relpath(os.path.join(root, name), directory)] = (stat.st_size, stat.st_mtime_ns)
    return found


def cuda_saved_checkpoint(path: Path) -> Path:
    """A checkpoint whose tensors are tagged as saved on `cuda:0`, made without a GPU.

    torch.save records each storage's device in data.pkl; loading such a file on a CPU-only
    machine fails unless the loader maps it onto the CPU.
    """
    import zipfile

    plain = path.with_name(path.name + ".cpu")
    seed_style_checkpoint(plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            out.writestr(info.filename, data)
    plain.unlink()
    return path
