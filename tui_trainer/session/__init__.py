"""Run-level plain Python shared by a dashboard, a detached trainer and viewers.

Nothing here imports Textual, so a process with no screen can use all of it.
"""
