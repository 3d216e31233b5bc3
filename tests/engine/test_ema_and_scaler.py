"""A job with an EMA of its weights and a grad scaler: both are saved and restored exactly."""

import torch
from test_resume import assert_same_tensors
from tiny_runs import stop_at

from tui_trainer.demo.job import make_job
from tui_trainer.engine.checkpoints.file import load_checkpoint
from tui_trainer.engine.checkpoints.meta import checkpoint_name
from tui_trainer.engine.loop.control import TrainingControl

TARGET = 40


class WeightsEMA:
    """A minimal EMA as users write one: shadow weights and an update count."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.9) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        for key, value in model.state_dict().items():
            self.shadow[key].mul_(self.decay).add_(value, alpha=1 - self.decay)

    def state_dict(self) -> dict:
        return {"updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.updates = state["updates"]
        self.shadow = {k: v.clone() for k, v in state["shadow"].items()}


def ema_scaler_job(**options):
    job = make_job(**options)
    job.ema = WeightsEMA(job.model)
    job.grad_scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=7)
    return job


def test_ema_and_grad_scaler_are_checkpointed_and_resume_exactly(tiny_run, resume):
    straight = tiny_run("straight", job=ema_scaler_job, max_iters=TARGET, every_steps=10)
    straight.run()

    control = TrainingControl()
    first = tiny_run("resumed", job=ema_scaler_job, max_iters=TARGET, every_steps=10, control=control,
                     on_event=stop_at(17, control, "interrupted"))
    first.run()
    saved = load_checkpoint(first.run_dir / checkpoint_name(17))
    assert saved["ema"]["updates"] == 17
    assert saved["grad_scaler"]["scale"] != 2.0**10  # it grew every 7 steps: real state to restore

    second = resume(first.run_dir, job=ema_scaler_job)
    second.run()
    a, b = straight.trainer.job, second.trainer.job
    assert b.ema.updates == TARGET
    assert_same_tensors(a.ema.state_dict(), b.ema.state_dict(), "ema")
    assert a.grad_scaler.state_dict() == b.grad_scaler.state_dict()
    assert_same_tensors(a.model.state_dict(), b.model.state_dict(), "model")
