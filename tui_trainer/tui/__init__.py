"""The Textual dashboard. Importing this package imports neither Textual nor torch.

The CLI opens `attach_app.run_attached` on a trainer it started in the background (or on one
already running); `app.make_app(launch_fn)` builds a dashboard that trains in its own process,
for tests and for Python code that wants one.
"""
