"""Each degradation operation against BasicSR 1.4.2's own function, given the same parameters.

References: fixtures/degradations/basicsr_reference.npz, made by make_reference.py in that folder
(BasicSR 1.4.2 + torch; provenance in fixtures/README.md). Inputs are crops of the bundled frame
fixtures/reds/train_sharp/000/00000000.png at the ranges that script names.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from vsrdata.core.degrade import degrade, degrade_float
from vsrdata.core.degradations import ops
from vsrdata.core.degradations.kernels import make_kernel
from vsrdata.core.image_io import read_image

FIX = Path(__file__).resolve().parent.parent / "fixtures"
REF = np.load(FIX / "degradations" / "basicsr_reference.npz")
FRAME = read_image(FIX / "reds" / "train_sharp" / "000" / "00000000.png")
KERNELS = {  # the parameters make_reference.py passed to BasicSR
    "iso": dict(kernel="iso", size=21, sigma_x=2.3), "aniso": dict(kernel="aniso", size=21, sigma_x=2.7, sigma_y=0.9,
                                                                  theta=0.8),
    "aniso7": dict(kernel="aniso", size=7, sigma_x=0.4, sigma_y=1.3, theta=-2.1),
    "generalized_iso": dict(kernel="generalized_iso", size=15, sigma_x=1.7, beta=0.6),
    "generalized_aniso": dict(kernel="generalized_aniso", size=13, sigma_x=2.1, sigma_y=0.7, theta=1.2, beta=3.1),
    "plateau_iso": dict(kernel="plateau_iso", size=11, sigma_x=1.4, beta=1.3),
    "plateau_aniso": dict(kernel="plateau_aniso", size=21, sigma_x=2.9, sigma_y=1.1, theta=-0.4, beta=1.9),
    "sinc": dict(kernel="sinc", size=21, omega=1.1), "sinc9": dict(kernel="sinc", size=9, omega=2.6),
}


def test_reference_provenance():
    assert str(REF["basicsr_version"]) == "1.4.2"


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bd_duf_equals_basicsr_duf_downsample(scale):
    hr = FRAME[40:136, 100:220]
    ref = REF[f"duf_x{scale}"].astype(np.float64)          # BasicSR in float64, stored as float32
    ours = degrade_float(hr, scale, "bd-duf")
    # Bound: the reference was stored as float32 (relative error 2^-24, < 2e-5 at 255) and both are
    # float64 sums of 169 products (< 1e-11): equal to float rounding before the uint8 rounding.
    worst = np.abs(ours - ref).max()
    assert worst < 3e-5, f"worst difference {worst} LSB"
    rounded = np.clip(np.floor(ref + 0.5), 0, 255)
    lr = degrade(hr, scale, "bd-duf").astype(np.float64)
    # After rounding: equal, except a value within 3e-5 of a .5 tie may round either way (1 LSB).
    near_tie = np.abs(ref - np.floor(ref) - 0.5) < 3e-5
    assert np.array_equal(lr[~near_tie], rounded[~near_tie])
    assert np.abs(lr - rounded).max() <= 1


def test_bi_x8_within_one_lsb_of_basicsr_matlab_port():
    # BasicSR's numpy port of MATLAB imresize (float, its own rounding) vs our bit-exact one:
    # both compute the same weights in float64, so rounding differs only at .5 ties (<= 1 LSB).
    ours = degrade(FRAME[:176, :320], 8, "bi").astype(int)
    ref = REF["bi_x8"].astype(int)
    assert ours.shape == ref.shape == (22, 40, 3)
    assert np.abs(ours - ref).max() <= 1
    assert np.mean(ours != ref) < 0.01


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernels_equal_basicsr(name):
    # Same formula in float64; only summation order may differ: 1e-15 relative.
    np.testing.assert_allclose(make_kernel(KERNELS[name]), REF[f"kernel_{name}"], rtol=1e-12, atol=1e-15)


def test_blur_equals_basicsr_filter2d():
    img = FRAME[60:92, 140:180].astype(np.float32) / 255.0
    ours = ops.blur(img, make_kernel(KERNELS["aniso"]))
    # float32 sums of 441 products in different orders (cv2 vs torch conv2d): < 1e-5 on [0, 1],
    # i.e. < 0.003 LSB, so at most 1 LSB after rounding (only at ties).
    assert np.abs(ours - REF["blur_aniso"]).max() < 1e-5
    assert np.abs(ops.to_uint8(ours).astype(int) - ops.to_uint8(REF["blur_aniso"])).max() <= 1


@pytest.mark.parametrize("name,fn,args", [
    ("gauss_color", ops.gaussian_noise, (17.5, False, 11)), ("gauss_gray", ops.gaussian_noise, (4.25, True, 12)),
    ("poisson_color", ops.poisson_noise, (2.2, False, 13)), ("poisson_gray", ops.poisson_noise, (0.7, True, 14)),
])
def test_noise_equals_basicsr_given_the_same_noise_field(name, fn, args):
    img = FRAME[60:84, 140:172].astype(np.float32) / 255.0
    ours = fn(img, *args)
    # Same float32 operations in the same order on the same draws: exact.
    assert ours.dtype == REF[name].dtype
    assert np.array_equal(ours, REF[name])


@pytest.mark.parametrize("quality", [30, 75, 95])
def test_jpeg_equals_basicsr(quality):
    img = FRAME[50:98, 120:184].astype(np.float32) / 255.0
    # Same libjpeg through cv2 with the same uint8 input: exact.
    assert np.array_equal(ops.to_uint8(ops.jpeg(img, quality)), REF[f"jpeg_q{quality}"])


def test_sinc_kernel_cutoff_is_a_low_pass():
    k = make_kernel(dict(kernel="sinc", size=21, omega=math.pi / 3))
    response = np.abs(np.fft.fft2(k, (64, 64)))
    assert response[0, 0] == pytest.approx(1.0)
    assert response[0, 32] < 0.2                                   # Nyquist strongly attenuated
