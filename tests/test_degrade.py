"""BI / BD degradations and mod-crop."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import ndimage

from vsrdata.core.degrade import bd_kernel_size, bd_offset, degrade, gaussian_kernel, mod_crop
from vsrdata.core.resize import imresize
from vsrdata.errors import ConfigError, InputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _read(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


@pytest.fixture(scope="module")
def odd_frame() -> np.ndarray:
    return _read(FIXTURES / "odd_size" / "clip" / "00000000.png")  # 150x270, not mod 4


# ---------------------------------------------------------------- mod_crop
def test_mod_crop_crops_bottom_right():
    img = np.arange(150 * 270 * 3, dtype=np.int64).reshape(150, 270, 3)
    out = mod_crop(img, 4)
    assert out.shape == (148, 268, 3)
    assert np.array_equal(out, img[:148, :268])
    assert mod_crop(img[:, :, 0], 7).shape == (147, 266)
    assert mod_crop(img, 1).shape == img.shape
    assert mod_crop(img[:148, :268], 4).shape == (148, 268, 3)


def test_mod_crop_rejects_tiny_frames_and_bad_scale():
    with pytest.raises(InputError, match="smaller than the scale 4"):
        mod_crop(np.zeros((3, 10), np.uint8), 4)
    for bad in (0, -2, 2.0, True, "4"):
        with pytest.raises(ConfigError, match="scale"):
            mod_crop(np.zeros((8, 8), np.uint8), bad)


# ---------------------------------------------------------------- BI
def test_bi_equals_matlab_reference():
    # baboon is 480x492 (already mod 4): BI x4 must be MATLAB's imresize(I, 1/4) exactly.
    img = _read(FIXTURES / "imresize" / "baboon.png")
    ref = _read(FIXTURES / "imresize" / "baboon_down_x4_matlab.png")
    out = degrade(img, 4, "bi")
    assert out.shape == ref.shape and int(np.count_nonzero(out != ref)) == 0


def test_bi_mod_crops_before_resizing(odd_frame):
    out = degrade(odd_frame, 4, "bi")
    assert out.shape == (37, 67, 3) and out.dtype == np.uint8
    assert np.array_equal(out, imresize(odd_frame[:148, :268], 0.25))
    # Resizing the uncropped frame gives another grid (ceil(150/4) = 38 rows, other weights).
    assert imresize(odd_frame, 0.25).shape == (38, 68, 3)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bi_shapes_gray_and_uint16(odd_frame, scale):
    h, w = 150 // scale, 270 // scale
    gray = np.ascontiguousarray(odd_frame[:, :, 1])
    assert degrade(gray, scale, "bi").shape == (h, w)
    assert np.array_equal(degrade(gray, scale, "bi"), degrade(odd_frame, scale, "bi")[:, :, 1])
    out16 = degrade(odd_frame.astype(np.uint16) * 257, scale, "bi")
    assert out16.dtype == np.uint16 and out16.shape == (h, w, 3)


# ---------------------------------------------------------------- BD
def test_bd_kernel_facts():
    # MATLAB imresize_BD (RCAN/IRCNN), sigma 1.6: even scales 2*ceil(4.8)+2 = 12 taps, odd
    # 2*ceil(4.8)+1 = 11, and the script's special case 7 for x3; sampling offset s/2-1 / (s-1)/2.
    assert [bd_kernel_size(s) for s in (2, 3, 4, 5, 8)] == [12, 7, 12, 11, 12]
    assert [bd_offset(s) for s in (1, 2, 3, 4, 5)] == [0, 0, 1, 1, 2]
    g = gaussian_kernel(12)
    assert g.shape == (12,) and g.sum() == pytest.approx(1.0, abs=1e-15)
    assert np.allclose(g, g[::-1])
    ratio = math.exp(-(0.5 ** 2) / (2 * 1.6 ** 2)) / math.exp(-(1.5 ** 2) / (2 * 1.6 ** 2))
    assert g[6] / g[7] == pytest.approx(ratio, rel=1e-12)


def bd_reference(hr: np.ndarray, scale: int, rounded: bool = True) -> np.ndarray:
    """MATLAB imresize_BD by scipy: 2-D fspecial Gaussian (sigma 1.6, RCAN's size rule) correlated
    with replicated edges (MATLAB imfilter 'replicate'; for an even kernel scipy's origin -1 puts
    the taps at i-5..i+6 like MATLAB), then every scale-th sample from the documented offset.
    float64 before rounding (`rounded=False`), else rounded half up and clipped to hr's dtype."""
    k = bd_kernel_size(scale)
    x = np.arange(k) - (k - 1) / 2
    xx, yy = np.meshgrid(x, x)
    h = np.exp(-(xx * xx + yy * yy) / (2 * 1.6 * 1.6))
    h /= h.sum()
    origin = -1 if k % 2 == 0 else 0
    planes = hr.reshape(hr.shape[0], hr.shape[1], -1).astype(np.float64)
    blurred = np.stack([ndimage.correlate(planes[:, :, c], h, mode="nearest", origin=origin)
                        for c in range(planes.shape[2])], axis=-1)
    o = bd_offset(scale)
    out = blurred[o::scale, o::scale]
    if rounded:
        out = np.clip(np.floor(out + 0.5), 0, np.iinfo(hr.dtype).max).astype(hr.dtype)
    return out.reshape(out.shape[:2] + hr.shape[2:])


@pytest.mark.parametrize("scale", [4, 2, 3])
def test_bd_matches_2d_filter_reference(odd_frame, scale):
    out = degrade(odd_frame, scale, "bd")
    hr = odd_frame[: 150 // scale * scale, : 270 // scale * scale]
    ref = bd_reference(hr, scale)
    assert out.shape == ref.shape == (150 // scale, 270 // scale, 3)
    assert out.dtype == np.uint8
    assert int(np.count_nonzero(out != ref)) == 0


def test_bd_uint16_and_gray(odd_frame):
    img16 = (odd_frame.astype(np.uint16) * 257)[:, :, 0]
    out = degrade(img16, 4, "bd")
    assert out.dtype == np.uint16 and out.shape == (37, 67)
    assert np.array_equal(out, bd_reference(img16[:148, :268], 4))


def test_bd_sampling_offset_and_support():
    # x4: LR pixel (0, 0) is the blur centred between HR 1 and 2 (0-based sample 1, taps
    # -5..+6), so a bright HR row/column 7 still reaches it and row/column 8 does not.
    for pos, reaches in ((7, True), (8, False), (0, True)):
        rows, cols = np.zeros((32, 32), np.uint16), np.zeros((32, 32), np.uint16)
        rows[pos, :] = 65535
        cols[:, pos] = 65535
        assert (degrade(rows, 4, "bd")[0, 0] > 0) == reaches, pos
        assert (degrade(cols, 4, "bd")[0, 0] > 0) == reaches, pos
    # An impulse at HR (1, 1)/(2, 2) -- symmetric about the sample centre 1.5 -- gives the
    # same LR value.
    a, b = np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8)
    a[5, 5] = b[6, 6] = 255
    assert degrade(a, 4, "bd")[1, 1] == degrade(b, 4, "bd")[1, 1] > 0


def test_bd_constant_frame_stays_constant():
    img = np.full((20, 28, 3), 201, np.uint8)
    assert np.all(degrade(img, 4, "bd") == 201)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("kind", ["bi", "bd"])
def test_alpha_and_tiny_frames_are_input_errors(kind):
    with pytest.raises(InputError, match="alpha"):
        degrade(np.zeros((16, 16, 4), np.uint8), 4, kind)
    with pytest.raises(InputError, match="smaller than the scale"):
        degrade(np.zeros((16, 3, 3), np.uint8), 4, kind)
    with pytest.raises(InputError, match="uint8 or uint16"):
        degrade(np.zeros((16, 16, 3), np.float32), 4, kind)
    with pytest.raises(InputError, match="channels"):
        degrade(np.zeros((16, 16, 2), np.uint8), 4, kind)


def test_bad_kind_and_scale_are_config_errors():
    img = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ConfigError, match="'bicubic'"):
        degrade(img, 4, "bicubic")
    for bad in (0, 2.5, True):
        with pytest.raises(ConfigError, match="scale"):
            degrade(img, bad, "bd")
