"""EDVR architecture: official state-dict keys/shapes/counts, forward shapes, validation, init."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vsrdata.edvr.arch import EDVR, EDVRInputError, TSAFusion, build_edvr
from vsrdata.edvr.config import OFFICIAL_PRESETS, PRESETS, STAGE2_PRESETS, EDVRConfig, get_preset
from vsrdata.edvr.dcn import DCNv2Pack
from vsrdata.errors import ConfigError

REF = Path(__file__).resolve().parent.parent / "fixtures" / "edvr"
# Official model names (statedict_index.json) -> our presets.
OFFICIAL = {
    "EDVR_M_woTSA_x4_SR_REDS": "edvr-m-wotsa",
    "EDVR_M_x4_SR_REDS": "edvr-m",
    "EDVR_L_x4_SR_REDS": "edvr-l",
    "EDVR_L_x4_SR_Vimeo90K": "edvr-l-vimeo",
    "EDVR_L_x4_SRblur_REDS": "edvr-l-srblur",
    "EDVR_L_deblur_REDS": "edvr-l-deblur",
}


pytestmark = pytest.mark.usefixtures("pure_dcn", "one_torch_thread")


def _meta_model(preset: str) -> EDVR:
    with torch.device("meta"):  # shapes only, no memory, no init cost
        return build_edvr(preset)


@pytest.mark.parametrize("name", ["EDVR_M_woTSA_x4_SR_REDS", "EDVR_M_x4_SR_REDS", "EDVR_L_x4_SR_REDS"])
def test_state_dict_keys_order_and_shapes_equal_official(name):
    ref = json.loads((REF / f"statedict_{name}.json").read_text())
    sd = _meta_model(OFFICIAL[name]).state_dict()
    assert list(sd) == list(ref)
    assert {k: list(v.shape) for k, v in sd.items()} == ref


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_tensor_and_parameter_counts_equal_official(name):
    index = json.loads((REF / "statedict_index.json").read_text())[name]
    preset = OFFICIAL[name]
    fields = get_preset(preset).to_dict()
    assert fields.pop("scale") == (1 if fields["hr_in"] else 4)  # ours: BasicSR's EDVR is x4 (or hr_in) only
    assert fields == index["basicsr_kwargs"]
    sd = _meta_model(preset).state_dict()
    assert len(sd) == index["num_tensors"]
    assert sum(v.numel() for v in sd.values()) == index["num_params"]


def test_presets_cover_the_official_models():
    assert set(OFFICIAL.values()) == set(OFFICIAL_PRESETS)
    assert set(PRESETS) == set(OFFICIAL_PRESETS) | set(STAGE2_PRESETS) | {"edvr-tiny", "edvr-l-wotsa"}
    vimeo = _meta_model("edvr-l-vimeo")
    assert vimeo.center_frame_idx == 3
    assert vimeo.fusion.feat_fusion.weight.shape == (128, 896, 1, 1)
    assert get_preset("edvr-l-deblur").scale == 1 and get_preset("edvr-l").scale == 4


# -- forward -------------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides,in_hw,out_hw", [
    ({}, (16, 20), (64, 80)),
    ({"with_tsa": False}, (8, 12), (32, 48)),
    ({"num_frame": 3}, (8, 8), (32, 32)),
    ({"with_predeblur": True}, (8, 12), (32, 48)),
    ({"with_predeblur": True, "hr_in": True}, (32, 48), (32, 48)),
])
def test_forward_shapes(overrides, in_hw, out_hw):
    torch.manual_seed(0)
    model = build_edvr("edvr-tiny", **overrides)
    t = model.config.num_frame
    x = torch.rand(2, t, 3, *in_hw)
    out = model(x)
    assert out.shape == (2, 3, *out_hw)
    out.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"


def _zero_residual(model: EDVR) -> EDVR:
    with torch.no_grad():
        model.conv_last.weight.zero_()
        model.conv_last.bias.zero_()
    return model


@pytest.mark.parametrize("center", [None, 0])
def test_base_is_bilinear_x4_of_centre_frame(center):
    torch.manual_seed(1)
    model = _zero_residual(build_edvr("edvr-tiny", num_frame=3, center_frame_idx=center))
    x = torch.rand(1, 3, 3, 8, 12)
    c = 1 if center is None else center
    expected = F.interpolate(x[:, c], scale_factor=4, mode="bilinear", align_corners=False)
    torch.testing.assert_close(model(x), expected, rtol=0, atol=0)


def test_hr_in_base_is_the_centre_frame():
    torch.manual_seed(2)
    model = _zero_residual(build_edvr("edvr-tiny", with_predeblur=True, hr_in=True))
    x = torch.rand(1, 5, 3, 16, 16)
    torch.testing.assert_close(model(x), x[:, 2], rtol=0, atol=0)


def _per_frame_forward(model: EDVR, x: torch.Tensor) -> torch.Tensor:
    """The forward written frame by frame, as BasicSR loops over frames in PCD."""
    lrelu = lambda t: F.leaky_relu(t, 0.1)  # noqa: E731
    b, t, c, h, w = x.shape
    ctr = model.center_frame_idx
    f1 = model.feature_extraction(lrelu(model.conv_first(x.view(-1, c, h, w))))
    f2 = lrelu(model.conv_l2_2(lrelu(model.conv_l2_1(f1))))
    f3 = lrelu(model.conv_l3_2(lrelu(model.conv_l3_1(f2))))
    f1, f2, f3 = (f.view(b, t, *f.shape[1:]) for f in (f1, f2, f3))
    ref = [f1[:, ctr], f2[:, ctr], f3[:, ctr]]
    aligned = torch.stack([model.pcd_align([f1[:, i], f2[:, i], f3[:, i]], ref) for i in range(t)], 1)
    feat = model.fusion(aligned) if model.with_tsa else model.fusion(aligned.view(b, -1, h, w))
    out = model.reconstruction(feat)
    out = lrelu(model.pixel_shuffle(model.upconv1(out)))
    out = lrelu(model.pixel_shuffle(model.upconv2(out)))
    out = model.conv_last(lrelu(model.conv_hr(out)))
    return out + F.interpolate(x[:, ctr], scale_factor=4, mode="bilinear", align_corners=False)


@pytest.mark.parametrize("with_tsa", [True, False])
def test_batched_alignment_equals_per_frame_loop(with_tsa):
    torch.manual_seed(3)
    model = build_edvr("edvr-tiny", num_frame=3, with_tsa=with_tsa).double()
    with torch.no_grad():  # non-zero offsets so the DCNs really deform
        for m in model.dcn_modules().values():
            m.conv_offset.weight.normal_(0, 0.05)
            m.conv_offset.bias.normal_(0, 0.5)
    x = torch.rand(2, 3, 3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(model(x), _per_frame_forward(model, x), rtol=1e-10, atol=1e-10)


# -- validation -----------------------------------------------------------------------------------
def test_input_size_must_be_multiple_of_4_or_16():
    model = build_edvr("edvr-tiny", num_frame=3)
    with pytest.raises(EDVRInputError, match=r"multiples of 4.*18x20"):
        model(torch.rand(1, 3, 3, 18, 20))
    with pytest.raises(ValueError, match="num_frame=3"):
        model(torch.rand(1, 5, 3, 16, 16))
    with pytest.raises(ConfigError, match="num_in_ch=3"):
        model(torch.rand(1, 3, 1, 16, 16))
    deblur = build_edvr("edvr-tiny", with_predeblur=True, hr_in=True, num_frame=3)
    with pytest.raises(EDVRInputError, match=r"multiples of 16 \(hr_in\).*8x16"):
        deblur(torch.rand(1, 3, 3, 8, 16))


def test_invalid_configurations():
    with pytest.raises(ConfigError, match="scale must be 1 with hr_in=true, got 4"):
        get_preset("edvr-tiny", hr_in=True, scale=4)
    with pytest.raises(ConfigError, match=r"deformable_groups \(3\) must divide num_feat \(16\)"):
        get_preset("edvr-tiny", deformable_groups=3)
    with pytest.raises(ConfigError, match="center_frame_idx"):
        EDVRConfig(num_frame=5, center_frame_idx=5)
    with pytest.raises(ConfigError, match="num_out_ch"):
        EDVRConfig(num_out_ch=1)
    with pytest.raises(ConfigError, match="unknown EDVR preset 'edvr-xl'"):
        get_preset("edvr-xl")
    with pytest.raises(ConfigError, match="num_blocks"):
        get_preset("edvr-m", num_blocks=3)
    with pytest.raises(ConfigError, match="scale must be 2 or 3 or 4, got 5"):
        EDVR(scale=5)


def test_config_round_trip_and_center_default():
    cfg = get_preset("edvr-l-vimeo")
    assert cfg.center_frame_idx is None and cfg.center == 3
    assert EDVRConfig.from_dict(cfg.to_dict()) == cfg
    assert PRESETS["edvr-m"].num_feat == 64  # get_preset returns copies
    get_preset("edvr-m", num_feat=32)
    assert PRESETS["edvr-m"].num_feat == 64


# -- init, trainer hooks ----------------------------------------------------------------------------
def test_init_as_basicsr():
    torch.manual_seed(4)
    model = build_edvr("edvr-m")
    for name, m in model.dcn_modules().items():
        assert m.conv_offset.weight.abs().sum() == 0 and m.conv_offset.bias.abs().sum() == 0, name
    # residual blocks: Kaiming normal (std sqrt(2 / fan_in)) x 0.1, zero bias
    weights = torch.cat([model.reconstruction[i].conv1.weight.flatten() for i in range(10)])
    expected_std = 0.1 * (2.0 / (64 * 9)) ** 0.5
    assert abs(weights.std().item() / expected_std - 1) < 0.05
    assert model.reconstruction[0].conv2.bias.abs().sum() == 0


def test_trainer_interface_and_offset_monitor():
    torch.manual_seed(5)
    model = build_edvr("edvr-tiny", dcn_backend="torch")
    assert isinstance(model.fusion, TSAFusion)
    assert isinstance(model.pcd_align.cas_dcnpack, DCNv2Pack)
    dcns = model.dcn_modules()
    assert sorted(dcns) == ["pcd_align.cas_dcnpack", "pcd_align.dcn_pack.l1", "pcd_align.dcn_pack.l2",
                            "pcd_align.dcn_pack.l3"]
    assert all(m.backend == "torch" for m in dcns.values())
    x = torch.rand(1, 5, 3, 8, 8)
    model(x)
    assert model.offset_stats() == {}  # off by default
    model.set_offset_monitor(True)
    with torch.no_grad():
        model.pcd_align.dcn_pack.l1.conv_offset.bias.fill_(0.25)
    model(x)
    stats = model.offset_stats()
    assert sorted(stats) == sorted(dcns)
    assert all(v.dim() == 0 and not v.requires_grad for v in stats.values())
    torch.testing.assert_close(stats["pcd_align.dcn_pack.l1"], torch.tensor(0.25))
    assert stats["pcd_align.dcn_pack.l3"] == 0
    model.set_offset_monitor(False)
    assert model.offset_stats() == {}
    assert not build_edvr("edvr-tiny", with_tsa=False).with_tsa
    assert isinstance(build_edvr("edvr-tiny", with_tsa=False).fusion, torch.nn.Conv2d)


def test_edvr_same_output_with_torchvision_backend():
    from vsrdata.edvr.dcn import torchvision_available

    if not torchvision_available():
        pytest.skip("torchvision.ops.deform_conv2d does not import")
    torch.manual_seed(6)
    model = build_edvr("edvr-tiny", dcn_backend="torch")
    with torch.no_grad():
        for m in model.dcn_modules().values():
            m.conv_offset.weight.normal_(0, 0.05)
            m.conv_offset.bias.normal_(0, 0.5)
        x = torch.rand(1, 5, 3, 8, 12)
        pure = model(x)
        model.set_dcn_backend("torchvision")
        torch.testing.assert_close(model(x), pure, rtol=1e-5, atol=1e-5)


def test_bf16_autocast_keeps_float32_residual_and_output_sums():
    """Under CPU bf16 autocast the convs give bf16, but a bf16 conv output plus a float32 tensor
    must stay a float32 sum (as `x + conv(x)` gives), not be rounded to bf16 by an in-place add:
    the output is float32 and not all of it lies on bf16's grid (ulp 2^-8 near 1)."""
    torch.manual_seed(0)
    model = build_edvr("edvr-tiny").eval()
    x = torch.rand(1, 5, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.dtype == torch.float32
    assert not torch.equal(out, out.bfloat16().float())
    block = model.reconstruction[0]
    feat = torch.rand(1, block.conv1.in_channels, 8, 8)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert block(feat).dtype == torch.float32  # float32 input + bf16 branch
