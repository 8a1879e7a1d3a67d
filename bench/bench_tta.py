"""Test-time ensembles (`--tta`): the cost of flip4 / x8 relative to one pass, and their PSNR gain.

    python bench/bench_tta.py                          # EDVR-M timing + the gain on the `make demo` model
    python bench/bench_tta.py --demo-out demo_out      # reuse a finished `make demo` folder (the default)
    python bench/bench_tta.py --preset edvr-tiny --size 32x48 --rounds 5
    python bench/bench_tta.py --checkpoint net_g.pth --split datasets/REDS4   # PSNR of your model

1. Cost: one (1, 5, 3, H, W) window (random weights of --preset, CPU, --threads) through the
   torch engine as one pass, flip4 (one batch of 4) and x8 (one batch of 8 for a square window,
   else two of 4); the three take turns for --rounds rounds after a warm-up, the median time per
   window is printed with its ratio to one pass (flip4's target: below 4x).
2. Gain: `evaluate` of a checkpoint on a split with --tta none, flip4 and x8 (RGB PSNR, REDS4
   protocol). Without --checkpoint: the demo model, i.e. `python -m vsrdata.demo --out DIR`
   (what `make demo` runs: edvr-tiny trained on CPU with the demo's defaults, random flips and
   rotations on as in BasicSR's EDVR options) on its held-out clip 000. A DIR holding a finished
   demo (DIR/eval/report.json) is reused as it is; otherwise the demo runs (or resumes) there
   first, with --demo-iters iterations.
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


def demo_model(out: Path, iters: int) -> tuple[Path, Path]:
    """(checkpoint, held-out split) of the `make demo` run in `out`, running the demo first when
    `out` holds no finished one (it resumes an interrupted run)."""
    from vsrdata.demo import run_demo

    if not (out / "eval" / "report.json").is_file():
        print(f"running the demo into {out} ({iters} iterations; a finished one is reused next time)", flush=True)
        if run_demo(out, iterations=iters) != 0:
            sys.exit(f"Error: the demo failed in {out}")
    best = out / "train" / "best.pth"
    ckpts = sorted((out / "train" / "checkpoints").glob("*.pth"))
    ckpt = best if best.is_file() else (ckpts[-1] if ckpts else None)
    if ckpt is None:
        sys.exit(f"Error: no checkpoint under {out / 'train'}")
    return ckpt, out / "datasets" / "REDS4-mini"


def gain(checkpoint: Path, split: Path) -> dict[str, float]:
    """RGB PSNR (REDS4 protocol) of `evaluate` with each --tta mode."""
    from vsrdata.evaluation.evaluate import evaluate

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("none", "flip4", "x8"):
            rep = evaluate(split, checkpoint, protocol="reds4", device="cpu", strips=False, tta=mode,
                           out_dir=Path(tmp) / mode)
            out[mode] = rep.mean["psnr"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="edvr-m", help="model timed (random weights)")
    ap.add_argument("--size", default="64x64", help="LR window size WxH")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-cost", action="store_true", help="skip the timing, measure the PSNR gain only")
    ap.add_argument("--checkpoint", default=None, help="model whose PSNR gain is measured (with --split) "
                    "instead of the demo model")
    ap.add_argument("--split", default=None, help="split-test output for --checkpoint")
    ap.add_argument("--demo-out", type=Path, default=Path("demo_out"),
                    help="`make demo` output folder: reused when finished, else the demo runs there")
    ap.add_argument("--demo-iters", type=int, default=1200, help="training iterations when the demo runs")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.lower().split("x"))
    if not args.no_cost:
        secs = cost(args.preset, h, w, args.rounds)
        print(f"cost, {args.preset} {w}x{h} LR window, {args.threads} thread(s), median of {args.rounds}:")
        for k, v in secs.items():
            print(f"  {k:6s} {v:8.3f} s/window  {v / secs['none']:5.2f}x one pass")
    if args.checkpoint:
        if not args.split:
            sys.exit("Error: --checkpoint needs --split")
        ckpt, split = Path(args.checkpoint), Path(args.split)
    else:
        ckpt, split = demo_model(args.demo_out, args.demo_iters)
    psnr = gain(ckpt, split)
    print(f"PSNR (RGB, REDS4 protocol) of {ckpt} on {split}:")
    for k, v in psnr.items():
        print(f"  {k:6s} {v:7.3f} dB  ({v - psnr['none']:+.3f} dB)")


if __name__ == "__main__":
    main()
