# A Ctrl+C from the first instant is held for the run to stop cleanly, not raised mid-import.
from tui_trainer.engine.loop.signals import hold_interrupts

hold_interrupts()

from tui_trainer.cli.main import main

raise SystemExit(main())
