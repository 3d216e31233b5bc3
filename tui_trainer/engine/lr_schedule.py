"""`tui_trainer.engine.lr_schedule`, the path users' job files import: the same module as `loop.lr_schedule`."""

import sys

from tui_trainer.engine.loop import lr_schedule

sys.modules[__name__] = lr_schedule
