"""`tui_trainer.engine.events`, the path users' job files import: the same module as `loop.events`."""

import sys

from tui_trainer.engine.loop import events

sys.modules[__name__] = events
