"""EDVR checkpoints: key maps, every wrapper format round-trips bit-identically, unsafe pickles are
refused, strict/non-strict reports, convert-checkpoint CLI."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vsrdata.cli import main
from vsrdata.edvr.arch import build_edvr
from vsrdata.edvr.checkpoint import (
    VSRDATA_FORMAT, load_weights, read_checkpoint, read_state_dict, rename_mmagic_key, rename_original_key,
    save_atomic, infer_config)
from vsrdata.edvr.config import OFFICIAL_PRESETS, get_preset
from vsrdata.errors import CheckpointError

REF = Path(__file__).resolve().parent.parent / "fixtures" / "edvr"
ORIGINAL_MAP = json.loads((REF / "keymap_original_to_basicsr.json").read_text())
MMAGIC_MAP = json.loads((REF / "keymap_mmagic_to_basicsr.json").read_text())


pytestmark = pytest.mark.usefixtures("pure_dcn", "one_torch_thread")


# -- key maps ---------------------------------------------------------------------------------------
def test_original_rename_rules_reproduce_keymap():
    produced = {k: rename_original_key(k) for k in ORIGINAL_MAP}
    assert produced == ORIGINAL_MAP


def test_mmagic_rename_rules_reproduce_keymap():
    produced = {k: rename_mmagic_key(k) for k in MMAGIC_MAP}
    assert produced == MMAGIC_MAP


def test_tatt_names_are_swapped():
    assert rename_original_key("tsa_fusion.tAtt_1.weight") == "fusion.temporal_attn2.weight"
    assert rename_original_key("tsa_fusion.tAtt_2.bias") == "fusion.temporal_attn1.bias"
    assert rename_mmagic_key("generator.fusion.temporal_attn1.weight") == "fusion.temporal_attn1.weight"


def test_basicsr_names_are_left_alone():
    sd = build_edvr("edvr-tiny", with_predeblur=True, hr_in=True).state_dict()
    assert all(rename_original_key(k) == k for k in sd)
    sd = build_edvr("edvr-tiny").state_dict()
    assert all(rename_original_key(k) == k and rename_mmagic_key(k) == k for k in sd)


# -- synthesised checkpoints ---------------------------------------------------------------------------
def _inverse(mapping: dict[str, str], hr_in: bool = False) -> dict[str, str]:
    inv: dict[str, str] = {}
    for old, new in mapping.items():
        if new in inv and new.startswith("predeblur.conv_first"):
            # EDVR-old called it conv_first_1 when HR_in (followed by conv_first_2/3), else conv_first
            if ("conv_first_1" in old) != hr_in:
                continue
        inv[new] = old
    return inv


def _random_model(seed: int, **overrides):
    torch.manual_seed(seed)
    model = build_edvr("edvr-tiny", **overrides)
    with torch.no_grad():  # perturb everything, including the zero-initialised offset convs
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return model


def _x(model, hw=(8, 8)):
    gen = torch.Generator().manual_seed(123)
    return torch.rand(1, model.config.num_frame, 3, *hw, generator=gen)


def _assert_identical(model_a, model_b, forward=True):
    sa, sb = model_a.state_dict(), model_b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    if forward:
        hw = (16, 16) if model_a.config.hr_in else (8, 8)
        with torch.no_grad():
            x = _x(model_a, hw)
            assert torch.equal(model_a(x), model_b(x))


def _formats(model, overrides):
    """{name: (object to save, expected source format)} for the model's weights."""
    sd = model.state_dict()
    hr_in = overrides.get("hr_in", False)
    orig = _inverse(ORIGINAL_MAP, hr_in)
    out = {
        "basicsr": ({"params": sd}, "basicsr"),
        "original": ({orig[k]: v for k, v in sd.items()}, "edvr-original"),
        "original-module": ({"module." + orig[k]: v for k, v in sd.items()}, "edvr-original"),
        "plain-compiled-ddp": ({"module._orig_mod." + k: v for k, v in sd.items()}, "plain"),
        "vsrdata": ({"params": sd, "config": model.config.to_dict(), "format": VSRDATA_FORMAT}, "vsrdata"),
    }
    if not overrides.get("with_predeblur"):
        mm = _inverse(MMAGIC_MAP)
        out["mmagic"] = ({"meta": {"iter": 600000, "mmagic_version": "1.2.0"},
                          "state_dict": {mm[k]: v for k, v in sd.items()}}, "mmagic")
    return out


