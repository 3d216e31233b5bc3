"""Starting a run: a new run dir, a resume from a run dir or a checkpoint, or the default demo.

Each function takes the run dir's lock, cleans up after an earlier crash, builds the job and
returns a ready Trainer whose `notes` say what was decided and why. Each hands the trainer the
run dir's journal, so every run, headless or not, can be followed from other processes.
`when_disk_full` is the Trainer's: "stop" ends the run on a full disk, "pause" waits for room
(the dashboard's choice).
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from tui_trainer.engine.checkpoints import sharded_folder
from tui_trainer.engine.checkpoints.file import load_resumable
from tui_trainer.engine.checkpoints.policy import CheckpointPolicy
from tui_trainer.engine.checkpoints.meta import CheckpointMeta, sidecar_disagrees, step_of_name
from tui_trainer.engine.checkpoints.store import CheckpointStore, StoredCheckpoint
from tui_trainer.engine.errors import CheckpointError, RunDirError, is_disk_full
from tui_trainer.engine.loop import training_state, warm_start
from tui_trainer.engine.loop.control import TrainingControl
from tui_trainer.engine.loop.events import DISK_FULL_STOP
from tui_trainer.engine.loop.job import DEMO_JOB, Job, JobFactory, import_factory, load_job, spec_of
from tui_trainer.engine.loop.trainer import EventCallback, Trainer
from tui_trainer.engine.rundir.commands import ControlFilePoller
from tui_trainer.engine.rundir.history_writer import HistoryWriter
from tui_trainer.engine.rundir.journal import JournalWriter
from tui_trainer.engine.rundir.lock import LOCK_FILE, OWN_FILES, PRIVATE_DIR, shared_with_others
from tui_trainer.engine.rundir.superseded import recover
from tui_trainer.engine.rundir.layout import (
    RunInfo,
    RunLock,
    RunSettings,
    is_run_dir,
    new_run_id,
    read_run,
    set_aside,
    write_run,
)
from tui_trainer.engine.words import counted


def build_job(spec: JobFactory | str, options: Mapping[str, Any], max_iters: int,
              run_dir: Path | None = None) -> Job:
    """Build the job; a factory that takes `max_iters` gets the run's target (for LR schedules).

    Its config is made plain (or refused) here, before anything is written. `run_dir`: the run
    being resumed, from which no job module is ever imported.
    """
    options = dict(options)
    factory = import_factory(spec, not_from=run_dir)
    if "max_iters" not in options and _accepts(factory, "max_iters"):
        options["max_iters"] = max_iters
    return load_job(spec, **options)


def start_run(
    run_dir: str | os.PathLike[str],
    *,
    job: JobFactory | str = DEMO_JOB,
    job_options: Mapping[str, Any] | None = None,
    policy: CheckpointPolicy | None = None,
    settings: RunSettings | None = None,
    on_event: EventCallback | None = None,
    control: TrainingControl | None = None,
    when_disk_full: str = DISK_FULL_STOP,
    init_from: str | os.PathLike[str] | None = None,
) -> Trainer:
    """A new run in `run_dir`, which must not already hold a run.

    `init_from`: a checkpoint whose weights the model starts from. The job is built (and
    warm-started) before anything is created on disk, so a job that fails to build, or weights
    that do not fit it, leave no empty run dir behind.
    """
    run_dir = Path(run_dir)
    _check_free_for_a_run(run_dir)
    settings = settings or RunSettings()
    policy = policy or CheckpointPolicy()
    options = dict(job_options or {})
    built = build_job(job, options, settings.max_iters)
    warm_note = warm_start.init_from(built, init_from) if init_from is not None else None
    fresh = not run_dir.exists()
    run_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)  # another user can neither read nor lock it
    lock = RunLock(run_dir)
    try:
        lock.acquire()
    except OSError as exc:
        if fresh and is_disk_full(exc):  # no lock was taken: the folder this call made goes
            _undo_new_run(run_dir, frozenset(), fresh)
        raise
    theirs = frozenset(name for name in OWN_FILES if os.path.lexists(run_dir / name))  # before the lock was ours
    try:
        _check_free_for_a_run(run_dir)  # another process may have started one meanwhile
        info = RunInfo(run_id=new_run_id(), job=spec_of(job), job_options=_stored_options(built, options),
                       policy=policy, settings=settings)
        write_run(run_dir, info)
        control = control or TrainingControl()
        trainer = Trainer(built, run_dir, info, on_event=on_event, control=control, when_disk_full=when_disk_full,
                          **side_channels(run_dir, built, control, lock, HistoryWriter(run_dir)))
    except BaseException:
        lock.release()
        _undo_new_run(run_dir, theirs, fresh)
        raise
    trainer.notes.append(f"new run {info.run_id} in {run_dir}")
    if warm_note:
        trainer.notes.append(warm_note)
    _check_journal(trainer)
    return trainer


def _undo_new_run(run_dir: Path, theirs: frozenset[str], fresh: bool) -> None:
    """A run that could not start (a full disk, say) leaves no half-made run dir that `train` would
    refuse and `resume` could not use: the files this call made go, and the folder if it made that.

    `theirs`: the files there before the lock was taken, never removed (a run started meanwhile).
    """
    for name in OWN_FILES:
        if name not in theirs and name != "trainer.log":  # a detached trainer's, open before the run starts
            with contextlib.suppress(OSError):
                (run_dir / name).unlink()
    if fresh:
        with contextlib.suppress(OSError):
            (run_dir / LOCK_FILE).unlink()
            run_dir.rmdir()


def _true_step(stored: StoredCheckpoint) -> int:
    """The step a checkpoint's file name says: a sidecar may lie, the name orders the files."""
    named = step_of_name(stored.path.name)
    return named if named is not None else stored.meta.step


