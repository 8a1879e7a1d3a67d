"""`python -m vsrdata.demo`: the whole pipeline on the bundled real footage (what `make demo` runs).

Steps, each through the same library functions the CLI commands call:

1. make-lr    fixtures/reds/train_sharp -> OUT/reds/train_sharp_bicubic/X4 (MATLAB bicubic x4),
              and the Vimeo90K septuplet fixture -> OUT/vimeo_septuplet_matlabLRx4
2. split-test the held-out clip 000 (the REDS4 member present in the miniature REDS tree) ->
              OUT/datasets/REDS4-mini, and the odd-size clip (padding recorded) -> OUT/datasets/odd_size
3. to-lmdb    GT and LR trees -> OUT/lmdb/*.lmdb (BasicSR layout and keys)
4. train      a small EDVR (`edvr-tiny`) on CPU on the LMDBs, REDS4 left out, validated on clip 000
5. evaluate   the trained model against the bicubic baseline on clip 000 (REDS4 protocol: RGB)

Every step is resumable, so re-running the demo after an interruption finishes the work; with
`--fresh` the output folder is removed first. The run takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _step(n: int, text: str) -> None:
    print(f"\n[{n}/5] {text}", flush=True)


def run_demo(out: Path, *, iterations: int = 1200, workers: int = 2, fresh: bool = False) -> int:
    """Run the five steps into `out` and print the results; returns the exit status."""
    if not (FIXTURES / "reds" / "train_sharp").is_dir():
        print(f"Error: fixtures not found under {FIXTURES} (run from a clone of the repository)",
              file=sys.stderr)
        return 1
    if fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    gt_root = FIXTURES / "reds" / "train_sharp"
    lr_root = _make_lr_step(out, gt_root, workers)
    heldout = _split_test_step(out, gt_root, lr_root, workers)
    gt_db, lq_db = _to_lmdb_step(out, gt_root, lr_root, workers)
    result = _train_step(out, gt_db, lq_db, heldout, iterations)
    ckpt = result.best_checkpoint or result.last_checkpoint
    report = _evaluate_step(out, heldout, ckpt)
    print("\nResults:")
    print(f"  LR frames         {lr_root}")
    print(f"  test splits       {out / 'datasets'} (split.json records sizes and padding)")
    print(f"  LMDBs             {gt_db}  {lq_db}")
    print(f"  training run      {result.run_dir} (log.jsonl, checkpoints/)")
    if result.curve_png:
        print(f"  curve plot        {result.curve_png}")
    for key in ("table", "json", "csv"):
        if key in report.paths:
            print(f"  report {key:<10} {report.paths[key]}")
    strips = Path(report.paths.get("strips", out / "eval" / "compare"))
    for png in sorted(strips.glob("*.png")):
        print(f"  comparison image  {png}  (bicubic | model | GT)")
    print(f"\nDone in {time.monotonic() - start:.0f} s.")
    return 0


def _make_lr_step(out: Path, gt_root: Path, workers: int) -> Path:
    """Step 1: bicubic x4 LR frames of the REDS and Vimeo fixtures; returns the REDS LR root."""
    from vsrdata.pipelines.make_lr import make_lr

    lr_root = out / "reds" / "train_sharp_bicubic" / "X4"
    _step(1, "make-lr: MATLAB-exact bicubic x4 LR frames")
    print("  REDS  ", make_lr(gt_root, lr_root, workers=workers, progress=False).line())
    print("  Vimeo ", make_lr(FIXTURES / "vimeo_septuplet", out / "vimeo_septuplet_matlabLRx4",
                              workers=workers, progress=False).line())
    return lr_root


def _split_test_step(out: Path, gt_root: Path, lr_root: Path, workers: int) -> Path:
    """Step 2: the held-out clip and the odd-size fixture as test splits; returns the held-out split."""
    from vsrdata.pipelines.split_test import split_test

    _step(2, "split-test: held-out clip with integer frame names, sizes padded to x4")
    heldout = out / "datasets" / "REDS4-mini"
    print("  ", split_test(gt_root, heldout, clips=["000"], lr_root=lr_root, workers=workers,
                           progress=False).line())
    print("  ", split_test(FIXTURES / "odd_size", out / "datasets" / "odd_size", workers=workers,
                           progress=False).line())
    return heldout


def _to_lmdb_step(out: Path, gt_root: Path, lr_root: Path, workers: int) -> tuple[Path, Path]:
    """Step 3: the GT and LQ LMDBs (a complete one is kept); returns their paths."""
    from vsrdata.pipelines.to_lmdb import build_lmdb

    _step(3, "to-lmdb: streaming BasicSR-style LMDBs (PNG level 1, meta_info.txt)")
    gt_db, lq_db = out / "lmdb" / "train_sharp.lmdb", out / "lmdb" / "train_sharp_bicubic_X4.lmdb"
    for src, db in ((gt_root, gt_db), (lr_root, lq_db)):
        if (db / "meta_info.txt").exists():
            print(f"   {db} is complete; kept")
        else:
            print("  ", build_lmdb(src, db, workers=workers).line())
    return gt_db, lq_db


def _train_step(out: Path, gt_db: Path, lq_db: Path, heldout: Path, iterations: int):
    """Step 4: train edvr-tiny on CPU (resumes a killed run); returns the training result."""
    from vsrdata.training.config import TrainConfig
    from vsrdata.training.loop import train

    _step(4, f"train: edvr-tiny on CPU for {iterations} iterations (REDS4 clip 000 held out)")
    cfg = TrainConfig(
        run_dir=str(out / "train"), preset="edvr-tiny", dataset="reds", device="cpu",
        gt_path=str(gt_db), lq_path=str(lq_db), val_partition="REDS4",
        gt_size=64, batch_size=4, num_workers=0, total_iter=iterations, periods=[iterations],
        lr=1e-3, ema_decay=0, val_path=str(heldout), val_freq=max(1, iterations // 3),
        save_freq=max(1, iterations // 3), print_freq=20, resume="auto")
    result = train(cfg)
    print(f"   checkpoint: {result.best_checkpoint or result.last_checkpoint}")
    return result


def _evaluate_step(out: Path, heldout: Path, ckpt):
    """Step 5: evaluate the checkpoint against bicubic and print the table and verdict; returns the report."""
    from vsrdata.evaluation.evaluate import evaluate

    _step(5, "evaluate: model vs bicubic on the held-out clip (REDS4 protocol: RGB, crop 0)")
    report = evaluate(heldout, ckpt, preset="edvr-tiny", protocol="reds4", with_bicubic=True, device="cpu",
                      out_dir=out / "eval", progress=None)
    print()
    print(report.table())
    avg = report.mean
    model_psnr, bicubic_psnr = avg["psnr"], avg.get("bicubic_psnr")
    print()
    if bicubic_psnr is not None and model_psnr > bicubic_psnr:
        verdict = (f"The model beats bicubic on the held-out clip by {model_psnr - bicubic_psnr:+.2f} dB "
                   f"({model_psnr:.2f} vs {bicubic_psnr:.2f} dB).")
    else:
        verdict = (f"Honest result: after this short CPU run the model does NOT beat bicubic "
                   f"({model_psnr:.2f} vs {bicubic_psnr} dB). Train longer: `make demo DEMO_ITERS=3000`.")
    print(verdict)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vsrdata.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    ap.add_argument("--iterations", type=int, default=1200, help="training iterations (default 1200)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes for the data steps")
    ap.add_argument("--fresh", action="store_true", help="delete OUT first instead of resuming")
    args = ap.parse_args(argv)
    from vsrdata.errors import VsrDataError

    try:
        return run_demo(args.out, iterations=args.iterations, workers=args.workers, fresh=args.fresh)
    except VsrDataError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
