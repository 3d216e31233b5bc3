# A Ctrl+C from the first instant is held for the run to stop cleanly, not raised mid-import.
from tui_trainer.engine.loop.signals import hold_interrupts

hold_interrupts()

import os  # noqa: E402
import sys  # noqa: E402

from tui_trainer.cli.main import main  # noqa: E402

status = main()
if "torch.distributed" in sys.modules and int(os.environ.get("WORLD_SIZE", "1")) > 1:
    # One of several ranks, its work done and its process group taken down: leave without the
    # interpreter's teardown. A DDP reducer or an FSDP mesh still holds the group's gloo threads,
    # and destroying them while the interpreter is torn down aborts the process now and then
    # ("terminate called without an active exception", SIGABRT), failing a run that had finished.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0 if status is None else status)
raise SystemExit(status)
