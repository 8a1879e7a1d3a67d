"""Degradation operations: pure functions of (frame, explicit parameters) -> frame.

Frames are float32 HxWx3 arrays in [0, 1] (BGR, as read by ``image_io``), except where a
value range is stated. None of these functions draws from a global random state: the noise
functions take the *seed* of their noise field (recorded in the manifest by the sampler) and
build their own ``numpy.random.Generator`` from it, so the same arguments give the same bytes.

Conventions follow BasicSR 1.4.2 ``basicsr/data/degradations.py`` (numpy functions) and mmagic's
``random_degradations.py`` (cv2 filtering/resizing); see ``docs/CONVENTIONS.md#real-world-degradations``.
"""

from __future__ import annotations

import numpy as np

from vsrdata.errors import ConfigError

__all__ = ["RESIZE_METHODS", "blur", "frame_rng", "gaussian_noise", "jpeg", "poisson_noise", "resize",
           "to_float", "to_uint8"]

RESIZE_METHODS = ("area", "bilinear", "bicubic")


def _cv2():
    import cv2

    return cv2


def to_float(img: np.ndarray) -> np.ndarray:
    """uint8 HxWxC -> float32 in [0, 1] (``img / 255``)."""
    return img.astype(np.float32) / np.float32(255.0)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint8: ``clip(round(255 x), 0, 255)`` (round half to even, as
    BasicSR's ``(x * 255).round()`` and torch.round)."""
    return np.clip(np.round(img * np.float32(255.0)), 0, 255).astype(np.uint8)


def frame_rng(seed: int, frame: int) -> np.random.Generator:
    """The generator of the noise field of frame ``frame`` of a step whose recorded seed is ``seed``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(frame)])))


def blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate every channel with ``kernel`` (cv2.filter2D; borders reflected without repeating
    the edge sample, BORDER_REFLECT_101, as BasicSR's ``filter2D`` reflect padding)."""
    out = _cv2().filter2D(img, -1, kernel)
    return out if out.ndim == img.ndim else out[:, :, None]


def resize(img: np.ndarray, size: tuple[int, int], method: str) -> np.ndarray:
    """Resize to ``size`` = (height, width) with cv2's ``area``, ``bilinear`` or ``bicubic``."""
    cv2 = _cv2()
    modes = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}
    if method not in modes:
        raise ConfigError(f"resize method must be one of {', '.join(RESIZE_METHODS)}, got {method!r}")
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ConfigError(f"resize target must be at least 1x1, got {h}x{w} (HxW)")
    out = cv2.resize(img, (w, h), interpolation=modes[method])
    return out if out.ndim == img.ndim else out[:, :, None]


def _finish(out: np.ndarray, clip: bool) -> np.ndarray:
    return np.clip(out, 0, 1) if clip else out


def gaussian_noise(img: np.ndarray, sigma: float, gray: bool, seed: int, frame: int = 0,
                   clip: bool = True) -> np.ndarray:
    """Add Gaussian noise of standard deviation ``sigma`` (in 0-255 units).

    Noise field: ``float32(standard_normal(shape)) * sigma / 255`` from :func:`frame_rng` (shape
    HxW repeated over the channels when ``gray``, else HxWxC), as BasicSR's
    ``generate_gaussian_noise`` does with the global generator; then ``clip`` to [0, 1].
    """
    rng = frame_rng(seed, frame)
    if gray:
        noise = np.float32(rng.standard_normal(img.shape[:2])) * sigma / 255.0
        noise = np.repeat(noise[:, :, None], img.shape[2], axis=2)
    else:
        noise = np.float32(rng.standard_normal(img.shape)) * sigma / 255.0
    return _finish(img + noise, clip)


def poisson_noise(img: np.ndarray, scale: float, gray: bool, seed: int, frame: int = 0,
                  clip: bool = True) -> np.ndarray:
    """Add Poisson (shot) noise scaled by ``scale``, BasicSR's ``generate_poisson_noise``:
    quantise to 8 bits, ``vals`` = the number of distinct values rounded up to a power of two,
    noise = ``poisson(x * vals) / vals - x`` (from the grey image, BGR weights, when ``gray``)."""
    rng = frame_rng(seed, frame)
    base = _cv2().cvtColor(img, _cv2().COLOR_BGR2GRAY) if gray else img
    base = np.clip((base * 255.0).round(), 0, 255) / 255.0
    vals = 2 ** np.ceil(np.log2(len(np.unique(base))))
    out = np.float32(rng.poisson(base * vals) / float(vals))
    noise = out - base
    if gray:
        noise = np.repeat(noise[:, :, np.newaxis], img.shape[2], axis=2)
    return _finish(img + noise * scale, clip)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip at ``quality`` (1-100) through cv2/libjpeg, as BasicSR's ``add_jpg_compression``:
    clip to [0, 1], encode ``x * 255`` rounded to uint8 (half to even, as cv2's own conversion of a
    float image, so the bytes equal BasicSR's without cv2's fallback warning), decode, divide by 255."""
    cv2 = _cv2()
    quality = int(quality)
    if not 1 <= quality <= 100:
        raise ConfigError(f"JPEG quality must be in 1-100, got {quality}")
    ok, data = cv2.imencode(".jpg", np.rint(np.clip(img, 0, 1) * 255.0).astype(np.uint8), [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:  # pragma: no cover - cv2 encodes any 8-bit 1/3-channel image
        raise ConfigError("JPEG encoding failed")
    flag = cv2.IMREAD_COLOR if img.shape[2] == 3 else cv2.IMREAD_GRAYSCALE
    out = np.float32(cv2.imdecode(data, flag)) / 255.0
    return out if out.ndim == 3 else out[:, :, None]
