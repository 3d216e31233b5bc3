"""The `tui-trainer` command line. Imports torch only inside commands that train or load."""
