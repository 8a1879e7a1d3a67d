"""Temporal padding, lazy windows, and `evaluate` (library + CLI) on hand-made splits of fixture frames."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vsrdata.cli import main
from vsrdata.evaluation import metrics
from vsrdata.edvr.config import get_preset
from vsrdata.evaluation.evaluate import evaluate
from vsrdata.evaluation.inference import restore
from vsrdata.evaluation.windows import TEMPORAL_PADDINGS, SlidingWindow, temporal_indices

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


# -- temporal padding (examples from EDVR_SPEC section 5 / BasicSR generate_frame_indices) ------

def test_padding_examples_from_the_spec():
    assert temporal_indices(0, 100, 5, "reflection_circle") == [4, 3, 0, 1, 2]
    assert temporal_indices(0, 100, 5, "circle") == [3, 4, 0, 1, 2]
    assert temporal_indices(0, 100, 5, "replicate") == [0, 0, 0, 1, 2]
    assert temporal_indices(0, 100, 5, "reflection") == [2, 1, 0, 1, 2]


def test_padding_at_the_end_of_a_clip():
    # 7 frames, last index 6, window 5: worked by hand from the formulas in EDVR_SPEC section 5
    assert temporal_indices(6, 7, 5, "reflection_circle") == [4, 5, 6, 3, 2]
    assert temporal_indices(5, 7, 5, "reflection_circle") == [3, 4, 5, 6, 2]
    assert temporal_indices(6, 7, 5, "replicate") == [4, 5, 6, 6, 6]
    assert temporal_indices(6, 7, 5, "reflection") == [4, 5, 6, 5, 4]
    assert temporal_indices(6, 7, 5, "circle") == [4, 5, 6, 2, 3]
    assert temporal_indices(3, 7, 7, "reflection_circle") == [0, 1, 2, 3, 4, 5, 6]  # Vimeo im4, 7 frames
    assert temporal_indices(3, 7, 5, "reflection_circle") == [1, 2, 3, 4, 5]  # im2..im6 for 5 frames


def test_short_clips_stay_in_range():
    for mode in TEMPORAL_PADDINGS:
        for length in (1, 2, 3):
            for t in range(length):
                idx = temporal_indices(t, length, 7, mode)
                assert len(idx) == 7 and idx[3] == t and all(0 <= i < length for i in idx)


def test_bad_padding_arguments():
    with pytest.raises(ValueError, match="odd"):
        temporal_indices(0, 5, 4)
    with pytest.raises(ValueError, match="padding"):
        temporal_indices(0, 5, 5, "mirror")


@pytest.mark.parametrize("known_length", [True, False])
def test_sliding_window_matches_indices_and_is_bounded(known_length):
    for mode in TEMPORAL_PADDINGS:
        for n in (1, 3, 5, 7):
            for length in (1, 2, 4, 9, 20):
                sw = SlidingWindow(iter(range(length)), n, mode, length=length if known_length else None)
                got = list(sw)
                assert [t for t, _ in got] == list(range(length))
                for t, window in got:
                    assert window == temporal_indices(t, length, n, mode), (mode, n, length, t)
                assert sw.max_held <= 2 * n  # memory bounded by the window, not the clip


def test_sliding_window_reads_lazily_and_only_centres():
    read = []

    def frames():
        for i in range(50):
            read.append(i)
            yield i

    sw = SlidingWindow(frames(), 5, "reflection_circle", length=50, centers=[3])
    assert [(t, w) for t, w in sw] == [(3, [1, 2, 3, 4, 5])]
    assert max(read) <= 7  # never read far beyond the window


# -- a hand-made split on fixture frames ----------------------------------------------------

class LocalModel(torch.nn.Module):
    """Per-pixel stand-in for EDVR (receptive field 1): nearest x4 of 0.7*centre + 0.3*window mean.
    Its output depends on the temporal window, so the padding mode matters, but not on padding
    pixels in space, so padded and unpadded splits must score the same."""

    def __init__(self, num_frame=5):
        super().__init__()
        self.config = get_preset("edvr-tiny", num_frame=num_frame)
        self.w = torch.nn.Parameter(torch.tensor(0.3))

    def forward(self, x):
        c = x[:, x.shape[1] // 2]
        y = (1 - self.w) * c + self.w * x.mean(1)
        return y.repeat_interleave(4, -2).repeat_interleave(4, -1) + 0.01


def _gt_clip(clip="000", h=48, w=64, n=7):
    frames = []
    for i in range(n):
        bgr = cv2.imread(str(FIXTURES / "reds" / "train_sharp" / clip / f"{i:08d}.png"), cv2.IMREAD_UNCHANGED)
        frames.append(np.ascontiguousarray(bgr[40:40 + h, 100:100 + w]))
    return frames


def make_split(root: Path, clips=("000", "001"), pad=(0, 0), n=7, selection=None, layout="reds") -> Path:
    """Write a split-test-like output by hand: GT crops of fixture frames, LR by area averaging,
    optionally padded at the bottom/right with noise (recorded in split.json)."""
    rng = np.random.default_rng(0)
    record = {"format": "vsrdata-split-test/1", "scale": 4, "degradation": "bi", "gt_dir": "GT",
              "lr_dir": "BIx4", "multiple": 4, "pad_mode": "replicate" if any(pad) else None, "crop": False,
              "layout": layout, "selection": selection or {"kind": "all", "name": None}, "clips": {}}
    for clip in clips:
        gts = _gt_clip(clip, n=n)
        h, w = gts[0].shape[:2]
        names = {}
        for i, gt in enumerate(gts):
            lr = cv2.resize(gt, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
            if any(pad):
                lr = np.pad(lr, ((0, pad[0]), (0, pad[1]), (0, 0)))
                lr[h // 4:, :] = rng.integers(0, 256, lr[h // 4:, :].shape)
                lr[:, w // 4:] = rng.integers(0, 256, lr[:, w // 4:].shape)
                gt = np.pad(gt, ((0, 4 * pad[0]), (0, 4 * pad[1]), (0, 0)), constant_values=77)
            name = f"{i:08d}.png"
            names[name] = name
            for sub, img in (("GT", gt), ("BIx4", lr)):
                (root / sub / clip).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / sub / clip / name), img)
        record["clips"][clip] = {
            "source": clip, "num_frames": n, "gt_size": [h, w, 3], "lr_size": [h // 4, w // 4, 3],
            "lr_pad": list(pad), "gt_pad": [4 * pad[0], 4 * pad[1]], "gt_crop": None, "lr_crop": None,
            "frames": names}
    (root / "split.json").write_text(json.dumps(record))
    return root


def _expected_local(split: Path, clip: str, t: int, window: list[int], model: LocalModel):
    """What LocalModel gives for frame t of `clip`, computed directly (no evaluate code)."""
    frames = [cv2.imread(str(split / "BIx4" / clip / f"{i:08d}.png"))[:12, :16, ::-1] / 255.0 for i in window]
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()[None]
    with torch.no_grad():
        out = model(x)[0]
    return metrics.tensor_to_uint8(out)


def _gt_rgb(split: Path, clip: str, t: int):
    return np.ascontiguousarray(cv2.imread(str(split / "GT" / clip / f"{t:08d}.png"))[:48, :64, ::-1])


def test_report_numbers_match_direct_computation(tmp_path):
    split = make_split(tmp_path / "ds")
    model = LocalModel()
    report = evaluate(split, model=model, out_dir=tmp_path / "out", protocol="reds4", device="cpu")
    # reflection_circle windows for 7 frames, n 5 (worked by hand; EDVR_SPEC section 5)
    windows = [[4, 3, 0, 1, 2], [4, 0, 1, 2, 3], [0, 1, 2, 3, 4], [1, 2, 3, 4, 5], [2, 3, 4, 5, 6],
               [3, 4, 5, 6, 2], [4, 5, 6, 3, 2]]
    per_clip = {}
    for clip in ("000", "001"):
        psnrs = []
        for t, win in enumerate(windows):
            out = _expected_local(split, clip, t, win, model)
            psnrs.append(metrics.calculate_psnr(out, _gt_rgb(split, clip, t)))
        per_clip[clip] = psnrs
        row = next(c for c in report.clips if c.name == clip)
        assert row.psnr == pytest.approx(np.mean(psnrs), abs=1e-9)
        assert row.psnr_center == pytest.approx(np.mean(psnrs[2:5]), abs=1e-9)
        assert row.psnr_border == pytest.approx(np.mean(psnrs[:2] + psnrs[5:]), abs=1e-9)
        out3 = _expected_local(split, clip, 3, windows[3], model)
        assert row.frames[3].ssim == pytest.approx(metrics.calculate_ssim(out3, _gt_rgb(split, clip, 3)), abs=1e-12)
        assert row.frames[3].psnr_y == pytest.approx(
            metrics.calculate_psnr(out3, _gt_rgb(split, clip, 3), test_y_channel=True), abs=1e-9)
    avg = report.mean
    assert avg["psnr"] == pytest.approx(np.mean([np.mean(v) for v in per_clip.values()]), abs=1e-9)

    # JSON / CSV / table agree with the report object
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["protocol"]["channel"] == "rgb" and data["protocol"]["padding"] == "reflection_circle"
    assert data["average"]["psnr"] == pytest.approx(avg["psnr"], abs=1e-12)
    rows = list(csv.DictReader((tmp_path / "out" / "report.csv").open()))
    assert [r["clip"] for r in rows] == ["000", "001", "Average"]
    assert float(rows[0]["psnr"]) == pytest.approx(np.mean(per_clip["000"]), abs=1e-9)
    table = (tmp_path / "out" / "report.txt").read_text()
    assert "Center" in table and "Border" in table and "Average" in table
    strip = cv2.imread(str(tmp_path / "out" / "compare" / "000.png"))
    assert strip is not None and strip.shape[1] > 2 * 64  # model | GT side by side


def test_padding_is_not_scored(tmp_path):
    plain = make_split(tmp_path / "plain")
    padded = make_split(tmp_path / "padded", pad=(4, 8))
    a = evaluate(plain, model=LocalModel(), out_dir=tmp_path / "a", device="cpu", strips=False)
    b = evaluate(padded, model=LocalModel(), out_dir=tmp_path / "b", device="cpu", strips=False)
    for ca, cb in zip(a.clips, b.clips):
        assert [f.psnr for f in ca.frames] == [f.psnr for f in cb.frames]
        assert [f.ssim for f in ca.frames] == [f.ssim for f in cb.frames]


def test_vimeo_protocol_scores_only_the_centre_frame(tmp_path):
    split = make_split(tmp_path / "vimeo", clips=("000",), layout="vimeo")
    model = LocalModel(num_frame=7)
    report = evaluate(split, model=model, out_dir=tmp_path / "o", device="cpu", strips=False)
    assert report.protocol["protocol"] == "vimeo-t" and report.protocol["channel"] == "y"
    (clip,) = report.clips
    assert [f.index for f in clip.frames] == [3]
    out = _expected_local(split, "000", 3, list(range(7)), model)
    assert clip.psnr == pytest.approx(metrics.calculate_psnr(out, _gt_rgb(split, "000", 3), test_y_channel=True),
                                      abs=1e-9)


def test_frame_average_differs_from_clip_average(tmp_path):
    split = make_split(tmp_path / "ds")
    rec = json.loads((split / "split.json").read_text())
    rec["clips"]["001"]["frames"] = {k: v for k, v in list(rec["clips"]["001"]["frames"].items())[:3]}
    (split / "split.json").write_text(json.dumps(rec))
    r = evaluate(split, model=LocalModel(), out_dir=tmp_path / "o", device="cpu", strips=False,
                 average="frame")
    vals = [f.psnr for c in r.clips for f in c.frames]
    assert r.mean["psnr"] == pytest.approx(np.mean(vals), abs=1e-9)
    assert r.protocol["average"] == "frame"


def test_restore_pads_odd_sizes_and_cuts_back():
    model = LocalModel(num_frame=3)
    x = torch.rand(3, 3, 10, 13)
    out = restore(model, x, scale=4, multiple=4)
    assert out.shape == (3, 40, 52)
    ref = model(x[None])[0]
    torch.testing.assert_close(out, ref)


# -- the real model ---------------------------------------------------------------------------

def _tiny_checkpoint(path: Path, seed=0, preset="edvr-tiny"):
    from vsrdata.edvr.arch import build_edvr
    from vsrdata.edvr.checkpoint import save_atomic

    torch.manual_seed(seed)
    model = build_edvr(preset)
    save_atomic({"params": model.state_dict()}, path)
    return model


def test_evaluate_checkpoint_matches_the_model_run_directly(tmp_path):
    pytest.importorskip("vsrdata.edvr.checkpoint")
    split = make_split(tmp_path / "ds", clips=("000",))
    # on CPU the torch engine runs the model in channels_last (same outputs to float rounding,
    # which can flip a uint8 rounding): do the same here for a bit-exact comparison
    model = _tiny_checkpoint(tmp_path / "tiny.pth").eval().to(memory_format=torch.channels_last)
    report = evaluate(split, tmp_path / "tiny.pth", preset="edvr-tiny", out_dir=tmp_path / "o",
                      device="cpu", protocol="vid4", save_frames=True)
    t = 0
    win = [4, 3, 0, 1, 2]
    frames = [cv2.imread(str(split / "BIx4" / "000" / f"{i:08d}.png"))[..., ::-1] / 255.0 for i in win]
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()[None]
    with torch.no_grad():
        out = metrics.tensor_to_uint8(model(x)[0])
    gt = _gt_rgb(split, "000", t)
    assert report.clips[0].frames[0].psnr == pytest.approx(
        metrics.calculate_psnr(out, gt, test_y_channel=True), abs=1e-6)
    saved = cv2.imread(str(tmp_path / "o" / "frames" / "000" / "00000000.png"))[..., ::-1]
    assert np.abs(saved.astype(int) - out.astype(int)).max() <= 1  # float noise may flip a rounding


def test_bicubic_baseline_scores_imresize(tmp_path):
    resize = pytest.importorskip("vsrdata.core.resize")
    plain = make_split(tmp_path / "plain", clips=("002",))
    padded = make_split(tmp_path / "padded", clips=("002",), pad=(4, 4))
    a = evaluate(plain, bicubic=True, out_dir=tmp_path / "a", protocol="reds4")
    b = evaluate(padded, bicubic=True, out_dir=tmp_path / "b", protocol="reds4")
    lr = cv2.imread(str(plain / "BIx4" / "002" / "00000002.png"))[..., ::-1]
    up = resize.imresize(np.ascontiguousarray(lr), 4)
    assert a.clips[0].frames[2].psnr == pytest.approx(metrics.calculate_psnr(up, _gt_rgb(plain, "002", 2)), abs=1e-9)
    assert [f.psnr for f in a.clips[0].frames] == [f.psnr for f in b.clips[0].frames]


# -- CLI ----------------------------------------------------------------------------------------

def _one_line_error(result):
    assert result.exit_code != 0
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("Error:"), result.output
    assert "Traceback" not in result.output
    return lines[-1]


def test_cli_not_a_split_dir(tmp_path):
    (tmp_path / "x.pth").write_bytes(b"")
    res = CliRunner().invoke(main, ["evaluate", str(tmp_path / "x.pth"), str(tmp_path), "-q"])
    assert "split.json" in _one_line_error(res)


def test_cli_missing_checkpoint(tmp_path):
    split = make_split(tmp_path / "ds", clips=("000",), n=3)
    res = CliRunner().invoke(main, ["evaluate", str(tmp_path / "nope.pth"), str(split), "-q"])
    assert "nope.pth" in _one_line_error(res)


def test_cli_usage_errors(tmp_path):
    res = CliRunner().invoke(main, ["evaluate", str(tmp_path)])
    assert res.exit_code == 2 and "CHECKPOINT DATASET" in res.output


def test_cli_wrong_preset_for_checkpoint(tmp_path):
    pytest.importorskip("vsrdata.edvr.checkpoint")
    split = make_split(tmp_path / "ds", clips=("000",), n=3)
    _tiny_checkpoint(tmp_path / "tiny.pth")
    res = CliRunner().invoke(main, ["evaluate", str(tmp_path / "tiny.pth"), str(split), "--preset", "edvr-m",
                                    "--device", "cpu", "-q"])
    _one_line_error(res)


def test_cli_end_to_end(tmp_path):
    pytest.importorskip("vsrdata.edvr.checkpoint")
    split = make_split(tmp_path / "ds", clips=("000",), n=3)
    _tiny_checkpoint(tmp_path / "tiny.pth")
    res = CliRunner().invoke(main, ["evaluate", str(tmp_path / "tiny.pth"), str(split), "--preset", "edvr-tiny",
                                    "--device", "cpu", "--out", str(tmp_path / "o"), "--rgb", "--frames", "center",
                                    "-q"])
    assert res.exit_code == 0, res.output
    assert "Average" in res.output and "channel RGB" in res.output
    data = json.loads((tmp_path / "o" / "report.json").read_text())
    assert len(data["clips"]) == 1 and data["clips"][0]["frames"] == 1
    assert not math.isnan(data["average"]["psnr"])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_cuda_precisions_close_to_cpu(tmp_path, precision):
    from vsrdata.edvr.arch import build_edvr

    split = make_split(tmp_path / "ds", clips=("000",), n=3)
    torch.manual_seed(0)
    model = build_edvr("edvr-tiny")
    cpu = evaluate(split, model=model, out_dir=tmp_path / "c", device="cpu", strips=False)
    gpu = evaluate(split, model=model, out_dir=tmp_path / "g", device="cuda", precision=precision, strips=False)
    tol = 0.01 if precision == "fp32" else 0.5
    assert abs(cpu.mean["psnr"] - gpu.mean["psnr"]) < tol


# -- on a real split-test output --------------------------------------------------------------

def test_on_split_test_output_with_odd_sizes(tmp_path):
    split_test = pytest.importorskip("vsrdata.pipelines.split_test")
    resize = pytest.importorskip("vsrdata.core.resize")
    split_test.split_test(FIXTURES / "odd_size", tmp_path / "odd", workers=1, progress=False)
    rec = json.loads((tmp_path / "odd" / "split.json").read_text())["clips"]["clip"]
    assert rec["lr_pad"] != [0, 0]  # 150x270 -> mod-crop 148x268 -> LR 37x67, padded to 40x68
    rep = evaluate(tmp_path / "odd", bicubic=True, out_dir=tmp_path / "b", frames="center")
    (h, w), (lh, lw) = rec["gt_size"][:2], rec["lr_size"][:2]
    lr = cv2.imread(str(tmp_path / "odd" / "BIx4" / "clip" / "00000003.png"))[:lh, :lw, ::-1]
    gt = cv2.imread(str(FIXTURES / "odd_size" / "clip" / "00000003.png"))[:h, :w, ::-1]
    up = resize.imresize(np.ascontiguousarray(lr), 4)
    assert rep.clips[0].psnr == pytest.approx(metrics.calculate_psnr(up, np.ascontiguousarray(gt), 0, True),
                                              abs=1e-9)

    _tiny_checkpoint(tmp_path / "tiny.pth")
    res = CliRunner().invoke(main, ["evaluate", str(tmp_path / "tiny.pth"), str(tmp_path / "odd"), "--device",
                                    "cpu", "--out", str(tmp_path / "m"), "--with-bicubic", "--frames", "center", "-q"])
    assert res.exit_code == 0, res.output
    assert "preset edvr-tiny" in res.output  # architecture read from the weights, no --preset
    data = json.loads((tmp_path / "m" / "report.json").read_text())
    assert data["clips"][0]["frames"] == 1 and data["clips"][0]["per_frame"][0]["index"] == 3
    assert data["clips"][0]["per_frame"][0]["bicubic_psnr"] == pytest.approx(rep.clips[0].psnr, abs=1e-12)
    assert (tmp_path / "m" / "compare" / "clip.png").is_file()


def test_config_stored_in_a_training_checkpoint_is_used(tmp_path):
    ckpt = pytest.importorskip("vsrdata.edvr.checkpoint")
    from vsrdata.edvr.arch import build_edvr

    split = make_split(tmp_path / "ds", clips=("000",), n=3)
    cfg = get_preset("edvr-tiny", num_frame=3, center_frame_idx=0)  # not visible in the weights
    torch.manual_seed(0)
    sd = build_edvr(cfg).state_dict()
    ckpt.save_atomic({"format": "vsrdata-train/1", "params": sd, "params_ema": sd, "iter": 5,
                      "model_config": cfg.to_dict()}, tmp_path / "iter_5.pth")
    rep = evaluate(split, tmp_path / "iter_5.pth", out_dir=tmp_path / "o", device="cpu", frames="center",
                   strips=False)
    assert rep.protocol["model_config"]["center_frame_idx"] == 0
    assert rep.protocol["num_frame"] == 3 and rep.protocol["preset"] == "custom"


def test_cli_crop_border_too_large_is_a_one_line_error(tmp_path):
    split = make_split(tmp_path / "ds", clips=("000",), n=3)
    res = CliRunner().invoke(main, ["evaluate", "--bicubic", str(split), "--crop-border", "30", "--out",
                                    str(tmp_path / "o"), "-q"])
    line = _one_line_error(res)
    assert "crop_border 30" in line and "000" in line
