"""The standard VSR degradations: BI (MATLAB bicubic), BD (MATLAB Gaussian blur + subsample)
and BD-DUF (BasicSR/EDVR's ``duf_downsample``).

Both take a frame exactly as :func:`vsrdata.core.image_io.read_image` returns it (HxW or HxWx3,
uint8 or uint16, any channel order: every channel is processed independently) and return the
low-resolution frame with the same dtype and number of channels.

BI -- as the field's MATLAB scripts (BasicSR/EDVR ``generate_LR_Vimeo90K.m``, RCAN
``Prepare_TestData_HR_LR.m``): ``modcrop`` to a multiple of the scale (bottom/right), then
``imresize(img, 1/scale, 'bicubic')`` of the ``im2double`` image, then ``im2uint8``. See
:mod:`vsrdata.core.resize` for the bit-exact imresize.

BD -- the convention of the MATLAB ``imresize_BD`` function shipped with RCAN/IRCNN
(``Prepare_TestData_HR_LR.m``), which the BDx4 Vimeo90K / Vid4 sets used by BasicVSR, mmagic and
others follow (mmagic's Python port ``tools/dataset_converters/vimeo90k/
preprocess_vimeo90k_dataset.py`` implements the same x4 recipe: kernel ``ceil(3*sigma)*2+2``,
replicate border, subsample from offset 1 with step 4):

* kernel: ``fspecial('gaussian', k, sigma)`` with sigma = 1.6 and
  ``k = 2*ceil(3*sigma) + 2 = 12`` for even scales, ``k = 2*ceil(3*sigma) + 1 = 11`` for odd
  scales except ``k = 7`` for scale 3 (a special case in that script);
* filter: ``imfilter(img, kernel, 'replicate')`` -- correlation, edge samples replicated; for
  an even ``k`` MATLAB's kernel origin is element ``floor((k+1)/2)`` (1-based), so output ``i``
  (0-based) sums input ``i-5 .. i+6`` for ``k = 12``;
* subsample: even scale ``s``: ``blur(s/2 : s : end-s/2)`` (1-based), i.e. 0-based rows/cols
  ``s/2 - 1 + s*n`` (offset 1, step 4 for x4, so each LR pixel is centred on its 4x4 HR block);
  odd scale: ``imresize(blur, 1/s, 'nearest')``, i.e. 0-based ``(s-1)/2 + s*n``.
  Frames are mod-cropped first (as every BD generation script does), so the LR size is
  exactly ``(H // s, W // s)``.

Scales: RCAN's script defines the kernel size for every scale (rule above: 12 taps at x2, x4 and
x8, 7 at x3), so ``bd`` follows it at every scale; the BD sets in the literature are x4.

BD-DUF (``bd-duf``) -- BasicSR ``basicsr/data/data_util.py::duf_downsample`` (EDVR's
``DUF_downsample``; see ``docs/CONVENTIONS.md#bd-duf``): the 13x13 kernel is scipy's
``gaussian_filter`` (truncate 4, reflect mode) of a 13x13 delta with sigma ``0.4*scale``; the
frame is reflect-padded (edge sample not repeated) by ``13//2 + 2*scale``, correlated with stride
``scale`` and 2 outputs are cropped from every side. Worked out, LR pixel ``m`` is the weighted
sum of HR samples ``scale*m - 6 .. scale*m + 6`` (offset 0, reflected at the borders), which we
compute separably (the kernel is the outer product of scipy's 1-D filter of a delta). BasicSR
accepts x2-x4; x8 is the same formula at sigma 3.2 (our generalisation: the kernel is then
scipy's reflect-folded 13-tap filter). Frames are mod-cropped first, as for BI/BD, so the LR
size is ``(H // s, W // s)`` (BasicSR's function itself does not crop). A side must exceed
``13//2 + 2*scale`` samples for the reflection.

Other "BD" variants exist and are neither: e.g. SOF-VSR's script (13 taps, symmetric border,
offset 0). Models trained on one do badly on another, so LR sets should record which was used.

Arithmetic: float64 throughout (the Gaussian is applied separably -- fspecial's 2-D Gaussian
is the outer product of two 1-D ones -- and only at the sampled positions), rounded ONCE at the
end: round half away from zero, saturate to the dtype's range (MATLAB's uint8/uint16
conversion; mmagic's port uses floor(x + 0.5), identical for these non-negative values).
"""

from __future__ import annotations

import math
import numbers
from functools import lru_cache

