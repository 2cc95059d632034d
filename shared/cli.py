"""The command-line frame both task CLIs use: subcommands discovered from a package.

Each module in a task's ``commands`` package defines::

    HELP = "one line shown in `--help`"
    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int | None: ...

Heavy imports belong inside `run`, so `fau --help` stays fast.  `UserError` (and a missing
file) becomes ``<prog>: error: <message>`` on stderr with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from types import ModuleType
from typing import Sequence

from shared.errors import UserError
from shared.version import __version__


def discover_commands(package: str) -> dict[str, ModuleType]:
    """Import every command module of `package`; the command name is the module name with - for _."""
    pkg = importlib.import_module(package)
    commands = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        commands[info.name.replace("_", "-")] = module
    return commands


def build_parser(prog: str, description: str, package: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"{prog} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in discover_commands(package).items():
        help_text = getattr(module, "HELP", "")
        cmd = sub.add_parser(name, help=help_text, description=module.__doc__ or help_text)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def run_cli(prog: str, description: str, package: str, argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, run the chosen subcommand and turn user errors into one line."""
    parser = build_parser(prog, description, package)
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 0
    try:
        status = args._run(args)
    except (UserError, FileNotFoundError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)
