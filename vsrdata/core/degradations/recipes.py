"""Recipes: which degradations run, in which order, with which ranges -- as data.

A recipe is a dict ``{"name", "scale", "kind": "fixed"|"random", ...}``:

* fixed (``bi``, ``bd``, ``bd-duf``): ``{"kind": "fixed", "degradation": NAME, "scale": S}``;
  no randomness (:mod:`vsrdata.core.degrade`).
* random: ``{"kind": "random", "scale": S, "options": {KEY: VALUE}}`` where the keys are BasicSR's
  Real-ESRGAN option keys (``train_realesrnet_x4plus.yml``) plus our video keys (table in
  :data:`OUR_KEYS` and ``docs/CONVENTIONS.md#real-world-degradations``). Every key has a value:
  a file sets some and takes the rest from its ``base`` (default ``realesrgan``).

A recipe FILE is YAML: ``{base: realbasicvsr, scale: 4, jpeg_range: [40, 90], ...}``; every bad
key or value raises a one-line ConfigError naming the key (:func:`load_recipe`), before anything
is written.
"""

from __future__ import annotations

import copy
import math
import numbers
import os
from pathlib import Path

from vsrdata.core.degradations.kernels import KERNEL_TYPES
from vsrdata.core.degradations.ops import RESIZE_METHODS
from vsrdata.errors import ConfigError

__all__ = ["BUILTIN_RECIPES", "RECIPE_NAMES", "builtin_recipe", "load_recipe", "recipe_from_dict"]

_GAUSS = [k for k in KERNEL_TYPES if k != "sinc"]
# BasicSR options/train/RealESRGAN/train_realesrnet_x4plus.yml (first and second order).
REALESRGAN = {
    "blur_kernel_size": 21, "kernel_list": _GAUSS, "kernel_prob": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
    "sinc_prob": 0.1, "blur_sigma": [0.2, 3.0], "betag_range": [0.5, 4.0], "betap_range": [1.0, 2.0],
    "blur_kernel_size2": 21, "kernel_list2": _GAUSS, "kernel_prob2": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
    "sinc_prob2": 0.1, "blur_sigma2": [0.2, 1.5], "betag_range2": [0.5, 4.0], "betap_range2": [1.0, 2.0],
    "final_sinc_prob": 0.8,
    "resize_prob": [0.2, 0.7, 0.1], "resize_range": [0.15, 1.5], "gaussian_noise_prob": 0.5,
    "noise_range": [1.0, 30.0], "poisson_scale_range": [0.05, 3.0], "gray_noise_prob": 0.4, "jpeg_range": [30, 95],
    "second_blur_prob": 0.8, "resize_prob2": [0.3, 0.4, 0.3], "resize_range2": [0.3, 1.2],
    "gaussian_noise_prob2": 0.5, "noise_range2": [1.0, 25.0], "poisson_scale_range2": [0.05, 2.5],
    "gray_noise_prob2": 0.4, "jpeg_range2": [30, 95],
    # ours: how Real-ESRGAN does what its option file does not say
    "resize_methods": list(RESIZE_METHODS), "resize_even": False, "resize2_base": "target", "clip_between": True,
    "codec_list": ["libx264", "h264", "mpeg4"], "codec_prob": [1 / 3, 1 / 3, 1 / 3],
    "bitrate_range": [10000, 100000], "crf_range": None, "codec_first_order": False, "final_compression": "jpeg",
    "sigma_step": 0.0, "angle_step": 0.0, "betag_step": 0.0, "betap_step": 0.0, "omega_step": 0.0,
    "noise_step": 0.0, "poisson_step": 0.0, "jpeg_step": 0.0, "resize_step": 0.0, "resize_step2": 0.0,
    "independent_frames": False,
}
# mmagic configs/real_basicvsr/realbasicvsr_wogan-c64b20-2x30x8_8xb2-lr1e-4-300k_reds.py: the same
# families; codec after the first order and in the final shuffle (instead of JPEG); per-frame walks.
REALBASICVSR = dict(REALESRGAN, **{
    "blur_sigma2": [0.2, 1.5], "resize_even": True, "resize2_base": "current", "clip_between": False,
    "gaussian_noise_prob2": 0.5, "codec_first_order": True, "final_compression": "codec",
    "sigma_step": 0.02, "angle_step": 0.31416, "betag_step": 0.05, "betap_step": 0.1, "omega_step": 0.0628,
    "noise_step": 0.1, "poisson_step": 0.005, "jpeg_step": 3.0, "resize_step": 0.015, "resize_step2": 0.03,
})
BUILTIN_RECIPES = {"realesrgan": REALESRGAN, "realbasicvsr": REALBASICVSR}
FIXED = ("bi", "bd", "bd-duf")
RECIPE_NAMES = tuple(BUILTIN_RECIPES) + FIXED
OUR_KEYS = ("base", "scale", "resize_methods", "resize_even", "resize2_base", "clip_between", "codec_list",
            "codec_prob", "bitrate_range", "crf_range", "codec_first_order", "final_compression", "sigma_step",
            "angle_step", "betag_step", "betap_step", "omega_step", "noise_step", "poisson_step", "jpeg_step",
            "resize_step", "resize_step2", "independent_frames")


