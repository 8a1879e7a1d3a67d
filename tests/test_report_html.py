"""report.html: the crop where the model gains most, the page's content, and the page in a real
headless Chromium (console errors, a screenshot of a set size, the table sorts)."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from browser import Browser, chromium_path
from test_evaluate import _tiny_checkpoint, make_split
from vsrdata.evaluation.evaluate import evaluate
from vsrdata.evaluation.report import gain_crop_origin, score_label


def _brute_force_origin(model, bic, gt, size):
    """The same search written the slow way: every grid window, gain summed directly."""
    h, w = gt.shape[:2]
    ch, cw = min(size, h), min(size, w)
    step = max(1, size // 4)
    best, where = -np.inf, None
    for y in sorted(set(range(0, h - ch + 1, step)) | {h - ch}):
        for x in sorted(set(range(0, w - cw + 1, step)) | {w - cw}):
            sl = (slice(y, y + ch), slice(x, x + cw))
            g = gt[sl].astype(float)
            gain = ((bic[sl] - g) ** 2).sum() - ((model[sl] - g) ** 2).sum()
            if gain > best:
                best, where = gain, (y, x)
    return where


def test_gain_crop_is_where_the_model_beats_bicubic():
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 256, (70, 90, 3)).astype(np.uint8)
    bic = np.clip(gt.astype(int) + rng.integers(-20, 21, gt.shape), 0, 255).astype(np.uint8)
    model = bic.copy()
    model[40:56, 52:68] = gt[40:56, 52:68]  # the model is right only in this 16x16 block
    assert gain_crop_origin(model, bic, gt, 16) == (40, 52)
    for size in (8, 16, 24, 80, 100):  # windows larger than a side are clamped to it
        assert gain_crop_origin(model, bic, gt, size) == _brute_force_origin(model, bic, gt, size)


def test_score_label_names_channel_and_protocol():
    assert score_label("PSNR", "rgb", "reds4") == "PSNR-RGB (reds4)"
    assert score_label("SSIM", "y", "vid4") == "SSIM-Y (vid4)"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    pytest.importorskip("vsrdata.edvr.checkpoint")
    root = tmp_path_factory.mktemp("html")
    split = make_split(root / "ds", clips=("000", "001", "002"), n=5)
    _tiny_checkpoint(root / "tiny.pth")
    return evaluate(split, root / "tiny.pth", preset="edvr-tiny", out_dir=root / "out", device="cpu",
                    protocol="reds4", strip_crop=32, with_bicubic=True, save_frames=True)


def test_page_is_self_contained_and_labelled(report):
    page = Path(report.paths["html"]).read_text(encoding="utf-8")
    assert Path(report.paths["html"]).name == "report.html"
    assert not re.search(r"(src|href)\s*=\s*['\"](?!data:|#)", page)  # nothing fetched from anywhere
    assert "http://" not in page and "https://" not in page
    assert page.count("data:image/png;base64,") >= 1 + 2 * len(report.clips)  # bars, per clip plot + strip
    assert "PSNR-RGB (reds4)" in page and "SSIM-RGB (reds4)" in page
    for clip in report.clips:
        s = clip.strip
        assert f"<td data-v='{clip.psnr!r}'>{clip.psnr:.3f}</td>" in page
        assert f"clip {clip.name}, frame {s['frame']}" in page and f"{s['psnr']:.2f} dB" in page
        frame = next(f for f in clip.frames if f.index == s["index"])
        assert s["psnr"] == frame.psnr and s["bicubic_psnr"] == frame.bicubic_psnr


def test_strip_crop_has_the_largest_gain(report):
    from vsrdata.core.resize import imresize

    root, out = Path(report.protocol["split"]), Path(report.paths["html"]).parent
    for clip in report.clips:
        s = clip.strip
        gt = cv2.imread(str(root / "GT" / clip.name / s["frame"]))[..., ::-1]
        model = cv2.imread(str(out / "frames" / clip.name / s["frame"]))[..., ::-1]
        lr = np.ascontiguousarray(cv2.imread(str(root / "BIx4" / clip.name / s["frame"]))[..., ::-1])
        bic = np.clip(np.round(imresize(lr, 4)), 0, 255).astype(np.uint8)
        assert (s["y"], s["x"]) == _brute_force_origin(model, bic, gt, 32)
        strip = cv2.imread(s["path"])[16:, :, ::-1]  # below the label band: bicubic | model | GT, 4 px gaps
        w, win = s["w"], (slice(s["y"], s["y"] + s["h"]), slice(s["x"], s["x"] + s["w"]))
        for k, img in enumerate((bic, model, gt)):
            assert np.array_equal(strip[:, k * (w + 4):k * (w + 4) + w], img[win])


@pytest.mark.skipif(chromium_path() is None, reason="needs Chromium (apt-get install chromium)")
def test_page_in_headless_chromium(report, tmp_path):
    b = Browser(chromium_path())
    try:
        b.open(Path(report.paths["html"]).resolve().as_uri(), 1000, 700)
        names = "Array.from(document.querySelectorAll('#clips tbody tr td:first-child')).map(x => x.textContent)"
        assert b.eval(names) == [c.name for c in report.clips]
        header = "document.querySelectorAll('#clips thead th')[2]"
        assert "PSNR-RGB (reds4)" in b.eval(f"{header}.textContent")
        by_psnr = sorted(report.clips, key=lambda c: c.psnr)
        b.eval(f"{header}.click()")
        assert b.eval(names) == [c.name for c in by_psnr]
        b.eval(f"{header}.click()")
        assert b.eval(names) == [c.name for c in reversed(by_psnr)]
        assert b.eval("document.querySelector('#clips tfoot td').textContent") == "Average"
        images = b.eval("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        assert images and all(images)  # every embedded picture decoded
        png = b.screenshot()
        assert not b.errors, b.errors
    finally:
        b.close()
    shot = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert shot.shape == (700, 1000, 3)
    assert shot.std() > 10  # not a blank page
