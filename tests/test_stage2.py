"""Two-stage EDVR: the stage-2 networks (presets for the four REDS tracks) and the original EDVR's
`*_Stage2.pth` key set, derived here from the original architecture (xinntao/EDVR old_version
`codes/models/archs/EDVR_arch.py`: EDVR(nf=128, nframes=5, groups=8, front_RBs=5, back_RBs=20,
predeblur=track, HR_in=True), docs/CONVENTIONS.md#stage-2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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
    _tsa(conv, nf, nframes)
    for i in range(back):
        rb(f"recon_trunk.{i}")
    conv("upconv1", nf, 4 * nf)
    conv("upconv2", nf, 256)
    conv("HRconv", 64, 64)
    conv("conv_last", 64, 3)
    return out


def _tsa(conv, nf: int, nframes: int) -> None:
    """The original TSA fusion module's convolutions (tsa_fusion.*)."""
    for name, cin, k in (("tAtt_1", nf, 3), ("tAtt_2", nf, 3), ("fea_fusion", nframes * nf, 1),
                         ("sAtt_1", nframes * nf, 1), ("sAtt_2", 2 * nf, 1), ("sAtt_3", nf, 3), ("sAtt_4", nf, 1),
                         ("sAtt_5", nf, 3), ("sAtt_L1", nf, 1), ("sAtt_L2", 2 * nf, 3), ("sAtt_L3", nf, 3),
                         ("sAtt_add_1", nf, 1), ("sAtt_add_2", nf, 1)):
        conv(f"tsa_fusion.{name}", cin, nf, k)


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


def _tiny_pair(tmp_path):
    """(stage-1 checkpoint: edvr-tiny x4, 3 frames; stage-2 checkpoint: edvr-tiny hr_in without
    predeblur (the stage-2 front), 3 frames), random weights with off-grid DCN offsets."""
    paths = []
    for name, kw in (("s1.pth", dict(num_frame=3)), ("s2.pth", dict(num_frame=3, hr_in=True))):
        torch.manual_seed(len(paths))
        model = build_edvr("edvr-tiny", dcn_backend="torch", **kw)
        for dcn in model.dcn_modules().values():
            torch.nn.init.normal_(dcn.conv_offset.weight, std=0.05)
        save_atomic({"params": model.state_dict()}, tmp_path / name)
        paths.append(tmp_path / name)
    return paths


def test_chained_equals_stage1_to_folder_then_stage2_bit_for_bit(tmp_path):
    import cv2
    from click.testing import CliRunner

    from tests.test_export import _lr_clip
    from vsrdata.cli import main

    s1, s2 = _tiny_pair(tmp_path)
    clip = _lr_clip(tmp_path / "in", n=6)  # 30x42: stage 1 pads to x4, stage 2 to x16
    run = CliRunner()
    base = ["--device", "cpu", "--scene-cuts", "off", "-q"]
    for args in (["infer", str(clip), str(tmp_path / "chain"), "-c", str(s1), "--stage2", str(s2)],
                 ["infer", str(clip), str(tmp_path / "one"), "-c", str(s1)],
                 ["infer", str(tmp_path / "one"), str(tmp_path / "two"), "-c", str(s2)]):
        res = run.invoke(main, args + base)
        assert res.exit_code == 0, res.output
    names = sorted(p.name for p in clip.iterdir())
    assert sorted(p.name for p in (tmp_path / "chain").glob("*.png")) == names
    differs = 0
    for name in names:
        a, b = cv2.imread(str(tmp_path / "chain" / name)), cv2.imread(str(tmp_path / "two" / name))
        one = cv2.imread(str(tmp_path / "one" / name))
        assert a.shape == (120, 168, 3) and np.array_equal(a, b)
        differs += int(not np.array_equal(a, one))
    assert differs == len(names)  # stage 2 did change every frame


