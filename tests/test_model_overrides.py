"""`edvr.config.parse_overrides`: KEY=VALUE strings typed by the EDVRConfig field they name."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from vsrdata.cli import main
from vsrdata.edvr.config import parse_overrides
from vsrdata.errors import ConfigError


def test_values_take_the_field_type():
    got = parse_overrides(["num_reconstruct_block=40", "with_tsa = false", "hr_in=TRUE", "center_frame_idx=none",
                           "num_frame=+7"])
    assert got == {"num_reconstruct_block": 40, "with_tsa": False, "hr_in": True, "center_frame_idx": None,
                   "num_frame": 7}
    assert type(got["num_reconstruct_block"]) is int and type(got["with_tsa"]) is bool


@pytest.mark.parametrize("pair, message", [
    ("num_feat", "expected KEY=VALUE"),
    ("nf=64", "unknown EDVR config field 'nf'"),
    ("with_tsa=1", "with_tsa: expected true or false, got '1'"),
    ("num_feat=none", "num_feat: expected an integer, got 'none'"),
    ("num_feat=6.5", "num_feat: expected an integer, got '6.5'"),
])
def test_bad_pairs_are_one_line_errors(pair, message):
    with pytest.raises(ConfigError, match=message):
        parse_overrides([pair])


def test_cli_reports_the_flag():
    result = CliRunner().invoke(main, ["train", "--gt", "x", "--lq", "y", "--model-opt", "with_tsa=1"])
    assert result.exit_code == 2
    assert "--model-opt" in result.output and "expected true or false" in result.output
