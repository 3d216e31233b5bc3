"""Counts said in words: "1 checkpoint", "3 checkpoints", never "checkpoint(s)"."""

from __future__ import annotations


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """`count` and the noun in the number it takes: counted(1, "batch", "batches") is "1 batch"."""
    return f"{count} {singular if count == 1 else plural or singular + 's'}"