def _believed(store: CheckpointStore, stored: StoredCheckpoint, state: Mapping[str, Any],
              notes: list[str]) -> StoredCheckpoint:
    """The checkpoint as the file says it is; a sidecar that says otherwise is rebuilt from the file."""
    embedded = state.get("meta")
    lie = sidecar_disagrees(stored.meta, stored.path.name, embedded)
    if lie is None or not isinstance(embedded, dict):
        return stored
    try:
        # The checksum was just checked against the file, and a pin is the user's, not the file's.
        kept = {"sha256": stored.meta.sha256, "checksum": stored.meta.checksum, "size_bytes": stored.meta.size_bytes,
                "pinned": stored.meta.pinned}
        truth = CheckpointMeta.from_json({**embedded, **kept})
    except (ValueError, TypeError):
        return stored
    store.write_meta(truth)
    notes.append(f"rebuilt the metadata of {stored.path.name} from the file: {lie}")
    return StoredCheckpoint(stored.path, truth)


def side_channels(run_dir: Path, job: Job, control: TrainingControl, lock: RunLock,
                  history: HistoryWriter) -> dict[str, Any]:
    """What the process that owns the run dir hands its trainer: history, control file, lock, journal.

    One process owns them (a later multi-process trainer: rank 0 alone); a trainer given none
    of them trains without writing to the run dir's shared files.
    """
    return {"history": history, "lock": lock, "journal": JournalWriter(run_dir),
            "control_file": ControlFilePoller(run_dir, control, device=str(job.device))}


def _check_journal(trainer: Trainer) -> None:
    assert trainer.journal is not None
    problem = trainer.journal.ready()
    if problem is not None:
        trainer.notes.append(f"not journaling (viewers in other processes see less): {problem}")


def _check_free_for_a_run(run_dir: Path) -> None:
    if is_run_dir(run_dir):
        raise RunDirError(
            f"{run_dir} already holds a run; continue it with `tui-trainer resume {run_dir}` "
            "or choose another --run-dir"
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} exists and is not a directory")
    if run_dir.is_dir() and any(p.suffix in (".pt", ".pth", ".ckpt") for p in run_dir.iterdir()):
        raise RunDirError(f"{run_dir} already holds checkpoint files; choose an empty or new --run-dir")


