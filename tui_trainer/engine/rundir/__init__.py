"""The run dir: its layout and lock, the journal, the history, the control file, and runs.

Viewers in other processes read these files, so nothing here imports torch unless asked.
"""
