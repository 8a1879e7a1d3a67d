"""PSNR and SSIM exactly as the video super-resolution field computes them.

Conventions (EDVR-old `codes/utils/util.py` and BasicSR `basicsr/metrics/psnr_ssim.py`; the code
here is our own; docs/CONVENTIONS.md#metrics):

- Model outputs are quantised first: clamp to [0, 1], x255, round (half to even, as numpy/torch
  `round`), cast to uint8 (`tensor_to_uint8`). Metrics are then computed in float64 on [0, 255].
- Images are HxWxC **RGB** uint8 arrays (or HxW gray). The channel order matters only for the
  Y channel.
- Y channel: ITU-R BT.601 studio range computed in float **without rounding**:
  Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 with R, G, B in [0, 255] (range 16-235).
  MATLAB's `rgb2ycbcr` on uint8 rounds Y to uint8 and gives slightly different numbers; BasicSR
  does this arithmetic in float32, which can move a PSNR by ~1e-5 dB; we use float64 throughout.
- `crop_border` pixels are removed from every side before either metric (0 for video SR).
- PSNR = 10 log10(255^2 / MSE), no epsilon: identical images give `inf`.
- SSIM (Wang et al. 2004 as BasicSR computes it): window = outer product of the 1-D Gaussian of
  11 taps, sigma 1.5 (cv2.getGaussianKernel(11, 1.5)); local statistics by 2-D correlation
  (BasicSR: cv2.filter2D; here the equivalent two 1-D passes), keeping only the 'valid' part (5 px cropped per side, so the border mode
  never matters); C1 = (0.01*255)^2, C2 = (0.03*255)^2; the SSIM map is averaged; a multi-channel
  image scores the mean over channels. No automatic downsampling.
- Averages over a test set: `aggregate(..., mode="clip")` is the mean of per-clip means (EDVR,
  BasicSR: what the papers report); `mode="frame"` is the mean over all frames (mmagic). They
  differ when clips have different lengths (Vid4).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "AVERAGE_MODES", "aggregate", "calculate_psnr", "calculate_ssim", "gaussian_kernel_1d", "mean_or_nan",
    "rgb_to_y",
    "tensor_to_uint8",
]

AVERAGE_MODES = ("clip", "frame")
_SSIM_K1, _SSIM_K2 = 0.01, 0.03
_SSIM_WIN, _SSIM_SIGMA = 11, 1.5


def tensor_to_uint8(t) -> np.ndarray:
    """Quantise a model output the way the field does before scoring.

    Args:
        t: torch tensor (3, H, W) or (1, 3, H, W) (also (H, W) / (1, H, W) gray), RGB float in
            [0, 1] (values outside are clamped), on any device and in any float dtype.

    Returns:
        HxWx3 (or HxW) uint8 RGB numpy array: clamp(0, 1), x255 in float32, round half to even
        (BasicSR `tensor2img`), cast.
    """
    import torch  # the caller holds a tensor, so torch is already loaded

    x = t.detach()
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"tensor_to_uint8 expects one image, got a batch of shape {tuple(x.shape)}")
        x = x[0]
    if x.dim() == 3 and x.shape[0] == 1:
        x = x[0]
    if x.dim() not in (2, 3):
        raise ValueError(f"tensor_to_uint8 expects (3,H,W) or (H,W), got shape {tuple(x.shape)}")
    x = x.float().clamp(0, 1).mul(255.0).round().to(torch.uint8)
    if x.dim() == 3:
        x = x.permute(1, 2, 0)
    return x.contiguous().cpu().numpy()


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 studio-range luma of an RGB image, float64, no rounding.

    Args:
        img: HxWx3 RGB, uint8 or float, values on the [0, 255] scale.

    Returns:
        HxW float64 in [16, 235]: 16 + (65.481 R + 128.553 G + 24.966 B) / 255.
    """
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"rgb_to_y expects an HxWx3 RGB image, got shape {img.shape}")
    x = img.astype(np.float64)
    return 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0


def _prepare(img: np.ndarray, img2: np.ndarray, crop_border: int, test_y_channel: bool,
             name: str) -> tuple[np.ndarray, np.ndarray]:
    img, img2 = np.asarray(img), np.asarray(img2)
    if img.shape != img2.shape:
        raise ValueError(f"{name}: image shapes differ: {img.shape} vs {img2.shape}")
    for a in (img, img2):
        if a.dtype != np.uint8:
            raise ValueError(f"{name}: expects uint8 images (quantise with tensor_to_uint8), got {a.dtype}")
    if img.ndim not in (2, 3):
        raise ValueError(f"{name}: expects HxW or HxWxC images, got shape {img.shape}")
    if crop_border < 0:
        raise ValueError(f"{name}: crop_border must be >= 0, got {crop_border}")
    if test_y_channel:
        if img.ndim == 3 and img.shape[2] == 3:
            a, b = rgb_to_y(img), rgb_to_y(img2)
        elif img.ndim == 2 or img.shape[2] == 1:
            raise ValueError(f"{name}: test_y_channel needs RGB images, got shape {img.shape}")
        else:
            raise ValueError(f"{name}: test_y_channel needs 3-channel RGB images, got shape {img.shape}")
    else:
        a, b = img.astype(np.float64), img2.astype(np.float64)
    if crop_border:
        h, w = a.shape[:2]
        if 2 * crop_border >= min(h, w):
            raise ValueError(f"{name}: crop_border {crop_border} leaves nothing of a {h}x{w} image")
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    return a, b


