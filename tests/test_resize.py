"""MATLAB-exact imresize: MATLAB R2017b reference outputs, shapes, dtypes, rounding, bad args."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from vsrdata.core.resize import contributions, imresize, to_integer
from vsrdata.errors import ConfigError, InputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
IMRESIZE = FIXTURES / "imresize"
SHARED_REF = Path(__file__).resolve().parents[2] / "shared" / "refdata" / "imresize"
MATLAB_CASES = {  # reference file -> scale passed to MATLAB imresize
    "baboon_down_x2_matlab.png": 1 / 2,
    "baboon_down_x3_matlab.png": 1 / 3,
    "baboon_down_x4_matlab.png": 1 / 4,
    "baboon_up_x2_matlab.png": 2,
    "baboon_up_x3_matlab.png": 3,
}


def pixel_sha256(img: np.ndarray) -> str:
    # Same digest as fixtures/make_fixtures.py computed from the MATLAB outputs.
    h = hashlib.sha256()
    h.update(f"{img.shape}|{img.dtype}".encode())
    h.update(np.ascontiguousarray(img).tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def baboon() -> np.ndarray:
    return cv2.imread(str(IMRESIZE / "baboon.png"), cv2.IMREAD_UNCHANGED)


# ---------------------------------------------------------------- MATLAB reference outputs
@pytest.mark.parametrize("name", sorted(MATLAB_CASES))
def test_matches_matlab_digest(baboon, name):
    expected = json.loads((IMRESIZE / "matlab_sha256.json").read_text())[name]
    out = imresize(baboon, MATLAB_CASES[name])
    assert list(out.shape) == expected["shape"]
    assert out.dtype == np.uint8
    assert pixel_sha256(out) == expected["sha256"], f"{name}: not bit-identical to MATLAB"


def test_down_x4_pixels_equal_matlab(baboon):
    ref = cv2.imread(str(IMRESIZE / "baboon_down_x4_matlab.png"), cv2.IMREAD_UNCHANGED)
    out = imresize(baboon, 1 / 4)
    assert out.shape == ref.shape == (120, 123, 3)
    assert int(np.count_nonzero(out != ref)) == 0


@pytest.mark.skipif(not SHARED_REF.is_dir(), reason="../shared/refdata/imresize not present")
@pytest.mark.parametrize("name", sorted(MATLAB_CASES))
def test_full_pixels_equal_shared_matlab_refs(name):
    img = cv2.imread(str(SHARED_REF / "baboon.png"), cv2.IMREAD_UNCHANGED)
    ref = cv2.imread(str(SHARED_REF / name), cv2.IMREAD_UNCHANGED)
    out = imresize(img, MATLAB_CASES[name])
    differing = int(np.count_nonzero(np.any(out != ref, axis=2)))
    print(f"{name}: {differing} differing pixels, max |diff| "
          f"{int(np.abs(out.astype(int) - ref).max())}")
    assert differing == 0


# ---------------------------------------------------------------- independent formulas
def test_halving_without_antialiasing_is_the_classic_4_tap_cubic():
    # Bicubic a=-0.5 sampled halfway between pixels: weights (-1, 9, 9, -1)/16 (from the kernel
    # definition, not from our code); MATLAB's output sample j sits between inputs 2j and 2j+1.
    row = np.array([[3.0, 7.0, 1.0, 8.0, 2.0, 9.0, 4.0, 6.0, 5.0, 0.0]])
    out = imresize(row, 0.5, antialiasing=False)
    assert out.shape == (1, 5)
    for j in range(1, 4):
        a, b, c, d = row[0, 2 * j - 1: 2 * j + 3]
        assert out[0, j] == pytest.approx((-a + 9 * b + 9 * c - d) / 16, abs=1e-12)
    # Borders fold symmetrically ([x0, x0, x1, ...]), as MATLAB's aux index does.
    a, b, c, d = row[0, [0, 0, 1, 2]]
    assert out[0, 0] == pytest.approx((-a + 9 * b + 9 * c - d) / 16, abs=1e-12)


def test_constant_image_stays_constant():
    for dtype, value in ((np.uint8, 77), (np.uint16, 40000)):
        img = np.full((31, 45, 3), value, dtype=dtype)
        for scale in (0.37, 1 / 3, 0.25, 2, 3.5):
            out = imresize(img, scale)
            assert out.dtype == dtype and np.all(out == value), (dtype, scale)


def test_weights_rows_sum_to_one_and_indices_in_range():
    for in_len, out_len, scale in ((256, 64, 0.25), (100, 37, 0.37), (7, 21, 3.0), (1, 5, 5.0)):
        w, idx = contributions(in_len, out_len, scale, True)
        assert w.shape == idx.shape and w.shape[0] == out_len
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
        assert idx.min() >= 0 and idx.max() < in_len


def _plain_imresize(img: np.ndarray, scale: float | None, output_shape=None) -> np.ndarray:
    """Straightforward per-axis port of MATLAB's algorithm (taps gathered and accumulated one at
    a time, smaller-scale axis first), uint8 -> uint8; a regression reference for the
    blocked-BLAS path and its tie handling."""
    x = img.astype(np.float64) / 255.0
    if output_shape is None:
        sizes = [math.ceil(scale * img.shape[0]), math.ceil(scale * img.shape[1])]
        scales = [scale, scale]
    else:
        sizes = list(output_shape)
        scales = [sizes[0] / img.shape[0], sizes[1] / img.shape[1]]
    for axis in ((0, 1) if scales[0] <= scales[1] else (1, 0)):
        w, idx = contributions(x.shape[axis], sizes[axis], scales[axis], True)
        moved = np.moveaxis(x, axis, 0)
        acc = np.zeros((sizes[axis],) + moved.shape[1:])
        for p in range(w.shape[1]):
            acc = acc + w[:, p].reshape((-1,) + (1,) * (moved.ndim - 1)) * moved[idx[:, p]]
        x = np.moveaxis(acc, 0, axis)
    y = x * 255.0
    return np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8)


def _random_frame(shape, seed=7):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    return cv2.GaussianBlur(img, (5, 5), 1.2)  # smooth, like real footage, plus random detail


@pytest.mark.parametrize("scale", [0.37, 1 / 3, 0.1, 1.7, 2.0, 1.0])
def test_matches_plain_port_on_random_frames(scale):
    img = _random_frame((23, 41, 3))
    assert np.array_equal(imresize(img, scale), _plain_imresize(img, scale))


@pytest.mark.parametrize("seed, shape", [(2, (240, 120)), (7, (120, 240)), (2, (120, 120)),
                                         (3, (37, 250))])
def test_matches_plain_port_with_unequal_axis_scales(seed, shape):
    # (240, 120) from 60x60: columns (x2) are resized first, as MATLAB orders them. x2 and x4
    # have dyadic weights, so these frames hit exact rounding ties (1-7 each with these seeds),
    # which must resolve as MATLAB's arithmetic order resolves them.
    img = _random_frame((60, 60, 3), seed=seed)
    assert np.array_equal(imresize(img, output_shape=shape), _plain_imresize(img, None, shape))


# ---------------------------------------------------------------- shapes
@pytest.mark.parametrize("scale, expected", [
    (0.37, (95, 166)),      # ceil(0.37*256)=95, ceil(0.37*448)=166
    (1 / 3, (86, 150)),     # ceil(85.33)=86, ceil(149.33)=150
    (0.25, (64, 112)),
    (2, (512, 896)),
])
def test_output_shape_from_scale(scale, expected):
    img = np.zeros((256, 448, 3), np.uint8)
    assert imresize(img, scale).shape == expected + (3,)


def test_explicit_output_shape():
    img = cv2.imread(str(FIXTURES / "odd_size" / "clip" / "00000000.png"), cv2.IMREAD_UNCHANGED)
    out = imresize(img, output_shape=(37, 101))
    assert out.shape == (37, 101, 3) and out.dtype == np.uint8
    # Same size requested through a scale gives the same grid only when scale == out/in.
    same = imresize(img, output_shape=(img.shape[0] // 2, img.shape[1] // 2))
    assert np.array_equal(same, imresize(img, 0.5))


def test_gray_equals_each_channel_of_color(baboon):
    color = imresize(baboon, 0.37)
    for c in range(3):
        gray = imresize(np.ascontiguousarray(baboon[:, :, c]), 0.37)
        assert gray.ndim == 2
        assert np.array_equal(gray, color[:, :, c])
    single = imresize(baboon[:, :, :1], 0.37)
    assert single.shape == color.shape[:2] + (1,)


# ---------------------------------------------------------------- dtypes and rounding
def test_uint16_path(baboon):
    img16 = baboon.astype(np.uint16) * 257  # k*257/65535 == k/255: same image in 16 bit
    out = imresize(img16, 1 / 4)
    assert out.dtype == np.uint16 and out.shape == (120, 123, 3)
    ref8 = cv2.imread(str(IMRESIZE / "baboon_down_x4_matlab.png"), cv2.IMREAD_UNCHANGED)
    # MATLAB's 8-bit result is the same real value rounded to 1/255 steps.
    assert np.abs(out.astype(np.int64) - 257 * ref8.astype(np.int64)).max() <= 129
    via_float = imresize(img16.astype(np.float64) / 65535.0, 1 / 4) * 65535.0
    assert np.array_equal(out, to_integer(via_float, np.uint16))
    assert len(np.unique(out % 257)) > 10  # real 16-bit precision, not 8-bit values scaled


def test_float_input_returns_float64_unrounded_unclipped():
    step = np.zeros((4, 8), np.float32)
    step[:, 4:] = 1.0
    out = imresize(step, 2)
    assert out.dtype == np.float64 and out.shape == (8, 16)
    assert out.min() < 0 and out.max() > 1           # bicubic overshoot is kept
    assert np.any(np.abs(out * 255 - np.round(out * 255)) > 1e-3)   # not quantised
    as_uint8 = imresize((step * 255).astype(np.uint8), 2)
    assert as_uint8.min() == 0 and as_uint8.max() == 255             # saturated instead
    assert np.array_equal(as_uint8, to_integer(out * 255, np.uint8))


def test_float_path_agrees_with_integer_path(baboon):
    f = imresize(baboon.astype(np.float64) / 255.0, 1 / 3)
    assert f.dtype == np.float64
    assert np.abs(to_integer(f * 255, np.uint8).astype(int) - imresize(baboon, 1 / 3)).max() == 0


def test_rounding_half_away_from_zero_and_saturation():
    y = np.array([0.5, 1.5, 2.5, 126.5, 127.49999999, 254.5, 255.4, 255.5, 300.0, -0.4, -0.5, -7.0])
    assert to_integer(y, np.uint8).tolist() == [1, 2, 3, 127, 127, 255, 255, 255, 255, 0, 0, 0]
    y16 = np.array([2.5, 65534.5, 65535.49, 1e9, -3.0])
    assert to_integer(y16, np.uint16).tolist() == [3, 65535, 65535, 65535, 0]


def test_exact_tie_rounds_up_end_to_end():
    # Halving with antialiasing uses dyadic weights (-3, -9, 29, 111, 111, 29, -9, -3)/256; with
    # 0/255 inputs every step is exact in float64. Output j uses 0-based inputs 2j-3 .. 2j+4;
    # ones on the left four taps of output 2 (inputs 1..4) give 255 * (-3 - 9 + 29 + 111)/256
    # = 127.5 exactly, which must round to 128.
    row = np.zeros((1, 12), np.uint8)
    row[0, 1:5] = 255
    exact = imresize(row.astype(np.float64) / 255.0, 0.5)[0, 2] * 255.0
    assert exact == 127.5
    assert imresize(row, 0.5)[0, 2] == 128


# ---------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("kwargs, exc, word", [
    ({"scale": 0}, ConfigError, "scale"),
    ({"scale": -0.5}, ConfigError, "scale"),
    ({"scale": float("nan")}, ConfigError, "scale"),
    ({"scale": float("inf")}, ConfigError, "scale"),
    ({"scale": "2"}, ConfigError, "scale"),
    ({"scale": True}, ConfigError, "scale"),
    ({}, ConfigError, "scale or output_shape"),
    ({"scale": 0.5, "output_shape": (2, 2)}, ConfigError, "scale or output_shape"),
    ({"output_shape": (0, 5)}, ConfigError, "output_shape"),
    ({"output_shape": (5,)}, ConfigError, "output_shape"),
    ({"output_shape": (2.5, 3)}, ConfigError, "output_shape"),
    ({"output_shape": 7}, ConfigError, "output_shape"),
])
def test_bad_arguments_name_the_argument(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        imresize(np.zeros((8, 8, 3), np.uint8), **kwargs)


@pytest.mark.parametrize("img, word", [
    (np.zeros(8, np.uint8), "shape"),
    (np.zeros((2, 8, 8, 3), np.uint8), "shape"),
    (np.zeros((8, 8), np.int16), "dtype"),
    (np.zeros((8, 8), bool), "dtype"),
    (np.zeros((0, 8), np.uint8), "empty"),
    ([[1, 2], [3, 4]], "numpy array"),
])
def test_bad_images_raise_input_error(img, word):
    with pytest.raises(InputError, match=word):
        imresize(img, 0.5)
