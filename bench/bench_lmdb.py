"""Benchmark `vsrdata to-lmdb`: peak memory and throughput against baselines run in the same run.

For each size N (default 1,000 and 10,000 frames; the 448x256 fixture frames of
fixtures/vimeo_septuplet tiled by hard links into a temporary REDS-like tree), three builders
run as separate subprocesses, each with the same number of spawn workers:

- ours:  `vsrdata.pipelines.to_lmdb.build_lmdb` (streaming, bounded window, batched commits);
- naive: BasicSR's `make_lmdb_from_imgs(multiprocessing_read=True)` convention: the pool reads
         and PNG-encodes every frame into a dict, then the LMDB is opened with map_size =
         first PNG x N x 10 and written, committing every 5,000 images;
- floor: the same workers, dispatched the same way (ordered, bounded window), read + PNG-encode
         the same frames; the bytes reach the parent and are dropped: no LMDB at all, the most
         any builder with one writer can reach.

Memory = peak over the run of RssAnon summed over the builder process and all its children,
sampled every 50 ms from /proc (MEASUREMENTS.md "LMDB builds": file-backed pages such as the
LMDB map are left out, the kernel can drop them). Throughput = frames / seconds measured inside
the builder (pool start-up included for all three).

    python bench/bench_lmdb.py                       # sizes 1000,10000, 2 workers
    python bench/bench_lmdb.py --sizes 1000 --workers 2 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _measure import run_sampled  # noqa: E402

FIXTURE = ROOT / "fixtures" / "vimeo_septuplet" / "sequences"
MIB = 1 << 20

_OURS = """
import json, sys, time
from vsrdata.pipelines.to_lmdb import build_lmdb
src, db, workers, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t = time.perf_counter()
s = build_lmdb(src, db, workers=workers)
assert s.written == n, s
print(json.dumps({"seconds": time.perf_counter() - t, "frames": s.written}))
"""

_NAIVE = """
import json, os, sys, time
import lmdb
from vsrdata.core.layouts import find_clips
import multiprocessing
from vsrdata.pipelines.to_lmdb import read_encode
src, db, workers, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t = time.perf_counter()
paths = [str(p) for c in find_clips(src) for p in c.frame_paths()]
keys = [os.path.relpath(p, src)[:-4] for p in paths]
pool = multiprocessing.get_context("spawn").Pool(workers)
dataset, shapes = {}, {}
def callback(result, key):
    dataset[key], shapes[key] = result[0], result[1]   # BasicSR: everything in RAM first
for path, key in zip(paths, keys):
    pool.apply_async(read_encode, (path, 1), callback=lambda r, key=key: callback(r, key))
pool.close()
pool.join()
env = lmdb.open(db, map_size=len(dataset[keys[0]]) * len(keys) * 10)
txn = env.begin(write=True)
with open(os.path.join(db, "meta_info.txt"), "w") as meta:
    for idx, key in enumerate(keys):
        txn.put(key.encode("ascii"), dataset[key])
        h, w, c = shapes[key]
        meta.write(f"{key}.png ({h},{w},{c}) 1\\n")
        if idx % 5000 == 0:
            txn.commit()
            txn = env.begin(write=True)
txn.commit()
env.close()
print(json.dumps({"seconds": time.perf_counter() - t, "frames": len(keys)}))
"""

_FLOOR = """
import json, sys, time
from contextlib import closing
from vsrdata.core.layouts import find_clips
from vsrdata.pipelines.runner import map_ordered
src, db, workers, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t = time.perf_counter()
items = [("k", str(p), 1) for c in find_clips(src) for p in c.frame_paths()]
count = 0
# the same dispatch as build_lmdb (runner.map_ordered, 4 x workers in flight); bytes dropped
with closing(map_ordered("vsrdata.pipelines.to_lmdb:_encode", items, workers=workers)) as results:
    for _ in results:
        count += 1
