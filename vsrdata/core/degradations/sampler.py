"""The sampler: (recipe, seed, clip identity, clip shape) -> the concrete parameters of every step
and frame (a JSON-serialisable dict: the clip's manifest entry).

Every draw comes from ONE ``numpy.random.Generator`` (PCG64) seeded from ``sha256(f"{seed}\\0{identity}")``
(:func:`clip_rng`), so a clip's draws depend only on (seed, clip identity): not on the worker,
the shard, the order of the clips or the global random state. Draws happen in a fixed order
(the order of the steps below); a noise step draws the seed of its noise field, which the
operation expands per frame (:func:`vsrdata.core.degradations.ops.frame_rng`).

Clip-consistent: each step is drawn once per clip (unless the recipe sets ``independent_frames``:
then frame t is drawn alone, as the one-frame clip ``"<clip>#<t>"``, listed under ``"per_frame"``). Where the recipe has a ``*_step`` > 0, the
value then walks frame to frame: ``v[t+1] = clip(v[t] + U(-step, step), low, high)`` (JPEG quality
rounded after each step), as mmagic's RealBasicVSR degradations do; walked values are listed per
frame under the step's ``"frames"``. See ``docs/CONVENTIONS.md#real-world-degradations``.

Random recipes (the Real-ESRGAN/RealBasicVSR chain), in order: mod-crop to a multiple of the
scale; blur; resize (up/down/keep); noise (Gaussian or Poisson, colour or grey); JPEG; [video
compression if ``codec_first_order``, after a bilinear resize of every frame to the first
frame's size when the resize walked (one stream has one size; mmagic leaves it to PyAV's silent
rescale)]; blur with ``second_blur_prob``; resize; noise; [JPEG if
``final_compression`` is ``codec``]; then in random order {resize to H/scale x W/scale, sinc
with ``final_sinc_prob``} and {JPEG or video compression}.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from vsrdata.errors import ConfigError

__all__ = ["FORMAT", "clip_rng", "sample"]

FORMAT = "vsrdata-degrade/1"


def clip_rng(seed: int, identity: str) -> np.random.Generator:
    """The generator of one clip: PCG64 from the SeedSequence of sha256(seed, identity)'s 8 words."""
    digest = hashlib.sha256(f"{int(seed)}\0{identity}".encode()).digest()
    words = np.frombuffer(digest, dtype="<u4").tolist()
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words)))


def _walk(rng, v0: float, step: float, lo: float, hi: float, n: int, integer: bool = False) -> list:
    vals = [v0]
    for _ in range(n - 1):
        v = float(np.clip(vals[-1] + rng.uniform(-step, step), lo, hi))
        vals.append(int(round(v)) if integer else v)
    return vals


def _put(step: dict, rng, n: int, name: str, v0: float, walk: float, lo: float, hi: float,
         integer: bool = False) -> None:
    """Store a drawn value: constant at the top, or per frame under "frames" when it walks."""
    if walk > 0 and n > 1:
        vals = _walk(rng, v0, walk, lo, hi, n, integer)
        frames = step.setdefault("frames", [{} for _ in range(n)])
        for f, v in zip(frames, vals):
            f[name] = v
    else:
        step[name] = v0


def _beta(rng, lo: float, hi: float) -> float:
    """BasicSR's draw of a shape parameter: half the time below 1, half above (within the range)."""
    if rng.random() < 0.5 and lo < 1:
        return float(rng.uniform(lo, min(1.0, hi)))
    return float(rng.uniform(max(1.0, lo), hi)) if hi > 1 else float(rng.uniform(lo, hi))


