"""Demo-sized proof of on-the-fly degradation (issue 18 section 3; run once, not a test).

1. The bicubic-trained demo model: `vsrdata.demo.run_demo` (what `make demo` runs: edvr-tiny,
   `--demo-iters` iterations on the bicubic LMDBs of the REDS fixture, clip 000 held out). A
   finished demo folder is reused (the demo resumes).
2. The same model and hyper-parameters (gt_size 64, batch 4, lr 1e-3, cosine over the run)
   trained `--iters` iterations from the GT LMDB alone with `--degradation realbasicvsr`
   (clip 000 held out; its validation LQ made once with seed 0).
3. Both scored (REDS4 protocol: RGB, crop 0) on the held-out clip 000 degraded with the same
   recipe but another seed (`--test-seed`, so neither the training draws nor the validation LQ),
   and on its clean bicubic LR (the demo's split).

Prints both PSNRs on both inputs, and whether the on-the-fly model beats the demo model on the
degraded clip and stays within `--margin` dB of it on clean bicubic input.

    PYTHONPATH=. nice -n 10 python bench/proof_onthefly.py --out /tmp/proof_onthefly
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _train_degraded(run_dir: Path, gt_db: Path, heldout: Path, iters: int, workers: int):
    from vsrdata.training.config import TrainConfig
    from vsrdata.training.loop import train

    cfg = TrainConfig(
        run_dir=str(run_dir), preset="edvr-tiny", dataset="reds", device="cpu",
        gt_path=str(gt_db), degradation="realbasicvsr", val_partition="REDS4", gt_size=64, batch_size=4,
        num_workers=workers, total_iter=iters, periods=[iters], lr=1e-3, ema_decay=0, val_path=str(heldout),
        val_freq=max(1, iters // 2), save_freq=max(1, iters // 4), print_freq=50, resume="auto", seed=10)
    return train(cfg, on_event=lambda e: print("  ", e.get("data") or e.get("message") or e, flush=True)
                 if e["kind"] in ("start", "info", "val") else None)


def _degraded_split(out: Path, heldout: Path, recipe: str, seed: int) -> Path:
    """The held-out split with its LR replaced by GT degraded with `recipe` / `seed`."""
    from vsrdata.core import splits
    from vsrdata.core.image_io import write_bytes_atomic
    from vsrdata.pipelines.degrade import degrade_tree

    record = splits.load_split(heldout)
    test = out / f"heldout_{recipe}_seed{seed}"
    lr = test / "LQ"
    degrade_tree(heldout / record["gt_dir"], lr, recipe=recipe, seed=seed, workers=1, progress=False)
    rec = dict(record, gt_dir=str((heldout / record["gt_dir"]).resolve()), lr_dir="LQ")
    write_bytes_atomic(test / splits.SPLIT_FILE, json.dumps(rec, indent=1).encode())
    return test


def _score(split: Path, ckpt: Path, out: Path, bicubic: dict) -> float:
    """The model's PSNR; `bicubic[split]` gets plain bicubic upsampling's PSNR of the same LR."""
    from vsrdata.evaluation.evaluate import evaluate

    report = evaluate(split, ckpt, preset="edvr-tiny", protocol="reds4", device="cpu", out_dir=out, progress=None,
                      with_bicubic=True)
    bicubic[split] = float(report.average()["bicubic_psnr"])
    return float(report.average()["psnr"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/proof_onthefly"))
    ap.add_argument("--demo-iters", type=int, default=1200, help="the demo model's iterations (make demo: 1200)")
    ap.add_argument("--iters", type=int, default=1000, help="on-the-fly training iterations")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the on-the-fly run")
    ap.add_argument("--test-seed", type=int, default=1234)
    ap.add_argument("--margin", type=float, default=1.0, help="allowed loss on clean bicubic input, dB")
    ap.add_argument("--bicubic-ckpt", type=Path, default=None,
                    help="score this bicubic-trained checkpoint (OUT/demo must hold the demo's data) instead of "
                         "running the demo (e.g. an earlier checkpoint when the machine is too slow)")
    ap.add_argument("--otf-ckpt", type=Path, default=None, help="score this on-the-fly checkpoint; no training")
    ap.add_argument("--otf-run", type=Path, default=None, help="run directory of the on-the-fly model "
                    "(default OUT/train_realbasicvsr; an existing finished run is reused)")
    args = ap.parse_args()
    import torch

    from vsrdata.demo import run_demo

    torch.set_num_threads(1)
    start = time.monotonic()
    demo = args.out / "demo"
    if args.bicubic_ckpt is None and run_demo(demo, iterations=args.demo_iters, workers=1) != 0:
        return 1
    heldout, gt_db = demo / "datasets" / "REDS4-mini", demo / "lmdb" / "train_sharp.lmdb"
    bicubic_ckpt = args.bicubic_ckpt or demo / "train" / "checkpoints" / f"iter_{args.demo_iters:08d}.pth"
    run_dir = args.otf_run or args.out / "train_realbasicvsr"
    if args.otf_ckpt is None:
        print(f"\n[proof] training edvr-tiny {args.iters} iterations with --degradation realbasicvsr", flush=True)
        _train_degraded(run_dir, gt_db, heldout, args.iters, args.workers)
    otf_ckpt = args.otf_ckpt or run_dir / "checkpoints" / f"iter_{args.iters:08d}.pth"
    timing = [r for r in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines()) if r.get("iter_time")]
    test = _degraded_split(args.out, heldout, "realbasicvsr", args.test_seed)
    rows = {}
    print(f"checkpoints: {bicubic_ckpt} vs {otf_ckpt}")
    up = {}
    for name, ckpt in (("bicubic-trained demo", bicubic_ckpt), ("realbasicvsr on the fly", otf_ckpt)):
        rows[name] = (_score(test, ckpt, args.out / "eval" / name.split()[0] / "degraded", up),
                      _score(heldout, ckpt, args.out / "eval" / name.split()[0] / "bicubic", up))
    print(f"\nheld-out clip 000 (REDS4 protocol, RGB PSNR dB); on-the-fly training "
          f"{timing[-1]['iter_time']:.2f} s/iteration (data wait {timing[-1]['data_time']:.2f} s) on this machine")
    print(f"{'model':<26} {'realbasicvsr seed ' + str(args.test_seed):>24} {'clean bicubic':>14}")
    for name, (deg, bic) in rows.items():
        print(f"{name:<26} {deg:>24.3f} {bic:>14.3f}")
    print(f"{'(bicubic upsampling)':<26} {up[test]:>24.3f} {up[heldout]:>14.3f}")
    (d0, b0), (d1, b1) = rows.values()
    print(f"degraded input: {d1 - d0:+.3f} dB ({'beats' if d1 > d0 else 'does NOT beat'} the demo model); "
          f"clean bicubic: {b1 - b0:+.3f} dB ({'within' if b0 - b1 <= args.margin else 'OUTSIDE'} the stated "
          f"margin of {args.margin} dB); total {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