def resume_run(
    path: str | os.PathLike[str],
    *,
    max_iters: int | None = None,
    policy_overrides: Mapping[str, Any] | None = None,
    settings_overrides: Mapping[str, Any] | None = None,
    job: JobFactory | None = None,
    on_event: EventCallback | None = None,
    control: TrainingControl | None = None,
    when_disk_full: str = DISK_FULL_STOP,
    job_options: Mapping[str, Any] | None = None,
    fresh_optimizer: bool = False,
) -> Trainer:
    """Continue a run from its newest valid checkpoint, or from a given checkpoint file.

    `job` overrides the factory stored in the run (needed when it is not importable, e.g. one
    defined in a script's `__main__`); it must build the same model. `job_options` change some
    of the stored ones; `fresh_optimizer` keeps the weights and step, not the optimizer and LR schedule.
    """
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"{path} does not exist")
    run_dir = path if path.is_dir() else path.parent
    if not path.is_dir() and not is_run_dir(run_dir):
        raise RunDirError(f"{path} is neither a run dir nor a checkpoint in one; give a run dir or one of its checkpoints")
    info = read_run(run_dir)
    options_note = warm_start.job_option_changes(info.job_options, job_options or {}, fresh_optimizer)
    info.job_options = {**info.job_options, **(job_options or {})}  # stored in run.json once the job builds
    lock = RunLock(run_dir)
    lock.acquire()
    try:
        trainer = _resume_locked(run_dir, info, None if path.is_dir() else path, max_iters,
                                 policy_overrides or {}, settings_overrides or {}, job, on_event, control, lock,
                                 when_disk_full, fresh_optimizer)
    except BaseException:
        lock.release()
        raise
    if options_note:
        trainer.notes.append(options_note)  # journaled with the run's other notes
    return trainer


def _resume_locked(
    run_dir: Path,
    info: RunInfo,
    chosen_file: Path | None,
    max_iters: int | None,
    policy_overrides: Mapping[str, Any],
    settings_overrides: Mapping[str, Any],
    factory: JobFactory | None,
    on_event: EventCallback | None,
    control: TrainingControl | None,
    lock: RunLock,
    when_disk_full: str,
    fresh_optimizer: bool = False,
) -> Trainer:
    store = CheckpointStore(run_dir, info.run_id, info.policy.monitor, info.policy.mode)
    notes = recover(run_dir)  # what a kill left mid set-aside, delete or pin, before anything is listed
    shared = shared_with_others(run_dir)
    if shared:
        notes.append(shared)
    notes += [f"removed leftover temporary file {p.name}" for p in store.remove_temp_files()]
    notes += [f"removed {p.name}: a save of several processes that was interrupted before it finished (never loaded)"
              for p in sharded_folder.remove_leftovers(run_dir)]
    notes += [f"rebuilt the missing or damaged metadata of {name}" for name in store.repair_sidecars()]
    notes += [f"ignoring {p.name}: a link to a file outside {run_dir}" for p in store.links_outside()]
    own = [c for c in store.list() if c.meta.run_id == info.run_id]
    others = [c for c in store.list() if c.meta.run_id != info.run_id]
    if others:
        notes.append(f"ignoring {counted(len(others), 'checkpoint')} of other runs in {run_dir}")
    if chosen_file is not None:
        candidates = [c for c in own if c.path.name == chosen_file.name]
        if not candidates:
            raise CheckpointError(f"{chosen_file} is not a checkpoint of run {info.run_id} in {run_dir}")
    else:
        candidates = sorted(own, key=_true_step, reverse=True)
        if not candidates:
            raise RunDirError(f"{run_dir} has no checkpoint of this run to resume from")
    state, start, skipped = None, None, []
    for candidate in candidates:
        state, problem = load_resumable(store, candidate, info.run_id)
        if problem is None:
            start = _believed(store, candidate, state, notes)
            break
        if chosen_file is not None:
            raise CheckpointError(f"cannot resume from {candidate.path.name}: {problem}")
        skipped.append(f"{candidate.path.name}: {problem}")
        notes.append(f"skipped {skipped[-1]}")
    if start is None:
        raise RunDirError(f"no valid checkpoint left in {run_dir} to resume from: skipped {'; '.join(skipped)}")

    ranks_note = training_state.rank_count_note(state, start.path.name)
    if ranks_note:
        notes.append(ranks_note)
    step = start.meta.step
    newer = [c for c in own if _true_step(c) > step or (_true_step(c) == step and c.path != start.path)]
    if newer:
        moved = set_aside(run_dir, [c.path for c in newer])
        notes.append(f"moved {counted(len(newer), 'newer checkpoint')} to {moved.relative_to(run_dir)}/: they are superseded")

    info.policy = info.policy.with_overrides(**policy_overrides)
    settings = {k: v for k, v in settings_overrides.items() if v is not None}
    info.settings = RunSettings(**{**info.settings.__dict__, **settings})
    stored_target = int(state.get("target", info.settings.max_iters))
    target = max_iters if max_iters is not None else stored_target
    if target <= step:
        raise RunDirError(
            f"run is already at step {step}, at or past the target {target}; "
            f"pass --max-iters N with N > {step} to train further"
        )
    job = build_job(factory or info.job, info.job_options, stored_target, run_dir=run_dir)
    if fresh_optimizer:
        state = warm_start.fresh_optimizer_state(job, state, step)
        notes.append(f"a new optimizer, and the LR schedule the job builds now at step {step} (--fresh-optimizer)")
    training_state.restore(job, state, start.path.name)
    notes += getattr(job.batches, "resume_notes", [])  # e.g. a stream that cannot resume mid-epoch
    info.settings.max_iters = stored_target
    write_run(run_dir, info)
    why = "newest valid checkpoint" if chosen_file is None else "as requested"
    notes.append(f"resuming from {start.path.name} (step {step}, {why}); target {target}")
    history = HistoryWriter(run_dir, resume_step=step, summary_state=training_state.history_summary_of(state))
    try:
        control = control or TrainingControl()
        trainer = Trainer(job, run_dir, info, step=step, target=target, on_event=on_event, control=control,
                          resumed_from=str(start.path), when_disk_full=when_disk_full,
                          elapsed=history.resumed_elapsed, **side_channels(run_dir, job, control, lock, history))
    except BaseException:
        history.close()
        raise
    trainer.notes.extend(notes)
    _check_journal(trainer)
    return trainer


