"""Test-time ensembles (`--tta`): the cost of flip4 / x8 relative to one pass, and their PSNR gain.

    python bench/bench_tta.py                          # EDVR-M timing at 64x64 LR + the PSNR of a tiny x2 model
    python bench/bench_tta.py --preset edvr-tiny --size 32x48 --rounds 5
    python bench/bench_tta.py --checkpoint net_g.pth --split datasets/REDS4   # PSNR of your model

1. Cost: one (1, 5, 3, H, W) window (random weights of --preset, CPU, --threads) through the
   torch engine as one pass, flip4 (one batch of 4) and x8 (one batch of 8 for a square window,
   else two of 4); the three take turns for --rounds rounds after a warm-up, the median time per
   window is printed with its ratio to one pass (flip4's target: below 4x).
2. Gain: `evaluate` of a checkpoint on a split with --tta none, flip4 and x8 (RGB PSNR, REDS4
   protocol). Without --checkpoint: the fixtures' clip 000 held out at x2 (make-lr, split-test)
   and a tiny x2 model trained for --iters steps on clips 001/002 (tests/test_scales.py's loop).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from vsrdata.edvr.arch import build_edvr  # noqa: E402
from vsrdata.evaluation.engines import TorchEngine  # noqa: E402
from vsrdata.evaluation.ensemble import TTAEngine  # noqa: E402


def cost(preset: str, h: int, w: int, rounds: int) -> dict[str, float]:
    """Median seconds per window of each mode (interleaved rounds after one warm-up each)."""
    torch.manual_seed(0)
    base = TorchEngine(build_edvr(preset).eval(), "cpu")
    paths = {"none": base, "flip4": TTAEngine(base, "flip4"), "x8": TTAEngine(base, "x8")}
    x = torch.rand(1, base.config.num_frame, 3, h, w)
    for fn in paths.values():
        fn(x)
    times: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(rounds):
        for k, fn in paths.items():
            t0 = time.perf_counter()
            fn(x)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def gain(checkpoint: str | None, split: str | None, iters: int) -> dict[str, float]:
    """RGB PSNR of `evaluate` with each --tta mode (a tiny x2 model on the fixtures by default)."""
    from vsrdata.evaluation.evaluate import evaluate

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if checkpoint is None:
            from tests.test_scales import REDS_GT, _train_tiny
            from vsrdata.edvr.checkpoint import save_atomic
            from vsrdata.pipelines.make_lr import make_lr
            from vsrdata.pipelines.split_test import split_test

            make_lr(REDS_GT, tmp / "lq", scale=2, workers=1, progress=False)
            split_test(REDS_GT, tmp / "held", clips=["000"], lr_root=tmp / "lq", scale=2, workers=1, progress=False)
            model = _train_tiny(2, REDS_GT, tmp / "lq", ("001", "002"), iters=iters)
            checkpoint, split = str(tmp / "x2.pth"), str(tmp / "held")
            save_atomic({"params": model.state_dict()}, checkpoint)
        out = {}
        for mode in ("none", "flip4", "x8"):
            rep = evaluate(split, checkpoint, protocol="reds4", device="cpu", strips=False, tta=mode,
                           out_dir=tmp / mode)
            out[mode] = rep.average()["psnr"]
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="edvr-m", help="model timed (random weights)")
    ap.add_argument("--size", default="64x64", help="LR window size WxH")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checkpoint", default=None, help="model whose PSNR gain is measured (with --split)")
    ap.add_argument("--split", default=None, help="split-test output for --checkpoint")
    ap.add_argument("--iters", type=int, default=200, help="training steps of the default tiny x2 model")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.lower().split("x"))
    secs = cost(args.preset, h, w, args.rounds)
    print(f"cost, {args.preset} {w}x{h} LR window, {args.threads} thread(s), median of {args.rounds}:")
    for k, v in secs.items():
        print(f"  {k:6s} {v:8.3f} s/window  {v / secs['none']:5.2f}x one pass")
    psnr = gain(args.checkpoint, args.split, args.iters)
    print(f"PSNR (RGB) of {args.checkpoint or f'a tiny x2 model ({args.iters} steps) on fixture clip 000'}:")
    for k, v in psnr.items():
        print(f"  {k:6s} {v:7.3f} dB  ({v - psnr['none']:+.3f} dB)")


if __name__ == "__main__":
    main()
