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
