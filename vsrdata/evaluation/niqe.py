"""NIQE (Natural Image Quality Evaluator), no reference, as BasicSR's `calculate_niqe` computes it.

docs/CONVENTIONS.md#niqe. Lower is better. The steps (facts of Mittal et al. 2013 and MATLAB's
`niqe`, in the arithmetic BasicSR 1.4.2 uses; the code here is our own and vectorised over blocks):

1. Y channel: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 from the 8-bit frame, **rounded**
   to an integer value (kept as float32, as all of BasicSR's NIQE arithmetic); `crop_border` pixels cut from each side; then the frame is
   cut to a whole number of 96x96 blocks (top-left kept).
2. Two scales: the frame, then MATLAB-style bicubic x0.5 with antialiasing (`core.resize.imresize`
   on Y / 255, x255, stored as float32 like BasicSR's own float32 resize).
3. At each scale: local mean mu and deviation sigma with the 7x7 Gaussian window of the pristine
   model (edges replicated); normalised coefficients (Y - mu) / (sigma + 1); per block (96x96 at
   scale 1, 48x48 at scale 2) 18 features: an asymmetric generalised Gaussian (AGGD) fit of the
   coefficients (shape, mean of the two scales) and of their products with the block shifted
   circularly by (0, 1), (1, 0), (1, 1), (1, -1) (shape, mean, left and right scale each). The AGGD
   shape is the point of the grid 0.2:0.001:10 whose moment ratio is nearest the block's.
4. Quality = sqrt((mu_p - mu_d) pinv((S_p + S_d) / 2) (mu_p - mu_d)^T) between the pristine model
   (mu_p, S_p; `vsrdata/data/niqe/`, see PROVENANCE.md there) and the Gaussian fitted to the
   frame's block features (mean ignoring NaN; covariance over blocks without NaN).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["BLOCK", "calculate_niqe", "niqe_y", "pristine_model"]

BLOCK = 96
_PARAMS = Path(__file__).resolve().parent.parent / "data" / "niqe" / "niqe_pris_params.npz"
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@lru_cache(maxsize=1)
def pristine_model() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu 36 float64, covariance 36x36 float64, 7x7 Gaussian window) of the pristine model."""
    with np.load(_PARAMS) as d:
        return d["mu_pris_param"].reshape(-1), d["cov_pris_param"], d["gaussian_window"]


@lru_cache(maxsize=1)
def _shape_grid() -> dict[str, np.ndarray]:
    """The AGGD shape grid a = 0.2:0.001:10 with G(1/a), G(2/a), G(3/a) (G = the gamma function)
    and the moment ratio G(2/a)^2 / (G(1/a) G(3/a)), which increases strictly with a (checked), so
    the nearest grid point is found by bisection."""
    import math

    grid = np.arange(0.2, 10.001, 0.001)
    g1, g2, g3 = (np.array([math.gamma(k / a) for a in grid]) for k in (1, 2, 3))
    ratio = g2 ** 2 / (g1 * g3)
    assert np.all(np.diff(ratio) > 0)
    return {"a": grid, "ratio": ratio, "g1": g1, "g2": g2, "g3": g3}


def _nearest_shape(target: np.ndarray) -> np.ndarray:
    """Index of the grid ratio nearest each target (the lower index on a tie; 0 where the target
    is not finite, as an argmin over NaN/inf distances gives)."""
    ratio = _shape_grid()["ratio"]
    finite = np.isfinite(target)
    t = np.where(finite, target, 0.0)
    hi = np.clip(np.searchsorted(ratio, t), 1, len(ratio) - 1)
    lo = hi - 1
    pick = np.where((ratio[hi] - t) ** 2 < (ratio[lo] - t) ** 2, hi, lo)
    return np.where(finite, pick, 0)


