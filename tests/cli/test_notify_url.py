"""--notify-url: one JSON POST when a headless run ends, to a local HTTP server; a slow or unreachable
endpoint neither slows nor stops the run, is said once in its log, and the URL's secret is never written."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tui_trainer.cli.main import main
from tui_trainer.cli.run_notify import without_url
from tui_trainer.session.run_notices import Notice
from tui_trainer.session.webhook import TIMEOUT_S, WebhookNotifier, payload, redacted

SECRET = "tk_s3cr3t-topic"
TINY = ["--job-opt", "size=tiny", "--job-opt", "device=cpu"]


class Endpoint:
    """An HTTP server on 127.0.0.1 that records each POST, answering after `delay` seconds."""

    def __init__(self, delay: float = 0.0) -> None:
        self.posts: list[tuple[dict, dict]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                endpoint.posts.append((json.loads(body), dict(self.headers)))
                time.sleep(delay)
                with contextlib.suppress(OSError):
                    self.send_response(200)
                    self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/{SECRET}?auth={SECRET}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    server = Endpoint()
    yield server
    server.close()


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{SECRET}"


def _train(tmp_path, url: str, steps: int = 20) -> tuple[int, str, float]:
    """Exit code, output, and the seconds from the run's end (its last journal record) to the return."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(["train", "--headless", *TINY, "--run-dir", str(tmp_path / "run"), "--max-iters", str(steps),
                     "--ckpt-every", "10", "--notify-url", url])
    returned = time.time()
    ended = json.loads((tmp_path / "run" / "journal.jsonl").read_text().splitlines()[-1])["time"]
    return code, out.getvalue(), returned - ended


def _written(tmp_path) -> str:
    return "".join(p.read_text(errors="replace") for p in (tmp_path / "run").glob("*.json*"))


def test_a_headless_run_posts_one_json_message_when_it_ends(tmp_path, endpoint):
    code, out, _ = _train(tmp_path, endpoint.url)
    assert code == 0
    assert len(endpoint.posts) == 1
    message, headers = endpoint.posts[0]
    assert message["event"] == "finished" and message["step"] == 20 and message["target"] == 20
    assert message["run_dir"] == str(tmp_path / "run") and message["reason"] == "target"
    assert set(message["metrics"]) >= {"loss", "val_loss"} and message["text"].startswith("tui-trainer: run finished")
    assert headers["Content-Type"] == "application/json" and headers["Title"] == "tui-trainer: run finished"
    assert "POSTed to http://127.0.0.1:" in out and SECRET not in out + _written(tmp_path)


def test_a_slow_endpoint_delays_the_exit_by_one_timeout_at_most_and_is_said_once(tmp_path):
    slow = Endpoint(delay=10.0)
    try:
        code, out, after_the_end = _train(tmp_path, slow.url, steps=10)
    finally:
        slow.close()
    assert code == 0 and len(slow.posts) == 1
    # Training went on as usual (the POST is sent off its thread); the exit waited one timeout at
    # most for the last notice, not the endpoint's 10 s.
    assert TIMEOUT_S - 0.5 < after_the_end < TIMEOUT_S + 1.5
    assert out.count("notify-url:") == 1 and f"no answer within {TIMEOUT_S:g} s" in out
    assert SECRET not in out + _written(tmp_path)


def test_an_unreachable_url_is_said_once_and_the_run_ends_as_usual(tmp_path):
    code, out, after_the_end = _train(tmp_path, _closed_port_url(), steps=10)
    assert after_the_end < 1.5
    assert code == 0 and out.count("notify-url:") == 1 and "was not sent" in out
    assert SECRET not in out + _written(tmp_path)


def test_a_url_that_is_not_http_is_refused_in_one_line_without_the_secret(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--notify-url", f"ftp://example.com/{SECRET}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "expected an http:// or https:// URL" in err and SECRET not in err


def test_posting_never_blocks_and_every_failure_after_the_first_is_quiet():
    said: list[str] = []
    notifier = WebhookNotifier(_closed_port_url(), said.append, timeout=0.5)
    began = time.monotonic()
    for step in range(3):
        notifier.post(Notice("failed", step, "boom"))
    assert time.monotonic() - began < 0.05
    assert notifier.close(wait_s=5)
    assert len(said) == 1 and SECRET not in said[0]


def test_the_url_is_redacted_to_its_host_and_kept_off_a_child_command_line():
    assert redacted(f"https://user:pw@ntfy.sh:8443/{SECRET}?t=1") == "https://ntfy.sh:8443/..."
    assert redacted("https://hooks.example.com") == "https://hooks.example.com"
    argv = ["train", "--notify-url", "https://x/y", "--max-iters", "5", "--notify-url=https://x/z"]
    assert without_url(argv) == ["train", "--max-iters", "5"]


def test_the_payload_has_a_slack_text_field_and_the_numbers_for_scripts():
    body = payload(Notice("failed", 7, "run failed at step 7: boom", run_dir="r", metrics={"loss": 2.0}), host="h")
    assert body["text"] == "tui-trainer: run failed at step 7: boom"
    assert {k: body[k] for k in ("event", "step", "run_dir", "metrics", "host")} == {
        "event": "failed", "step": 7, "run_dir": "r", "metrics": {"loss": 2.0}, "host": "h"}


def test_an_anomaly_that_pauses_the_run_is_a_notice_and_one_it_rolls_back_is_not():
    from tui_trainer.engine.loop import events as ev
    from tui_trainer.session.run_notices import NoticeWatcher

    watcher = NoticeWatcher()
    assert watcher.see(ev.AnomalyFound(9, "nan", "loss is nan", "rollback")) is None
    notice = watcher.see(ev.AnomalyFound(9, "nan", "loss is nan", "pause"))
    assert notice is not None and notice.kind == "anomaly" and "loss is nan" in notice.text
    assert watcher.see(ev.Finished(9, "anomaly")).kind == "anomaly"
