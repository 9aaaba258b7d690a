"""The command table: every command is wired the same way, and ``spinedesk --help`` shows them."""

from __future__ import annotations

import inspect
import io
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from app.__main__ import main
from app.cli import COMMANDS, build_parser, command_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_every_command_has_add_parser_and_run(command):
    for name, parameters in (("add_parser", ["sub"]), ("run", ["args", "settings", "stdout", "stdin"])):
        function = getattr(command.module, name, None)
        assert callable(function), f"app.cli.{command.name} has no {name}()"
        assert list(inspect.signature(function).parameters) == parameters


def test_help_lists_every_command():
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = out.getvalue()
    for command in COMMANDS:
        if command.subcommand:
            assert command.name in text
    assert "--self-test" in text


def test_spinedesk_help_from_the_command_line():
    result = subprocess.run([sys.executable, "-m", "app", "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, check=True)
    assert all(c.name in result.stdout for c in COMMANDS if c.subcommand)


@pytest.mark.parametrize(("argv", "name"), [([], "desktop"), (["--self-test"], "selftest"),
                                            (["card", "status"], "card"), (["login", "--pin-stdin"], "login"),
                                            (["service"], "service"), (["wes", "check"], "wes")])
def test_the_parsed_arguments_pick_the_command(argv, name):
    assert command_for(build_parser().parse_args(argv)).name == name
