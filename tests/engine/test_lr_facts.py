"""A dashboard in another process previews the LR plan from the trainer's published facts, in the trainer's words."""

from __future__ import annotations

import json

import pytest
import torch

from tui_trainer.engine.loop.job import DEMO_JOB, load_job
from tui_trainer.engine.loop.lr_preview import LrFacts, preview
from tui_trainer.engine.loop.lr_takeover import lr_facts, preview_retarget, retarget_schedule
from tui_trainer.engine.loop.rewarm import Rewarm, RewarmRefused

torch.set_num_threads(1)


def _at(spec: str, step: int, total: int, **options):
    on_metric = spec.endswith("plateau")  # built without a target, stepped at evaluations only
    job = load_job(spec, **options) if on_metric else load_job(spec, max_iters=total, **options)
    for _ in range(step):
        job.optimizer.step()
        if not on_metric:
            job.scheduler.step()
    return job


def _said(plan, *args) -> str:
    try:
        return plan(*args)
    except RewarmRefused as exc:
        return f"refused: {exc}"


def _published(job, step: int, target: int) -> LrFacts:
    facts = LrFacts.from_json(json.loads(json.dumps(lr_facts(job, step, target))))  # as the ack carries them
    assert facts is not None
    return facts


CHOICES = [(40, None), (100, None), (30, None), (100, Rewarm(0.9, 10)), (100, Rewarm(0.5)), (100, Rewarm(0.9, 70)),
           (100, Rewarm(1.0))]


@pytest.mark.parametrize("spec", ["tests.lr_jobs:one_cycle", "tests.lr_jobs:cosine", "tests.lr_jobs:linear",
                                  "tests.lr_jobs:plateau", DEMO_JOB])
def test_the_published_facts_preview_what_the_trainer_would_do(spec):
    job = _at(spec, 20, 40, **({"size": "tiny"} if spec == DEMO_JOB else {}))
    facts = _published(job, 20, 40)
    for target, rewarm in CHOICES:
        assert _said(lambda *a: preview(facts, *a), 20, 40, target, rewarm) == \
            _said(lambda *a: preview_retarget(job, *a), 20, 40, target, rewarm)


def test_a_taken_over_schedule_is_previewed_from_its_facts_later_on_too():
    job = _at("tests.lr_jobs:one_cycle", 20, 40)
    retarget_schedule(job, 20, 40, 60)
    facts = _published(job, 20, 60)
    for _ in range(10):  # the run goes on; the dashboard learns the newer LR from the history alone
        job.optimizer.step()
        job.scheduler.step()
    later = facts.at(30, job.optimizer.param_groups[0]["lr"])
    assert later.lrs == pytest.approx([g["lr"] for g in job.optimizer.param_groups])
    for target, rewarm in CHOICES:
        assert _said(lambda *a: preview(later, *a), 30, 60, target, rewarm) == \
            _said(lambda *a: preview_retarget(job, *a), 30, 60, target, rewarm)