def _aggd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AGGD fit of each row of `x` (blocks x samples) -> (shape a, left scale l, right scale r,
    mean (r - l) G(2/a) / G(1/a))."""
    x = x.astype(np.float64, copy=False)
    sq = x * x
    neg, pos = x < 0, x > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.sqrt(np.where(neg, sq, 0).sum(1) / neg.sum(1))
        right = np.sqrt(np.where(pos, sq, 0).sum(1) / pos.sum(1))
        g = left / right
        r = np.abs(x).mean(1) ** 2 / sq.mean(1)
        r_norm = r * (g ** 3 + 1) * (g + 1) / ((g ** 2 + 1) ** 2)
    grid, i = _shape_grid(), _nearest_shape(r_norm)
    k = np.sqrt(grid["g1"][i] / grid["g3"][i])
    bl, br = left * k, right * k
    return grid["a"][i], bl, br, (br - bl) * grid["g2"][i] / grid["g1"][i]


def _block_features(norm: np.ndarray, side: int) -> np.ndarray:
    """18 features per side x side block of the normalised coefficients -> (blocks, 18)."""
    nh, nw = norm.shape[0] // side, norm.shape[1] // side
    blocks = norm.reshape(nh, side, nw, side).swapaxes(1, 2).reshape(nh * nw, side, side)
    flat = blocks.reshape(len(blocks), -1)
    a, bl, br, _ = _aggd(flat)
    cols = [a, (bl + br) / 2]
    for shift in _SHIFTS:
        prod = flat * np.roll(blocks, shift, axis=(1, 2)).reshape(len(blocks), -1)
        a, bl, br, mean = _aggd(prod)
        cols += [a, mean, bl, br]
    return np.stack(cols, axis=1)


def _normalised(img: np.ndarray, window: np.ndarray, dtype) -> np.ndarray:
    """(img - mu) / (sigma + 1) with local statistics over `window` (replicated edges); the local
    sums are taken in float64 and stored in `dtype` (BasicSR's scipy filters keep the input dtype)."""
    import cv2

    img = img.astype(dtype, copy=False)
    mu = cv2.filter2D(img.astype(np.float64), -1, window, borderType=cv2.BORDER_REPLICATE).astype(dtype)
    sq = cv2.filter2D((img * img).astype(np.float64), -1, window, borderType=cv2.BORDER_REPLICATE).astype(dtype)
    sigma = np.sqrt(np.abs(sq - mu * mu))
    return (img - mu) / (sigma + dtype(1))


def niqe_y(img: np.ndarray) -> np.ndarray:
    """The luma NIQE scores: HxWx3 RGB uint8 (or an HxW gray frame, used as is) -> HxW float32
    Y rounded (half to even) to integer values, in BasicSR's arithmetic (float32 RGB / 255, the
    weighted sum in float64, / 255 stored as float32, x 255)."""
    img = np.asarray(img)
    if img.ndim == 2:
        return np.round(img.astype(np.float32))
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"calculate_niqe expects an HxWx3 RGB or HxW image, got shape {img.shape}")
    x = img.astype(np.float32) / np.float32(255.0)
    y = x[..., 2].astype(np.float64) * 24.966 + x[..., 1] * 128.553 + x[..., 0] * 65.481 + 16.0
    return np.round((y / 255.0).astype(np.float32) * np.float32(255.0))


def calculate_niqe(img: np.ndarray, crop_border: int = 0) -> float:
    """NIQE of one frame (module docstring); lower is better.

    Args:
        img: HxWx3 **RGB** uint8 (or HxW gray, [0, 255]) frame.
        crop_border: pixels removed from each side before scoring (BasicSR's argument).

    Returns:
        The NIQE score (float); NaN only when every block's features are undefined.

    Raises ValueError when less than one 96x96 block remains.
    """
    if crop_border < 0:
        raise ValueError(f"calculate_niqe: crop_border must be >= 0, got {crop_border}")
    y = niqe_y(img)
    if crop_border:
        y = y[crop_border:-crop_border, crop_border:-crop_border]
    h, w = (y.shape[0] // BLOCK) * BLOCK, (y.shape[1] // BLOCK) * BLOCK
    if h == 0 or w == 0:
        raise ValueError(f"calculate_niqe: a {y.shape[0]}x{y.shape[1]} image (after crop_border) is smaller "
                         f"than one {BLOCK}x{BLOCK} block")
    y = y[:h, :w]
    mu_p, cov_p, window = pristine_model()
    feats = [_block_features(_normalised(y, window, np.float32), BLOCK)]
    from vsrdata.core.resize import imresize

    half = (imresize(y / 255.0, 0.5).astype(np.float32) * np.float32(255.0))
    feats.append(_block_features(_normalised(half, window, np.float32), BLOCK // 2))
    return _quality(np.concatenate(feats, axis=1), mu_p, cov_p)


def _quality(feats: np.ndarray, mu_p: np.ndarray, cov_p: np.ndarray) -> float:
    """Distance between the pristine Gaussian and the one fitted to the block features."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns / fewer than 2 rows
        mu_d = np.nanmean(feats, axis=0)
        cov_d = np.cov(feats[~np.isnan(feats).any(axis=1)], rowvar=False)
    d = mu_p - mu_d
    return float(np.sqrt(d @ np.linalg.pinv((cov_p + cov_d) / 2) @ d))
