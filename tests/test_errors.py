"""Library errors speak in library terms; the CLI adds its flag."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest
from click.testing import CliRunner

import vsrdata
from vsrdata.cli import main
from vsrdata.errors import ConfigError, OutputError

PACKAGE = Path(vsrdata.__file__).parent
LIBRARY = sorted(p for sub in ("core", "pipelines") for p in (PACKAGE / sub).rglob("*.py"))


def _raise_texts(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Raise) and node.exc is not None:
            for sub in ast.walk(node.exc):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                    yield node.lineno, sub.value


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_library_error_messages_name_no_cli_flags(path):
    """core/ and pipelines/ speak in library terms; the fix's flag comes from `option=`."""
    flags = [(line, text) for line, text in _raise_texts(path) if "--" in text]
    assert not flags, f"{path.name}: CLI flags in error messages: {flags}"


def test_option_survives_pickling_and_the_cli_adds_the_flag():
    exc = pickle.loads(pickle.dumps(OutputError("x is a finished LMDB", option="map_size")))
    assert str(exc) == "x is a finished LMDB" and exc.option == "map_size"

    @main.command("_raise-for-test")
    def _cmd():
        raise ConfigError("map_size must be at least 1 MiB, got 5", option="map_size")

    try:
        result = CliRunner().invoke(main, ["_raise-for-test"])
    finally:
        main.commands.pop("_raise-for-test")
    assert result.exit_code == 1
    assert result.output.strip() == "Error: map_size must be at least 1 MiB, got 5 (--map-size)"
