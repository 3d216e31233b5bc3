"""tui-trainer: train PyTorch models and manage their checkpoints from the terminal."""

__version__ = "0.1.0"
