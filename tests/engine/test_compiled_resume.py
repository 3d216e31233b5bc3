"""A model wrapped by torch.compile or DataParallel saves, resumes and exports under its plain keys."""

import pytest
import torch
from safetensors.torch import load_file
from test_resume import assert_same_tensors
from tiny_runs import stop_at, without_time

from tui_trainer.demo.job import make_job
from tui_trainer.engine.checkpoints.file import load_checkpoint
from tui_trainer.engine.checkpoints.meta import checkpoint_name
from tui_trainer.engine.checkpoints.plain_keys import plain_state, renamed_for, unwrapped
from tui_trainer.engine.loop.control import TrainingControl
from tui_trainer.engine.loop.job import job_factory
from tui_trainer.engine.tools.export import export_weights

TARGET = 24
STOP = 13  # mid-way, off the every-10 checkpoints


@job_factory
def compiled_job(**options):
    job = make_job(**options)
    job.model = torch.compile(job.model, backend="eager")  # CPU-friendly: traces, runs the same kernels
    return job


@job_factory
def data_parallel_job(**options):
    job = make_job(**options)
    job.model = torch.nn.DataParallel(job.model)  # on a CPU it calls the module itself
    return job


WRAPPED = {"compiled": compiled_job, "data_parallel": data_parallel_job}


@pytest.fixture
def straight(tiny_run):
    run = tiny_run("straight", job=make_job, max_iters=TARGET, every_steps=10)
    run.run()
    return run


def interrupted(tiny_run, job):
    control = TrainingControl()
    run = tiny_run("resumed", job=job, max_iters=TARGET, every_steps=10, control=control,
                   on_event=stop_at(STOP, control, "interrupted"))
    assert run.run().reason == "interrupted"
    return run


def assert_same_as(straight, resumed):
    plain = straight.trainer.job.model.state_dict()
    assert_same_tensors(plain, unwrapped(resumed.trainer.job.model).state_dict(), "model")
    assert_same_tensors(straight.trainer.job.optimizer.state_dict(), resumed.trainer.job.optimizer.state_dict())
    assert without_time(straight.history()) == without_time(resumed.history())
    final = load_checkpoint(resumed.run_dir / checkpoint_name(TARGET))
    assert_same_tensors(final["model"], plain, "saved model")  # plain keys, bit for bit


@pytest.mark.parametrize("wrapped", WRAPPED)
def test_a_run_trained_wrapped_resumes_plain_exactly(straight, tiny_run, resume, wrapped):
    first = interrupted(tiny_run, WRAPPED[wrapped])
    saved = load_checkpoint(first.run_dir / checkpoint_name(STOP))["model"]
    assert saved.keys() == straight.trainer.job.model.state_dict().keys()
    resumed = resume(first.run_dir, job=make_job)
    resumed.run()
    assert_same_as(straight, resumed)


@pytest.mark.parametrize("wrapped", WRAPPED)
def test_a_run_trained_plain_resumes_wrapped_exactly(straight, tiny_run, resume, wrapped):
    first = interrupted(tiny_run, make_job)
    resumed = resume(first.run_dir, job=WRAPPED[wrapped])
    resumed.run()
    assert_same_as(straight, resumed)


@pytest.mark.parametrize("out", ["w.safetensors", "w.pt"])
def test_a_compiled_runs_export_loads_into_the_plain_model(tmp_path, tiny_run, out):
    run = tiny_run(job=compiled_job, max_iters=3)
    run.run()
    export_weights(run.run_dir / checkpoint_name(3), tmp_path / out)
    weights = load_file(tmp_path / out) if out.endswith(".safetensors") else torch.load(tmp_path / out)
    plain = make_job(size="tiny", device="cpu").model
    plain.load_state_dict(weights, strict=True)
    assert_same_tensors(plain.state_dict(), unwrapped(run.trainer.job.model).state_dict())


def test_keys_an_older_version_saved_with_prefixes_still_fit():
    weights = {"module._orig_mod.block._orig_mod.w": 1, "module._orig_mod.head.b": 2}
    assert plain_state(weights) == {"block.w": 1, "head.b": 2}
    compiled_keys = ["_orig_mod.block.w", "_orig_mod.head.b"]
    assert renamed_for(compiled_keys, {"block.w": 1, "head.b": 2}) == {"_orig_mod.block.w": 1, "_orig_mod.head.b": 2}
    assert renamed_for(["block.w"], {"other.w": 1}) == {"other.w": 1}  # a mismatch keeps its name


def test_a_child_named_module_beside_others_keeps_its_name():
    assert plain_state({"module.w": 1, "head.b": 2}) == {"module.w": 1, "head.b": 2}