def calculate_psnr(img: np.ndarray, img2: np.ndarray, crop_border: int = 0,
                   test_y_channel: bool = False) -> float:
    """PSNR in dB between two uint8 images (HxWx3 RGB or HxW), 255 peak, float64.

    Returns `inf` for identical images (no epsilon, as EDVR/BasicSR).
    """
    a, b = _prepare(img, img2, crop_border, test_y_channel, "calculate_psnr")
    mse = float(np.mean((a - b) ** 2))
    if mse == 0:
        return float("inf")
    return 10.0 * math.log10(255.0 * 255.0 / mse)


def gaussian_kernel_1d() -> np.ndarray:
    """The 11-tap, sigma 1.5 Gaussian (11x1 float64), equal to cv2.getGaussianKernel(11, 1.5):
    exp(-(x-5)^2 / (2 sigma^2)) normalised to sum 1. The SSIM window is its outer product."""
    x = np.arange(_SSIM_WIN, dtype=np.float64) - (_SSIM_WIN - 1) / 2
    g = np.exp(-(x * x) / (2 * _SSIM_SIGMA * _SSIM_SIGMA))
    return (g / g.sum())[:, None]


def _ssim_2d(a: np.ndarray, b: np.ndarray) -> float:
    import cv2

    c1 = (_SSIM_K1 * 255) ** 2
    c2 = (_SSIM_K2 * 255) ** 2
    g = gaussian_kernel_1d()
    r = _SSIM_WIN // 2

    # Correlation with the 11x11 window outer(g, g), kept on the 'valid' region only. Applied as
    # two 1-D passes (cv2.sepFilter2D): the same sums as BasicSR's cv2.filter2D with the 2-D
    # window up to float rounding, about twice as fast.
    def filt(x):
        return cv2.sepFilter2D(x, -1, g, g)[r:-r, r:-r]

    mu1, mu2 = filt(a), filt(b)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = filt(a * a) - mu1_sq
    sigma2_sq = filt(b * b) - mu2_sq
    sigma12 = filt(a * b) - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
    return float(ssim_map.mean())


def calculate_ssim(img: np.ndarray, img2: np.ndarray, crop_border: int = 0,
                   test_y_channel: bool = False) -> float:
    """SSIM between two uint8 images (HxWx3 RGB or HxW); see the module docstring.

    Both sides (after `crop_border`) must be at least 11 px (the Gaussian window).
    """
    a, b = _prepare(img, img2, crop_border, test_y_channel, "calculate_ssim")
    if min(a.shape[:2]) < _SSIM_WIN:
        raise ValueError(f"calculate_ssim: image {a.shape[0]}x{a.shape[1]} is smaller than the "
                         f"{_SSIM_WIN}x{_SSIM_WIN} window")
    if a.ndim == 2:
        return _ssim_2d(a, b)
    return float(np.mean([_ssim_2d(np.ascontiguousarray(a[..., c]), np.ascontiguousarray(b[..., c]))
                          for c in range(a.shape[2])]))


def mean_or_nan(values: Iterable[float]) -> float:
    """Arithmetic mean; NaN for an empty sequence (e.g. a clip without border frames)."""
    vals = list(values)
    return float(np.mean(vals)) if vals else float("nan")


def aggregate(per_clip: Mapping[str, Sequence[float]], mode: str = "clip") -> float:
    """Average per-frame scores grouped by clip.

    Args:
        per_clip: clip name -> that clip's per-frame scores (clips with no scores are skipped).
        mode: "clip" = mean of per-clip means (EDVR / BasicSR, the papers' convention);
            "frame" = mean over all frames pooled together (mmagic).

    Returns:
        The average, or NaN when there is no score at all.
    """
    if mode not in AVERAGE_MODES:
        raise ValueError(f"unknown average mode {mode!r}; choose one of {', '.join(AVERAGE_MODES)}")
    groups = [list(v) for v in per_clip.values() if len(v)]
    if not groups:
        return float("nan")
    if mode == "clip":
        return float(np.mean([np.mean(g) for g in groups]))
    return float(np.mean([x for g in groups for x in g]))
