"""The training engine: plain Python and torch, never Textual or Rich.

- `loop/`: the trainer, its control and events, the job a user writes, batches, LR schedule, launch.
- `checkpoints/`: the store, metadata, file format, save policy, retention, disk forecast.
- `rundir/`: the run dir's layout and lock, journal, history, control file (commands), runs index.
- `tools/`: inspect, verify, compare and export checkpoints; summarise a history.
- `errors`, `atomic` (atomic writes, pid checks) and `sizes` are used by all of them.

`job`, `batches`, `events` and `lr_schedule` here are the paths users' job files import: the
same modules as those in `loop/`. Modules that only read metadata (checkpoint listing,
retention, policy) do not import torch, so keep every package's import free of side effects.
"""
