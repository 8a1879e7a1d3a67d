"""Training throughput of `vsrdata train` (library `train()`), and where the time goes.

CPU section (always): EDVR-M (64 ch, 10 blocks, 5 frames) on the REDS fixture frames with a small
patch. Reports for the full training loop: iterations/s, samples/s, and the share of the loop
spent waiting for data. Baselines measured in the same run:
  - "bare step": forward + Charbonnier + backward + Adam on one in-memory batch (no loader, no
    guard, no logging) -> the loop's overhead ratio;
  - "loader alone": samples/s of the DataLoader by itself -> how many times faster than the
    trainer consumes them (> 1: the loader is not the bottleneck).
GPU section (when CUDA is available): EDVR-L with gt_size 256, fp32 vs AMP bf16 (+ channels_last),
same ratios.

    python bench/bench_train.py                 # defaults (b4, gt 128, 10 it): ~40 s on 2 idle cores
    python bench/bench_train.py --iters 20 --gt-size 256 --batch 4 --workers 2
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vsrdata.core.layouts import find_clips  # noqa: E402
from vsrdata.core.resize import imresize  # noqa: E402
from vsrdata.edvr.arch import build_edvr  # noqa: E402
from vsrdata.training.losses import CharbonnierLoss  # noqa: E402
from vsrdata.training.loop import train  # noqa: E402
from vsrdata.training.optim import build_optimizer  # noqa: E402
from vsrdata.training.setup import build_train_dataset, make_loader  # noqa: E402
from vsrdata.training.config import TrainConfig  # noqa: E402


def make_data(gt_root: Path, tmp: Path, gt_size: int) -> tuple[Path, Path]:
    """(GT, LQ) folders: the REDS fixture (320x180), enlarged x2, x3... (bicubic) when gt_size needs
    bigger frames; LQ = MATLAB-exact bicubic x1/4."""
    factor = -(-gt_size // 180)
    gt_out, lq_out = (tmp / "gt", tmp / "lq")
    for clip in find_clips(gt_root):
        (gt_out / clip.name).mkdir(parents=True, exist_ok=True)
        (lq_out / clip.name).mkdir(parents=True, exist_ok=True)
        for f in clip.frames:
            img = cv2.imread(str(clip.path / f))
            if factor > 1:
                img = cv2.resize(img, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
            cv2.imwrite(str(gt_out / clip.name / f), img)
            cv2.imwrite(str(lq_out / clip.name / f), imresize(img, 0.25))
    return gt_out, lq_out


def bare_step_time(preset: str, batch: int, gt_size: int, iters: int, device: torch.device, amp: str = "none",
                   channels_last: bool = False) -> float:
    """Median seconds of one forward + loss + backward + Adam step on an in-memory batch."""
    model = build_edvr(preset).to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt, _ = build_optimizer(model, 4e-4)
    crit = CharbonnierLoss()
    lq = torch.rand(batch, model.config.num_frame, 3, gt_size // 4, gt_size // 4, device=device)
    gt = torch.rand(batch, 3, gt_size, gt_size, device=device)
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16

    def step():
        ctx = torch.autocast(device.type, dtype=dtype) if amp != "none" else contextlib.nullcontext()
        with ctx:
            out = model(lq)
        loss = crit(out.float(), gt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def dataset_rate(dataset, cfg: TrainConfig, n_batches: int) -> float:
    """Samples/s of the training DataLoader over `n_batches` batches after the first."""
    it = make_loader(dataset, cfg, 0, 1, 0, 0, False)
    next(it)
    t = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    return n_batches * cfg.batch_size / (time.perf_counter() - t)


def loader_rate(cfg: TrainConfig, n_batches: int) -> float:
    return dataset_rate(build_train_dataset(cfg, 5, 4), cfg, n_batches)


def loop_rate(cfg: TrainConfig) -> dict:
    return train(cfg).metrics


def report(title: str, m: dict, bare_s: float, loader: float, batch: int) -> None:
    loop_s = m["iter_time_median"]
    print(f"\n== {title}")
    print(f"  training loop : {1 / loop_s:.3f} it/s, {batch / loop_s:.2f} samples/s per process "
          f"(median step {loop_s:.3f} s; data wait {100 * m['data_time_share']:.1f}% of the loop)")
    print(f"  bare step     : {1 / bare_s:.3f} it/s (median {bare_s:.3f} s) -> loop/bare speed = {bare_s / loop_s:.2f}")
    print(f"  loader alone  : {loader:.2f} samples/s -> {loader * bare_s / batch:.1f}x what the bare step consumes")


def gpu_section(base: TrainConfig, tmp: Path, device: str, preset: str, gt_size: int, batch: int, iters: int,
                bare_iters: int) -> None:
    """EDVR-L (default) training on `device`: bare step fp32 vs bf16 (+ channels_last), then the loop."""
    dev = torch.device(device)
    if dev.type == "cuda":
        print(f"\nGPU: {torch.cuda.get_device_name(0)}")
    ggt, glq = make_data(ROOT / "fixtures" / "reds" / "train_sharp", tmp / "gpu_data", gt_size)
    gcfg = TrainConfig(**{**base.to_dict(), "run_dir": str(tmp / "gpu"), "preset": preset, "gt_size": gt_size,
                          "gt_path": str(ggt), "lq_path": str(glq), "batch_size": batch,
                          "num_workers": 4 if dev.type == "cuda" else 0, "total_iter": iters, "device": device,
                          "amp": "bf16", "channels_last": True})
    fp32 = bare_step_time(preset, batch, gt_size, bare_iters, dev)
    bf16 = bare_step_time(preset, batch, gt_size, bare_iters, dev, amp="bf16")
    bf16_cl = bare_step_time(preset, batch, gt_size, bare_iters, dev, amp="bf16", channels_last=True)
    print(f"  bare step {preset} b{batch} {gt_size}: fp32 {1 / fp32:.2f} it/s, "
          f"bf16 {1 / bf16:.2f} it/s ({fp32 / bf16:.2f}x), "
          f"bf16+channels_last {1 / bf16_cl:.2f} it/s ({fp32 / bf16_cl:.2f}x)")
    gm = loop_rate(gcfg)
    load = loader_rate(TrainConfig(**{**gcfg.to_dict(), "num_workers": 0}), 5 if dev.type == "cuda" else 1)
    report(f"{dev.type.upper()} {preset} AMP bf16 + channels_last, batch {batch}, gt {gt_size}", gm, bf16_cl, load,
           batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--gt-size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--preset", default="edvr-m")
    ap.add_argument("--gpu-iters", type=int, default=30)
    ap.add_argument("--gpu-only", action="store_true", help="skip the CPU section")
    ap.add_argument("--smoke", action="store_true",
                    help="run the GPU section on the CPU with edvr-tiny, 2 iterations (checks this script)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    try:
        gt, lq = make_data(ROOT / "fixtures" / "reds" / "train_sharp", tmp / "cpu_data", args.gt_size)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.preset}, batch {args.batch}, "
              f"gt_size {args.gt_size} (LQ {args.gt_size // 4}), {args.iters} iterations, "
              f"{args.workers} loader worker(s)")
        cfg = TrainConfig(run_dir=str(tmp / "cpu"), preset=args.preset, dataset="clips", gt_path=str(gt),
                          lq_path=str(lq), gt_size=args.gt_size, batch_size=args.batch, num_workers=args.workers,
                          total_iter=args.iters, periods=[1000], save_freq=10**6, print_freq=10**6, ema_decay=0.999,
                          device="cpu")
        if not args.gpu_only:
            # bare step, loop, bare step again: the box may be shared, take the faster bare figure
            bare = bare_step_time(args.preset, args.batch, args.gt_size, max(3, args.iters // 2),
                                  torch.device("cpu"))
            m = loop_rate(cfg)
            bare = min(bare, bare_step_time(args.preset, args.batch, args.gt_size, max(3, args.iters // 2),
                                            torch.device("cpu")))
            load = loader_rate(TrainConfig(**{**cfg.to_dict(), "num_workers": 0}), 10)
            report(f"CPU {args.preset} (fp32)", m, bare, load, args.batch)

        if args.smoke:
            gpu_section(cfg, tmp, "cpu", "edvr-tiny", 64, 1, 2, 1)
        elif torch.cuda.is_available():
            gpu_section(cfg, tmp, "cuda", "edvr-l", 256, 4, args.gpu_iters, 10)
        else:
            print("\n(no CUDA device: GPU section skipped)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
