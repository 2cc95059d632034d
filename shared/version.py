"""Project version, read by pyproject and every `--version`."""

__version__ = "0.1.0"
