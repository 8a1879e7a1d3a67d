"""bi, bd and bd-duf at every scale the literature uses (x2, x3, x4, x8), each against a reference
that we did not write: MATLAB outputs (digests), BasicSR's functions (fixture numbers) or scipy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from vsrdata.core.degrade import bd_kernel_size, degrade, degrade_float, duf_kernel
from vsrdata.core.image_io import read_image
from tests.test_degrade import bd_reference
from tests.test_resize import pixel_sha256

FIX = Path(__file__).resolve().parent.parent / "fixtures"
BABOON = read_image(FIX / "imresize" / "baboon.png")          # 480 x 492: divisible by 2, 3 and 4
FRAME = read_image(FIX / "reds" / "train_sharp" / "000" / "00000000.png")
REF = np.load(FIX / "degradations" / "basicsr_reference.npz")


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bi_x2_x3_x4_bit_identical_to_matlab(scale):
    expected = json.loads((FIX / "imresize" / "matlab_sha256.json").read_text())[f"baboon_down_x{scale}_matlab.png"]
    assert pixel_sha256(degrade(BABOON, scale, "bi")) == expected["sha256"]


def test_bi_x8_equals_basicsr_matlab_port():
    # BasicSR's matlab_functions.imresize(1/8) on the same frame, rounded: identical here (a
    # float .5 tie could differ by 1 LSB; none occurs in this frame).
    assert np.array_equal(degrade(FRAME[:176, :320], 8, "bi"), REF["bi_x8"])


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_bd_every_scale_equals_scipy_2d_filter(scale):
    hr = FRAME[: 176 // scale * scale, : 320 // scale * scale]
    ref = bd_reference(hr, scale, rounded=False)
    ours = degrade_float(hr, scale, "bd")
    assert ours.shape == ref.shape == (hr.shape[0] // scale, hr.shape[1] // scale, 3)
    # float64 sums of <= 144 products in two orders: < 1e-9 LSB; rounded results equal.
    assert np.abs(ours - ref).max() < 1e-9
    assert np.array_equal(degrade(hr, scale, "bd"), np.clip(np.floor(ref + 0.5), 0, 255).astype(np.uint8))


def test_bd_kernel_sizes_follow_rcan_rule():
    # RCAN Prepare_TestData_HR_LR.m: 2*ceil(3*1.6)+2 = 12 for even scales, 7 for x3.
    assert [bd_kernel_size(s) for s in (2, 3, 4, 8)] == [12, 7, 12, 12]


def _duf_scipy(hr: np.ndarray, scale: int) -> np.ndarray:
    """duf_downsample by scipy: BasicSR's kernel (gaussian_filter of a 13x13 delta), correlation
    with reflected borders (scipy 'mirror' = torch 'reflect'), samples at scale*m (offset 0)."""
    delta = np.zeros((13, 13))
    delta[6, 6] = 1
    kern = ndimage.gaussian_filter(delta, 0.4 * scale)
    return np.stack([ndimage.correlate(hr[:, :, c].astype(np.float64), kern, mode="mirror")[::scale, ::scale]
                     for c in range(hr.shape[2])], axis=-1)


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_bd_duf_every_scale_equals_scipy(scale):
    hr = FRAME[: 176 // scale * scale, : 320 // scale * scale]
    ref = _duf_scipy(hr, scale)
    ours = degrade_float(hr, scale, "bd-duf")
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 1e-9      # float64, separable vs 2-D: rounding only
    assert np.array_equal(degrade(hr, scale, "bd-duf"), np.clip(np.floor(ref + 0.5), 0, 255).astype(np.uint8))


def test_duf_kernel_is_basicsr_generate_gaussian_kernel():
    for scale in (2, 3, 4, 8):
        delta = np.zeros((13, 13))
        delta[6, 6] = 1
        np.testing.assert_allclose(np.outer(duf_kernel(scale), duf_kernel(scale)),
                                   ndimage.gaussian_filter(delta, 0.4 * scale), rtol=1e-12, atol=1e-17)


@pytest.mark.parametrize("kind", ["bi", "bd", "bd-duf"])
@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_every_kind_and_scale_gives_the_mod_cropped_size(kind, scale):
    odd = read_image(FIX / "odd_size" / "clip" / "00000000.png")         # 270 x 150
    assert degrade(odd, scale, kind).shape == (150 // scale, 270 // scale, 3)
