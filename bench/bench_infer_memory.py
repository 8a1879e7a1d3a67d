"""Benchmark `infer` video -> video: peak memory must not grow with the video's length.

For each length N (default 30 and 3,000 frames) a video of N frames (64x48 by default, H.264,
25 fps, an AAC sine track) is made, then a separate Python process runs
`vsrdata.evaluation.infer.infer` on it (CPU, 1 thread, scene cuts auto: two decoding passes, audio
stream-copied) into an .mp4, and reports its own peak RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss`). The
model is a per-pixel stand-in with EDVR-tiny's
config (window of 5) by default, so that 3,000 frames take about a minute: what is measured is
the decode / window / encode path; `--model edvr-tiny` runs the real network. The ratio of the
peaks (3,000 / 30) is printed: ~1.0 means constant memory; a path that held the
video would grow by N x 64x48x3 (input) + N x 256x192x3 (output) bytes, ~450 MB at 3,000.

    python bench/bench_infer_memory.py                 # 30 and 3000 frames, about a minute
    python bench/bench_infer_memory.py --sizes 30,300
    python bench/bench_infer_memory.py --sizes 30,600 --stage2   # two-stage: + a stage-2 edvr-tiny (hr_in)

With --stage2 the chain of `infer --stage2` runs: stage 1 as above, then a real stage-2 network
(edvr-tiny with hr_in, random weights, saved to a temporary checkpoint) refines every restored
frame in its own windows; both stages stream, so the peak must stay flat as well.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = r"""
import resource, sys, time, torch
torch.set_num_threads(1)
from vsrdata.edvr.arch import build_edvr
from vsrdata.edvr.config import get_preset
from vsrdata.evaluation.infer import infer

class PixelModel(torch.nn.Module):  # x4 nearest of the window mean: the pipeline, not the model
    def __init__(self):
        super().__init__()
        self.config = get_preset("edvr-tiny")
    def forward(self, x):
        return x.mean(1).repeat_interleave(4, -2).repeat_interleave(4, -1)

torch.manual_seed(0)
model = build_edvr("edvr-tiny").eval() if sys.argv[3] == "edvr-tiny" else PixelModel()
t0 = time.perf_counter()
stage2 = None if sys.argv[4] == "-" else sys.argv[4]
res = infer(sys.argv[1], sys.argv[2], model=model, device="cpu", stage2=stage2)
dt = time.perf_counter() - t0
print(res.written, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, f"{dt:.2f}", ";".join(res.audio))
"""


def make_video(path: Path, n: int, h: int = 48, w: int = 64) -> None:
    """N frames of a moving gradient with noise, and a 440 Hz tone for the whole duration."""
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        au = out.add_stream("aac", rate=44100)
        au.layout = "mono"
        for i in range(n):
            img = ((xx + yy + 2 * i) % 256).astype(np.uint8)[..., None].repeat(3, 2)
            img = np.clip(img + rng.integers(0, 16, img.shape), 0, 255).astype(np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="bgr24")
            f.pts = i
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
        samples = 44100 * n // 25
        for start in range(0, samples, 44100):
            k = min(44100, samples - start)
            wave = (0.3 * np.sin(2 * np.pi * 440 * (start + np.arange(k)) / 44100)).astype(np.float32)
            af = av.AudioFrame.from_ndarray(wave[None], format="fltp", layout="mono")
            af.sample_rate, af.pts = 44100, start
            out.mux(au.encode(af))
        out.mux(au.encode(None))


def _stage2_checkpoint(tmp: Path) -> str:
    """A stage-2 edvr-tiny (hr_in, the stage-2 front) with random weights, saved as a checkpoint."""
    import torch

    from vsrdata.edvr.arch import build_edvr
    from vsrdata.edvr.checkpoint import save_atomic

    torch.manual_seed(1)
    save_atomic({"params": build_edvr("edvr-tiny", hr_in=True).state_dict()}, tmp / "stage2.pth")
    return str(tmp / "stage2.pth")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="30,3000", help="comma-separated frame counts (first = baseline)")
    ap.add_argument("--model", choices=["pixel", "edvr-tiny"], default="pixel",
                    help="pixel: a per-pixel stand-in (fast: measures decode/window/encode); "
                    "edvr-tiny: the real network with random weights (~1 frame/s on 2 cores)")
    ap.add_argument("--size", default="64x48", help="input frame size WxH")
    ap.add_argument("--stage2", action="store_true", help="chain a stage-2 edvr-tiny (hr_in) after the model")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    peaks = {}
    with tempfile.TemporaryDirectory() as tmp:
        stage2 = _stage2_checkpoint(Path(tmp)) if args.stage2 else "-"
        for n in sizes:
            src, dst = Path(tmp) / f"in_{n}.mp4", Path(tmp) / f"out_{n}.mp4"
            t0 = time.perf_counter()
            w, h = (int(v) for v in args.size.lower().split("x"))
            make_video(src, n, h, w)
            made = time.perf_counter() - t0
            out = subprocess.run([sys.executable, "-c", CHILD, str(src), str(dst), args.model, stage2], env=env, check=True,
                                 capture_output=True, text=True).stdout.split()
            written, rss_kib, secs = int(out[0]), int(out[1]), float(out[2])
            audio = out[3] if len(out) > 3 else "-"
            assert written == n, f"{written} frames written for {n}"
            peaks[n] = rss_kib
            print(f"{n:6d} frames: peak RSS {rss_kib / 1024:7.1f} MiB, infer {secs:6.1f} s "
                  f"({n / secs:6.1f} frames/s), audio: {audio}; input made in {made:.1f} s")
    base = sizes[0]
    for n in sizes[1:]:
        print(f"peak RSS ratio {n} / {base} frames: {peaks[n] / peaks[base]:.3f}")


if __name__ == "__main__":
    main()
