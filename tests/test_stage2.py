"""Two-stage EDVR: the stage-2 networks (presets for the four REDS tracks) against the original EDVR's
`*_Stage2.pth` key set (fixtures/edvr/statedict_original_Stage2.json, derived from the original
architecture code: EDVR(nf=128, nframes=5, groups=8, front_RBs=5, back_RBs=20, predeblur=track,
HR_in=True), docs/CONVENTIONS.md#stage-2), the chained run, and the training recipe."""

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


ORIGINAL = json.loads((FIXTURES / "edvr" / "statedict_original_Stage2.json").read_text())


def original_stage2(file: str) -> dict[str, list[int]]:
    """{original parameter name: shape}, in the original's state_dict order, of an official
    `EDVR_REDS_*_Stage2.pth` (fixtures/edvr/statedict_original_Stage2.json, derived from the original
    architecture code; provenance in fixtures/README.md)."""
    return ORIGINAL["layouts"][ORIGINAL["files"][file]]["state_dict"]


TRACKS = {"edvr-stage2-sr": "EDVR_REDS_SR_Stage2.pth", "edvr-stage2-srblur": "EDVR_REDS_SRblur_Stage2.pth",
          "edvr-stage2-deblur": "EDVR_REDS_deblur_Stage2.pth",
          "edvr-stage2-deblurcomp": "EDVR_REDS_deblurcomp_Stage2.pth"}


def test_the_original_stage2_fixture_agrees_with_the_other_references():
    """The fixture's names are the original's (every one but the plain HR_in front is in the
    reference keymap made by instantiating the original code), and every tensor it shares with the
    official EDVR-L x4 file (same nf 128, 5 frames, 8 groups) has that file's shape."""
    keymap = json.loads((FIXTURES / "edvr" / "keymap_original_to_basicsr.json").read_text())
    official_l = json.loads((FIXTURES / "edvr" / "statedict_EDVR_L_x4_SR_REDS.json").read_text())
    assert sorted(TRACKS) == sorted(STAGE2_PRESETS) and sorted(ORIGINAL["files"]) == sorted(TRACKS.values())
    for file in TRACKS.values():
        layout = original_stage2(file)
        unmapped = [k for k in layout if k not in keymap]
        assert unmapped == ([] if "predeblur" in ORIGINAL["files"][file] else
                            [f"conv_first_{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")])
        shared = [k for k in layout if keymap.get(k) in official_l]
        assert len(shared) > 150 and all(layout[k] == official_l[keymap[k]] for k in shared)


@pytest.mark.parametrize("preset", sorted(STAGE2_PRESETS))
def test_stage2_presets_have_the_original_key_set(preset):
    cfg = get_preset(preset)
    assert (cfg.num_feat, cfg.num_frame, cfg.num_reconstruct_block, cfg.num_extract_block) == (128, 5, 20, 5)
    assert cfg.hr_in and cfg.scale == 1 and cfg.with_tsa
    assert cfg.with_predeblur == (preset != "edvr-stage2-sr")  # predeblur as the track's stage 1
    assert cfg.with_predeblur == get_preset(STAGE2_PRESETS[preset]).with_predeblur
    original = original_stage2(TRACKS[preset])
    # a state dict with exactly the original's keys and shapes loads strictly into the preset
    gen = torch.Generator().manual_seed(0)
    sd = {rename_original_key(k): torch.randn(shape, generator=gen) for k, shape in original.items()}
    assert len(sd) == len(original)  # the renaming is one to one
    model = build_edvr(preset)
    model.load_state_dict(sd, strict=True)
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == {k: list(v.shape) for k, v in sd.items()}


@pytest.mark.parametrize("file", sorted(TRACKS.values()))
def test_an_original_stage2_file_loads_and_runs(file, tmp_path):
    from vsrdata.evaluation.engines import load_model

    gen = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(shape, generator=gen) * 0.01 for k, shape in original_stage2(file).items()}
    path = tmp_path / file
    save_atomic(sd, path)  # raw, as the original code saved and loaded it (load_state_dict(torch.load(...)))
    loaded = read_checkpoint(path)
    assert loaded.source_format == "edvr-original"
    model = load_model(path, device="cpu")  # architecture from the weights' shapes, strict load
    name = preset_name(model.config)  # srblur, deblur and deblurcomp share one architecture
    expected = next(preset for preset, f in TRACKS.items() if f == file)
    assert name in STAGE2_PRESETS and get_preset(name) == get_preset(expected)
    ours = model.state_dict()
    first = "pre_deblur.conv_first_2.weight" if "predeblur" in ORIGINAL["files"][file] else "conv_first_2.weight"
    assert torch.equal(ours[rename_original_key(first)], sd[first])  # each tensor in its place
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
    assert rep.protocol["stage2_padding"] == "reflection_circle" and np.isfinite(rep.mean["psnr"])
    run = CliRunner()
    for args, text in (([str(s2), str(split), "--stage2", str(s1)], "s2.pth is a stage-2 network"),
                       ([str(s1), str(split), "--stage2", str(s1)], "is an x4 network; stage 2 takes")):
        res = run.invoke(main, ["evaluate", *args, "--device", "cpu", "--out", str(tmp_path / "x")])
        assert res.exit_code == 1 and res.output.count("\n") == 1 and text in res.output, res.output


