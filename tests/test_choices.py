"""Every `click.Choice` of every command lists exactly the library's own list of choices.

Lists owned by torch-free modules are imported by the CLI (through `cli/_common.py`) and must be
the same tuple; lists owned by torch modules (which `--help` must not import) are compared here.
A Choice added without an entry below fails `test_every_choice_is_accounted_for`.
"""

from __future__ import annotations

import click
import pytest

from vsrdata.cli import main
from vsrdata.core import degrade, layouts, splits, video
from vsrdata.core.lmdb import keys as lmdb_keys
from vsrdata.evaluation import ensemble, windows
from vsrdata.training import config as train_config


def _shared():
    """(command, option) -> the library tuple the CLI must use as it is."""
    return {
        ("make-lr", "degradation"): degrade.DEGRADATIONS,
        ("split-test", "degradation"): degrade.DEGRADATIONS,
        ("split-test", "pad"): splits.SPATIAL_PADDINGS,
        ("split-test", "partition"): tuple(splits.PARTITIONS),
        ("split-test", "layout"): layouts.LAYOUTS,
        ("to-lmdb", "key_style"): lmdb_keys.KEY_STYLES,
        ("to-lmdb", "vimeo_mode"): layouts.VIMEO_MODES,
        ("evaluate", "padding"): windows.TEMPORAL_PADDINGS,
        ("infer", "padding"): windows.TEMPORAL_PADDINGS,
        ("train", "val_pad"): windows.TEMPORAL_PADDINGS,
        ("train", "val_partition"): train_config.VAL_PARTITIONS,
        ("train", "dataset"): train_config.DATASETS,
        ("train", "amp"): train_config.AMP_MODES,
        ("train", "loss_reduction"): train_config.LOSS_REDUCTIONS,
        ("train", "init_key"): train_config.INIT_KEYS,
        ("train", "loss_type"): train_config.LOSS_TYPES,
        ("train", "scheduler"): train_config.SCHEDULERS,
        ("infer", "codec"): video.CODECS,
        ("infer", "pix_fmt"): video.PIX_FMTS,
        ("evaluate", "tta"): ensemble.TTA_MODES,
        ("infer", "tta"): ensemble.TTA_MODES,
    }


def _torch_owned():
    """(command, option) -> the library's choices (as a set; 'auto' is a CLI-only extra)."""
    from vsrdata.edvr import dcn
    from vsrdata.evaluation import engines, inference, metrics, protocols

    backends = {"auto", *dcn.BACKENDS}
    return {
        ("evaluate", "protocol"): {"auto", *protocols.PROTOCOLS},
        ("evaluate", "precision"): set(inference.PRECISIONS),
        ("infer", "precision"): set(inference.PRECISIONS),
        ("evaluate", "average"): set(metrics.AVERAGE_MODES),
        ("evaluate", "dcn_backend"): backends,
        ("infer", "dcn_backend"): backends,
        ("train", "dcn_backend"): backends,
        ("evaluate", "engine"): {"auto", *engines.ENGINES},
        ("infer", "engine"): {"auto", *engines.ENGINES},
    }


# Choices with no list in the library (a literal in one command only).
_CLI_ONLY = {("evaluate", "frames"), ("train", "device"), ("convert-checkpoint", "to")}


def _cli_choices():
    return {(name, p.name): tuple(p.type.choices)
            for name, cmd in main.commands.items() for p in cmd.params if isinstance(p.type, click.Choice)}


def test_every_choice_is_accounted_for():
    known = set(_shared()) | set(_torch_owned()) | _CLI_ONLY
    assert set(_cli_choices()) == known


@pytest.mark.parametrize("key", sorted(_shared()))
def test_cli_choice_is_the_library_list(key):
    assert _cli_choices()[key] == tuple(_shared()[key])


@pytest.mark.parametrize("key", sorted(_torch_owned()))
def test_cli_choice_matches_a_torch_module_list(key):
    assert set(_cli_choices()[key]) == _torch_owned()[key]


def test_one_name_per_padding_kind():
    # PAD_MODES meant temporal padding in one module and spatial padding in another
    for module in (splits, windows, train_config):
        assert not hasattr(module, "PAD_MODES") and not hasattr(module, "PADDING_MODES")
    assert train_config.REDS_VAL_CLIPS["REDS4"] == splits.REDS4
    assert train_config.REDS_VAL_CLIPS["official"] == splits.REDS_VAL
