"""A small character-level language model to try tui-trainer on."""
