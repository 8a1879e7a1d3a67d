"""NIQE against numbers computed by BasicSR 1.4.2's own `calculate_niqe` (fixtures/niqe/)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vsrdata.core.image_io import read_image, to_rgb
from vsrdata.evaluation.niqe import calculate_niqe, niqe_y

FIX = Path(__file__).resolve().parent.parent / "fixtures"
REF = json.loads((FIX / "niqe" / "basicsr_niqe.json").read_text())

# Bound: every step follows BasicSR's arithmetic (float32 Y, rounding, float32 local statistics)
# except the x0.5 bicubic resize, which BasicSR runs in torch float32 and we in float64: its
# outputs differ by <= 5e-5 grey levels (measured on baboon.png), which moves the block features by
# ~1e-7 relative -- unless such a shift moves one block's AGGD shape to the neighbouring point of
# the 0.001 grid. 2e-4 absolute covers one such step on one block of a frame with at least 3 blocks
# (the observed worst difference over these cases is 1.14e-5).
TOL = 2e-4


@pytest.mark.parametrize("case", REF["cases"], ids=lambda c: f"{c['file']}-cb{c['crop_border']}")
def test_niqe_matches_basicsr(case):
    rgb = to_rgb(read_image(FIX / case["file"]))
    ours = calculate_niqe(rgb, case["crop_border"])
    assert abs(ours - case["niqe"]) <= TOL, (ours, case["niqe"])


def test_niqe_baboon_close_to_matlab():
    # BasicSR's docstring quotes MATLAB R2021a `niqe` on baboon.png: 5.72957338
    rgb = to_rgb(read_image(FIX / "imresize" / "baboon.png"))
    assert abs(calculate_niqe(rgb, 0) - 5.72957338) <= TOL


def test_niqe_y_rounds_and_accepts_gray():
    rgb = np.array([[[255, 255, 255], [0, 0, 0]]], np.uint8)
    assert niqe_y(rgb).tolist() == [[235.0, 16.0]]
    gray = np.full((100, 100), 7, np.uint8)
    assert niqe_y(gray).dtype == np.float32


def test_niqe_rejects_small_frames():
    with pytest.raises(ValueError, match="smaller than one 96x96 block"):
        calculate_niqe(np.zeros((100, 100, 3), np.uint8), crop_border=4)


def test_blur_raises_niqe():
    import cv2

    rgb = to_rgb(read_image(FIX / "imresize" / "baboon.png"))
    assert calculate_niqe(cv2.GaussianBlur(rgb, (0, 0), 2.0)) > calculate_niqe(rgb) + 1
