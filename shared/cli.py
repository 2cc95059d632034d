"""The command-line frame both task CLIs use: subcommands discovered from a package.

Each module in a task's ``commands`` package defines::

    HELP = "one line shown in `--help`"
    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int | None: ...

Heavy imports belong inside `run`, so `fau --help` stays fast.  `UserError` becomes
``<prog>: error: <message>`` on stderr with exit status 2, never a traceback; so does an operating-system
error on a file (missing, unreadable, not writable, not a directory, disk full), named with its path.
Library code reports progress through `logging`; while a command runs, the INFO records of the task's
loggers and of ``shared`` go to stderr as plain lines.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import logging
import os
import pkgutil
import sys
from types import ModuleType
from typing import Iterator, Sequence

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


@contextlib.contextmanager
def log_to_stderr(names: Sequence[str], level: int = logging.INFO) -> Iterator[None]:
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


def describe_os_error(err: OSError) -> str:
    """One line for a failed file operation: the path(s) and the system's reason."""
    reason = err.strerror or os.strerror(err.errno) if err.errno else (err.strerror or str(err))
    if err.errno == errno.ENOSPC:
        reason = "no space left on the device"
    paths = [p for p in (err.filename, err.filename2) if p is not None]
    where = " -> ".join(os.fsdecode(p) for p in paths)
    return f"{where}: {reason}" if where else str(reason or err)


def run_cli(prog: str, description: str, package: str, argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, run the chosen subcommand and turn user and file errors into one line."""
    parser = build_parser(prog, description, package)
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 0
    try:
        with log_to_stderr((package.split(".")[0], "shared")):
            status = args._run(args)
    except UserError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"{prog}: error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)
