"""One frame -> tensor path (`core.image_io.to_rgb` + `evaluation.inference.frame_to_tensor`) for
every frame kind `read_image` returns: gray, BGR, BGRA, 8 and 16 bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vsrdata.core.image_io import to_rgb
from vsrdata.evaluation.inference import frame_to_tensor


def test_to_rgb_every_frame_kind():
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    assert np.array_equal(to_rgb(bgr), bgr[..., ::-1])
    bgra = np.concatenate([bgr, np.full((4, 5, 1), 9, np.uint8)], axis=2)
    assert np.array_equal(to_rgb(bgra), bgr[..., ::-1])  # alpha dropped
    gray = bgr[..., 0]
    assert np.array_equal(to_rgb(gray), np.stack([gray] * 3, axis=2))
    assert np.array_equal(to_rgb(gray[..., None]), np.stack([gray] * 3, axis=2))
    assert to_rgb(bgr.astype(np.uint16)).dtype == np.uint16 and to_rgb(bgra).flags.c_contiguous
    with pytest.raises(ValueError, match="to_rgb"):
        to_rgb(np.zeros((4, 5, 2), np.uint8))


def test_frame_to_tensor_scales_by_bit_depth():
    img8 = np.array([[[0, 128, 255]]], np.uint8)  # one BGR pixel
    img16 = img8.astype(np.uint16) * 257  # the same levels in 16 bit
    for img in (img8, img16):
        x = frame_to_tensor(img)
        assert x.shape == (3, 1, 1) and x.dtype == torch.float32
        assert torch.equal(x[:, 0, 0], torch.tensor([1.0, 128 / 255, 0.0]))  # RGB, exact in float32
    assert torch.equal(frame_to_tensor(img8[..., 0]), torch.zeros(3, 1, 1))  # gray -> 3 equal channels
