"""A user's own training script, written as people write them, run through the CLI from its folder.

`mytask.py` sits in the user's current directory (not installed): a small GPT-style model that is
compiled, torch's own DataLoader over a shuffled dataset, AdamW with OneCycleLR, gradient
accumulation, and an evaluation that reports accuracy beside val_loss. Everything the issue lists
as a wall is met in one run: it trains, is extended past the schedule's end, shows its metric,
and its export loads into the plain model.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ckpt_cli import child_env

MYTASK = '''
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import tui_trainer
from tui_trainer import Job, LoaderBatches

VOCAB, BLOCK = 16, 8


class TinyGPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, 32)
        self.wpe = nn.Embedding(BLOCK, 32)
        self.block = nn.TransformerEncoderLayer(32, 2, 64, dropout=0.1, batch_first=True)
        self.lm_head = nn.Linear(32, VOCAB, bias=False)

    def forward(self, idx):
        pos = torch.arange(idx.shape[1], device=idx.device)
        return self.lm_head(self.block(self.wte(idx) + self.wpe(pos)))


def _data(seed, n):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, VOCAB, (n, BLOCK), generator=g)
    return TensorDataset(x, (x + 1) % VOCAB)  # the next token is the token plus one


@tui_trainer.job_factory
def make_job(max_iters=40, lr=3e-3, device="cpu"):
    torch.manual_seed(0)
    model = torch.compile(TinyGPT(), backend="eager")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max_iters)
    loader = DataLoader(_data(1, 256), batch_size=8, shuffle=True)
    val_x, val_y = _data(2, 64).tensors

    def loss_fn(model, batch):
        x, y = batch
        return nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())

    def evaluate(model):
        logits = model(val_x)
        return {"val_loss": nn.functional.cross_entropy(logits.flatten(0, 1), val_y.flatten()).item(),
                "accuracy": (logits.argmax(-1) == val_y).float().mean().item()}

    return Job(model=model, optimizer=optimizer, batches=LoaderBatches(loader), loss_fn=loss_fn,
               scheduler=scheduler, evaluate=evaluate, batch_size=8, grad_accum_steps=2, device=device,
               config={"vocab": VOCAB, "block": BLOCK})
'''


def tui_trainer(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The installed console script, from the user's folder, as a user runs it."""
    script = Path(sys.executable).with_name("tui-trainer")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "tui_trainer"]
    env = {**child_env(), "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)  # nothing puts the user's folder on the path but the tool itself
    return subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.timeout(300)
def test_a_users_own_job_trains_extends_shows_its_metric_and_exports(tmp_path):
    work = tmp_path / "project"
    work.mkdir()
    (work / "mytask.py").write_text(textwrap.dedent(MYTASK))

    done = tui_trainer(work, "train", "--job", "mytask:make_job", "--headless", "--run-dir", "run",
                       "--max-iters", "40", "--ckpt-every", "20", "--eval-every", "10",
                       "--monitor", "accuracy", "--mode", "max")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr

    # Past OneCycleLR's end: taken over, no crash at the old total, no jump.
    more = tui_trainer(work, "resume", "run", "--max-iters", "60", "--headless")
    assert more.returncode == 0, more.stdout + more.stderr
    assert "taken over from OneCycleLR" in more.stdout
    records = [json.loads(line) for line in (work / "run" / "history.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 61))
    lrs = [r["lr"] for r in steps[40:]]
    assert all(a >= b for a, b in zip(lrs, lrs[1:])) and lrs[-2] > 0
    assert any("accuracy" in r for r in records)

    listed = tui_trainer(work, "ckpt", "list", "run", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert {row["step"] for row in rows} >= {20, 40, 60}
    assert all("accuracy" in row["metrics"] for row in rows)

    exported = tui_trainer(work, "ckpt", "export", "run/step_00000060.pt", "weights.safetensors")
    assert exported.returncode == 0, exported.stderr
    check = subprocess.run(
        [sys.executable, "-c", textwrap.dedent("""
            from safetensors.torch import load_file
            import mytask
            model = mytask.TinyGPT()
            model.load_state_dict(load_file("weights.safetensors"), strict=True)
            print("loaded", sorted(model.state_dict())[0])
        """)], cwd=work, env={**child_env(), "PYTHONPATH": str(work)}, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and check.stdout.startswith("loaded block."), check.stderr
