"""`tui_trainer.engine.job`, the path users' job files import: the same module as `loop.job`."""

import sys

from tui_trainer.engine.loop import job

sys.modules[__name__] = job
