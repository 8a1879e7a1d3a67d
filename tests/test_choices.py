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
from vsrdata.edvr import config as edvr_config
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
        ("train", "val_pad_old"): windows.TEMPORAL_PADDINGS,  # hidden old spelling --val-pad
        **{(cmd, "preset"): (*edvr_config.PRESETS, "custom")
           for cmd in ("train", "evaluate", "infer", "export", "convert-checkpoint")},
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
        ("train", "precision"): set(inference.PRECISIONS),
        ("evaluate", "average"): set(metrics.AVERAGE_MODES),
        ("evaluate", "dcn_backend"): backends,
        ("infer", "dcn_backend"): backends,
        ("train", "dcn_backend"): backends,
        ("evaluate", "engine"): {"auto", *engines.ENGINES},
        ("infer", "engine"): {"auto", *engines.ENGINES},
    }


# Choices with no list in the library (a literal in one command only).
_CLI_ONLY = {("evaluate", "frames"), ("convert-checkpoint", "to")}


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


# -- one vocabulary across commands -----------------------------------------------------------------

def _options(command: str, hidden: bool = False) -> dict[str, click.Option]:
    return {p.name: p for p in main.commands[command].params
            if isinstance(p, click.Option) and (hidden or not p.hidden)}


def _by_flag(command: str) -> dict[str, click.Option]:
    return {flag: p for p in _options(command).values() for flag in p.opts}


WORKERS = ("make-lr", "split-test", "to-lmdb", "lmdb-verify", "extract", "train")
WRITERS = ("make-lr", "split-test", "to-lmdb", "lmdb-merge", "extract", "infer", "export", "convert-checkpoint")
DEVICES = ("evaluate", "infer", "train", "doctor")
MODELS = ("evaluate", "infer", "train")


def test_workers_and_overwrite_everywhere():
    for command in WORKERS:
        assert {"-j", "--workers"} <= set(_by_flag(command)), command
    for command in WRITERS:
        opt = _by_flag(command).get("--overwrite")
        assert opt is not None and opt.is_flag, command


def test_device_precision_padding_preset_are_the_same_option_everywhere():
    from vsrdata.cli._common import DeviceType

    for command in DEVICES:
        opt = _by_flag(command)["--device"]
        assert isinstance(opt.type, DeviceType) and opt.default == "auto" and opt.show_default, command
        assert opt.type.convert("auto", opt, None) is None and opt.type.convert("cuda:1", opt, None) == "cuda:1"
    precision = {tuple(_by_flag(c)["--precision"].type.choices) for c in MODELS}
    padding = {tuple(_by_flag(c)["--padding"].type.choices) for c in MODELS}
    assert len(precision) == 1 and len(padding) == 1 and padding == {windows.TEMPORAL_PADDINGS}
    for command in ("evaluate", "infer", "train", "export", "convert-checkpoint"):
        assert isinstance(_by_flag(command)["--preset"].type, click.Choice), command
    # one name per concept: no visible second spelling of these
    for command in main.commands:
        flags = set(_by_flag(command))
        assert not flags & {"--num-workers", "--amp", "--val-pad", "--train-list"}, command


def test_clip_lists_and_paths():
    for command in ("split-test", "to-lmdb", "train"):
        assert isinstance(_by_flag(command)["--list"].type, click.Path), command
    pathlike = {"--gt", "--lq", "--meta-info", "--config", "--out", "--run-dir", "--init", "--val",
                "--init-deep-from-shallow", "--lr-root", "--checkpoint", "--list"}
    for command in main.commands:
        for flag, opt in _by_flag(command).items():
            if flag in pathlike:
                assert isinstance(opt.type, click.Path), (command, flag)


def test_defaults_are_shown_one_way():
    import re

    for command in main.commands:
        for opt in _options(command).values():
            text = opt.help or ""
            assert not re.search(r"\[(?!default: )[^\]]*\]\s*$", text), (command, opt.name, text)
            unset = type(opt.default).__name__ == "Sentinel"  # click 8.2: no default given
            if not unset and opt.default not in (None, False) and not opt.is_flag and not opt.multiple:
                assert opt.show_default or "default" in text.lower(), (command, opt.name)


def test_old_spellings_still_work():
    from vsrdata.training.config import from_dict

    hidden = _options("train", hidden=True)
    for name in ("num_workers_old", "train_list_old", "val_pad_old", "amp"):
        assert hidden[name].hidden, name
    assert from_dict({"workers": 2, "padding": "replicate", "precision": "fp32"}).num_workers == 2
    assert from_dict({"precision": "fp32"}).amp == "none" and from_dict({"precision": "bf16"}).amp == "bf16"
