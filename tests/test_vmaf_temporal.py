"""VMAF through ffmpeg's libvmaf and TecoGAN's tOF on real fixture frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vsrdata.core.image_io import read_image, to_rgb
from vsrdata.errors import ConfigError
from vsrdata.evaluation import temporal, vmaf

FIX = Path(__file__).resolve().parent.parent / "fixtures"


def _clip(n=4, name="000"):
    return [to_rgb(read_image(FIX / "reds" / "train_sharp" / name / f"{i:08d}.png")) for i in range(n)]


def _noisy(frames, sigma, seed=0):
    rng = np.random.default_rng(seed)
    return [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).round().astype(np.uint8) for f in frames]


def _vmaf(dist, ref):
    clip = vmaf.VmafClip("000")
    for d, r in zip(dist, ref):
        clip.add(d, r)
    return clip.finish()


def test_vmaf_identical_is_top_and_noise_lowers_it():
    try:
        vmaf.ffmpeg_with_libvmaf()
    except ConfigError as exc:
        pytest.skip(str(exc))
    ref = _clip()
    same = _vmaf(ref, ref)
    noisy = _vmaf(_noisy(ref, 8), ref)
    assert same.model == "vmaf_v0.6.1" and same.libvmaf_version
    assert len(same.per_frame) == len(ref) == len(noisy.per_frame)
    # vmaf_v0.6.1 maps perfect fidelity features (VIF = ADM = 1) to 97.43 at zero motion (the first
    # frame) and closer to 100 with motion; it never exceeds 100 (its output is clipped there)
    assert all(97.4 <= s <= 100 for s in same.per_frame)
    assert all(n < s - 5 for n, s in zip(noisy.per_frame, same.per_frame))
    assert _vmaf(_noisy(ref, 16), ref).mean < noisy.mean


def test_vmaf_without_libvmaf_is_one_line(monkeypatch, tmp_path):
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho ' .. scale V->V Scale the input video size'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake))
    with pytest.raises(ConfigError) as err:
        vmaf.ffmpeg_with_libvmaf()
    msg = str(err.value)
    assert "\n" not in msg and "libvmaf" in msg and str(fake) in msg


def test_tof_identical_is_zero_and_flicker_grows_it():
    gt = _clip(5)
    assert all(t is None or t == 0 for t in _tofs(gt, gt))
    # flicker: every other frame brighter by `amp` grey levels
    tofs = [np.mean([t for t in _tofs(_flicker(gt, amp), gt) if t is not None]) for amp in (4, 12, 30)]
    assert 0 < tofs[0] < tofs[1] < tofs[2]


def _flicker(frames, amp):
    return [np.clip(f.astype(int) + (amp if i % 2 else 0), 0, 255).astype(np.uint8) for i, f in enumerate(frames)]


def _tofs(out, gt):
    s = temporal.TemporalScorer()
    return [s.feed(o, g)[0] for o, g in zip(out, gt)]


def test_tecogan_crop_sides():
    # TecoGAN: largest multiple of 32 at least 16 px shorter, centred
    assert temporal.tecogan_crop(np.zeros((180, 320))).shape == (160, 288)
    assert temporal.tecogan_crop(np.zeros((720, 1280))).shape == (704, 1248)
    with pytest.raises(ValueError, match="too small"):
        temporal.tecogan_crop(np.zeros((40, 320)))


def test_tlp_uses_the_distance_given():
    gt = _clip(3)
    calls = []

    def dist(a, b):
        calls.append((a.shape, b.shape))
        return float(np.abs(a.astype(int) - b.astype(int)).mean()) / 255

    s = temporal.TemporalScorer(tof=False, lpips=dist)
    vals = [s.feed(g, g) for g in gt]
    assert vals[0] == (None, None) and all(v == (None, 0.0) for v in vals[1:])
    assert calls and calls[0][0] == (160, 288, 3)


def test_no_imageio_ffmpeg_is_one_line(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails as if not installed
    with pytest.raises(ConfigError) as err:
        vmaf.ffmpeg_with_libvmaf()
    assert "\n" not in str(err.value) and "imageio-ffmpeg" in str(err.value)
