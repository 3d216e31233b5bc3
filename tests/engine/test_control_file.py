"""The control-file protocol between `tui-trainer watch` and a trainer in another process."""

from __future__ import annotations

import json
import threading

import pytest
from tiny_runs import wait_until

from tui_trainer.engine.loop import events as ev
from tui_trainer.engine.loop.control import TrainingControl
from tui_trainer.engine.rundir.commands import (
    ACK_FILE,
    CONTROL_FILE,
    MAX_PENDING,
    PAUSE,
    POLL_INTERVAL_S,
    RESUME,
    SAVE_NOW,
    TARGET,
    ControlClient,
    ControlFilePoller,
    NotListening,
    read_ack,
    read_control,
    write_json_atomic,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += seconds


@pytest.fixture
def listening(tmp_path):
    """A poller listening in tmp_path, on a clock the test moves, and a client beside it."""
    clock = Clock()
    control = TrainingControl()
    poller = ControlFilePoller(tmp_path, control, device="cpu", clock=clock)
    poller.poll()  # the first poll announces the trainer
    return poller, control, clock, ControlClient(tmp_path)


def _poll(poller, clock):
    clock.tick()
    return [c.op for c in poller.poll()]


def test_no_trainer_listening_is_a_clear_error(tmp_path):
    with pytest.raises(NotListening, match="no trainer is running"):
        ControlClient(tmp_path).send(PAUSE)


def test_the_first_poll_announces_the_trainer_and_close_withdraws_it(listening, tmp_path):
    poller, _, _, _ = listening
    ack = read_ack(tmp_path)
    assert ack.trainer == poller.trainer_id and ack.applied == 0 and ack.device == "cpu" and ack.on_this_host
    poller.close()
    assert not (tmp_path / ACK_FILE).exists()


def test_commands_are_applied_once_in_order_and_acknowledged(listening, tmp_path):
    poller, control, clock, client = listening
    assert client.send(PAUSE).seq == 1
    assert _poll(poller, clock) == [PAUSE]
    assert control.paused and read_ack(tmp_path).applied == 1
    assert _poll(poller, clock) == []  # the same file is not applied twice

    # A burst between two polls: none lost, each applied once, in order.
    client.send(SAVE_NOW)
    client.send(TARGET, 600)
    client.send(RESUME)
    assert _poll(poller, clock) == [SAVE_NOW, TARGET, RESUME]
    assert not control.paused
    assert control.take_requests() == (600, None, 1)
    assert read_ack(tmp_path).applied == 4
    # Applied commands are dropped from the file by the next writer.
    client.send(PAUSE)
    assert [c.seq for c in read_control(tmp_path).commands] == [5]


def test_polling_is_cheap_between_intervals(listening):
    poller, control, clock, client = listening
    client.send(PAUSE)
    clock.tick(POLL_INTERVAL_S / 2)
    assert poller.poll() == []  # not due yet: the file is not even looked at
    clock.tick(POLL_INTERVAL_S)
    assert [c.op for c in poller.poll()] == [PAUSE]


def test_a_file_left_for_an_earlier_trainer_is_ignored(tmp_path):
    old = ControlFilePoller(tmp_path, TrainingControl(), clock=Clock())
    old.poll()
    ControlClient(tmp_path).send(PAUSE)
    old.listening = False  # killed: its ack and its pause stay behind

    clock, control = Clock(), TrainingControl()
    new = ControlFilePoller(tmp_path, control, clock=clock)
    new.poll()
    assert _poll(new, clock) == []
    assert not control.paused
    # The next command is written for the new trainer, numbered after what it applied.
    assert ControlClient(tmp_path).send(SAVE_NOW).seq == 1
    assert _poll(new, clock) == [SAVE_NOW]


@pytest.mark.parametrize(
    "garbage",
    [b"", b"{", b"\x00\xff" * 100, b"[]", b'{"format": 1}', b'{"format": 99, "trainer": "x", "commands": []}',
     b"[" * 100_000, b'{"format": 1, "trainer": 5, "commands": {}}'],
    ids=["empty", "torn", "binary", "list", "no-trainer", "future-format", "deep", "wrong-types"],
)
def test_a_garbled_file_is_ignored_until_a_good_one_arrives(listening, tmp_path, garbage):
    poller, control, clock, client = listening
    (tmp_path / CONTROL_FILE).write_bytes(garbage)
    assert _poll(poller, clock) == []
    assert not control.paused and read_ack(tmp_path).applied == 0
    client.send(PAUSE)  # a writer replaces the garbage
    assert _poll(poller, clock) == [PAUSE]


def test_bad_commands_are_skipped_and_good_ones_beside_them_applied(listening, tmp_path):
    poller, control, clock, _ = listening
    write_json_atomic(tmp_path / CONTROL_FILE, {"format": 1, "trainer": poller.trainer_id, "commands": [
        {"seq": 1, "op": "explode"}, {"seq": 2, "op": TARGET, "value": -5}, {"seq": 3, "op": TARGET, "value": True},
        {"seq": "4", "op": PAUSE}, {"op": PAUSE}, "pause", {"seq": 5, "op": TARGET, "value": 700},
    ]})
    assert _poll(poller, clock) == [TARGET]
    assert control.take_requests() == (700, None, 0) and not control.paused


def test_a_missing_control_file_or_ack_removed_under_the_trainer_does_no_harm(listening, tmp_path):
    poller, _, clock, client = listening
    client.send(PAUSE)
    (tmp_path / CONTROL_FILE).unlink()
    assert _poll(poller, clock) == []
    (tmp_path / ACK_FILE).unlink()
    with pytest.raises(NotListening):
        client.send(PAUSE)


def test_a_writer_far_ahead_of_a_stuck_trainer_keeps_only_the_newest_commands(listening, tmp_path):
    _, _, _, client = listening
    for _ in range(MAX_PENDING + 10):
        client.send(SAVE_NOW)
    commands = read_control(tmp_path).commands
    assert len(commands) == MAX_PENDING and commands[-1].seq == MAX_PENDING + 10


def test_writes_are_atomic_and_concurrent_writers_lose_nothing(listening, tmp_path):
    poller, _, _, _ = listening
    seen_bad = []
    done = threading.Event()

    def reader():
        while not done.is_set():
            try:
                text = (tmp_path / CONTROL_FILE).read_bytes()
            except FileNotFoundError:
                continue
            try:
                json.loads(text)
            except ValueError:
                seen_bad.append(text)

    def writer():
        client = ControlClient(tmp_path)
        for _ in range(25):
            client.send(SAVE_NOW)

    threads = [threading.Thread(target=reader)] + [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join()
    done.set()
    threads[0].join()
    assert seen_bad == []  # a reader never saw half a file
    assert [c.seq for c in read_control(tmp_path).commands] == list(range(1, 51))  # no lost update
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_a_headless_trainer_is_paused_retargeted_and_saved_through_the_file(tiny_run):
    run = tiny_run(max_iters=100_000)
    run.start_thread()
    client = ControlClient(run.run_dir)
    wait_until(lambda: read_ack(run.run_dir) is not None)
    assert read_ack(run.run_dir).pid is not None

    client.send(PAUSE)
    paused = run.wait_for(ev.Paused)
    client.send(SAVE_NOW)
    client.send(TARGET, paused.step + 20)
    client.send(RESUME)
    result = run.join()
    assert result.reason == "target" and result.step == paused.step + 20
    assert run.checkpoints() == {paused.step: "manual", paused.step + 20: "final"}
    assert not (run.run_dir / ACK_FILE).exists()  # nobody listens any more
