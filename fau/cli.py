"""`fau` command line: one subcommand per module in `fau.commands`.

Library code reports progress through `logging` (``fau.*`` and ``shared.*`` loggers); while a
command runs, their INFO messages go to stderr as plain lines.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Iterator, Sequence

from shared.cli import run_cli

DESCRIPTION = "Facial action unit recognition: synth, prepare, train, eval, info, predict."
LOGGERS = ("fau", "shared")


@contextlib.contextmanager
def log_to_stderr(names: Sequence[str] = LOGGERS, level: int = logging.INFO) -> Iterator[None]:
    """Send the INFO (and above) records of the `names` loggers to the current stderr while the block runs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, previous in zip(loggers, levels):
            logger.removeHandler(handler)
            logger.setLevel(previous)


def main(argv: Sequence[str] | None = None) -> int:
    with log_to_stderr():
        return run_cli("fau", DESCRIPTION, "fau.commands", argv)


if __name__ == "__main__":
    sys.exit(main())
