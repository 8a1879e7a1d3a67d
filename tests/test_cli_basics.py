"""The command-line shell itself: help, version, lazy heavy imports, error translation."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

import vsrdata
from vsrdata.cli import main

EXPECTED_COMMANDS = {"make-lr", "split-test", "to-lmdb", "lmdb-verify", "train", "evaluate", "infer",
                     "convert-checkpoint", "doctor"}


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert vsrdata.__version__ in result.output


def test_help_lists_every_command_with_a_purpose():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    listed = {}
    in_commands = False
    for line in result.output.splitlines():
        if line.strip() == "Commands:":
            in_commands = True
            continue
        if in_commands and line.startswith("  ") and line.strip():
            name, _, purpose = line.strip().partition(" ")
            listed[name] = purpose.strip()
    assert EXPECTED_COMMANDS <= set(listed), f"missing: {EXPECTED_COMMANDS - set(listed)}"
    assert all(listed[name] for name in EXPECTED_COMMANDS), listed


def test_every_command_help_has_an_example():
    runner = CliRunner()
    for name in sorted(EXPECTED_COMMANDS):
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "vsrdata " + name in result.output, f"{name} --help shows no example"


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys\n"
        "from vsrdata.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in ('torch', 'cv2', 'lmdb') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY=\n" in out, out


def test_unknown_command_fails():
    result = CliRunner().invoke(main, ["no-such-command"])
    assert result.exit_code != 0
