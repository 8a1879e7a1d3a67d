"""End-to-end speed of `make-lr` against the PNG I/O floor, measured in the same run.

    python bench/bench_make_lr.py [--frames 336] [--workers 2] [--repeats 4] [--degradation bi]

Tiles the bundled Vimeo90K fixture frames (448x256) into a temporary tree, then, alternating,
times (a) `make_lr(...)` with N workers and (b) the floor: the same frames read and the same
number of outputs written at the output size (112x64 for x4; a strided subsample, no resize),
with the same workers and the same pool mechanism (`runner.run_jobs`, spawn start included in
both). Each timing is wall time of one full run into a fresh output folder; the best of the
repeats is reported, and the median of the paired ratios (the two runs of one repeat are
adjacent in time, their order alternates). Target from issue 2: make-lr <= 1.25x the floor.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "vimeo_septuplet"


def io_floor_job(item):
    """Read one frame and write an output-sized PNG of it: PNG I/O, no resize."""
    import numpy as np

    from vsrdata.core.image_io import read_image, write_image
    from vsrdata.pipelines.summary import WRITTEN

    src, dst, scale = item
    img = read_image(src, allow_alpha=False)
    write_image(dst, np.ascontiguousarray(img[::scale, ::scale]))
    return WRITTEN


def noop_job(item):
    """Nothing but the pool round trip: shows how much of both timings is pool overhead."""
    from vsrdata.pipelines.summary import WRITTEN

    return WRITTEN


def tile_frames(dest: Path, n_frames: int) -> list[Path]:
    frames = sorted(FIXTURE.glob("sequences/*/*/*.png"))
    if not frames:
        raise SystemExit(f"no fixture frames under {FIXTURE}")
    paths = []
    for k in range(n_frames):
        clip, index = divmod(k, 7)
        out = dest / "sequences" / "00001" / f"{clip + 1:04d}" / f"im{index + 1}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(frames[k % len(frames)], out)
        paths.append(out)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=336)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--degradation", default="bi", choices=["bi", "bd"])
    args = parser.parse_args()

    from vsrdata.pipelines.make_lr import make_lr
    from vsrdata.pipelines.runner import run_jobs

    with tempfile.TemporaryDirectory(prefix="bench_make_lr_") as tmp:
        tmp = Path(tmp)
        src = tmp / "src"
        frames = tile_frames(src, args.frames)
        floor_times, make_times, noop_times = [], [], []
        def time_floor(rep):
            out = tmp / f"floor{rep}"
            items = [(str(f), str(out / f.relative_to(src)), args.scale) for f in frames]
            t0 = time.perf_counter()
            summary = run_jobs(io_floor_job, items, workers=args.workers, progress=False)
            floor_times.append(time.perf_counter() - t0)
            assert summary.written == len(frames), summary
            shutil.rmtree(out)

        def time_make_lr(rep):
            out = tmp / f"lr{rep}"
            t0 = time.perf_counter()
            summary = make_lr(src, out, scale=args.scale, degradation=args.degradation,
                              workers=args.workers, progress=False)
            make_times.append(time.perf_counter() - t0)
            assert summary.written == len(frames), summary
            shutil.rmtree(out)

        for rep in range(args.repeats):
            t0 = time.perf_counter()
            run_jobs(noop_job, [(str(f),) for f in frames], workers=args.workers, progress=False)
            noop_times.append(time.perf_counter() - t0)
            # alternate the order so a drifting machine load does not favour either side
            if rep % 2 == 0:
                time_floor(rep)
                time_make_lr(rep)
            else:
                time_make_lr(rep)
                time_floor(rep)

    floor, made = min(floor_times), min(make_times)
    n = len(frames)
    print(f"frames: {n} x 448x256 -> {args.degradation.upper()}x{args.scale}, workers: {args.workers}, "
          f"best of {args.repeats}")
    print(f"PNG I/O floor (read + write output size, same pool): {floor:7.3f} s  "
          f"({1000 * floor / n:6.2f} ms/frame, {n / floor:7.1f} frames/s)")
    print(f"make-lr                                            : {made:7.3f} s  "
          f"({1000 * made / n:6.2f} ms/frame, {n / made:7.1f} frames/s)")
    print(f"pool start + round trips only (no-op jobs)         : {min(noop_times):7.3f} s")
    paired = sorted(m / f for m, f in zip(make_times, floor_times))
    print(f"ratio make-lr / floor: {made / floor:.3f}x best-of, {statistics.median(paired):.3f}x median "
          f"of paired runs  (target <= 1.25x)")
    print("all runs (s): floor " + " ".join(f"{t:.3f}" for t in floor_times)
          + " | make-lr " + " ".join(f"{t:.3f}" for t in make_times))


if __name__ == "__main__":
    main()