#: Stage 2 of the recipe test, made tiny (preset edvr-stage2-sr; one frame, as its stage 1).
TINY_STAGE2 = ["--preset", "edvr-stage2-sr", "--model-opt", "num_feat=16", "--model-opt", "deformable_groups=4",
               "--model-opt", "num_reconstruct_block=2", "--model-opt", "num_extract_block=1", "--num-frame", "1"]


@pytest.mark.slow
def test_the_stage2_recipe_improves_on_stage1_on_a_held_out_clip(tiny_sr, tmp_path):
    """README "Two-stage EDVR", end to end on the fixtures: stage-1 outputs of every clip as frames
    and as an LMDB, a scale-1 split of (stage-1 output, GT) for validation, `train` of a (tiny)
    stage-2 preset on (stage-1 output, GT) pairs, clip 000 left out (a REDS4 member), started from
    the stage-1 weights; then `evaluate` of stage 1 alone and of the chain on held-out clip 000.
    The stage-1 model is the tiny x2 model of tests/test_scales.py (conftest `tiny_sr`).
    Seen (RGB PSNR, REDS4 protocol): stage 1 30.177 dB, stage 1 + stage 2 30.209 dB."""
    from click.testing import CliRunner

    from vsrdata.cli import main

    gt = FIXTURES / "reds" / "train_sharp"
    lq, held, s1 = tiny_sr(2)
    run = CliRunner()

    def ok(*args):
        res = run.invoke(main, [str(a) for a in args])
        assert res.exit_code == 0, res.output
        return res.output

    for clip in ("000", "001", "002"):  # 1. stage-1 outputs, clip by clip, as frames
        ok("infer", lq / clip, tmp_path / "stage1" / clip, "-c", s1, "--scene-cuts", "off", "--device", "cpu", "-q")
    ok("to-lmdb", tmp_path / "stage1", tmp_path / "stage1.lmdb")  # ... and as an LMDB
    ok("to-lmdb", gt, tmp_path / "gt.lmdb")
    # 2. the held-out clip: (stage-1 output, GT) at scale 1, padded to stage 2's multiple of 16
    ok("split-test", gt, tmp_path / "val_s2", "--clips", "000", "--lr-root", tmp_path / "stage1", "--scale", "1",
       "--multiple", "16", "-q")
    # 3. stage 2 on (stage-1 output, GT), from the stage-1 weights (every tensor of the same shape), MSE
    # loss; one validation, at the end, so best.pth is the last iteration (no choice on the held-out clip)
    ok("train", *TINY_STAGE2, "--gt", tmp_path / "gt.lmdb", "--lq", tmp_path / "stage1.lmdb",
       "--init", s1, "--tsa-iter", "0", "--loss-type", "mse", "--lr", "1e-3", "--gt-size", "64", "--batch-size", "8",
       "-j", "0", "--total-iter", "300", "--val", tmp_path / "val_s2", "--val-freq", "300", "--save-freq", "300",
       "--device", "cpu", "--run-dir", tmp_path / "run", "-q")
    log = (tmp_path / "run" / "train.log").read_text()
    assert "left out of training (--val-partition REDS4): 1 clip(s) 000" in log
    # 4. stage 1 alone and both stages on the usual x2 split of the held-out clip
    psnr = {}
    for name, extra in (("stage 1", []), ("stage 1 + 2", ["--stage2", tmp_path / "run" / "best.pth"])):
        ok("evaluate", s1, held, *extra, "--protocol", "reds4", "--device", "cpu", "--out", tmp_path / name,
           "--no-strips", "-q")
        report = json.loads((tmp_path / name / "report.json").read_text())
        psnr[name] = report["average"]["psnr"]
    assert report["protocol"]["stage2"] == "best.pth" and report["protocol"]["channel"] == "rgb"
    print(f"held-out clip 000, RGB PSNR: stage 1 {psnr['stage 1']:.3f} dB, stage 1 + 2 {psnr['stage 1 + 2']:.3f} dB")
    assert psnr["stage 1 + 2"] > psnr["stage 1"]
