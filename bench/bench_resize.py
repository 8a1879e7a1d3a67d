"""Benchmark: our MATLAB-exact imresize vs PNG I/O and vs a plain per-axis port, single thread.

    python bench/bench_resize.py [--repeat N] [--frame PATH]

Prints, from one run on one machine (best of N, ms per 448x256x3 uint8 frame -> 1/4):
  * ours      -- vsrdata.core.resize.imresize(frame, 1/4)
  * png_io    -- cv2.imread of the 448x256 PNG + cv2.imwrite of the 112x64 result (the floor a
                 make-lr job pays per frame anyway)
  * plain     -- a straightforward port written here: per axis, a Python loop over output
                 samples, each a weighted sum of the gathered input rows (the shape of the
                 common numpy ports of MATLAB's imresize)
and the ratios ours/png_io (target <= 0.25) and plain/ours. It also checks, in the same run,
that ours equals MATLAB R2017b's imresize(baboon, 1/4) pixel for pixel and matches the digests of
all five MATLAB reference outputs in fixtures/imresize/matlab_sha256.json.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # single thread, set before numpy/cv2 are imported

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import timeit  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vsrdata.core.resize import imresize  # noqa: E402

cv2.setNumThreads(1)
FRAME = ROOT / "fixtures" / "vimeo_septuplet" / "sequences" / "00001" / "0001" / "im4.png"
IMRESIZE = ROOT / "fixtures" / "imresize"
MATLAB_SCALES = {"baboon_down_x2_matlab.png": 1 / 2, "baboon_down_x3_matlab.png": 1 / 3,
                 "baboon_down_x4_matlab.png": 1 / 4, "baboon_up_x2_matlab.png": 2,
                 "baboon_up_x3_matlab.png": 3}


# ------------------------------------------------------------------ plain reference port
def _plain_cubic(x):
    ax = np.abs(x)
    return ((1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1)
            + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def _plain_taps(in_len, out_len, scale):
    width = 4.0 / scale if scale < 1 else 4.0
    u = np.arange(1, out_len + 1) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    idx = left[:, None] + np.arange(math.ceil(width) + 2)[None, :]
    w = scale * _plain_cubic(scale * (u[:, None] - idx)) if scale < 1 else _plain_cubic(u[:, None] - idx)
    w = w / w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    idx = mirror[np.mod(idx.astype(int) - 1, 2 * in_len)]
    keep = np.any(w != 0, axis=0)
    return w[:, keep], idx[:, keep]


def plain_imresize(img, scale):
    """uint8 HxWxC -> uint8, MATLAB's algorithm written the obvious way (loop per output)."""
    x = img.astype(np.float64) / 255.0
    for axis in (0, 1):
        out_len = math.ceil(scale * img.shape[axis])
        w, idx = _plain_taps(x.shape[axis], out_len, scale)
        moved = np.moveaxis(x, axis, 0)
        out = np.empty((out_len,) + moved.shape[1:])
        for i in range(out_len):
            out[i] = np.tensordot(w[i], moved[idx[i]], axes=(0, 0))
        x = np.moveaxis(out, 0, axis)
    return np.clip(np.floor(x * 255.0 + 0.5), 0, 255).astype(np.uint8)


def _digest(img):
    h = hashlib.sha256()
    h.update(f"{img.shape}|{img.dtype}".encode())
    h.update(np.ascontiguousarray(img).tobytes())
    return h.hexdigest()


def best_ms(fn, repeat):
    fn()  # warm-up (weights cache, page cache)
    return min(timeit.repeat(fn, number=1, repeat=repeat)) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=200, help="timed runs per method (best is kept)")
    ap.add_argument("--frame", type=Path, default=FRAME, help="448x256 PNG frame to resize")
    args = ap.parse_args()

    frame = cv2.imread(str(args.frame), cv2.IMREAD_UNCHANGED)
    print(f"frame {args.frame.relative_to(ROOT) if args.frame.is_relative_to(ROOT) else args.frame}: "
          f"{frame.shape[1]}x{frame.shape[0]}x{frame.shape[2]} {frame.dtype} -> 1/4, "
          f"single thread, best of {args.repeat}")
    small = imresize(frame, 0.25)
    with tempfile.TemporaryDirectory() as tmp:
        out_path = str(Path(tmp) / "lr.png")

        def png_io():
            cv2.imread(str(args.frame), cv2.IMREAD_UNCHANGED)
            cv2.imwrite(out_path, small)

        t_io = best_ms(png_io, args.repeat)
    t_ours = best_ms(lambda: imresize(frame, 0.25), args.repeat)
    t_plain = best_ms(lambda: plain_imresize(frame, 0.25), max(5, args.repeat // 10))
    same = np.array_equal(plain_imresize(frame, 0.25), small)

    print(f"  ours   imresize 1/4        {t_ours:8.3f} ms/frame")
    print(f"  png_io imread+imwrite      {t_io:8.3f} ms/frame")
    print(f"  plain  per-axis loop port  {t_plain:8.3f} ms/frame   (same pixels as ours: {same})")
    print(f"  ratio ours/png_io = {t_ours / t_io:.3f}  (target <= 0.25)")
    print(f"  speed-up plain/ours = {t_plain / t_ours:.1f}x")

    baboon = cv2.imread(str(IMRESIZE / "baboon.png"), cv2.IMREAD_UNCHANGED)
    ref4 = cv2.imread(str(IMRESIZE / "baboon_down_x4_matlab.png"), cv2.IMREAD_UNCHANGED)
    diff_ours = int(np.count_nonzero(imresize(baboon, 0.25) != ref4))
    diff_plain = int(np.count_nonzero(plain_imresize(baboon, 0.25) != ref4))
    print(f"exactness vs MATLAB R2017b imresize(baboon, 1/4): ours {diff_ours} differing values, "
          f"plain {diff_plain}")
    digests = json.loads((IMRESIZE / "matlab_sha256.json").read_text())
    ok = [name for name, scale in MATLAB_SCALES.items()
          if _digest(imresize(baboon, scale)) == digests[name]["sha256"]]
    print(f"MATLAB digests matched by ours: {len(ok)}/{len(MATLAB_SCALES)}")
    return 0 if diff_ours == 0 and len(ok) == len(MATLAB_SCALES) else 1


if __name__ == "__main__":
    sys.exit(main())