def continue_or_start(
    root: str | os.PathLike[str],
    *,
    job: str = DEMO_JOB,
    job_options: Mapping[str, Any] | None = None,
    max_iters: int | None = None,
    on_event: EventCallback | None = None,
    control: TrainingControl | None = None,
    when_disk_full: str = DISK_FULL_STOP,
    **start_kwargs: Any,
) -> Trainer:
    """Continue the newest unfinished run of `job` under `root`, else start a new one beside it."""
    root = Path(root)
    for run_dir, info in reversed(find_runs(root)):
        if info.job == job and info.state != "finished":
            try:
                trainer = resume_run(run_dir, max_iters=max_iters, on_event=on_event, control=control,
                                     when_disk_full=when_disk_full)
            except (RunDirError, CheckpointError):
                continue
            trainer.notes.insert(0, f"continuing the unfinished run in {run_dir}")
            return trainer
        break
    run_dir = new_run_dir(root, job)
    settings = start_kwargs.pop("settings", None) or RunSettings(**({"max_iters": max_iters} if max_iters else {}))
    return start_run(run_dir, job=job, job_options=job_options, settings=settings,
                     on_event=on_event, control=control, when_disk_full=when_disk_full, **start_kwargs)


def new_run_dir(root: str | os.PathLike[str], job: JobFactory | str) -> Path:
    """A fresh, timestamped run dir path under `root`, named after the job."""
    job = spec_of(job)
    name = "demo" if job == DEMO_JOB else job.partition(":")[0].rpartition(".")[2] or "run"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(root) / f"{name}-{stamp}"
    suffix = 2
    while run_dir.exists():
        run_dir = Path(root) / f"{name}-{stamp}-{suffix}"
        suffix += 1
    return run_dir


def find_runs(root: str | os.PathLike[str]) -> list[tuple[Path, RunInfo]]:
    """Run dirs directly under `root`, oldest first."""
    runs = []
    try:
        children = sorted(Path(root).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    for child in children:
        if is_run_dir(child):
            try:
                runs.append((child, read_run(child)))
            except RunDirError:
                continue
    return sorted(runs, key=lambda r: r[1].created)


def _stored_options(job: Job, given: dict[str, Any]) -> dict[str, Any]:
    """The options to rebuild the same job later: what the job reports, else what was given."""
    reported = job.config.get("options") if isinstance(job.config, Mapping) else None
    return dict(reported) if isinstance(reported, Mapping) else given


def _accepts(factory: Any, name: str) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())

