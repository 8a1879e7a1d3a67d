"""Demo-sized proof of on-the-fly degradation (issue 18 section 3; run once, not a test).

Claim: edvr-tiny trained `--iters` (1000) iterations from GT alone with `--degradation realbasicvsr`
beats the bicubic-trained demo model on the held-out clip degraded with that recipe, and is no
worse than it by more than `--margin` dB on the clip's clean bicubic LR.

1. The bicubic-trained demo model: `vsrdata.demo.run_demo` (what `make demo` runs: edvr-tiny,
   `--demo-iters` iterations on the bicubic LMDBs of the REDS fixture, clip 000 held out). A
   demo folder is reused (the demo resumes a killed run).
2. The on-the-fly model: the demo's model and training hyper-parameters (batch 4, lr 1e-3, cosine
   over the run, seed 10) on GT patches of 96 (`--gt-size`; the demo's are 64), trained `--iters`
   iterations from the GT LMDB alone with `--degradation realbasicvsr`. Clip 000 is held out; its
   validation LQ is made once with seed 0. An existing finished run is reused. Why 96: larger
   crops are nearer the published recipe's 256 crops (the fixture frames are 180 high), and they
   bring the patches' damage nearer that of whole frames (step 3: -3.78 dB at 96, -4.02 at 64,
   whole frames -3.45); 96 was kept over 64 on the validation PSNR (the held-out clip degraded with
   seed 0, never a test seed): 23.106 vs 23.007 dB. Both were scored (results below).
3. Distribution check (before scoring): the recipe's damage, i.e. the PSNR of bicubic upsampling of
   the recipe's LQ minus that of the bicubic LQ of the same GT, on training patches drawn as the
   loader draws them (gt_size crops, 5 frames, draws from (seed, "k/j")) and on full 5-frame
   windows of the same clips, degraded as `vsrdata degrade` degrades a clip. Equal means show that
   degrading crops (as RealBasicVSR degrades its crops) trains on the damage that a whole clip
   gets; a gap of dB would be a train/test mismatch (measured: a few tenths, see step 2).
4. Scoring (REDS4 protocol: RGB, crop 0) on held-out clip 000 degraded with the recipe at every
   seed of `--test-seeds` (neither the training draws nor the validation seed 0), and on its clean
   bicubic LR (the demo's split). Several draws, because one draw is a noisy test: the recipe
   ranges from mild to severe (bicubic upsampling of clip 000 gave 18.6-24.4 dB over seeds 0-11),
   and which model wins on one draw depends on how severe it is. Every seed's PSNRs are printed;
   the verdict is on the mean over the seeds (the number of seeds won is printed too).

The margin (`--margin`, 1.5 dB) was set before the final run, from this argument: the realbasicvsr
recipe never yields a clean bicubic LR (every draw adds Gaussian or Poisson noise, passes through
a video codec, and with probability 0.8 each gets a second blur and a sinc filter), so a model
trained on it alone restores damage that clean input lacks. REALWORLD_NOTES gives no published
figure for that loss; we accept at most 1.5 dB below the bicubic-trained model, which at demo
scale (where the demo model gains a few tenths of a dB over plain bicubic upsampling) means about
1 dB below plain bicubic upsampling. A first measurement (one test draw, the 400-iteration demo
checkpoint: -1.30 dB on clean input) was known when the margin was chosen.

Measured on 2 shared CPU cores (2026-12-03; the demo model at 1200 iterations: 26.339 dB clean,
22.587 dB mean of seeds 101-108; plain bicubic upsampling 25.944 / 22.543):
  gt_size 96 (default): 22.703 dB mean degraded (+0.116, better on 4 of 8 seeds), 24.931 clean (-1.408)
  gt_size 64:           22.642 dB mean degraded (+0.055, better on 3 of 8 seeds), 24.944 clean (-1.395)
The claim holds, narrowly: the on-the-fly model gains up to +0.6 dB on the severe draws and loses
about 0.1 dB on the mild ones; its mean gain is about one standard error of the per-seed
differences, and on clean input it sits near the margin.

Exit status 0 when both claims hold, 1 when one fails. Results also go to OUT/proof.json.

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

RECIPE = "realbasicvsr"
NUM_FRAME, SCALE = 5, 4


def _train_degraded(run_dir: Path, gt_db: Path, heldout: Path, args):
    from vsrdata.training.config import TrainConfig
    from vsrdata.training.loop import train

    cfg = TrainConfig(
        run_dir=str(run_dir), preset="edvr-tiny", dataset="reds", device="cpu",
        gt_path=str(gt_db), degradation=RECIPE, val_partition="REDS4", gt_size=args.gt_size,
        batch_size=args.batch_size, num_workers=args.workers, total_iter=args.iters, periods=[args.iters], lr=1e-3,
        ema_decay=0, val_path=str(heldout), val_freq=max(1, args.iters // 2), save_freq=max(1, args.iters // 4),
        print_freq=50, resume="auto", seed=10)
    return train(cfg, on_event=lambda e: print("  ", e.get("data") or e.get("message") or e, flush=True)
                 if e["kind"] in ("start", "info", "val") else None)


def _psnr(a, b) -> float:
    import numpy as np

    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / mse))


def _patch_damage(gt_db: Path, count: int, gt_size: int) -> list[float]:
    """Damage (dB) of the recipe on `count` training samples drawn as the loader draws them."""
    import numpy as np

    from vsrdata.core.degradations import load_recipe
    from vsrdata.evaluation.scoring import bicubic_rgb
    from vsrdata.training.data import FrameStore
    from vsrdata.training.onthefly import DegradedClipDataset
    from vsrdata.training.sampler import SampleKey

    def u8(t):  # (3, H, W) float RGB -> HxWx3 uint8 BGR
        return np.clip(np.round(t.numpy().transpose(1, 2, 0)[:, :, ::-1] * 255), 0, 255).astype(np.uint8)

    store, psnrs = FrameStore(gt_db), {}
    for name in (RECIPE, "bi"):
        ds = DegradedClipDataset(store, load_recipe(name, SCALE), 10, num_frame=NUM_FRAME, gt_size=gt_size,
                                 scale=SCALE, exclude_clips=["000", "011", "015", "020"])
        samples = (ds[SampleKey(k % len(ds), k, f"{k + 1}/0")] for k in range(count))
        psnrs[name] = [_psnr(bicubic_rgb(u8(s["lq"][NUM_FRAME // 2]), SCALE), u8(s["gt"])[:, :, ::-1])
                       for s in samples]
    return [a - b for a, b in zip(psnrs[RECIPE], psnrs["bi"])]


def _frame_damage(gt_db: Path, count: int) -> list[float]:
    """Damage (dB) of the recipe on the centre frame of `count` full 5-frame windows of the training clips."""
    from vsrdata.core.degradations import apply, load_recipe, sample
    from vsrdata.evaluation.scoring import bicubic_rgb
    from vsrdata.training.data import FrameStore

    store = FrameStore(gt_db)
    clips = [c for c in sorted(store.clips) if c not in ("000", "011", "015", "020")]
    out = []
    for k in range(count):
        clip = clips[k % len(clips)]
        names = store.clips[clip]
        first = (k // len(clips)) % (len(names) - NUM_FRAME + 1)
        window = [store.get(clip, f) for f in names[first:first + NUM_FRAME]]
        gt = window[NUM_FRAME // 2][:, :, ::-1]
        psnr = {name: _psnr(bicubic_rgb(apply(window, sample(load_recipe(name, SCALE), k, clip, NUM_FRAME,
                                                             window[0].shape[:2]))[NUM_FRAME // 2], SCALE), gt)
                for name in (RECIPE, "bi")}
        out.append(psnr[RECIPE] - psnr["bi"])
    return out


def _distribution_check(gt_db: Path, gt_size: int) -> dict:
    import numpy as np

    patches, frames = _patch_damage(gt_db, 96, gt_size), _frame_damage(gt_db, 32)
    h, w = _frame_size(gt_db)
    print(f"\n[proof] {RECIPE} damage (bicubic-upsampling PSNR of its LQ minus that of the bicubic LQ), mean "
          f"(sd):\n   training patches {gt_size}x{gt_size} ({len(patches)} samples as the loader draws them): "
          f"{np.mean(patches):+.2f} dB ({np.std(patches):.2f})\n   full {w}x{h} windows ({len(frames)} draws): "
          f"{np.mean(frames):+.2f} dB ({np.std(frames):.2f})", flush=True)
    return {"patch_damage_db": float(np.mean(patches)), "frame_damage_db": float(np.mean(frames))}


def _frame_size(gt_db: Path) -> tuple[int, int]:
    from vsrdata.training.data import FrameStore

    store = FrameStore(gt_db)
    clip = sorted(store.clips)[0]
    return store.shape(clip, store.clips[clip][0])


def _degraded_split(out: Path, heldout: Path, seed: int) -> Path:
    """The held-out split with its LR replaced by GT degraded with the recipe and `seed`."""
    from vsrdata.core import splits
    from vsrdata.core.image_io import write_bytes_atomic
    from vsrdata.pipelines.degrade import degrade_tree

    record = splits.load_split(heldout)
    test = out / f"heldout_{RECIPE}_seed{seed}"
    degrade_tree(heldout / record["gt_dir"], test / "LQ", recipe=RECIPE, seed=seed, workers=1, progress=False,
                 overwrite=True)
    rec = dict(record, gt_dir=str((heldout / record["gt_dir"]).resolve()), lr_dir="LQ")
    write_bytes_atomic(test / splits.SPLIT_FILE, json.dumps(rec, indent=1).encode())
    return test


def _score(split: Path, ckpt: Path, out: Path) -> tuple[float, float]:
    """(the model's PSNR, plain bicubic upsampling's PSNR) on `split`."""
    from vsrdata.evaluation.evaluate import evaluate

    report = evaluate(split, ckpt, preset="edvr-tiny", protocol="reds4", device="cpu", out_dir=out, progress=None,
                      with_bicubic=True)
    avg = report.mean
    return float(avg["psnr"]), float(avg["bicubic_psnr"])


def _seeds(text: str) -> list[int]:
    """'101-108' or '1,5,9' -> seeds."""
    seeds = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds += list(range(int(lo), int(hi or lo) + 1))
    return seeds


def _score_all(args, heldout: Path, ckpts: dict) -> dict:
    """Per test seed and on clean input: {row: {model or 'bicubic': PSNR}}."""
    rows = {}
    for seed in args.test_seeds:
        test = _degraded_split(args.out, heldout, seed)
        row = {}
        for name, ckpt in ckpts.items():
            row[name], row["bicubic"] = _score(test, ckpt, args.out / "eval" / name / f"seed{seed}")
        rows[f"seed {seed}"] = row
        print(f"   {RECIPE} seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
    clean = {}
    for name, ckpt in ckpts.items():
        clean[name], clean["bicubic"] = _score(heldout, ckpt, args.out / "eval" / name / "clean")
    rows["clean bicubic"] = clean
    return rows


def _report(rows: dict, margin: float) -> tuple[bool, dict]:
    """Print the table and the verdict; (both claims hold, summary)."""
    import numpy as np

    degraded = [r for k, r in rows.items() if k.startswith("seed")]
    mean = {m: float(np.mean([r[m] for r in degraded])) for m in ("demo", "otf", "bicubic")}
    wins = sum(r["otf"] > r["demo"] for r in degraded)
    print(f"\nheld-out clip 000, RGB PSNR dB (REDS4 protocol)\n{'input':<22} {'bicubic-trained demo':>21} "
          f"{RECIPE + ' on the fly':>24} {'bicubic upsampling':>19}")
    table = [(k, r) for k, r in rows.items() if k.startswith("seed")] + [(f"mean of {len(degraded)} seeds", mean)]
    for key, r in table + [("clean bicubic", rows["clean bicubic"])]:
        label = f"{RECIPE} {key}" if key.startswith("seed") else key
        print(f"{label:<22} {r['demo']:>21.3f} {r['otf']:>24.3f} {r['bicubic']:>19.3f}")
    clean = rows["clean bicubic"]
    beats, within = mean["otf"] > mean["demo"], clean["demo"] - clean["otf"] <= margin
    print(f"degraded input: {mean['otf'] - mean['demo']:+.3f} dB on the mean "
          f"({'beats' if beats else 'does NOT beat'} the demo model; better on {wins} of {len(degraded)} seeds)")
    print(f"clean bicubic input: {clean['otf'] - clean['demo']:+.3f} dB ({'within' if within else 'OUTSIDE'} "
          f"the stated margin of {margin} dB)")
    return beats and within, {"mean": mean, "wins": wins, "beats": beats, "within_margin": within}


def _args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/proof_onthefly"))
    ap.add_argument("--demo-iters", type=int, default=1200, help="the demo model's iterations (make demo: 1200)")
    ap.add_argument("--iters", type=int, default=1000, help="on-the-fly training iterations (the claim: 1000)")
    ap.add_argument("--workers", type=int, default=1, help="DataLoader workers of the on-the-fly run")
    ap.add_argument("--gt-size", type=int, default=96, help="GT patch size of the on-the-fly run (default 96; demo: 64)")
    ap.add_argument("--batch-size", type=int, default=4, help="batch size of the on-the-fly run (demo: 4)")
    ap.add_argument("--test-seeds", type=_seeds, default=_seeds("101-108"),
                    help="degradation seeds of the held-out clip, e.g. 101-108 (default) or 1,5,9")
    ap.add_argument("--margin", type=float, default=1.5,
                    help="allowed loss on clean bicubic input vs the demo model, dB (default 1.5; the argument "
                         "is in the description above)")
    ap.add_argument("--bicubic-ckpt", type=Path, default=None,
                    help="score this bicubic-trained checkpoint (OUT/demo must hold the demo's data) instead of "
                         "running the demo (e.g. an earlier checkpoint when the machine is too slow)")
    ap.add_argument("--otf-ckpt", type=Path, default=None, help="score this on-the-fly checkpoint; no training")
    ap.add_argument("--otf-run", type=Path, default=None, help="run directory of the on-the-fly model "
                    "(default OUT/train_realbasicvsr_gtG_bB; an existing finished run is reused)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = _args(argv)
    import torch

    from vsrdata.demo import run_demo

    torch.set_num_threads(1)
    start = time.monotonic()
    demo = args.out / "demo"
    if args.bicubic_ckpt is None and run_demo(demo, iterations=args.demo_iters, workers=1) != 0:
        return 1
    heldout, gt_db = demo / "datasets" / "REDS4-mini", demo / "lmdb" / "train_sharp.lmdb"
    bicubic_ckpt = args.bicubic_ckpt or demo / "train" / "checkpoints" / f"iter_{args.demo_iters:08d}.pth"
    run_dir = args.otf_run or args.out / f"train_{RECIPE}_gt{args.gt_size}_b{args.batch_size}"
    if args.otf_ckpt is None:
        print(f"\n[proof] training edvr-tiny {args.iters} iterations with --degradation {RECIPE}", flush=True)
        _train_degraded(run_dir, gt_db, heldout, args)
    otf_ckpt = args.otf_ckpt or run_dir / "checkpoints" / f"iter_{args.iters:08d}.pth"
    check = _distribution_check(gt_db, args.gt_size)
    print(f"\n[proof] scoring {bicubic_ckpt} (demo) and {otf_ckpt} (otf)", flush=True)
    rows = _score_all(args, heldout, {"demo": bicubic_ckpt, "otf": otf_ckpt})
    ok, summary = _report(rows, args.margin)
    timing = [r for r in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines()) if r.get("iter_time")] \
        if (run_dir / "log.jsonl").is_file() else []
    if timing:
        print(f"on-the-fly training: {timing[-1]['iter_time']:.2f} s/iteration (data wait "
              f"{timing[-1]['data_time']:.2f} s) on this machine")
    result = {"checkpoints": {"demo": str(bicubic_ckpt), "otf": str(otf_ckpt)}, "test_seeds": args.test_seeds, "gt_size": args.gt_size, "batch_size": args.batch_size,
              "margin_db": args.margin, "distribution_check": check, "rows": rows, **summary, "holds": ok}
    from vsrdata.core.image_io import write_bytes_atomic

    write_bytes_atomic(args.out / "proof.json", (json.dumps(result, indent=1) + "\n").encode())
    print(f"proof {'HOLDS' if ok else 'FAILS'}; {args.out / 'proof.json'}; total {time.monotonic() - start:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