@pytest.mark.parametrize("overrides", [{}, {"with_tsa": False}, {"with_predeblur": True, "hr_in": True}],
                         ids=["tsa", "wotsa", "deblur"])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_every_format_round_trips_bit_identically(tmp_path, overrides, legacy):
    source = _random_model(0, **overrides)
    for name, (obj, fmt) in _formats(source, overrides).items():
        path = tmp_path / f"{name}.pth"
        torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
        target = _random_model(1, **overrides)
        report = load_weights(target, path)
        assert report.ok and report.source_format == fmt, (name, report.summary())
        # identical weights imply identical outputs; run the (slower) forward once per model
        _assert_identical(source, target, forward=name == "original")


def test_original_keys_really_differ_and_swap_matters(tmp_path):
    # Guard against a vacuous round trip: loading the old names without the swap must differ.
    source = _random_model(0)
    orig = _inverse(ORIGINAL_MAP)
    raw = {orig[k]: v for k, v in source.state_dict().items()}
    assert "tsa_fusion.tAtt_2.weight" in raw and "fusion.temporal_attn1.weight" not in raw
    torch.testing.assert_close(raw["tsa_fusion.tAtt_2.weight"], source.fusion.temporal_attn1.weight)
    swapped = dict(raw)
    swapped["tsa_fusion.tAtt_1.weight"], swapped["tsa_fusion.tAtt_2.weight"] = \
        raw["tsa_fusion.tAtt_2.weight"], raw["tsa_fusion.tAtt_1.weight"]
    target = _random_model(2)
    load_weights(target, swapped)
    with torch.no_grad():
        x = _x(source)
        assert not torch.allclose(target(x), source(x))


def test_params_ema_preferred_and_param_key_override(tmp_path):
    a, b = _random_model(0), _random_model(1)
    path = tmp_path / "train.pth"
    torch.save({"params": a.state_dict(), "params_ema": b.state_dict()}, path)
    ckpt = read_checkpoint(path)
    assert ckpt.param_key == "params_ema"
    assert torch.equal(ckpt.state_dict["conv_last.weight"], b.conv_last.weight)
    sd = read_state_dict(path, param_key="params")
    assert torch.equal(sd["conv_last.weight"], a.conv_last.weight)
    with pytest.raises(CheckpointError, match="no 'net_g' entry"):
        read_state_dict(path, param_key="net_g")


def test_numpy_metadata_is_accepted(tmp_path):
    model = _random_model(0)
    path = tmp_path / "np.pth"
    torch.save({"params": model.state_dict(), "meta": {"psnr": np.float64(30.5), "hist": np.zeros(3)}}, path)
    target = _random_model(1)
    load_weights(target, path)
    _assert_identical(model, target)


# -- unsafe and broken files ------------------------------------------------------------------------------
class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_code_running_pickle_is_refused(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"params": {"conv_first.weight": torch.zeros(1)}, "x": _Evil(marker)}
    if writer == "pickle":
        with open(path, "wb") as fh:
            pickle.dump(payload, fh, protocol=2)
    else:
        torch.save(payload, path)
    # sanity: the payload really runs code when unpickled naively
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Evil(probe)))
    assert probe.exists()
    with pytest.raises(CheckpointError, match="refusing to load .*evil.pth"):
        read_state_dict(path)
    assert not marker.exists()


