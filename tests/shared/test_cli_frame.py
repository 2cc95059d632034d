import sys
import textwrap

import pytest

from shared.cli import run_cli


@pytest.fixture
def toy_commands(tmp_path, monkeypatch):
    package = tmp_path / "toycmds"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "say_hi.py").write_text(textwrap.dedent('''
        """Say hi."""
        from shared.errors import UserError
        HELP = "print a greeting"
        def add_arguments(parser):
            parser.add_argument("--name", required=True)
        def run(args):
            if args.name == "bad":
                raise UserError("--name 'bad': not allowed")
            print(f"hi {args.name}")
    '''))
    (package / "write.py").write_text(textwrap.dedent('''
        """Write a file atomically, or log a line."""
        import logging
        from shared.io import write_json
        HELP = "write a JSON file"
        def add_arguments(parser):
            parser.add_argument("--json", required=True)
        def run(args):
            logging.getLogger("toycmds.write").info("writing %s", args.json)
            write_json(args.json, {"ok": True})
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "toycmds"
    for name in [m for m in sys.modules if m.startswith("toycmds")]:
        del sys.modules[name]


def test_subcommand_discovery_and_user_errors(toy_commands, capsys):
    assert run_cli("toy", "desc", toy_commands, ["say-hi", "--name", "ada"]) == 0
    assert capsys.readouterr().out.strip() == "hi ada"
    assert run_cli("toy", "desc", toy_commands, ["say-hi", "--name", "bad"]) == 2
    err = capsys.readouterr().err
    assert err == "toy: error: --name 'bad': not allowed\n"
    assert run_cli("toy", "desc", toy_commands, []) == 0
    assert "say-hi" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["missing-parent-is-a-file", "target-is-a-directory", "read-only-folder"])
def test_file_errors_are_one_line_naming_the_path(toy_commands, tmp_path, capsys, case):
    import os

    if case == "missing-parent-is-a-file":
        (tmp_path / "afile").write_text("x")
        target = tmp_path / "afile" / "out.json"
    elif case == "target-is-a-directory":
        target = tmp_path / "adir"
        target.mkdir()
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o500)
        target = folder / "out.json"
        if os.access(folder, os.W_OK):  # root ignores permission bits: make the folder a file's child instead
            folder.chmod(0o700)
            (folder / "blocker").write_text("x")
            target = folder / "blocker" / "out.json"
    assert run_cli("toy", "desc", toy_commands, ["write", "--json", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and err.splitlines()[0] == f"writing {target}"  # the log line, then the error
    assert err.splitlines()[1].startswith("toy: error: ") and str(target.parent) in err.splitlines()[1]
    assert not target.is_file()
