"""Temporal consistency: TecoGAN's tOF and tLP, per frame pair and per clip.

docs/CONVENTIONS.md#temporal-metrics. For consecutive scored frames t-1, t of a clip:

- **tOF**: optical flow of the restored pair and of the GT pair, each by OpenCV's Farneback
  (`cv2.calcOpticalFlowFarneback(prev, cur, None, 0.5, 3, 15, 3, 5, 1.2, 0)`: pyramid scale 0.5,
  3 levels, window 15, 3 iterations, poly_n 5, poly_sigma 1.2, no flags) on the 8-bit grey frames
  (`cv2.COLOR_RGB2GRAY`); both flows cut to TecoGAN's centre crop (`tecogan_crop`); the value is
  the mean over pixels of the Euclidean length of the flow difference. Lower is better; identical
  clips give 0.
- **tLP** (needs LPIPS, `vsrdata.evaluation.iqa`): |LPIPS(GT t-1, GT t) - LPIPS(out t-1, out t)|
  x 100 on the centre crops of the frames (TecoGAN prints tLP x 100).

The first scored frame of a clip has no value (None). TecoGAN's own script leaves out the first
and last two frames of each clip; the per-frame values here let a reader do the same.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["FARNEBACK", "TemporalScorer", "farneback", "tecogan_crop", "tof_pair"]

# pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags (TecoGAN metrics.py)
FARNEBACK = (0.5, 3, 15, 3, 5, 1.2, 0)


def tecogan_crop(img: np.ndarray) -> np.ndarray:
    """TecoGAN's centre crop: each side becomes the largest multiple of 32 that is at least 16 px
    shorter than the side, centred (offset rounded down). ValueError for sides under 48 px."""
    h, w = img.shape[:2]

    def side(n: int) -> int:
        m = (n // 32) * 32
        while m > n - 16:
            m -= 32
        return m

    ch, cw = side(h), side(w)
    if ch <= 0 or cw <= 0:
        raise ValueError(f"temporal metrics: a {h}x{w} frame is too small for TecoGAN's centre crop (>= 48 px)")
    y, x = (h - ch) // 2, (w - cw) // 2
    return img[y:y + ch, x:x + cw]


def _grey(rgb: np.ndarray) -> np.ndarray:
    import cv2

    if rgb.ndim == 2:
        return rgb
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def farneback(prev_grey: np.ndarray, grey: np.ndarray) -> np.ndarray:
    """HxWx2 float32 flow from `prev_grey` to `grey` (uint8 HxW) with TecoGAN's parameters."""
    import cv2

    return cv2.calcOpticalFlowFarneback(prev_grey, grey, None, *FARNEBACK)


def tof_pair(prev_out_grey, out_grey, prev_gt_grey, gt_grey) -> float:
    """tOF of one frame pair (uint8 grey frames, all the same size); see the module docstring."""
    d = tecogan_crop(farneback(prev_gt_grey, gt_grey)) - tecogan_crop(farneback(prev_out_grey, out_grey))
    return float(np.sqrt((d.astype(np.float64) ** 2).sum(-1)).mean())


class TemporalScorer:
    """Feed a clip's scored frames in order (`feed`); get each frame's tOF / tLP against the
    previous one (None for the first). `lpips(a, b)` (HxWx3 uint8 RGB -> float) enables tLP."""

    def __init__(self, tof: bool = True, lpips: Callable[[np.ndarray, np.ndarray], float] | None = None):
        self.tof, self.lpips = tof, lpips
        self._prev: tuple | None = None

    def feed(self, out_rgb: np.ndarray, gt_rgb: np.ndarray) -> tuple[float | None, float | None]:
        """(tOF, tLP) of this frame against the previously fed one (None where not computed)."""
        grey = (_grey(out_rgb), _grey(gt_rgb)) if self.tof else (None, None)
        crops = (tecogan_crop(out_rgb), tecogan_crop(gt_rgb)) if self.lpips else (None, None)
        tof = tlp = None
        if self._prev is not None:
            (p_out, p_gt), (pc_out, pc_gt) = self._prev
            if self.tof:
                tof = tof_pair(p_out, grey[0], p_gt, grey[1])
            if self.lpips:
                tlp = abs(self.lpips(pc_gt, crops[1]) - self.lpips(pc_out, crops[0])) * 100.0
        self._prev = (grey, crops)
        return tof, tlp