def test_broken_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*junk.pth"):
        read_state_dict(junk)
    good = tmp_path / "good.pth"
    torch.save({"params": _random_model(0).state_dict()}, good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cut.pth"):
        read_state_dict(cut)
    notweights = tmp_path / "list.pth"
    torch.save([1, 2, 3], notweights)
    with pytest.raises(CheckpointError, match="expected a dict"):
        read_state_dict(notweights)
    meta_only = tmp_path / "meta.pth"
    torch.save({"iter": 5, "epoch": 1}, meta_only)
    with pytest.raises(CheckpointError, match="no weights found"):
        read_state_dict(meta_only)


# -- strict / non-strict ---------------------------------------------------------------------------------------
def test_strict_mismatch_reports_and_leaves_model_untouched(tmp_path):
    wotsa = _random_model(0, with_tsa=False)
    path = tmp_path / "wotsa.pth"
    torch.save({"params": wotsa.state_dict()}, path)
    tsa = _random_model(1)
    before = {k: v.clone() for k, v in tsa.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_weights(tsa, path)
    msg = str(info.value)
    assert "\n" not in msg
    assert "missing: fusion.temporal_attn1.weight" in msg and "2 unexpected: fusion.weight, fusion.bias" in msg
    assert info.value.report.missing and not info.value.report.ok
    assert all(torch.equal(before[k], v) for k, v in tsa.state_dict().items())

    # non-strict, as BasicSR initialises EDVR (TSA) from its woTSA run
    report = load_weights(tsa, path, strict=False)
    assert sorted(report.unexpected) == ["fusion.bias", "fusion.weight"]
    assert report.missing and all(k.startswith("fusion.") for k in report.missing)
    for k in report.loaded:
        assert torch.equal(tsa.state_dict()[k], wotsa.state_dict()[k])
    assert "missing from the checkpoint" in str(report)


def test_shape_mismatch_is_reported():
    small = _random_model(0, num_feat=8)
    report = load_weights(_random_model(1), small.state_dict(), strict=False)
    assert ("conv_first.weight", (8, 3, 3, 3), (16, 3, 3, 3)) in report.mismatched
    with pytest.raises(CheckpointError, match="shape mismatch: conv_first.weight"):
        load_weights(_random_model(1), small.state_dict())


def test_save_atomic_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "w.pth"
    save_atomic({"params": _random_model(0).state_dict()}, path)
    assert [p.name for p in path.parent.iterdir()] == ["w.pth"]
    assert read_checkpoint(path).source_format == "basicsr"


@pytest.mark.parametrize("preset", OFFICIAL_PRESETS + ("edvr-tiny",))
def test_infer_config_from_shapes(preset):
    with torch.device("meta"):
        sd = build_edvr(preset).state_dict()
    assert infer_config(sd) == get_preset(preset)


# -- CLI ---------------------------------------------------------------------------------------------------------
def test_cli_convert_original_to_basicsr_and_vsrdata(tmp_path):
    source = _random_model(0)
    orig = _inverse(ORIGINAL_MAP)
    src = tmp_path / "EDVR_tiny_old.pth"
    torch.save({orig[k]: v for k, v in source.state_dict().items()}, src, _use_new_zipfile_serialization=False)
    runner = CliRunner()
    out = tmp_path / "basicsr.pth"
    result = runner.invoke(main, ["convert-checkpoint", str(src), str(out), "--to", "basicsr"])
    assert result.exit_code == 0, result.output
    assert "edvr-original" in result.output and "edvr-tiny" in result.output
    saved = torch.load(out, weights_only=True)
    assert list(saved) == ["params"]
    assert list(saved["params"]) == list(source.state_dict())
    target = _random_model(1)
    target.load_state_dict(saved["params"], strict=True)  # a BasicSR-style strict load
    _assert_identical(source, target)

    out2 = tmp_path / "ours.pth"
    result = runner.invoke(main, ["convert-checkpoint", str(out), str(out2), "--to", "vsrdata"])
    assert result.exit_code == 0, result.output
    ckpt = read_checkpoint(out2)
    assert ckpt.source_format == "vsrdata" and ckpt.config == get_preset("edvr-tiny")

    # refuses to overwrite, and refuses a preset the weights do not match
    result = runner.invoke(main, ["convert-checkpoint", str(out), str(out2)])
    assert result.exit_code == 1 and "exists" in result.output and "Traceback" not in result.output
    out3 = tmp_path / "m.pth"
    result = runner.invoke(main, ["convert-checkpoint", str(out), str(out3), "--preset", "edvr-m"])
    assert result.exit_code == 1 and "does not match preset 'edvr-m'" in result.output
    assert not out3.exists()


def test_cli_convert_refuses_bad_input(tmp_path):
    runner = CliRunner()
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as fh:
        pickle.dump({"params": _Evil(tmp_path / "pwned")}, fh, protocol=2)
    out = tmp_path / "out.pth"
    result = runner.invoke(main, ["convert-checkpoint", str(evil), str(out)])
    assert result.exit_code == 1 and result.output.startswith("Error: refusing to load")
    assert not (tmp_path / "pwned").exists() and not out.exists()
    notedvr = tmp_path / "other.pth"
    torch.save({"params": {"encoder.weight": torch.zeros(2, 2)}}, notedvr)
    result = runner.invoke(main, ["convert-checkpoint", str(notedvr), str(out)])
    assert result.exit_code == 1 and "cannot infer the EDVR configuration" in result.output
    result = runner.invoke(main, ["convert-checkpoint", str(notedvr), str(out), "--preset", "edvr-q"])
    assert result.exit_code == 2 and "'edvr-q' is not one of" in result.output  # --preset lists its choices
    assert list(tmp_path.iterdir()) and not out.exists()


def test_training_checkpoint_model_config_is_read(tmp_path):
    model = _random_model(0, num_frame=3, center_frame_idx=0)
    path = tmp_path / "iter_10.pth"
    torch.save({"params": model.state_dict(), "iter": 10, "model_config": model.config.to_dict()}, path)
    ckpt = read_checkpoint(path)
    assert ckpt.config == model.config and ckpt.config.center_frame_idx == 0