def _blur(o: dict, sfx: str, rng, n: int) -> dict:
    ks = int(rng.choice(np.arange(7, o[f"blur_kernel_size{sfx}"] + 1, 2)))
    if rng.random() < o[f"sinc_prob{sfx}"]:
        lo = math.pi / 3 if ks < 13 else math.pi / 5
        step = {"op": "blur", "kernel": "sinc", "size": ks}
        _put(step, rng, n, "omega", float(rng.uniform(lo, math.pi)), o["omega_step"], lo, math.pi)
        return step
    p = np.asarray(o[f"kernel_prob{sfx}"], dtype=np.float64)
    kind = str(rng.choice(o[f"kernel_list{sfx}"], p=p / p.sum()))
    lo, hi = o[f"blur_sigma{sfx}"]
    step = {"op": "blur", "kernel": kind, "size": ks}
    _put(step, rng, n, "sigma_x", float(rng.uniform(lo, hi)), o["sigma_step"], lo, hi)
    if kind.endswith("aniso"):
        _put(step, rng, n, "sigma_y", float(rng.uniform(lo, hi)), o["sigma_step"], lo, hi)
        _put(step, rng, n, "theta", float(rng.uniform(-math.pi, math.pi)), o["angle_step"], -math.pi, math.pi)
    if kind.startswith("generalized") or kind.startswith("plateau"):
        key, walk = ("betag_range", "betag_step") if kind.startswith("generalized") else ("betap_range", "betap_step")
        blo, bhi = o[f"{key}{sfx}"]
        _put(step, rng, n, "beta", _beta(rng, blo, bhi), o[walk], blo, bhi)
    return step