def _num(key, v, lo=-math.inf, hi=math.inf, lo_open=False):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise ConfigError(f"{key}: expected a number, got {v!r}")
    if v < lo or v > hi or (lo_open and v == lo):
        bound = f"> {lo}" if lo_open and hi == math.inf else f"in [{lo}, {hi}]"
        raise ConfigError(f"{key}: must be {bound}, got {v!r}")
    return float(v)


def _range(key, v, lo=-math.inf, hi=math.inf, lo_open=False):
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise ConfigError(f"{key}: expected [low, high], got {v!r}")
    a, b = (_num(key, x, lo, hi, lo_open) for x in v)
    if a > b:
        raise ConfigError(f"{key}: low {a} is above high {b}")
    return [a, b]


def _probs(key, v, n=None):
    if not isinstance(v, (list, tuple)) or not v or (n is not None and len(v) != n):
        raise ConfigError(f"{key}: expected a list of {n or 'some'} probabilities, got {v!r}")
    out = [_num(key, x, 0.0, 1.0) for x in v]
    if sum(out) <= 0:
        raise ConfigError(f"{key}: the probabilities sum to 0")
    return out


def _choices(key, v, allowed):
    if not isinstance(v, (list, tuple)) or not v:
        raise ConfigError(f"{key}: expected a list, got {v!r}")
    for x in v:
        if x not in allowed:
            raise ConfigError(f"{key}: unknown entry {x!r} (choose from {', '.join(allowed)})")
    return list(v)


def _kernel_size(key, v):
    if isinstance(v, bool) or not isinstance(v, int) or v % 2 == 0 or not 7 <= v <= 21:
        raise ConfigError(f"{key}: must be an odd integer in 7-21, got {v!r}")
    return v


def _flag(key, v):
    if not isinstance(v, bool):
        raise ConfigError(f"{key}: expected true or false, got {v!r}")
    return v


def _one_of(allowed):
    def check(key, v):
        if v not in allowed:
            raise ConfigError(f"{key}: must be one of {', '.join(allowed)}, got {v!r}")
        return v
    return check


def _codecs(key, v):
    from vsrdata.core.degradations.codec import check_codec

    out = _choices(key, v, [x for x in v if isinstance(x, str)] or ["?"])
    for name in out:
        check_codec(name, key)
    return out


def _int_range(lo, hi):
    def check(key, v):
        if v is None and key == "crf_range":
            return None
        a, b = _range(key, v, lo, hi)
        return [int(round(a)), int(round(b))]
    return check


def _validators() -> dict:
    v = {}
    for sfx in ("", "2"):
        v[f"blur_kernel_size{sfx}"] = _kernel_size
        v[f"kernel_list{sfx}"] = lambda k, x: _choices(k, x, _GAUSS)
        v[f"kernel_prob{sfx}"] = _probs
        v[f"sinc_prob{sfx}"] = lambda k, x: _num(k, x, 0.0, 1.0)
        v[f"blur_sigma{sfx}"] = lambda k, x: _range(k, x, 0.0, lo_open=True)
        v[f"betag_range{sfx}"] = lambda k, x: _range(k, x, 0.0, lo_open=True)
        v[f"betap_range{sfx}"] = lambda k, x: _range(k, x, 0.0, lo_open=True)
        v[f"resize_prob{sfx}"] = lambda k, x: _probs(k, x, 3)
        v[f"resize_range{sfx}"] = lambda k, x: _range(k, x, 0.0, lo_open=True)
        v[f"gaussian_noise_prob{sfx}"] = lambda k, x: _num(k, x, 0.0, 1.0)
        v[f"noise_range{sfx}"] = lambda k, x: _range(k, x, 0.0)
        v[f"poisson_scale_range{sfx}"] = lambda k, x: _range(k, x, 0.0)
        v[f"gray_noise_prob{sfx}"] = lambda k, x: _num(k, x, 0.0, 1.0)
        v[f"jpeg_range{sfx}"] = _int_range(1, 100)
    v.update({
        "final_sinc_prob": lambda k, x: _num(k, x, 0.0, 1.0), "second_blur_prob": lambda k, x: _num(k, x, 0.0, 1.0),
        "resize_methods": lambda k, x: _choices(k, x, RESIZE_METHODS), "resize_even": _flag,
        "resize2_base": _one_of(("target", "current")), "clip_between": _flag, "codec_list": _codecs,
        "codec_prob": _probs, "bitrate_range": _int_range(1, 10 ** 9), "crf_range": _int_range(0, 51),
        "codec_first_order": _flag, "final_compression": _one_of(("jpeg", "codec")), "independent_frames": _flag,
    })
    for step in ("sigma_step", "angle_step", "betag_step", "betap_step", "omega_step", "noise_step",
                 "poisson_step", "jpeg_step", "resize_step", "resize_step2"):
        v[step] = lambda k, x: _num(k, x, 0.0)
    return v


