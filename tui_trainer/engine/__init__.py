"""The training engine: plain Python and torch, never Textual or Rich.

Modules that only read metadata (checkpoint listing, retention, policy) do not import torch,
so keep this package's import free of side effects.
"""
