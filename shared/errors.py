"""The one exception type that the command-line tools turn into a one-line message."""


class UserError(Exception):
    """Bad input from the user (a file, an argument, a config key).

    The message must name the file or argument and say what is wrong, in one line.
    `shared.cli.run_cli` prints it as ``error: <message>`` and exits with status 2,
    so users never see a traceback for their own mistakes.
    """