assert count == n
print(json.dumps({"seconds": time.perf_counter() - t, "frames": count}))
"""



def make_tree(root: Path, n: int, per_clip: int = 100) -> Path:
    sources = sorted(FIXTURE.glob("*/*/im*.png"))
    if not sources:
        raise SystemExit(f"no fixture frames under {FIXTURE}")
    for i in range(n):
        clip = root / f"{i // per_clip:04d}"
        if i % per_clip == 0:
            clip.mkdir(parents=True)
        dst = clip / f"{i % per_clip:08d}.png"
        try:
            os.link(sources[i % len(sources)], dst)
        except OSError:
            shutil.copyfile(sources[i % len(sources)], dst)
    return root


def run_builder(name: str, code: str, src: Path, db: Path, workers: int, n: int) -> dict:
    """Run one builder in a subprocess, sampling its process tree's RssAnon every 50 ms."""
    result = run_sampled(f"{name} builder", code, [str(src), str(db), str(workers), str(n)])
    result["fps"] = result["frames"] / result["seconds"]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000", help="comma-separated frame counts")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-naive-above", type=int, default=None,
                    help="skip the naive builder above this many frames (it needs RAM ~ dataset)")
    ap.add_argument("--repeat", type=int, default=1, help="interleaved runs per builder (best time kept)")
    ap.add_argument("--tmp", default=None, help="scratch folder (default: system temp)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]

    print(f"LMDB build benchmark: 448x256 frames (fixture tiled), PNG level 1, {args.workers} workers, "
          f"python {sys.version.split()[0]}, {os.cpu_count()} cpus")
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory(dir=args.tmp, prefix="bench_lmdb_") as tmp:
            src = make_tree(Path(tmp) / "src", n)
            results = {}
            # Interleaved repeats; the best time and the worst memory of each builder are kept
            # (a shared machine slows runs at random, it never speeds one up).
            for _ in range(args.repeat):
                for name, code in (("floor", _FLOOR), ("ours", _OURS), ("naive", _NAIVE)):
                    if name == "naive" and args.skip_naive_above and n > args.skip_naive_above:
                        continue
                    db = Path(tmp) / f"{name}.lmdb"
                    if name == "naive":
                        db.mkdir()
                    r = run_builder(name, code, src, db, args.workers, n)
                    shutil.rmtree(db, ignore_errors=True)
                    print(f"  {n:>6} frames  {name:<5}  {r['seconds']:7.1f} s  {r['fps']:7.1f} frames/s  "
                          f"peak anon RSS {r['peak_mib']:7.1f} MiB", flush=True)
                    best = results.setdefault(name, r)
                    if r["seconds"] < best["seconds"]:
                        best.update(seconds=r["seconds"], fps=r["fps"])
                    best["peak_mib"] = max(best["peak_mib"], r["peak_mib"])
            rows.append((n, results))

    print()
    print("| frames | builder | seconds | frames/s | x floor | peak anon RSS (MiB) |")
    print("|---|---|---|---|---|---|")
    for n, results in rows:
        floor = results["floor"]["fps"]
        for name in ("ours", "naive", "floor"):
            if name in results:
                r = results[name]
                print(f"| {n} | {name} | {r['seconds']:.1f} | {r['fps']:.1f} | {r['fps'] / floor:.2f} | "
                      f"{r['peak_mib']:.0f} |")
    if len(rows) >= 2 and all("ours" in r for _, r in rows):
        (n0, r0), (n1, r1) = rows[0], rows[-1]
        growth = r1["ours"]["peak_mib"] / r0["ours"]["peak_mib"] - 1
        print(f"\nours: peak memory {r0['ours']['peak_mib']:.0f} MiB at {n0} -> {r1['ours']['peak_mib']:.0f} MiB "
              f"at {n1} frames ({growth:+.1%}); throughput {r1['ours']['fps'] / r1['floor']['fps']:.2f}x "
              f"the read+encode floor at {n1}")
        if "naive" in r0 and "naive" in r1:
            print(f"naive: {r0['naive']['peak_mib']:.0f} MiB -> {r1['naive']['peak_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