def _scaled(size, s: float, even: bool) -> list[int]:
    h, w = size[0] * s, size[1] * s
    if even:
        h, w = 2 * (h // 2), 2 * (w // 2)
    out = [max(1, int(h)), max(1, int(w))]
    return out


def _resize(o: dict, sfx: str, rng, sizes: list, base) -> dict:
    mode = int(rng.choice(3, p=np.asarray(o[f"resize_prob{sfx}"]) / sum(o[f"resize_prob{sfx}"])))
    lo, hi = o[f"resize_range{sfx}"]
    s = float(rng.uniform(1, hi)) if mode == 0 else float(rng.uniform(lo, 1)) if mode == 1 else 1.0
    method = str(rng.choice(o["resize_methods"]))
    walk = o[f"resize_step{sfx}"]
    n = len(sizes)
    scales = _walk(rng, s, walk, lo, hi, n) if walk > 0 and n > 1 else [s] * n
    new = [_scaled(base if base is not None else sizes[t], scales[t], o["resize_even"]) for t in range(n)]
    step = {"op": "resize", "method": method, "mode": ("up", "down", "keep")[mode]}
    if walk > 0 and n > 1:
        step["frames"] = [{"scale": sc, "size": sz} for sc, sz in zip(scales, new)]
    else:
        step.update(scale=s, size=new[0])
    sizes[:] = [tuple(x) for x in new]
    return step


def _noise(o: dict, sfx: str, rng, n: int) -> dict:
    gaussian = rng.random() < o[f"gaussian_noise_prob{sfx}"]
    gray = bool(rng.random() < o[f"gray_noise_prob{sfx}"])
    step = {"op": "gaussian_noise" if gaussian else "poisson_noise", "gray": gray, "clip": o["clip_between"],
            "seed": int(rng.integers(0, 2 ** 63))}
    if gaussian:
        lo, hi = o[f"noise_range{sfx}"]
        _put(step, rng, n, "sigma", float(rng.uniform(lo, hi)), o["noise_step"], lo, hi)
    else:
        lo, hi = o[f"poisson_scale_range{sfx}"]
        _put(step, rng, n, "scale", float(rng.uniform(lo, hi)), o["poisson_step"], lo, hi)
    return step


def _jpeg(o: dict, key: str, rng, n: int) -> dict:
    lo, hi = o[key]
    step = {"op": "jpeg"}
    _put(step, rng, n, "quality", int(round(rng.uniform(lo, hi))), o["jpeg_step"], lo, hi, integer=True)
    return step


def _codec(o: dict, rng) -> dict:
    p = np.asarray(o["codec_prob"], dtype=np.float64)
    step = {"op": "codec", "codec": str(rng.choice(o["codec_list"], p=p / p.sum()))}
    if o["crf_range"] is not None:
        step["crf"] = int(rng.integers(o["crf_range"][0], o["crf_range"][1] + 1))
    else:
        step["bitrate"] = int(rng.integers(o["bitrate_range"][0], o["bitrate_range"][1] + 1))
    return step


def _random_steps(recipe: dict, rng, n: int, size: tuple[int, int]) -> list[dict]:
    o, scale = recipe["options"], recipe["scale"]
    crop = (size[0] - size[0] % scale, size[1] - size[1] % scale)
    target = (crop[0] // scale, crop[1] // scale)
    sizes = [crop] * n
    steps = [{"op": "crop", "size": list(crop)}, _blur(o, "", rng, n), _resize(o, "", rng, sizes, crop),
             _noise(o, "", rng, n), _jpeg(o, "jpeg_range", rng, n)]
    if o["codec_first_order"]:
        steps += _one_size(sizes) + [_codec(o, rng)]
    if rng.random() < o["second_blur_prob"]:
        steps.append(_blur(o, "2", rng, n))
    steps.append(_resize(o, "2", rng, sizes, target if o["resize2_base"] == "target" else None))
    steps.append(_noise(o, "2", rng, n))
    if o["final_compression"] == "codec":
        steps.append(_jpeg(o, "jpeg_range2", rng, n))
    group = [{"op": "resize", "method": str(rng.choice(o["resize_methods"])), "size": list(target)}]
    if rng.random() < o["final_sinc_prob"]:
        ks = int(rng.choice(np.arange(7, 22, 2)))
        sinc = {"op": "blur", "kernel": "sinc", "size": ks}
        _put(sinc, rng, n, "omega", float(rng.uniform(math.pi / 3, math.pi)), o["omega_step"], math.pi / 3, math.pi)
        group.append(sinc)
    other = [_jpeg(o, "jpeg_range2", rng, n)] if o["final_compression"] == "jpeg" else [_codec(o, rng)]
    if rng.random() < 0.5:
        return steps + group + other
    return steps + (_one_size(sizes) if other[0]["op"] == "codec" else []) + other + group


def _one_size(sizes: list) -> list[dict]:
    """Before a codec: walked sizes differ frame to frame, but one stream has one size (PyAV would
    rescale silently); resize every frame to the first frame's size (bilinear), explicitly."""
    if len(set(sizes)) == 1:
        return []
    sizes[:] = [sizes[0]] * len(sizes)
    return [{"op": "resize", "method": "bilinear", "size": list(sizes[0])}]


def sample(recipe: dict, seed: int, identity: str, n_frames: int, size: tuple[int, int]) -> dict:
    """The manifest entry of one clip: every drawn value of every step (and frame, where walked).

    ``size`` = (H, W) of the clip's frames; ``n_frames`` its length. Fixed recipes draw nothing.
    """
    if n_frames < 1:
        raise ConfigError(f"clip {identity!r} has no frames")
    entry = {"format": FORMAT, "clip": identity, "seed": int(seed), "recipe": recipe["name"],
             "scale": recipe["scale"], "frames": int(n_frames), "input_size": [int(size[0]), int(size[1])]}
    if recipe["kind"] == "fixed":
        entry["steps"] = [{"op": "downscale", "kind": recipe["degradation"], "scale": recipe["scale"]}]
    elif recipe["options"].get("independent_frames"):
        # asked for: every frame its own draw (identity "<clip>#<t>"), a codec sees one frame
        entry["per_frame"] = [_random_steps(recipe, clip_rng(seed, f"{identity}#{t}"), 1, (int(size[0]), int(size[1])))
                              for t in range(n_frames)]
    else:
        entry["steps"] = _random_steps(recipe, clip_rng(seed, identity), n_frames, (int(size[0]), int(size[1])))
    return entry
