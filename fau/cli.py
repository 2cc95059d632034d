"""`fau` command line: one subcommand per module in `fau.commands` (the frame is `shared.cli`)."""

from __future__ import annotations

import sys
from typing import Sequence

from shared.cli import run_cli

DESCRIPTION = "Facial action unit recognition: synth, prepare, train, eval, info, predict, serve."


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("fau", DESCRIPTION, "fau.commands", argv)


if __name__ == "__main__":
    sys.exit(main())
