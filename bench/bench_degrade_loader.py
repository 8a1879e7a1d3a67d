"""Training loader with on-the-fly degradation (`train --degradation`): samples/s per worker count,
and how many workers keep one EDVR-M CPU training step busy.

Measured in one run, on the REDS fixture frames (enlarged when gt_size needs it):
  - baseline: the paired loader (LQ read from disk, MATLAB bicubic made beforehand), 0 workers;
  - per recipe and worker count: samples/s of `DegradedClipDataset` through the training
    DataLoader (`setup.make_loader`: TrainSampler, prefetch 4), first batch (worker start) excluded;
  - one EDVR-M step (forward + Charbonnier + backward + Adam, batch B, 5 frames) on the CPU.
Workers needed = ceil(B / (step seconds x samples/s of ONE worker)): the loader count that
produces a batch per step when they scale linearly (they do only up to the free cores: compare
the measured rows with `cores`).

    python bench/bench_degrade_loader.py                       # gt 256, batch 4, workers 0,1,2
    python bench/bench_degrade_loader.py --gt-size 128 --batches 3 --recipes realbasicvsr
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import bare_step_time, dataset_rate, make_data  # noqa: E402
from vsrdata.training.config import TrainConfig  # noqa: E402
from vsrdata.training.data import ClipDataset, FrameStore  # noqa: E402
from vsrdata.training.onthefly import DegradedClipDataset, resolve_recipe  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", default="realbasicvsr,realesrgan")
    ap.add_argument("--gt-size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--workers", default="0,1,2")
    ap.add_argument("--batches", type=int, default=4, help="timed batches per configuration")
    ap.add_argument("--step-iters", type=int, default=2, help="timed EDVR-M steps (after one warm-up)")
    ap.add_argument("--preset", default="edvr-m")
    args = ap.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="bench_degrade_loader_"))
    try:
        gt, lq = make_data(ROOT / "fixtures" / "reds" / "train_sharp", tmp / "data", args.gt_size)
        print(f"torch {torch.__version__}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads; "
              f"5-frame windows, gt_size {args.gt_size} (LQ {args.gt_size // 4}), batch {args.batch}")
        cfg = TrainConfig(gt_path=str(gt), gt_size=args.gt_size, batch_size=args.batch, seed=0)
        common = dict(num_frame=5, gt_size=args.gt_size, scale=4)
        paired = ClipDataset(FrameStore(gt), FrameStore(lq), **common)
        base = dataset_rate(paired, TrainConfig(**{**cfg.to_dict(), "num_workers": 0}), args.batches)
        print(f"baseline, paired loader (LQ from disk), 0 workers: {base:.2f} samples/s")
        step = bare_step_time(args.preset, args.batch, args.gt_size, args.step_iters, torch.device("cpu"))
        print(f"{args.preset} CPU step (batch {args.batch}): {step:.2f} s -> consumes {args.batch / step:.2f} samples/s")
        for name in args.recipes.split(","):
            ds = DegradedClipDataset(FrameStore(gt), resolve_recipe(name, 4), 0, **common)
            rates = {}
            for w in workers:
                r = rates[w] = dataset_rate(ds, TrainConfig(**{**cfg.to_dict(), "num_workers": w}), args.batches)
                print(f"  {name:<13} {w} worker(s): {r:7.2f} samples/s ({r / base:.3f}x the paired loader; "
                      f"{r * step / args.batch:.2f}x what one {args.preset} step consumes)")
            one = rates[min(workers)] / max(1, min(workers))  # one process (0 workers: the main one)
            need = math.ceil(args.batch / (step * one))
            print(f"  {name:<13} -> {need} worker(s) keep one {args.preset} CPU step busy "
                  f"({one:.2f} samples/s per worker, {args.batch / step:.2f} needed)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
