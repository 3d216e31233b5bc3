from tui_trainer.cli.main import main

raise SystemExit(main())