import numpy as np

from vsrdata.core.resize import AxisOp, imresize, separable_resample, to_integer
from vsrdata.errors import ConfigError, InputError

__all__ = ["BD_SIGMA", "DEGRADATIONS", "DUF_TAPS", "duf_kernel", "bd_kernel_size", "bd_offset", "degrade", "degrade_float", "gaussian_kernel",
           "mod_crop"]

BD_SIGMA = 1.6
DEGRADATIONS = ("bi", "bd", "bd-duf")
DUF_TAPS = 13
_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))


def _check_scale(scale) -> int:
    if isinstance(scale, bool) or not isinstance(scale, numbers.Integral) or scale < 1:
        raise ConfigError(f"scale must be a positive integer, got {scale!r}")
    return int(scale)


def _check_frame(img) -> None:
    if not isinstance(img, np.ndarray):
        raise InputError(f"frame must be a numpy array, got {type(img).__name__}")
    if img.ndim not in (2, 3):
        raise InputError(f"frame must be HxW or HxWxC, got shape {img.shape}")
    if img.ndim == 3 and img.shape[2] == 4:
        raise InputError("frame has an alpha channel (4 channels), which is not supported")
    if img.ndim == 3 and img.shape[2] not in (1, 3):
        raise InputError(f"frame must have 1 or 3 channels, got {img.shape[2]}")
    if img.dtype not in _DTYPES:
        raise InputError(f"unsupported pixel type {img.dtype} (need uint8 or uint16)")


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom rows and right columns so both sides are multiples of ``scale``.

    Matches the official scripts' ``modcrop`` (MATLAB ``img(1:h - mod(h, s), 1:w - mod(w, s), :)``,
    BasicSR ``mod_crop``). Returns a view of ``img`` (HxW or HxWxC, any dtype).

    Raises:
        ConfigError: ``scale`` is not a positive integer.
        InputError: a side is smaller than ``scale`` (nothing would be left).
    """
    scale = _check_scale(scale)
    if not isinstance(img, np.ndarray) or img.ndim not in (2, 3):
        raise InputError(f"frame must be an HxW or HxWxC array, got {getattr(img, 'shape', img)!r}")
    h, w = img.shape[:2]
    if h < scale or w < scale:
        raise InputError(f"frame of {h}x{w} (HxW) is smaller than the scale {scale}")
    return img[: h - h % scale, : w - w % scale]


def bd_kernel_size(scale: int, sigma: float = BD_SIGMA) -> int:
    """Gaussian kernel size of MATLAB ``imresize_BD``: ``2*ceil(3*sigma) + 2`` for even scales,
    ``2*ceil(3*sigma) + 1`` for odd ones, and 7 for scale 3 with sigma 1.6."""
    scale = _check_scale(scale)
    if scale % 2 == 0:
        return 2 * math.ceil(3 * sigma) + 2
    if scale == 3 and sigma == 1.6:
        return 7
    return 2 * math.ceil(3 * sigma) + 1


def bd_offset(scale: int) -> int:
    """0-based index of the first HR row/column kept by BD subsampling (then every ``scale``-th):
    ``scale/2 - 1`` for even scales (1 for x4), ``(scale - 1)/2`` for odd scales."""
    scale = _check_scale(scale)
    return scale // 2 - 1 if scale % 2 == 0 else (scale - 1) // 2


def gaussian_kernel(size: int, sigma: float = BD_SIGMA) -> np.ndarray:
    """1-D factor of MATLAB ``fspecial('gaussian', size, sigma)``, normalised to sum 1.

    ``exp(-x^2 / (2 sigma^2))`` at ``x = -(size-1)/2 .. (size-1)/2``; the 2-D fspecial kernel is
    ``np.outer(g, g)`` (to float64 rounding). fspecial's cut of values below ``eps * max`` never
    triggers for the sizes used here (smallest 2-D value / largest > 1e-6).
    """
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


@lru_cache(maxsize=64)
def _bd_op(in_len: int, scale: int) -> AxisOp:
    """Blur-then-subsample along one axis as a banded (in_len // scale) x in_len operator."""
    k = bd_kernel_size(scale)
    g = gaussian_kernel(k)
    first = -((k + 1) // 2 - 1)                      # imfilter origin: element floor((k+1)/2)
    centres = bd_offset(scale) + scale * np.arange(in_len // scale)
    indices = np.clip(centres[:, None] + first + np.arange(k)[None, :], 0, in_len - 1)  # replicate
    weights = np.broadcast_to(g, indices.shape).copy()
    weights.flags.writeable = False
    indices.flags.writeable = False
    return AxisOp(in_len, weights, indices)


@lru_cache(maxsize=16)
def duf_kernel(scale: int) -> np.ndarray:
    """1-D factor of BasicSR's ``generate_gaussian_kernel(13, 0.4*scale)``: scipy's
    ``gaussian_filter1d`` (truncate 4, mode reflect) of a 13-sample delta."""
    from scipy.ndimage import gaussian_filter1d

    delta = np.zeros(DUF_TAPS)
    delta[DUF_TAPS // 2] = 1.0
    k = gaussian_filter1d(delta, 0.4 * _check_scale(scale))
    k.flags.writeable = False
    return k


@lru_cache(maxsize=64)
def _duf_op(in_len: int, scale: int) -> AxisOp:
    """duf_downsample along one axis: LR m = sum_j k[j] HR[reflect(scale*m - 6 + j)]."""
    pad = DUF_TAPS // 2 + 2 * scale
    if in_len <= pad:
        raise InputError(f"bd-duf x{scale} needs sides longer than {pad} pixels, got {in_len}")
    starts = scale * np.arange(in_len // scale) - DUF_TAPS // 2
    idx = starts[:, None] + np.arange(DUF_TAPS)[None, :]
    idx = np.abs(idx)                                          # reflect at 0 (no edge repeat)
    idx = np.where(idx > in_len - 1, 2 * (in_len - 1) - idx, idx)  # reflect at the end
    weights = np.broadcast_to(duf_kernel(scale), idx.shape).copy()
    weights.flags.writeable = False
    idx.flags.writeable = False
    return AxisOp(in_len, weights, idx)


def degrade_float(img: np.ndarray, scale: int, kind: str) -> np.ndarray:
    """BD or BD-DUF of an (already mod-cropped) frame before rounding: float64, same layout as
    ``img``, in its integer range (for verification against float references)."""
    if kind not in ("bd", "bd-duf"):
        raise ConfigError(f"degrade_float supports bd and bd-duf, got {kind!r}")
    scale = _check_scale(scale)
    h, w = img.shape[:2]
    op = _bd_op if kind == "bd" else _duf_op
    hr3 = img if img.ndim == 3 else img[:, :, None]
    y = separable_resample(hr3.astype(np.float64), (0, op(h, scale)), (1, op(w, scale)))
    return y if img.ndim == 3 else y[:, :, 0]


def degrade(img: np.ndarray, scale: int = 4, kind: str = "bi") -> np.ndarray:
    """Make the low-resolution frame of ``img`` with the BI or BD degradation.

    Args:
        img: HxW or HxWx3 frame, uint8 or uint16 (as read from PNG; channel order irrelevant).
        scale: positive integer downscaling factor (default 4).
        kind: ``'bi'`` -- mod-crop, then MATLAB ``imresize(1/scale)`` bicubic with
            antialiasing (bit-exact); ``'bd'`` -- mod-crop, Gaussian blur sigma 1.6 (12x12 for
            x4, replicate border), keep every ``scale``-th pixel from offset ``bd_offset(scale)``
            (1 for x4); ``'bd-duf'`` -- mod-crop, then BasicSR's ``duf_downsample`` (13 taps,
            sigma 0.4*scale, reflect). See the module docstring for the sources.

    Returns:
        ``(H // scale) x (W // scale)`` [x C] array of the input dtype (computed in float64,
        rounded once, half away from zero, saturated).

    Raises:
        InputError: not a 2-D/3-D uint8/uint16 array, an alpha channel, or a side smaller than
            ``scale`` (the caller adds the file name).
        ConfigError: ``kind`` or ``scale`` invalid.
    """
    if kind not in DEGRADATIONS:
        raise ConfigError(f"unknown degradation kind {kind!r} (choose from {', '.join(DEGRADATIONS)})")
    scale = _check_scale(scale)
    _check_frame(img)
    hr = mod_crop(img, scale)
    h, w = hr.shape[:2]
    if kind == "bi":
        lr = imresize(hr, 1.0 / scale)
    else:
        lr = to_integer(degrade_float(hr, scale, kind), hr.dtype)
    if lr.shape[:2] != (h // scale, w // scale):  # pragma: no cover - guarded by imresize's size rule
        raise AssertionError(f"degrade produced {lr.shape} from {hr.shape} at scale {scale}")
    return lr
