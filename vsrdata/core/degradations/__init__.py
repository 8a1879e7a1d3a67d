"""The degradation engine: literature (BI, BD, BD-DUF) and real-world (Real-ESRGAN, RealBasicVSR)
degradations, every draw recorded so that an output can be rebuilt byte for byte.

API (numpy only; no torch, no click) -- used by ``make-lr``, ``vsrdata degrade`` and training::

    from vsrdata.core.degradations import load_recipe, sample, apply

    recipe = load_recipe("realbasicvsr", scale=4)        # built-in name or YAML file -> dict (data)
    params = sample(recipe, seed=0, identity="000",     # (recipe, seed, clip identity, clip shape)
                    n_frames=len(frames), size=frames[0].shape[:2])
    lr = apply(frames, params)                           # never draws random numbers

* **Operations** (:mod:`.ops`, :mod:`.kernels`, :mod:`.codec`): pure functions of (frame or clip,
  explicit parameters) -> frames: ``blur(img, kernel)`` with ``make_kernel({"kernel": "aniso",
  "size": 21, "sigma_x": .., "sigma_y": .., "theta": ..})`` (iso/aniso/generalized/plateau/sinc),
  ``resize(img, (h, w), "area"|"bilinear"|"bicubic")``, ``gaussian_noise(img, sigma, gray, seed,
  frame)``, ``poisson_noise(img, scale, gray, seed, frame)``, ``jpeg(img, quality)``,
  ``compress_clip(frames, codec, bitrate=|crf=)`` (PyAV, whole clip one stream), and the fixed
  ``vsrdata.core.degrade.degrade(img, scale, "bi"|"bd"|"bd-duf")``. Float frames are float32
  HxWx3 in [0, 1], BGR; noise takes the *seed* of its field, not a generator.
* **Recipe** (:mod:`.recipes`): a JSON-able dict; ``load_recipe(NAME|FILE, scale)``,
  ``builtin_recipe(name, scale)``, ``recipe_from_dict(mapping)`` (BasicSR Real-ESRGAN option keys
  + ours; one-line ConfigError naming a bad key). Built-ins: :data:`RECIPE_NAMES`.
* **Sampler** (:mod:`.sampler`): ``sample(recipe, seed, identity, n_frames, size)`` -> the clip's
  concrete steps, a JSON-serialisable dict = the manifest entry. All draws come from
  ``clip_rng(seed, identity)`` (PCG64 from sha256 of seed and identity), never the global state.
  For training, pass an identity naming the sample (e.g. ``f"{iteration}/{index}"``).
* **apply** (:mod:`.engine`): ``apply(frames, params)`` -> list of uint8 LR frames.

Conventions and sources: ``docs/CONVENTIONS.md#real-world-degradations``, ``#bd-duf``.
"""

from vsrdata.core.degradations.codec import available_codecs, compress_clip
from vsrdata.core.degradations.engine import apply, frame_args
from vsrdata.core.degradations.kernels import KERNEL_TYPES, make_kernel
from vsrdata.core.degradations.recipes import (BUILTIN_RECIPES, RECIPE_NAMES, builtin_recipe, load_recipe,
                                               recipe_from_dict)
from vsrdata.core.degradations.sampler import FORMAT, clip_rng, sample

__all__ = ["BUILTIN_RECIPES", "FORMAT", "KERNEL_TYPES", "RECIPE_NAMES", "apply", "available_codecs", "builtin_recipe",
           "clip_rng", "compress_clip", "frame_args", "load_recipe", "make_kernel", "recipe_from_dict", "sample"]
