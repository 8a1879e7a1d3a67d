"""PSNR / SSIM against scikit-image (an implementation nobody here wrote) and hand-computed values.

Aligning scikit-image with the field's convention:
- `peak_signal_noise_ratio(..., data_range=255)` is the same formula (float64 MSE, 255 peak).
- `structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=255)` uses an 11-tap Gaussian (truncate 3.5 -> radius 5), C1/C2 from 255, and
  averages the map after cropping (win_size - 1) // 2 = 5 px per side, i.e. exactly the 'valid'
  region our cv2.filter2D implementation keeps. scikit-image filters separably with
  scipy.ndimage (border mode 'reflect'); the border mode only touches the cropped pixels, so the
  numbers agree to float rounding. With `channel_axis=-1` it averages per-channel SSIM, as we do.
- The Y channel reference is `skimage.color.rgb2ycbcr(...)[..., 0]`, which is BT.601 studio
  range in float without rounding (16 + 65.481 r + 128.553 g + 24.966 b for r, g, b in [0, 1]).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vsrdata.evaluation import metrics

skimage_metrics = pytest.importorskip("skimage.metrics")
skimage_color = pytest.importorskip("skimage.color")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _pair(h=48, w=64, seed=0):
    """A real RGB frame crop and a degraded copy (blur + noise), both uint8."""
    bgr = cv2.imread(str(FIXTURES / "reds" / "train_sharp" / "000" / "00000003.png"), cv2.IMREAD_UNCHANGED)
    gt = np.ascontiguousarray(bgr[60:60 + h, 100:100 + w, ::-1])
    rng = np.random.default_rng(seed)
    blurred = cv2.GaussianBlur(gt, (5, 5), 1.2).astype(np.float64)
    out = np.clip(np.round(blurred + rng.normal(0, 3, gt.shape)), 0, 255).astype(np.uint8)
    return gt, out


def test_psnr_rgb_matches_skimage():
    gt, out = _pair()
    ref = skimage_metrics.peak_signal_noise_ratio(gt, out, data_range=255)
    assert abs(metrics.calculate_psnr(out, gt) - ref) < 1e-6


def test_psnr_y_matches_skimage_with_crop():
    gt, out = _pair(seed=1)
    y_gt = skimage_color.rgb2ycbcr(gt)[..., 0]
    y_out = skimage_color.rgb2ycbcr(out)[..., 0]
    c = 4
    ref = skimage_metrics.peak_signal_noise_ratio(y_gt[c:-c, c:-c], y_out[c:-c, c:-c], data_range=255)
    assert abs(metrics.calculate_psnr(out, gt, crop_border=c, test_y_channel=True) - ref) < 1e-6


def test_rgb_to_y_matches_skimage_and_is_not_rounded():
    gt, _ = _pair()
    y = metrics.rgb_to_y(gt)
    np.testing.assert_allclose(y, skimage_color.rgb2ycbcr(gt)[..., 0], rtol=0, atol=1e-9)
    assert y.dtype == np.float64
    assert np.any(np.abs(y - np.round(y)) > 1e-3)  # float, not quantised like MATLAB's uint8 path
    assert metrics.rgb_to_y(np.zeros((1, 1, 3), np.uint8))[0, 0] == pytest.approx(16.0)
    assert metrics.rgb_to_y(np.full((1, 1, 3), 255, np.uint8))[0, 0] == pytest.approx(235.0)


def _sk_ssim(a, b, channel_axis=None):
    return skimage_metrics.structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
        channel_axis=channel_axis)


def test_ssim_rgb_matches_skimage():
    gt, out = _pair(seed=2)
    ref = _sk_ssim(gt.astype(np.float64), out.astype(np.float64), channel_axis=-1)
    assert abs(metrics.calculate_ssim(out, gt) - ref) < 1e-9


def test_ssim_y_matches_skimage_with_crop():
    gt, out = _pair(seed=3)
    y_gt = skimage_color.rgb2ycbcr(gt)[..., 0]
    y_out = skimage_color.rgb2ycbcr(out)[..., 0]
    ref = _sk_ssim(y_gt[2:-2, 2:-2], y_out[2:-2, 2:-2])
    assert abs(metrics.calculate_ssim(out, gt, crop_border=2, test_y_channel=True) - ref) < 1e-9


def test_ssim_window_is_cv2_gaussian_and_matches_a_2d_filter2d_reference():
    np.testing.assert_allclose(metrics.gaussian_kernel_1d(), cv2.getGaussianKernel(11, 1.5), rtol=0, atol=1e-15)
    # the field's formulation (BasicSR _ssim: 2-D window, cv2.filter2D, [5:-5, 5:-5]) on one channel
    gt, out = _pair(seed=5)
    a, b = gt[..., 1].astype(np.float64), out[..., 1].astype(np.float64)
    win = np.outer(cv2.getGaussianKernel(11, 1.5), cv2.getGaussianKernel(11, 1.5).T)
    f = lambda x: cv2.filter2D(x, -1, win)[5:-5, 5:-5]  # noqa: E731
    mu1, mu2 = f(a), f(b)
    s1, s2, s12 = f(a * a) - mu1 ** 2, f(b * b) - mu2 ** 2, f(a * b) - mu1 * mu2
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ref = np.mean((2 * mu1 * mu2 + c1) * (2 * s12 + c2) / ((mu1 ** 2 + mu2 ** 2 + c1) * (s1 + s2 + c2)))
    assert abs(metrics.calculate_ssim(gt[..., 1], out[..., 1]) - ref) < 1e-12


def test_ssim_of_identical_images_is_one_and_symmetric():
    gt, out = _pair(seed=4)
    assert metrics.calculate_ssim(gt, gt) == pytest.approx(1.0, abs=1e-12)
    assert metrics.calculate_ssim(gt, out) == pytest.approx(metrics.calculate_ssim(out, gt), abs=1e-12)
    assert metrics.calculate_ssim(gt, out) < 0.99


def test_psnr_hand_computed():
    a = np.zeros((4, 4), np.uint8)
    b = a.copy()
    b[1, 2] = 255  # MSE = 255^2 / 16 -> PSNR = 10 log10(16)
    assert metrics.calculate_psnr(a, b) == pytest.approx(10 * math.log10(16), abs=1e-12)
    rgb_a = np.zeros((2, 2, 3), np.uint8)
    rgb_b = rgb_a.copy()
    rgb_b[..., 1] = 10  # MSE = 100/3 over all 12 values
    assert metrics.calculate_psnr(rgb_a, rgb_b) == pytest.approx(10 * math.log10(255 ** 2 * 3 / 100), abs=1e-12)
    assert metrics.calculate_psnr(a, a) == float("inf")


def test_crop_border_removes_the_border():
    a = np.zeros((8, 8), np.uint8)
    b = a.copy()
    b[0, :] = 200  # only in the border
    assert metrics.calculate_psnr(a, b, crop_border=1) == float("inf")
    assert metrics.calculate_psnr(a, b) < 20


def test_tensor_to_uint8_clamps_and_rounds():
    t = torch.tensor([[[-0.2, 0.5 / 255, 1.5 / 255], [0.999, 1.0, 3.0]]] * 3)  # (3, 2, 3)
    img = metrics.tensor_to_uint8(t)
    assert img.shape == (2, 3, 3) and img.dtype == np.uint8
    # round half to even on x255 in float32 (BasicSR tensor2img): 0.5 -> 0, 1.5 -> 2
    expected = np.round(np.clip(t[0].numpy(), 0, 1) * np.float32(255)).astype(np.uint8)
    np.testing.assert_array_equal(img[..., 0], expected)
    assert img[0, 0, 0] == 0 and img[1, 2, 0] == 255
    # channel order kept: (3,H,W) -> HxWx3
    t2 = torch.zeros(1, 3, 2, 2)
    t2[0, 2] = 1.0
    assert metrics.tensor_to_uint8(t2)[0, 0].tolist() == [0, 0, 255]


def test_aggregate_clip_mean_vs_frame_mean():
    per_clip = {"a": [30.0, 32.0], "b": [20.0, 20.0, 20.0, 20.0], "empty": []}
    assert metrics.aggregate(per_clip, "clip") == pytest.approx((31.0 + 20.0) / 2)
    assert metrics.aggregate(per_clip, "frame") == pytest.approx((62.0 + 80.0) / 6)
    assert math.isnan(metrics.aggregate({}, "clip"))
    with pytest.raises(ValueError, match="average mode"):
        metrics.aggregate(per_clip, "median")


def test_bad_inputs_are_refused_with_a_message():
    a = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.calculate_psnr(a, a[:8])
    with pytest.raises(ValueError, match="uint8"):
        metrics.calculate_psnr(a.astype(np.float32), a)
    with pytest.raises(ValueError, match="window"):
        metrics.calculate_ssim(a[:8, :8], a[:8, :8])
    with pytest.raises(ValueError, match="RGB"):
        metrics.calculate_psnr(a[..., 0], a[..., 0], test_y_channel=True)
