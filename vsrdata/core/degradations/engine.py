"""``apply(frames, params)``: run a clip's concrete steps (a manifest entry) on its frames.

Never draws random numbers: everything comes from ``params`` (noise fields from the seeds that
the entry records). Input: the clip's frames as read (uint8 HxWx3 for random recipes; uint8 or
uint16, gray or colour for the fixed ``downscale`` step). Between steps a clip is a list of float32
[0, 1] frames (or integer frames for ``downscale``); conversions happen where a step needs the
other form (``to_float``: ``x / 255``; ``to_uint8``: round half to even and clip). The result is
uint8 (or the input's integer type for fixed recipes).
"""

from __future__ import annotations

import numpy as np

from vsrdata.core.degradations import ops
from vsrdata.core.degradations.codec import compress_clip
from vsrdata.core.degradations.kernels import make_kernel
from vsrdata.errors import ConfigError, InputError

__all__ = ["OPS", "apply", "frame_args"]


def frame_args(step: dict, t: int) -> dict:
    """The step's parameters for frame ``t``: its constant fields plus frame ``t``'s walked ones."""
    args = {k: v for k, v in step.items() if k != "frames"}
    if "frames" in step:
        args.update(step["frames"][t])
    return args


def _floats(clip: list) -> list:
    return [x if x.dtype == np.float32 else ops.to_float(x) for x in clip]


def _uint8(clip: list) -> list:
    return [x if x.dtype == np.uint8 else ops.to_uint8(x) for x in clip]


def _crop(clip, step):
    h, w = step["size"]
    return [x[:h, :w] for x in clip]


def _blur(clip, step):
    clip = _floats(clip)
    if "frames" not in step:
        kernel = make_kernel(step)
        return [ops.blur(x, kernel) for x in clip]
    return [ops.blur(x, make_kernel(frame_args(step, t))) for t, x in enumerate(clip)]


def _resize(clip, step):
    clip = _floats(clip)
    return [ops.resize(x, frame_args(step, t)["size"], step["method"]) for t, x in enumerate(clip)]


def _gaussian(clip, step):
    clip = _floats(clip)
    return [ops.gaussian_noise(x, a["sigma"], a["gray"], a["seed"], t, a["clip"])
            for t, (x, a) in enumerate((x, frame_args(step, t)) for t, x in enumerate(clip))]


def _poisson(clip, step):
    clip = _floats(clip)
    return [ops.poisson_noise(x, a["scale"], a["gray"], a["seed"], t, a["clip"])
            for t, (x, a) in enumerate((x, frame_args(step, t)) for t, x in enumerate(clip))]


def _jpeg(clip, step):
    clip = _floats(clip)
    return [ops.jpeg(x, frame_args(step, t)["quality"]) for t, x in enumerate(clip)]


def _codec(clip, step):
    return compress_clip(_uint8(clip), step["codec"], step.get("bitrate"), step.get("crf"))


def _downscale(clip, step):
    from vsrdata.core.degrade import degrade

    return [degrade(x if x.dtype != np.float32 else ops.to_uint8(x), step["scale"], step["kind"]) for x in clip]


OPS = {"crop": _crop, "blur": _blur, "resize": _resize, "gaussian_noise": _gaussian, "poisson_noise": _poisson,
       "jpeg": _jpeg, "codec": _codec, "downscale": _downscale}


def _check(frames: list, params: dict) -> None:
    if len(frames) != params["frames"]:
        raise InputError(f"clip {params['clip']!r} has {len(frames)} frames, its manifest entry {params['frames']}")
    want = tuple(params["input_size"])
    for x in frames:
        if x.shape[:2] != want:
            raise InputError(f"clip {params['clip']!r}: frame of {x.shape[1]}x{x.shape[0]} (WxH), the manifest "
                             f"entry says {want[1]}x{want[0]}")
    steps = params["steps"] if "steps" in params else [s for f in params["per_frame"] for s in f]
    if any(s["op"] != "downscale" for s in steps):
        for x in frames:
            if x.dtype != np.uint8 or x.ndim != 3 or x.shape[2] != 3:
                raise InputError(f"clip {params['clip']!r}: real-world recipes need 8-bit colour frames, "
                                 f"got {x.dtype} {x.shape}")


def apply(frames: list[np.ndarray], params: dict) -> list[np.ndarray]:
    """Degrade one clip with its concrete parameters (a :func:`~.sampler.sample` result or a
    manifest entry). Same frames + same params -> same bytes, in any process."""
    _check(frames, params)
    if "per_frame" in params:                       # independent draws: each frame its own steps
        return [_run([x], steps, params)[0] for x, steps in zip(frames, params["per_frame"])]
    return _run(list(frames), params["steps"], params)


def _run(clip: list, steps: list, params: dict) -> list:
    for step in steps:
        fn = OPS.get(step.get("op"))
        if fn is None:
            raise ConfigError(f"manifest entry of clip {params['clip']!r}: unknown step {step.get('op')!r}")
        clip = fn(clip, step)
    return [x if x.dtype != np.float32 else ops.to_uint8(x) for x in clip]
