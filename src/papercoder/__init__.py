"""papercoder: turn a machine-learning paper into a runnable code repository."""

__version__ = "0.1.0"
