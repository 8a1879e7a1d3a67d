"""`extract`'s analysis: find the videos, decode each once (cuts, motion), lay out the clips.

Steps 1-3 of `vsrdata.pipelines.extract` (inputs, analyse, lay out clips). The analysis of
each video is cached in `OUT/.extract-cache/` (keyed by path, size, mtime and the settings), so a
re-run or another shard does not decode it again; `plan_clips` numbers the clips of all videos.
Nothing but the cache is written here.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from vsrdata.core.image_io import remove_stale_temps, write_bytes_atomic
from vsrdata.core.layouts import natural_key
from vsrdata.errors import InputError
from vsrdata.pipelines.runner import report_progress, run_jobs
from vsrdata.pipelines.summary import SKIPPED, WRITTEN, JobsFailed, Summary

__all__ = ["find_videos", "layout_clips", "analyse_all", "plan_clips", "CACHE_DIR"]

CACHE_DIR = ".extract-cache"


# ----------------------------------------------------------------------------------- inputs
def find_videos(inputs: list[str | os.PathLike]) -> list[Path]:
    """Resolved video paths of the inputs (files, or folders searched at any depth), unique,
    in natural order. Raises InputError for a missing input or when no video is found."""
    from vsrdata.core.video import is_video_path

    found: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for root, dirs, files in os.walk(path, followlinks=True):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                found.update(Path(root, f).resolve() for f in files
                             if not f.startswith(".") and is_video_path(f))
        elif path.is_file():
            found.add(path.resolve())
        else:
            raise InputError(f"video not found: {path}")
    if not found:
        raise InputError(f"no video files found in {', '.join(map(str, inputs))}")
    return sorted(found, key=lambda p: natural_key(str(p)))


# ------------------------------------------------------------------------------------ layout
def layout_clips(length: int, cuts: list[int], frames_per_clip: int, stride: int,
                 keep_short: bool = False) -> list[dict]:
    """Clip windows of a `length`-frame video with shot boundaries `cuts` (module doc, step 3).

    Returns dicts with `frames` [start, end), `shot` [a, b) and `cut_avoided` (b when b is a
    cut and this is the shot's last clip, else None), in frame order.
    """
    from vsrdata.core.scenes import shots

    clips = []
    cut_set = set(cuts)
    for a, b in shots(cuts, length):
        windows = [(s, s + frames_per_clip) for s in range(a, b - frames_per_clip + 1, stride)]
        nxt = windows[-1][0] + stride if windows else a
        covered = windows[-1][1] if windows else a
        if keep_short and nxt < b and b > covered:
            windows.append((nxt, b))
        for i, (s, e) in enumerate(windows):
            last = i == len(windows) - 1
            clips.append({"frames": [s, e], "shot": [a, b],
                          "cut_avoided": b if last and b in cut_set else None})
    return clips


def _motion(diffs: list[float], start: int, end: int) -> float:
    """Mean |frame difference| (8-bit levels) over the end - start - 1 pairs of a clip."""
    pairs = diffs[start + 1:end]
    return round(float(np.mean(pairs)), 4) if pairs else 0.0


# ---------------------------------------------------------------------------------- analyse
def _decode_measures(path: str, detector):
    """Decode every frame once: (video info, timestamps in s, |frame difference| means,
    truncation warning or None, (height, width) of the frames as decoded: upright, after the
    display matrix); each frame also goes to the cut `detector` (if any)."""
    import cv2

    from vsrdata.core.video import VideoReader

    times, diffs, prev = [], [], None
    with VideoReader(path) as reader:
        for frame in reader:
            if detector is not None:
                detector.add(frame.image)
            times.append(None if frame.time is None else round(float(frame.time), 6))
            diffs.append(0.0 if prev is None else float(cv2.absdiff(frame.image, prev).mean()))
            prev = frame.image
            report_progress(1)  # the bar counts decoded frames
        shape = prev.shape[:2] if prev is not None else (reader.info.height, reader.info.width)
        return reader.info, times, diffs, reader.truncation_warning(), shape


def _analyse(item: tuple[str, str, dict]) -> str:
    """Job: decode one video, find cuts and motion, lay out its clips; write the cache JSON."""
    from vsrdata.core import scenes

    path, cache, cfg = item
    if os.path.exists(cache):
        return SKIPPED
    detector = scenes.CutDetector(cfg["scene_threshold"], cfg["scene_min_len"]) if cfg["scene_cuts"] == "auto" else None
    info, times, diffs, warning, (height, width) = _decode_measures(path, detector)
    if warning and not cfg["allow_truncated"]:
        raise InputError(f"{warning}; allow truncated videos to extract the frames that decoded",
                         option="allow_truncated")
    length = len(times)
    if not length:  # a container with no decodable frame: say so, never "0 clips" and exit 0
        raise InputError(f"no frames decoded from {path}: nothing to extract")
    if detector is not None:
        cuts = detector.finish()
    elif cfg["scene_cuts"] == "off":
        cuts = []
    else:
        cuts = scenes.check_cuts(scenes.read_cut_file(cfg["scene_cuts"]), length, source=cfg["scene_cuts"])
    clips = layout_clips(length, cuts, cfg["frames_per_clip"], cfg["stride"], cfg["keep_short"])
    kept, static = [], 0
    for clip in clips:
        start, end = clip["frames"]
        clip["time"] = [times[start], times[end - 1]]
        clip["motion"] = _motion(diffs, start, end)
        if cfg["skip_static"] and (end - start < 2 or clip["motion"] < cfg["static_threshold"]):
            static += 1
            continue
        kept.append(clip)
    record = {"source": path, "frames": length, "declared_frames": info.declared_frames,
              "fps": str(info.fps) if info.fps is not None else None, "width": width,
              "height": height, "bit_depth": info.bit_depth, "cuts": cuts, "static_dropped": static, "warning": warning, "clips": kept}
    write_bytes_atomic(cache, json.dumps(record).encode())
    return WRITTEN


def _cache_path(cache_dir: Path, video: Path, cfg: dict) -> str:
    st = video.stat()
    key = json.dumps([str(video), st.st_size, st.st_mtime_ns, cfg], sort_keys=True)
    return str(cache_dir / (hashlib.sha1(key.encode()).hexdigest()[:20] + ".json"))


def _probe_all(videos: list[Path]) -> list[int]:
    """Estimated frame count of each video (for the progress bar); bad files fail here, all listed."""
    from vsrdata.core.video import probe

    counts, errors = [], []
    for video in videos:
        try:
            counts.append(probe(video).estimated_frames or 1)
        except InputError as exc:
            errors.append(str(exc))
    if errors:
        raise JobsFailed(Summary(total=len(videos), failed=len(errors), errors=errors, unit="video"))
    return counts


def analyse_all(videos: list[Path], cache_dir: Path, cfg: dict, workers: int, progress: bool,
                 own: int | None = None, reuse_dir: Path | None = None) -> list[str]:
    """Analyse every video that has no cache entry; returns the cache paths in video order.
    The first `own` videos (default all) are this shard's. An entry already in `reuse_dir`
    (OUT's cache, for a dry run) is read from there and nothing is written into it."""
    weights = _probe_all(videos)
    caches = [_cache_path(cache_dir, v, cfg) for v in videos]
    if reuse_dir is not None:
        caches = [r if os.path.exists(r) else c
                  for c, r in zip(caches, (_cache_path(reuse_dir, v, cfg) for v in videos))]
    # Temps of killed runs; only this run's own videos (another shard may be writing others').
    remove_stale_temps(cache_dir, {os.path.basename(c) for c in caches[:own]})
    summary = run_jobs(_analyse, [(str(v), c, cfg) for v, c in zip(videos, caches)],
                       workers=min(workers, len(videos)), progress=progress, desc="extract: analyse",
                       unit="frame", weights=weights)
    if summary.failed:
        summary.unit = "video"
        raise JobsFailed(summary)
    return caches


def plan_clips(videos: list[Path], mine: list[Path], out: Path, cfg: dict, workers: int, progress: bool,
          dry_run: bool) -> tuple[list[dict], list[dict], list[str]]:
    """Analyse (this shard's videos first) and number the clips of all videos."""
    set_mine = set(mine)
    order = mine + [v for v in videos if v not in set_mine]
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir, reuse = (Path(tmp), out / CACHE_DIR) if dry_run else (out / CACHE_DIR, None)
        cached = dict(zip(order, analyse_all(order, cache_dir, cfg, workers, progress, len(mine), reuse)))
        return assemble([cached[v] for v in videos])


def assemble(caches: list[str]) -> tuple[list[dict], list[dict], list[str]]:
    """Videos, numbered clips and warnings from the cache records, in video order."""
    records = [json.loads(Path(c).read_text()) for c in caches]
    total = sum(len(r["clips"]) for r in records)
    width = max(3, len(str(max(total - 1, 0))))
    videos, clips, warnings = [], [], []
    for record in records:
        own = record.pop("clips")
        for clip in own:
            clips.append({"name": f"{len(clips):0{width}d}", "source": record["source"], **clip})
        record["clips"] = len(own)
        videos.append(record)
        if record["warning"]:
            warnings.append(record["warning"])
        if (record.get("bit_depth") or 8) > 8 and own:
            warnings.append(f"{record['source']}: {record['bit_depth']}-bit video written as 8-bit PNG "
                            "(REDS' format; the depth is recorded in extract.json)")
    return videos, clips, warnings


def why_no_clips(videos: list[dict], cfg: dict) -> str:
    """The one-line reason a plan holds no clip, and what to change (from the video records)."""
    n = cfg["frames_per_clip"]
    longest = 0
    for v in videos:
        bounds = [0, *v["cuts"], v["frames"]]
        longest = max([longest] + [b - a for a, b in zip(bounds, bounds[1:])])
    frames = sum(v["frames"] for v in videos)
    cuts = sum(len(v["cuts"]) for v in videos)
    static = sum(v["static_dropped"] for v in videos)
    if static:
        return (f"0 clips: all {static} clip(s) of {len(videos)} video(s) were dropped as static (motion below "
                f"--static-threshold {cfg['static_threshold']:g}); lower it or leave out --skip-static")
    fixes = [f"--frames-per-clip {longest}" if longest >= 2 else None, "--keep-short",
             "--scene-cuts off" if cuts else None]
    if cfg["scene_cuts"] == "auto" and cuts:
        fixes.append(f"a higher --scene-threshold (now {cfg['scene_threshold']:g}) or --scene-min-len")
    return (f"0 clips: {len(videos)} video(s) with {frames} frame(s) and {cuts} scene cut(s) have no shot of "
            f"{n} frames (--frames-per-clip {n}; the longest shot has {longest}); use "
            + ", or ".join(f for f in fixes if f))
