"""The job's own prints, log records and warnings reach the dashboard's log, and only the job's."""

from __future__ import annotations

import logging
import sys
import threading
import warnings

from tui_pilot import TINY, driving, run_async, wait_for

from tui_trainer.demo.job import make_job
from tui_trainer.engine.loop import launch
from tui_trainer.engine.rundir.layout import RunSettings
from tui_trainer.session.job_output import capture_job_output
from tui_trainer.tui.app import make_app
from tui_trainer.tui.widgets.event_log import JOB_MARK, EventLog


def chatty_job(max_iters: int, **options):
    """The demo job, whose loss function prints once and warns once."""
    job = make_job(max_iters=max_iters, **options)
    plain_loss, said = job.loss_fn, []

    def loss_fn(model, batch):
        if not said:
            said.append(True)
            print("hello from the job")
            warnings.warn("lr too high")
        return plain_loss(model, batch)

    job.loss_fn = loss_fn
    return job


def test_what_the_job_prints_and_warns_shows_in_the_log(tmp_path):
    def launch_fn(**kwargs):
        return launch.start_run(tmp_path / "run", job=chatty_job, job_options=TINY,
                                settings=RunSettings(max_iters=30), **kwargs)

    stdout, stderr, showwarning = sys.stdout, sys.stderr, warnings.showwarning
    app = make_app(launch_fn)

    async def scenario():
        async with driving(app) as pilot:
            await wait_for(pilot, lambda: app.model.state == "finished", what="the run to finish")
            log = app.query_one(EventLog)
            await wait_for(pilot, lambda: any("lr too high" in line for line in log.lines_written),
                           what="the warning in the log")
            job_lines = [line for line in app.model.log if line.source == "job"]
            assert [line.text for line in job_lines if line.level == "info"] == ["hello from the job"]
            warned = [line for line in job_lines if "lr too high" in line.text]
            assert len(warned) == 1 and warned[0].level == "warning"
            assert warned[0].text.startswith("UserWarning: lr too high")
            assert f"{JOB_MARK}hello from the job" in log.lines_written

    run_async(scenario)
    assert (sys.stdout, sys.stderr, warnings.showwarning) == (stdout, stderr, showwarning)


def test_only_the_capturing_thread_is_taken(capsys):
    got = []
    with capture_job_output(lambda text, level: got.append((text, level))):
        print("from the job")
        logging.getLogger("job").warning("careful")
        other = threading.Thread(target=lambda: print("from another thread"))
        other.start()
        other.join()
        sys.stderr.write("partial ")
        sys.stderr.write("line\nstep 1\rstep 2\n")
        print("unfinished", end="")
    assert got == [("from the job", "info"), ("job: careful", "warning"), ("partial line", "warning"),
                   ("step 2", "warning"), ("unfinished", "info")]
    assert "from another thread" in capsys.readouterr().out
