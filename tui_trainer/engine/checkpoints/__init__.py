"""Checkpoints: the store and its metadata, the file format, the save policy and retention.

Listing and retention read only metadata and never import torch; keep this import free of
side effects.
"""
