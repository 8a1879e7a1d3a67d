"""Benchmark `vsrdata lmdb-merge`: throughput against a plain copy of the same bytes, and memory.

For each size N (default 2,000 and 8,000 frames), K shard DBs (default 4) are written in the
exact format of `to-lmdb --shard I/N` (PNG level-1 values of the REDS fixture frames, encoded
once and repeated, so building the shards costs no encoding time; `vsrdata_shard.json` as
to-lmdb writes it). Then, in this same run, with the shards in the page cache for both:

- copy:  the K shard `data.mdb` files copied to another folder and fsync'ed: the floor for
         moving these bytes on this disk (no parsing, no B-tree, no meta file);
- merge: `vsrdata.pipelines.lmdb_merge.merge_lmdb` in a subprocess (meta files checked and
         written round-robin, values k-way merged in key order and appended through the write
         map, durable commits of 512 MiB, map growth on demand, data.mdb trimmed at the end).

Throughput ratio = copy seconds / merge seconds (>= 0.8 is the target). Memory = peak RssAnon
of the merge process sampled every 20 ms from /proc (file-backed pages such as the LMDB maps are
left out: the kernel can drop them); "flat" means the ratio between the two sizes stays ~1.

    python bench/bench_lmdb_merge.py
    python bench/bench_lmdb_merge.py --sizes 2000,8000 --shards 4 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vsrdata.core.image_io import encode_png, read_image  # noqa: E402
from vsrdata.core.lmdb.keys import SHARD_FILE, make_key  # noqa: E402
from vsrdata.core.lmdb.writer import LmdbWriter  # noqa: E402
from vsrdata.pipelines.to_lmdb import SHARD_FORMAT  # noqa: E402

from _measure import run_sampled  # noqa: E402

FIXTURE = ROOT / "fixtures" / "reds" / "train_sharp"
MIB = 1 << 20

_MERGE = """
import json, sys, time
from vsrdata.pipelines.lmdb_merge import merge_lmdb
t = time.perf_counter()
s = merge_lmdb(sys.argv[1], sys.argv[2:])
print(json.dumps({"seconds": time.perf_counter() - t, "bytes": s.bytes_written, "keys": s.keys}))
"""


def make_shards(root: Path, n: int, k: int) -> list[Path]:
    frames = [encode_png(read_image(str(p)), 1) for p in sorted(FIXTURE.glob("*/*.png"))]
    shape = read_image(str(next(FIXTURE.glob("*/*.png")))).shape
    shards = []
    for i in range(k):
        db = root / f"shard_{i}.lmdb"
        settings = {"key_style": "basicsr", "vimeo_mode": None, "shard": [i, k]}
        with LmdbWriter(db, settings=settings, compress_level=1, expected_items=n // k + 1) as w:
            for j in range(i, n, k):
                w.put(make_key(f"{j // 100:04d}", f"{j % 100:08d}.png"), frames[j % len(frames)], shape)
            (db / SHARD_FILE).write_text(json.dumps({"format": SHARD_FORMAT, "shard": [i, k], "frames": n,
                                                     "key_style": "basicsr", "compress_level": 1}) + "\n")
            w.finish()
        shards.append(db)
    return shards


def plain_copy(shards: list[Path], dst: Path) -> float:
    dst.mkdir()
    t = time.perf_counter()
    for db in shards:
        target = dst / f"{db.name}.mdb"
        shutil.copyfile(db / "data.mdb", target)
        with open(target, "rb+") as fh:
            os.fsync(fh.fileno())
    return time.perf_counter() - t


def run_merge(out: Path, shards: list[Path]) -> dict:
    return run_sampled("merge", _MERGE, [str(out), *map(str, shards)], interval=0.02)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="2000,8000", help="comma-separated frame counts")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=1, help="interleaved runs (best time, worst memory kept)")
    ap.add_argument("--tmp", default=None, help="scratch folder (default: system temp)")
    args = ap.parse_args()
    print(f"lmdb-merge benchmark: {args.shards} shards of 320x180 PNG-1 frames, python "
          f"{sys.version.split()[0]}, {os.cpu_count()} cpus")
    rows = []
    for n in (int(s) for s in args.sizes.split(",") if s):
        with tempfile.TemporaryDirectory(dir=args.tmp, prefix="bench_merge_") as tmp:
            shards = make_shards(Path(tmp), n, args.shards)
            copy_s, merge = float("inf"), None
            for r in range(args.repeat):
                copy_s = min(copy_s, plain_copy(shards, Path(tmp) / f"copy{r}"))
                shutil.rmtree(Path(tmp) / f"copy{r}")
                m = run_merge(Path(tmp) / f"merged{r}.lmdb", shards)
                shutil.rmtree(Path(tmp) / f"merged{r}.lmdb")
                if merge is None or m["seconds"] < merge["seconds"]:
                    m["peak_mib"] = max(m["peak_mib"], merge["peak_mib"] if merge else 0)
                    merge = m
                else:
                    merge["peak_mib"] = max(merge["peak_mib"], m["peak_mib"])
            mib = merge["bytes"] / MIB
            rows.append((n, mib, copy_s, merge))
            print(f"  {n:>6} frames {mib:7.1f} MiB  copy {copy_s:6.2f} s  merge {merge['seconds']:6.2f} s  "
                  f"peak anon RSS {merge['peak_mib']:6.1f} MiB", flush=True)
    print()
    print("| frames | MiB | copy s | merge s | merge MiB/s | x copy | merge peak anon RSS (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for n, mib, copy_s, m in rows:
        print(f"| {n} | {mib:.0f} | {copy_s:.2f} | {m['seconds']:.2f} | {mib / m['seconds']:.0f} | "
              f"{copy_s / m['seconds']:.2f} | {m['peak_mib']:.0f} |")
    if len(rows) >= 2:
        (n0, *_, m0), (n1, *_, m1) = rows[0], rows[-1]
        print(f"\nmerge peak anon RSS {m0['peak_mib']:.0f} MiB at {n0} -> {m1['peak_mib']:.0f} MiB at {n1} frames "
              f"(ratio {m1['peak_mib'] / m0['peak_mib']:.2f} for {n1 / n0:.0f}x the data)")


if __name__ == "__main__":
    main()
