"""`retrieval` command line: one subcommand per module in `retrieval.commands`."""

from __future__ import annotations

import sys
from typing import Sequence

from shared.cli import run_cli

DESCRIPTION = "Image-sentence retrieval: synth, parse, features, train, evaluate, explain, info, index, search, serve."


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("retrieval", DESCRIPTION, "retrieval.commands", argv)


if __name__ == "__main__":
    sys.exit(main())
