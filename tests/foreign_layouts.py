"""Checkpoints in the layouts other tools write: a Hugging Face Trainer output dir, a Lightning
`.ckpt`, nanoGPT's `ckpt.pt`, and a GPT-2-like model whose output head is tied to its embedding."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from tests.factories import _CreatesFile

CONFIG = {"architectures": ["TinyModel"], "model_type": "tiny", "torch_dtype": "float32"}
# (step, epoch, train loss, eval loss, eval accuracy) per checkpoint: the later one overfits, so the
# best is the earlier one, as trainer_state.json says.
CHECKPOINTS = ((500, 1.0, 1.84, 1.92, 0.61), (1000, 2.0, 1.41, 2.05, 0.58))


def _log_history(upto: int) -> list[dict[str, Any]]:
    history = []
    for step, epoch, loss, eval_loss, accuracy in CHECKPOINTS:
        if step > upto:
            break
        history.append({"epoch": epoch - 0.5, "grad_norm": 1.7, "learning_rate": 4.5e-05, "loss": loss + 0.2,
                        "step": step - 250})
        history.append({"epoch": epoch, "grad_norm": 1.2, "learning_rate": 4.0e-05, "loss": loss, "step": step})
        history.append({"epoch": epoch, "eval_loss": eval_loss, "eval_accuracy": accuracy, "eval_runtime": 3.21,
                        "eval_samples_per_second": 311.5, "eval_steps_per_second": 39.0, "step": step})
    return history


def trainer_state(output_dir: Path, step: int, epoch: float) -> dict[str, Any]:
    return {
        "best_metric": CHECKPOINTS[0][3],
        "best_model_checkpoint": f"{output_dir.name}/checkpoint-{CHECKPOINTS[0][0]}",
        "epoch": epoch, "eval_steps": 500, "global_step": step, "is_hyper_param_search": False,
        "is_local_process_zero": True, "is_world_process_zero": True, "log_history": _log_history(step),
        "logging_steps": 250, "max_steps": 1000, "num_input_tokens_seen": 0, "num_train_epochs": 2,
        "save_steps": 500, "stateful_callbacks": {}, "total_flos": 1.2e12, "train_batch_size": 8,
        "trial_name": None, "trial_params": None,
    }


def hf_checkpoint(folder: Path, model: nn.Module, step: int, epoch: float, output_dir: Path, marker: Path) -> Path:
    """One `checkpoint-N/` as `Trainer._save_checkpoint` writes it."""
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "model.safetensors",
              metadata={"format": "pt"})
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    model(torch.ones(2, model.in_features)).sum().backward()
    optimizer.step()
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    scheduler = torch.optim.lr_scheduler.LinearLR(optimizer)
    torch.save(scheduler.state_dict(), folder / "scheduler.pt")
    torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.random.get_rng_state()},
               folder / "rng_state.pth")
    with open(folder / "training_args.bin", "wb") as f:  # a pickle that runs code if anyone loads it
        pickle.dump(_CreatesFile(marker), f)
    (folder / "trainer_state.json").write_text(json.dumps(trainer_state(output_dir, step, epoch), indent=2))
    (folder / "config.json").write_text(json.dumps(CONFIG))
    (folder / "generation_config.json").write_text(json.dumps({"_from_model_config": True}))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).write_text("{}")
    return folder


def hf_output_dir(path: Path, marker: Path) -> Path:
    """An output dir with `checkpoint-500/` and `checkpoint-1000/`, each of a slightly trained tiny model."""
    path.mkdir(parents=True)
    for step, epoch, *_ in CHECKPOINTS:
        torch.manual_seed(step)
        hf_checkpoint(path / f"checkpoint-{step}", nn.Linear(4, 3), step, epoch, path, marker)
    (path / "runs").mkdir()  # TensorBoard's event files go here
    return path


LIGHTNING_KEY = ("ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min', 'every_n_train_steps': 0, "
                 "'every_n_epochs': 1, 'train_time_interval': None}")


def lightning_checkpoint(path: Path, model: nn.Module, *, epoch: int, step: int, score: float, best: float,
                         best_name: str) -> Path:
    """A `.ckpt` as Lightning's ModelCheckpoint saves one of a LightningModule holding `self.model`."""
    optimizer = torch.optim.Adam(model.parameters())
    torch.save({
        "epoch": epoch,
        "global_step": step,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": epoch}}}},
        "callbacks": {LIGHTNING_KEY: {
            "monitor": "val_loss",
            "best_model_score": torch.tensor(best),
            "best_model_path": f"/home/user/lightning_logs/version_0/checkpoints/{best_name}",
            "current_score": torch.tensor(score),
            "dirpath": "/home/user/lightning_logs/version_0/checkpoints",
            "best_k_models": {f"/home/user/lightning_logs/version_0/checkpoints/{best_name}": torch.tensor(best)},
            "kth_best_model_path": "", "kth_value": torch.tensor(best), "last_model_path": "",
        }},
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [],
    }, path)
    return path


def nanogpt_checkpoint(path: Path, model: nn.Module, iter_num: int = 2000) -> Path:
    """nanoGPT's ckpt.pt of a model trained under torch.compile: every name starts `_orig_mod.`."""
    torch.save({
        "model": {f"_orig_mod.{k}": v for k, v in model.state_dict().items()},
        "optimizer": torch.optim.AdamW(model.parameters()).state_dict(),
        "model_args": {"n_layer": 1},
        "iter_num": iter_num,
        "best_val_loss": torch.tensor(1.47),
        "config": {"batch_size": 12},
    }, path)
    return path


class TinyGPT2(nn.Module):
    """GPT-2's naming and tying: `lm_head.weight` is `transformer.wte.weight`."""

    def __init__(self, vocab: int = 512, width: int = 64, positions: int = 16) -> None:
        super().__init__()
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(vocab, width), "wpe": nn.Embedding(positions, width), "ln_f": nn.LayerNorm(width)})
        self.lm_head = nn.Linear(width, vocab, bias=False)
        self.lm_head.weight = self.transformer["wte"].weight
