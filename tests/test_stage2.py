"""Two-stage EDVR: the stage-2 networks (presets for the four REDS tracks) and the original EDVR's
`*_Stage2.pth` key set, derived here from the original architecture (xinntao/EDVR old_version
`codes/models/archs/EDVR_arch.py`: EDVR(nf=128, nframes=5, groups=8, front_RBs=5, back_RBs=20,
predeblur=track, HR_in=True), docs/CONVENTIONS.md#stage-2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vsrdata.edvr.arch import build_edvr
from vsrdata.edvr.checkpoint import preset_name, read_checkpoint, rename_original_key, save_atomic
from vsrdata.edvr.config import STAGE2_PRESETS, get_preset

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def original_stage2_shapes(predeblur: bool, nf: int = 128, nframes: int = 5, groups: int = 8,
                           front: int = 5, back: int = 20) -> dict[str, tuple[int, ...]]:
    """{original parameter name: shape} of the original EDVR with HR_in=True, written from its
    constructor: predeblur -> pre_deblur (HR_in: conv_first_1/2/3) + conv_1x1, else the top-level
    conv_first_1 (3->nf) and the stride-2 conv_first_2/3; then the shared trunk."""
    out: dict[str, tuple[int, ...]] = {}

    def conv(name, cin, cout, k=3):
        out[f"{name}.weight"], out[f"{name}.bias"] = (cout, cin, k, k), (cout,)

    def rb(name):
        conv(f"{name}.conv1", nf, nf)
        conv(f"{name}.conv2", nf, nf)

    if predeblur:
        conv("pre_deblur.conv_first_1", 3, nf)
        conv("pre_deblur.conv_first_2", nf, nf)
        conv("pre_deblur.conv_first_3", nf, nf)
        for i in range(1, 6):
            rb(f"pre_deblur.RB_L1_{i}")
        rb("pre_deblur.RB_L2_1")
        rb("pre_deblur.RB_L2_2")
        rb("pre_deblur.RB_L3_1")
        conv("pre_deblur.deblur_L2_conv", nf, nf)
        conv("pre_deblur.deblur_L3_conv", nf, nf)
        conv("conv_1x1", nf, nf, 1)
    else:
        conv("conv_first_1", 3, nf)
        conv("conv_first_2", nf, nf)
        conv("conv_first_3", nf, nf)
    for i in range(front):
        rb(f"feature_extraction.{i}")
    for name in ("fea_L2_conv1", "fea_L2_conv2", "fea_L3_conv1", "fea_L3_conv2"):
        conv(name, nf, nf)
    for lvl in (3, 2, 1):
        conv(f"pcd_align.L{lvl}_offset_conv1", 2 * nf, nf)
        conv(f"pcd_align.L{lvl}_offset_conv2", nf if lvl == 3 else 2 * nf, nf)
        if lvl < 3:
            conv(f"pcd_align.L{lvl}_offset_conv3", nf, nf)
        conv(f"pcd_align.L{lvl}_dcnpack", nf, nf)
        conv(f"pcd_align.L{lvl}_dcnpack.conv_offset_mask", nf, groups * 3 * 9)
        if lvl < 3:
            conv(f"pcd_align.L{lvl}_fea_conv", 2 * nf, nf)
    conv("pcd_align.cas_offset_conv1", 2 * nf, nf)
    conv("pcd_align.cas_offset_conv2", nf, nf)
    conv("pcd_align.cas_dcnpack", nf, nf)
    conv("pcd_align.cas_dcnpack.conv_offset_mask", nf, groups * 3 * 9)
    conv("tsa_fusion.tAtt_1", nf, nf)
    conv("tsa_fusion.tAtt_2", nf, nf)
    conv("tsa_fusion.fea_fusion", nframes * nf, nf, 1)
    conv("tsa_fusion.sAtt_1", nframes * nf, nf, 1)
    conv("tsa_fusion.sAtt_2", 2 * nf, nf, 1)
    conv("tsa_fusion.sAtt_3", nf, nf)
    conv("tsa_fusion.sAtt_4", nf, nf, 1)
    conv("tsa_fusion.sAtt_5", nf, nf)
    conv("tsa_fusion.sAtt_L1", nf, nf, 1)
    conv("tsa_fusion.sAtt_L2", 2 * nf, nf)
    conv("tsa_fusion.sAtt_L3", nf, nf)
    conv("tsa_fusion.sAtt_add_1", nf, nf, 1)
    conv("tsa_fusion.sAtt_add_2", nf, nf, 1)
    for i in range(back):
        rb(f"recon_trunk.{i}")
    conv("upconv1", nf, 4 * nf)
    conv("upconv2", nf, 256)
    conv("HRconv", 64, 64)
    conv("conv_last", 64, 3)
    return out


@pytest.mark.parametrize("preset", sorted(STAGE2_PRESETS))
def test_stage2_presets_have_the_original_key_set(preset):
    cfg = get_preset(preset)
    assert (cfg.num_feat, cfg.num_frame, cfg.num_reconstruct_block, cfg.num_extract_block) == (128, 5, 20, 5)
    assert cfg.hr_in and cfg.scale == 1 and cfg.with_tsa
    assert cfg.with_predeblur == (preset != "edvr-stage2-sr")  # predeblur as the track's stage 1
    assert cfg.with_predeblur == get_preset(STAGE2_PRESETS[preset]).with_predeblur
    original = original_stage2_shapes(cfg.with_predeblur)
    ours = {k: tuple(v.shape) for k, v in build_edvr(preset).state_dict().items()}
    assert {rename_original_key(k): v for k, v in original.items()} == ours
    # every name the original stage-1 models share with stage 2 maps as the reference keymap says
    keymap = json.loads((FIXTURES / "edvr" / "keymap_original_to_basicsr.json").read_text())
    shared = [k for k in original if k in keymap]
    assert len(shared) > len(original) - 8 and all(rename_original_key(k) == keymap[k] for k in shared)


@pytest.mark.parametrize("predeblur", [False, True])
def test_an_original_stage2_file_loads_and_runs(predeblur, tmp_path):
    from vsrdata.evaluation.engines import load_model

    gen = torch.Generator().manual_seed(0)
    sd = {f"module.{k}": torch.randn(shape, generator=gen) * 0.01
          for k, shape in original_stage2_shapes(predeblur).items()}
    path = tmp_path / "EDVR_REDS_SR_Stage2.pth"
    save_atomic(sd, path)  # raw and unwrapped, as the original repository saved its models
    loaded = read_checkpoint(path)
    assert loaded.source_format == "edvr-original"
    model = load_model(path, device="cpu")  # architecture from the weights' shapes, strict load
    name = preset_name(model.config)
    assert name in STAGE2_PRESETS and get_preset(name).with_predeblur == predeblur
    with torch.inference_mode():
        assert model(torch.rand(1, 5, 3, 32, 48)).shape == (1, 3, 32, 48)
