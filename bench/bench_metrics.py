"""Benchmark: NIQE per 720p frame against BasicSR's calculate_niqe; VMAF and tOF frames/s.

    python bench/bench_metrics.py [--frame PATH] [--basicsr DIR] [--repeat N] [--clip N]

Prints, from one run on one machine, single thread (best of N):
  * niqe ours     -- vsrdata.evaluation.niqe.calculate_niqe(frame), ms per frame
  * niqe basicsr  -- basicsr.metrics.niqe.calculate_niqe(frame_bgr, 0) of BasicSR 1.4.2, ms per frame,
                     and the ratio ours / basicsr (target <= 0.5) with both values and their difference.
                     BasicSR is imported from DIR (the folder holding the `basicsr` package, e.g. an
                     unpacked sdist or a venv's site-packages; its torch/scipy/cv2 come from this
                     interpreter); without it the line says it is skipped and why.
  * vmaf          -- frames/s of `VmafClip` (spool + ffmpeg libvmaf, vmaf_v0.6.1) on a clip of N frames
  * tof           -- frames/s of `TemporalScorer` (two Farneback flows per frame) on the same clip
The frame (default: MATLAB-bicubic x4 of a 320x180 REDS fixture frame = 1280x720) is any image file;
the clip is that frame shifted by one pixel per frame, with mild noise, against the unshifted frames.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # single thread, set before numpy/cv2/torch are imported

import argparse  # noqa: E402
import importlib  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vsrdata.core.image_io import read_image, to_rgb  # noqa: E402
from vsrdata.core.resize import imresize  # noqa: E402
from vsrdata.evaluation.niqe import calculate_niqe  # noqa: E402

cv2.setNumThreads(1)
DEFAULT_LR = ROOT / "fixtures" / "reds" / "train_sharp" / "001" / "00000003.png"


def best_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * min(times)


def basicsr_niqe(folder: str | None):
    """BasicSR's calculate_niqe loaded from `folder` (its package __init__ is skipped: it imports
    training code), or (None, reason)."""
    if folder:
        sys.path.append(folder)  # after this interpreter's own packages (torch, scipy)
    spec = importlib.util.find_spec("basicsr")
    if spec is None or not spec.submodule_search_locations:
        return None, "basicsr not importable (give --basicsr DIR holding the basicsr package)"
    pkg = list(spec.submodule_search_locations)[0]
    try:
        for name, sub in (("basicsr", ""), ("basicsr.utils", "utils"), ("basicsr.metrics", "metrics")):
            mod = types.ModuleType(name)
            mod.__path__ = [os.path.join(pkg, sub)]
            sys.modules[name] = mod
        sys.modules["basicsr.utils"].bgr2ycbcr = importlib.import_module("basicsr.utils.color_util").bgr2ycbcr
        return importlib.import_module("basicsr.metrics.niqe").calculate_niqe, pkg
    except Exception as exc:  # missing torch/scipy in this interpreter, another layout
        return None, f"basicsr at {pkg} failed to load: {type(exc).__name__}: {exc}"


def make_clip(frame: np.ndarray, n: int):
    rng = np.random.default_rng(0)
    gt = [np.roll(frame, i, axis=1) for i in range(n)]
    out = [np.clip(g + rng.normal(0, 3, g.shape), 0, 255).astype(np.uint8) for g in gt]
    return out, gt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frame", type=Path, default=None, help="image to score (default: REDS fixture x4)")
    ap.add_argument("--basicsr", default=None, help="folder holding BasicSR's basicsr package")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--clip", type=int, default=10, help="frames in the VMAF / tOF clip")
    args = ap.parse_args()
    frame = to_rgb(read_image(args.frame)) if args.frame else imresize(to_rgb(read_image(DEFAULT_LR)), 4)
    print(f"frame {frame.shape[1]}x{frame.shape[0]} ({args.frame or 'REDS fixture x4'}), single thread")

    ours = calculate_niqe(frame)
    t_ours = best_ms(lambda: calculate_niqe(frame), args.repeat)
    print(f"niqe ours     {t_ours:8.1f} ms/frame  NIQE {ours:.6f}")
    ref, info = basicsr_niqe(args.basicsr)
    if ref is None:
        print(f"niqe basicsr  skipped: {info}")
    else:
        bgr = np.ascontiguousarray(frame[..., ::-1])
        theirs = ref(bgr, 0)
        t_ref = best_ms(lambda: ref(bgr, 0), args.repeat)
        print(f"niqe basicsr  {t_ref:8.1f} ms/frame  NIQE {theirs:.6f}  ({info})")
        print(f"niqe ratio ours/basicsr = {t_ours / t_ref:.3f} (target <= 0.5); |difference| = {abs(ours - theirs):.2e}")

    out, gt = make_clip(frame, args.clip)
    from vsrdata.errors import ConfigError
    from vsrdata.evaluation.temporal import TemporalScorer
    from vsrdata.evaluation.vmaf import VmafClip

    try:
        t = time.perf_counter()
        clip = VmafClip("bench", threads=1)
        for o, g in zip(out, gt):
            clip.add(o, g)
        res = clip.finish()
        dt = time.perf_counter() - t
        print(f"vmaf          {len(out) / dt:8.2f} frames/s  (mean {res.mean:.3f}, {res.model}, "
              f"libvmaf {res.libvmaf_version}, 1 thread)")
    except ConfigError as exc:
        print(f"vmaf          skipped: {exc}")
    scorer = TemporalScorer()
    t = time.perf_counter()
    tofs = [scorer.feed(o, g)[0] for o, g in zip(out, gt)]
    dt = time.perf_counter() - t
    print(f"tof           {len(out) / dt:8.2f} frames/s  (mean tOF {np.mean(tofs[1:]):.4f})")


if __name__ == "__main__":
    main()