_VALIDATORS = _validators()


def _check_lengths(opts: dict) -> None:
    for sfx in ("", "2"):
        if len(opts[f"kernel_list{sfx}"]) != len(opts[f"kernel_prob{sfx}"]):
            raise ConfigError(f"kernel_prob{sfx}: {len(opts[f'kernel_prob{sfx}'])} probabilities for "
                              f"{len(opts[f'kernel_list{sfx}'])} kernel_list{sfx} entries")
    if len(opts["codec_list"]) != len(opts["codec_prob"]):
        raise ConfigError(f"codec_prob: {len(opts['codec_prob'])} probabilities for "
                          f"{len(opts['codec_list'])} codec_list entries")
    if opts["crf_range"] is not None:
        from vsrdata.core.degradations.codec import CRF_CODECS
        bad = [c for c in opts["codec_list"] if c not in CRF_CODECS]
        if bad:
            raise ConfigError(f"crf_range: {bad[0]} has no CRF mode (CRF works with {', '.join(CRF_CODECS)})")


def _check_scale(scale, where="scale") -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ConfigError(f"{where}: must be a positive integer, got {scale!r}")
    return scale


def builtin_recipe(name: str, scale: int = 4) -> dict:
    """The built-in recipe ``name`` (one of :data:`RECIPE_NAMES`) at ``scale``."""
    scale = _check_scale(scale)
    if name in FIXED:
        return {"name": name, "kind": "fixed", "degradation": name, "scale": scale}
    if name not in BUILTIN_RECIPES:
        raise ConfigError(f"recipe: unknown recipe {name!r} (built-in: {', '.join(RECIPE_NAMES)}; or a YAML file)")
    opts = copy.deepcopy(BUILTIN_RECIPES[name])
    _check_codecs_used(opts)
    return {"name": name, "kind": "random", "scale": scale, "options": opts}


def _check_codecs_used(opts: dict) -> None:
    """A recipe that compresses video needs every encoder of its `codec_list` in this PyAV build."""
    if opts["codec_first_order"] or opts["final_compression"] == "codec":
        from vsrdata.core.degradations.codec import check_codec

        for name in opts["codec_list"]:
            check_codec(name, "codec_list")


def recipe_from_dict(data: dict, name: str = "recipe", scale: int | None = None) -> dict:
    """Validate a recipe mapping (a YAML file's content); every problem is a one-line ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: a recipe must be a mapping of option keys, got {type(data).__name__}")
    base = data.get("base", "realesrgan")
    if base not in BUILTIN_RECIPES:
        raise ConfigError(f"base: must be one of {', '.join(BUILTIN_RECIPES)}, got {base!r}")
    if scale is not None and "scale" in data and data["scale"] != scale:
        raise ConfigError(f"scale: {name} sets scale {data['scale']!r} but x{scale} is asked for "
                          "(the scale given, or the model's): drop one or make them agree")
    scale = _check_scale(data.get("scale", 4 if scale is None else scale))
    opts = copy.deepcopy(BUILTIN_RECIPES[base])
    for key, value in data.items():
        if key in ("base", "scale"):
            continue
        if key not in _VALIDATORS:
            raise ConfigError(f"{key}: unknown recipe key in {name} (see docs/CONVENTIONS.md#real-world-degradations)")
        opts[key] = _VALIDATORS[key](key, value)
    _check_lengths(opts)
    _check_codecs_used(opts)
    return {"name": name, "kind": "random", "scale": scale, "options": opts, "base": base}


def load_recipe(spec: str | os.PathLike, scale: int | None = None) -> dict:
    """A built-in name or a YAML file path -> validated recipe dict."""
    text = str(spec)
    if text in RECIPE_NAMES:
        return builtin_recipe(text, 4 if scale is None else scale)
    path = Path(text)
    if not path.is_file():
        raise ConfigError(f"recipe: {text!r} is neither a built-in recipe ({', '.join(RECIPE_NAMES)}) nor a file")
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"recipe {path}: not readable YAML ({str(exc).splitlines()[0]})") from None
    return recipe_from_dict(data if data is not None else {}, name=path.name, scale=scale)