def test_evaluate_with_stage2_and_the_bad_chains(tmp_path):
    from click.testing import CliRunner

    from tests.test_evaluate import make_split
    from vsrdata.cli import main
    from vsrdata.evaluation.evaluate import evaluate

    s1, s2 = _tiny_pair(tmp_path)
    split = make_split(tmp_path / "ds", clips=("000",), n=4)
    rep = evaluate(split, s1, stage2=s2, device="cpu", strips=False, out_dir=tmp_path / "r", tta="flip4")
    assert rep.protocol["stage2"] == "s2.pth" and rep.protocol["tta"] == "flip4"
    assert rep.protocol["stage2_padding"] == "reflection_circle" and np.isfinite(rep.average()["psnr"])
    run = CliRunner()
    for args, text in (([str(s2), str(split), "--stage2", str(s1)], "s2.pth is a stage-2 network"),
                       ([str(s1), str(split), "--stage2", str(s1)], "is an x4 network; stage 2 takes")):
        res = run.invoke(main, ["evaluate", *args, "--device", "cpu", "--out", str(tmp_path / "x")])
        assert res.exit_code == 1 and res.output.count("\n") == 1 and text in res.output, res.output


@pytest.mark.slow
def test_the_stage2_training_recipe_runs_end_to_end(tmp_path):
    """README "Two-stage EDVR": stage-1 outputs of the training clips as frames and as an LMDB,
    `train` with a stage-2 preset on (stage-1 output, GT) at scale 1 with a scale-1 split of the
    held-out clip for validation, then `evaluate --stage2` (a few iterations: the commands fit)."""
    from click.testing import CliRunner

    from vsrdata.cli import main

    gt = FIXTURES / "reds" / "train_sharp"
    s1, _ = _tiny_pair(tmp_path)
    run = CliRunner()

    def ok(*args):
        res = run.invoke(main, [str(a) for a in args])
        assert res.exit_code == 0, res.output
        return res.output

    lq = tmp_path / "lq"
    ok("make-lr", gt, lq, "-q")
    for clip in ("000", "001", "002"):  # 1. stage-1 outputs, clip by clip, as frames
        ok("infer", lq / clip, tmp_path / "stage1" / clip, "-c", s1, "--scene-cuts", "off", "--device", "cpu", "-q")
    ok("to-lmdb", tmp_path / "stage1", tmp_path / "stage1.lmdb")  # 2. ... and as an LMDB
    ok("to-lmdb", gt, tmp_path / "gt.lmdb")
    # 3. the held-out clip: (stage-1 output, GT) at scale 1, padded to stage 2's multiple of 16
    ok("split-test", gt, tmp_path / "val_s2", "--clips", "000", "--lr-root", tmp_path / "stage1", "--scale", "1",
       "--multiple", "16", "-q")
    ok("split-test", gt, tmp_path / "val", "--clips", "000", "--lr-root", lq, "-q")
    # 4. stage 2 on (stage-1 output, GT): a stage-2 preset, here made tiny
    ok("train", "--preset", "edvr-stage2-sr", "--model-opt", "num_feat=16", "--model-opt", "deformable_groups=4",
       "--model-opt", "num_reconstruct_block=2", "--model-opt", "num_extract_block=1", "--num-frame", "3",
       "--dataset", "clips", "--val-partition", "none", "--gt", tmp_path / "gt.lmdb", "--lq", tmp_path / "stage1.lmdb",
       "--gt-size", "32", "--batch-size", "2", "--num-workers", "0", "--total-iter", "2", "--val", tmp_path / "val_s2",
       "--val-freq", "2", "--save-freq", "2", "--device", "cpu", "--run-dir", tmp_path / "run")
    out = ok("evaluate", s1, tmp_path / "val", "--stage2", tmp_path / "run" / "best.pth", "--device", "cpu",
             "--out", tmp_path / "r", "--no-strips")
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["protocol"]["stage2"] == "best.pth" and "Average" in out
