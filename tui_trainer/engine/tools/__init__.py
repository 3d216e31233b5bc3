"""One-shot tools over finished checkpoints and histories: inspect, verify, compare, export."""
