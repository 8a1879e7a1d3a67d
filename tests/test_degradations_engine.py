"""The engine's contracts: draws depend only on (seed, clip), clip-consistent draws with bounded
per-frame walks, apply never draws, and the codec step decodes like PyAV itself."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from vsrdata.core.degradations import apply, available_codecs, builtin_recipe, load_recipe, sample
from vsrdata.core.degradations.codec import decode_stream, encode_clip
from vsrdata.core.image_io import read_image

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "reds" / "train_sharp" / "001"
FRAMES = [read_image(FIX / f"{i:08d}.png")[40:104, 80:176] for i in range(5)]     # 64 x 96, real


def test_draws_depend_only_on_seed_and_clip():
    r = builtin_recipe("realesrgan")
    a = sample(r, 3, "clips/007", 5, (64, 96))
    sample(r, 3, "clips/001", 5, (64, 96))                      # other clips drawn in between
    np.random.seed(123)                                          # the global state plays no part
    assert sample(r, 3, "clips/007", 5, (64, 96)) == a
    assert sample(r, 4, "clips/007", 5, (64, 96)) != a
    assert sample(r, 3, "clips/008", 5, (64, 96)) != a
    json.dumps(a)                                                # the manifest entry is JSON


def test_realesrgan_is_one_draw_per_clip():
    for seed in range(10):
        entry = sample(builtin_recipe("realesrgan"), seed, "c", 5, (64, 96))
        assert all("frames" not in step for step in entry["steps"])


def test_realbasicvsr_walks_within_its_steps():
    recipe = builtin_recipe("realbasicvsr")
    opts = recipe["options"]
    limits = {"sigma_x": opts["sigma_step"], "sigma_y": opts["sigma_step"], "theta": opts["angle_step"],
              "omega": opts["omega_step"], "sigma": opts["noise_step"], "scale": opts["poisson_step"],
              "quality": opts["jpeg_step"] + 1}                 # quality: +-3 then rounded
    walked = 0
    for seed in range(8):
        entry = sample(recipe, seed, "c", 12, (64, 96))
        for step in entry["steps"]:
            for name in {k for f in step.get("frames", []) for k in f}:
                if name == "size" or (name == "scale" and step["op"] == "resize"):
                    continue
                vals = [f[name] for f in step["frames"]]
                assert len(vals) == 12
                bound = limits.get(name) if name != "beta" else max(opts["betag_step"], opts["betap_step"])
                assert max(abs(b - a) for a, b in zip(vals, vals[1:])) <= bound + 1e-12
                walked += 1
    assert walked > 10


def test_apply_never_draws_and_replays_from_json():
    entry = sample(load_recipe("realbasicvsr"), 1, "c", 5, (64, 96))
    first = apply(FRAMES, entry)
    np.random.seed(0)
    state = np.random.get_state()[1].copy()
    again = apply(FRAMES, json.loads(json.dumps(entry)))
    assert np.array_equal(np.random.get_state()[1], state)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert first[0].shape == (16, 24, 3) and first[0].dtype == np.uint8


def test_apply_checks_the_clip_against_its_entry():
    entry = sample(load_recipe("realesrgan"), 1, "c", 5, (64, 96))
    with pytest.raises(Exception, match="has 4 frames, its manifest entry 5"):
        apply(FRAMES[:4], entry)


_FORMATS = {"libx264": "h264", "h264": "h264", "mpeg4": "m4v", "mpeg2video": "mpegvideo"}


@pytest.mark.parametrize("codec", [c for c in ("libx264", "mpeg4", "mpeg2video") if c in available_codecs()])
@pytest.mark.parametrize("size", [(64, 96), (63, 95)])
def test_codec_decode_equals_pyav_own_decode(tmp_path, codec, size):
    frames = [f[: size[0], : size[1]] for f in FRAMES]
    data = encode_clip(frames, codec, bitrate=40000)
    assert encode_clip(frames, codec, bitrate=40000) == data           # repeatable
    path = tmp_path / "clip.bin"
    path.write_bytes(data)
    with av.open(str(path), format=_FORMATS[codec]) as container:
        theirs = [f.to_ndarray(format="bgr24")[: size[0], : size[1]] for f in container.decode(video=0)]
    ours = decode_stream(data, codec, size)
    assert len(ours) == len(theirs) == 5
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs))
    # and it is lossy but close: a real codec at 40 kbit per frame
    err = np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(ours, frames)])
    assert 0 < err < 20


def test_crf_mode_and_bad_codec():
    out = encode_clip(FRAMES, "libx264", crf=30)
    assert len(decode_stream(out, "libx264", (64, 96))) == 5
    with pytest.raises(Exception, match="has no CRF mode"):
        encode_clip(FRAMES, "mpeg4", crf=30)


def test_independent_frames_only_when_asked():
    from vsrdata.core.degradations import recipe_from_dict

    recipe = recipe_from_dict({"base": "realbasicvsr", "independent_frames": True})
    entry = sample(recipe, 4, "c", 5, (64, 96))
    kernels = {json.dumps(f[1]) for f in entry["per_frame"]}          # step 1: the first blur
    assert len(entry["per_frame"]) == 5 and len(kernels) == 5
    assert entry["per_frame"][2] == sample(recipe_from_dict({"base": "realbasicvsr"}), 4, "c#2", 1,
                                           (64, 96))["steps"]          # frame t = the one-frame clip "c#t"
    out = apply(FRAMES, json.loads(json.dumps(entry)))
    assert all(np.array_equal(a, b) for a, b in zip(out, apply(FRAMES, entry)))
    assert out[0].shape == (16, 24, 3)
