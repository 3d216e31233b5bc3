"""The training loop: the trainer, its control and events, the job a user writes, and launch.

Keep this package's import free of side effects: importing one module must not pull in torch.
"""
