"""A new target sent through the control file can carry a re-warm; the ack carries the LR plan's facts."""

from __future__ import annotations

import json
import math

import pytest
from test_control_file import Clock

from tui_trainer.engine.loop.control import TrainingControl
from tui_trainer.engine.loop.lr_preview import TAKEOVER, LrFacts
from tui_trainer.engine.loop.rewarm import Rewarm
from tui_trainer.engine.rundir.commands import (
    ACK_FILE,
    CONTROL_FILE,
    PAUSE,
    TARGET,
    Command,
    ControlClient,
    ControlFilePoller,
    parse_command,
    read_ack,
    read_control,
    write_json_atomic,
)


@pytest.fixture
def listening(tmp_path):
    clock, control = Clock(), TrainingControl()
    poller = ControlFilePoller(tmp_path, control, device="cpu", clock=clock)
    poller.poll()
    return poller, control, clock, ControlClient(tmp_path)


def _poll(poller, clock) -> list[Command]:
    clock.now += 1
    return poller.poll()


@pytest.mark.parametrize("rewarm", [Rewarm(0.5, 200), Rewarm(1.0), Rewarm(0.25, 1)], ids=["steps", "default", "one"])
def test_a_target_with_a_re_warm_goes_through_the_file_whole(listening, tmp_path, rewarm):
    poller, control, clock, client = listening
    sent = client.send(TARGET, 5000, rewarm)
    assert sent.rewarm == rewarm and read_control(tmp_path).commands == (sent,)
    raw = json.loads((tmp_path / CONTROL_FILE).read_text())["commands"][0]
    assert raw["rewarm"] == ({"fraction": rewarm.fraction, "steps": rewarm.steps} if rewarm.steps
                             else {"fraction": rewarm.fraction})
    assert parse_command(sent.to_json()) == sent
    assert _poll(poller, clock) == [sent]
    assert control.take_requests() == (5000, None, 0) and control.take_rewarm() == rewarm
    assert sent.describe().startswith("target 5000 (re-warm to ")


def test_a_plain_target_still_carries_no_re_warm(listening):
    poller, control, clock, client = listening
    assert client.send(TARGET, 600).to_json() == {"seq": 1, "op": TARGET, "value": 600}
    _poll(poller, clock)
    assert control.take_requests() == (600, None, 0) and control.take_rewarm() is None


@pytest.mark.parametrize("rewarm", [
    {"fraction": "half"}, {"fraction": 0}, {"fraction": 1.5}, {"fraction": -0.5}, {"fraction": True},
    {"fraction": math.nan}, {"fraction": math.inf}, {"steps": 10}, {"fraction": 0.5, "steps": 0},
    {"fraction": 0.5, "steps": 2.5}, {"fraction": 0.5, "steps": "200"}, {"fraction": 0.5, "steps": True},
    {"fraction": 0.5, "warm": 3}, "0.5:200", [0.5, 200], 0.5,
], ids=lambda r: json.dumps(r))
def test_a_target_whose_re_warm_is_garbled_is_skipped_whole(listening, tmp_path, rewarm):
    poller, control, clock, _ = listening
    write_json_atomic(tmp_path / CONTROL_FILE, {"format": 1, "trainer": poller.trainer_id, "commands": [
        {"seq": 1, "op": TARGET, "value": 900, "rewarm": rewarm},
        {"seq": 2, "op": PAUSE, "rewarm": {"fraction": 0.5}},  # a re-warm belongs to a new target only
        {"seq": 3, "op": TARGET, "value": 800, "rewarm": None},
    ]})
    assert [c.seq for c in _poll(poller, clock)] == [3]
    assert control.take_requests() == (800, None, 0) and control.take_rewarm() is None and not control.paused


def test_a_bad_re_warm_is_refused_by_the_writer_in_one_line(listening):
    _, _, _, client = listening
    with pytest.raises(ValueError, match="not a valid command: pause"):
        client.send(PAUSE, None, Rewarm(0.5))


def _facts(lr: float, step: int, target: int) -> dict:
    return LrFacts(TAKEOVER, "OneCycleLR", (lr, lr / 5), (0.1, 0.02), 4e-7, step=step, target=target).to_json()


def test_the_ack_carries_the_lr_facts_and_refreshes_them_once_commands_took_effect(tmp_path):
    clock, control = Clock(), TrainingControl()
    poller = ControlFilePoller(tmp_path, control, clock=clock)
    trainer = {"lr": 0.05, "step": 10, "target": 40}
    poller.lr_facts = lambda: _facts(trainer["lr"], trainer["step"], trainer["target"])
    poller.poll()
    ack = read_ack(tmp_path)
    assert ack.lr == LrFacts.from_json(_facts(0.05, 10, 40)) and ack.lr.step == 10 and ack.lr.lrs == (0.05, 0.01)

    ControlClient(tmp_path).send(TARGET, 100)
    written = (tmp_path / ACK_FILE).stat().st_mtime_ns
    _poll(poller, clock)
    assert read_ack(tmp_path).applied == 1 and read_ack(tmp_path).lr.target == 40  # not acted on yet
    trainer.update(step=11, target=100, lr=0.04)  # the trainer retargets between the two polls
    clock.now += 0.01  # not even a poll interval later
    poller.poll()
    assert read_ack(tmp_path).lr == LrFacts.from_json(_facts(0.04, 11, 100))
    assert (tmp_path / ACK_FILE).stat().st_mtime_ns >= written
    trainer.update(step=50, lr=0.01)
    _poll(poller, clock)
    assert read_ack(tmp_path).lr.step == 11, "never rewritten every step: only when commands arrive"


@pytest.mark.parametrize("lr", [
    "cosine", [], {"kind": "sideways"}, {**_facts(0.05, 1, 2), "lrs": []}, {**_facts(0.05, 1, 2), "floor": -1},
    {**_facts(0.05, 1, 2), "refs": [0.1]}, {**_facts(0.05, 1, 2), "kind": "warmup_cosine"},
    {**_facts(0.05, 1, 2), "kind": "warmup_cosine", "schedule": {"peak_lr": 0.1}},
], ids=["string", "list", "kind", "no-lrs", "negative", "groups", "no-schedule", "bad-schedule"])
def test_garbled_lr_facts_leave_the_ack_readable_without_them(tmp_path, lr):
    write_json_atomic(tmp_path / ACK_FILE, {"format": 1, "trainer": "t", "applied": 0, "lr": lr})
    ack = read_ack(tmp_path)
    assert ack is not None and ack.lr is None


def test_facts_that_cannot_be_told_never_stop_the_trainer(tmp_path):
    poller = ControlFilePoller(tmp_path, TrainingControl(), clock=Clock())
    poller.lr_facts = lambda: 1 / 0
    poller.poll()
    assert read_ack(tmp_path).lr is None and read_ack(tmp_path).trainer == poller.trainer_id
