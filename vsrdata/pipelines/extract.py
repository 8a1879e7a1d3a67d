"""`extract`: cut videos into REDS-style clips `OUT/000/00000000.png ...` that never span a cut.

What it does, in order:

1. **Inputs.** Every VIDEO argument is a video file, or a folder whose video files (by
   extension, `core.video.VIDEO_EXTENSIONS`, hidden names skipped) are taken at any depth. The
   videos are sorted by natural order of their resolved paths; that order numbers the clips, so
   the names depend only on the set of inputs (not on `--shard`, workers or resume).
2. **Analyse** (one job per video, parallel): decode every frame (`core.video.VideoReader`:
   uint8 BGR, decode order, upright: a display matrix is applied as for `infer`; a 10-bit
   source is rounded to 8 bits, REDS' PNG format, and its `bit_depth` recorded), find the scene cuts (`core.scenes.CutDetector`, PySceneDetect's
   ContentDetector -- the detector `infer` uses; or a user FILE; or none) and measure motion:
   `d[i]` = mean |frame[i] - frame[i-1]| over all pixels and channels, in 8-bit levels.
   The result of each video is cached in `OUT/.extract-cache/` (keyed by path, size, mtime and
   the settings), so a re-run or another shard does not decode it again.
3. **Lay out clips** per shot `[a, b)` (frames between two cuts): windows of `frames_per_clip`
   (N) frames starting at a, a + S, a + 2S, ... (S = `stride`, default N) while they fit in the
   shot. A window never takes frames across a cut; the remainder shorter than N is dropped, or
   kept as a shorter clip with `keep_short` (the next window cut at the shot's end, when it
   holds frames no earlier clip has). With `skip_static`, a clip whose motion (the mean of
   `d` over its N - 1 frame pairs) is below `static_threshold` levels is dropped (a clip of one
   frame counts as static). Clips are numbered over all videos in order: 3 digits as REDS,
   more when there are over 1000 clips.
4. **Write** (one job per video of this shard, parallel): decode again and write frame k of a
   clip as `OUT/<clip>/<k:08d>.png` (PNG is lossless: the file holds the decoded pixels,
   or with `size` the resized and centre-cropped ones), through a temporary name and a rename
   (`image_io.write_image`). Existing frames are skipped, so a re-run after `kill -9` finishes
   the tree byte-identically (decoding and PNG encoding are deterministic).

`OUT/extract.json` records the settings, the inputs, every video (frames decoded and declared,
fps, cuts) and every clip (source, frame range `[start, end)`, timestamps of its first and last
frame in seconds, its shot, the cut that ended its shot if it is the shot's last clip, and its
motion). It is written after the analysis, before any frame; a re-run into the same OUT with
other settings or other inputs is refused (the analysis cache alone binds nothing).

Resize (`size=(W, H)`): MATLAB-exact bicubic `imresize` (`core.resize`; see
docs/CONVENTIONS.md) to the smallest size that covers W x H with the aspect ratio kept (the
covering side exactly, the other rounded), then the centre W x H crop (extra rows/columns
split evenly, the odd one at the bottom/right). A frame already W x H is written unchanged.

Modules: `extract_plan` (steps 1-3: inputs, analysis and its cache, clip layout), this
module (manifest, writing).

Shards (`shard=(I, N)`): video k of the sorted list belongs to shard k mod N. Numbering needs
every video's clip count, so each shard analyses the videos no cache holds yet; `plan_only`
analyses just this shard's videos and writes no frames, a cheap first stage for an array job.

Bad input: a missing or unreadable file, a file without a video stream, and (unless
`allow_truncated`) a video that decodes fewer frames than its container declares are errors
of the analysis, one line each naming the file; no frame is written while any input is bad,
since numbering depends on every video.
"""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vsrdata.core.image_io import remove_stale_temps, write_bytes_atomic, write_image
from vsrdata.core.locks import OutputLock
from vsrdata.core.paths import refuse_inside
from vsrdata.errors import ConfigError, InputError, OutputError
from vsrdata.pipelines.extract_plan import CACHE_DIR, analyse_all, find_videos, plan_clips, why_no_clips
from vsrdata.pipelines.runner import available_cores, check_shard, report_progress, run_jobs
from vsrdata.pipelines.summary import SKIPPED, WRITTEN, JobsFailed, Summary
from vsrdata.progress import Progress, check_progress

__all__ = ["extract", "ExtractResult", "fit_frame", "MANIFEST", "DEFAULT_FRAMES_PER_CLIP",
           "DEFAULT_STATIC_THRESHOLD"]

MANIFEST = "extract.json"
MANIFEST_FORMAT = "vsrdata-extract/1"
DEFAULT_FRAMES_PER_CLIP = 100  # REDS: 100 frames per clip
DEFAULT_STATIC_THRESHOLD = 1.0  # mean |frame difference| in 8-bit levels


@dataclass
class ExtractResult:
    """What `extract` did: the clip plan of all videos and the write summary of this shard."""

    out: Path
    videos: list[dict]
    clips: list[dict]
    summary: Summary | None  # None with plan_only
    warnings: list[str] = field(default_factory=list)
    frames: int = 0  # PNG files of this shard's clips
    dry_run: bool = False


def _check_out(inputs: list[str | os.PathLike], out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise OutputError(f"output exists and is not a folder: {out}")
    refuse_inside(out, inputs, what="output", choose="an OUT")


def fit_frame(img: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """HxWx3 uint8 BGR -> `size` (W, H): MATLAB imresize to cover W x H (aspect kept), then
    the centre crop (module doc). None, or a frame already that size, is returned unchanged."""
    if size is None:
        return img
    out_w, out_h = size
    h, w = img.shape[:2]
    if (w, h) == (out_w, out_h):
        return img
    s = max(out_w / w, out_h / h)
    cover_h = out_h if s == out_h / h else max(out_h, round(h * s))
    cover_w = out_w if s == out_w / w else max(out_w, round(w * s))
    if (cover_h, cover_w) != (h, w):
        from vsrdata.core.resize import imresize

        img = imresize(img, output_shape=(cover_h, cover_w))
    top, left = (cover_h - out_h) // 2, (cover_w - out_w) // 2
    return np.ascontiguousarray(img[top:top + out_h, left:left + out_w])



# --------------------------------------------------------------------------------- manifest
def _identity(cfg: dict, videos: list[Path]) -> dict:
    settings = {k: v for k, v in cfg.items() if k != "allow_truncated"}
    if settings["scene_cuts"] not in ("auto", "off"):
        settings["scene_cuts"] = {"file": str(Path(settings["scene_cuts"]).resolve())}
    return {"format": MANIFEST_FORMAT, "settings": settings, "inputs": [str(v) for v in videos]}


def _check_manifest(out: Path, identity: dict) -> dict | None:
    """The existing manifest (None if absent); OutputError when it was made otherwise."""
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        old = json.loads(path.read_text())
        old_identity = {k: old[k] for k in ("format", "settings", "inputs")}
    except (ValueError, KeyError, TypeError, OSError):
        raise OutputError(f"unreadable {path}: remove it or choose another OUT") from None
    if old_identity != identity:
        what = "settings" if old_identity["settings"] != identity["settings"] else "input videos"
        diff = [k for k in identity["settings"] if old_identity["settings"].get(k) != identity["settings"][k]]
        detail = f" ({', '.join(diff)})" if diff else ""
        raise OutputError(f"{out} holds clips extracted with other {what}{detail} (see {path}); "
                          f"choose another OUT or replace them (overwrite)", option="overwrite")
    return old


def _clear_previous(out: Path) -> None:
    """overwrite: remove what an earlier extract wrote into `out` (its manifest, its cache and the
    clip folders the manifest lists); nothing else in `out` is touched."""
    import shutil

    path = out / MANIFEST
    if not path.is_file():
        return
    try:
        names = [c["name"] for c in json.loads(path.read_text()).get("clips") or []]
    except (ValueError, KeyError, TypeError, OSError):
        raise OutputError(f"unreadable {path}: remove it or choose another OUT") from None
    for name in names:
        clip = out / str(name)
        if clip.parent == out and clip.is_dir() and not clip.is_symlink():
            shutil.rmtree(clip)
    shutil.rmtree(out / CACHE_DIR, ignore_errors=True)
    path.unlink()


def _write_manifest(out: Path, identity: dict, videos: list[dict], clips: list[dict]) -> None:
    record = dict(identity, resize=("MATLAB imresize, bicubic with antialiasing, to cover the size with "
                                     "the aspect ratio kept, then centre crop"),
                  motion_unit="mean |frame[i] - frame[i-1]| in 8-bit levels, decoded frames",
                  videos=videos, clips=clips)
    write_bytes_atomic(out / MANIFEST, (json.dumps(record, indent=1) + "\n").encode())


# ------------------------------------------------------------------------------------ write
def _frame_paths(out: str, clip: dict) -> list[tuple[int, str]]:
    start, end = clip["frames"]
    return [(i, os.path.join(out, clip["name"], f"{i - start:08d}.png")) for i in range(start, end)]


def _write_video(item: tuple[str, str, list[dict], tuple[int, int] | None]) -> str:
    """Job: decode one video and write the missing frames of its clips."""
    from vsrdata.core.video import VideoReader

    path, out, clips, size = item
    todo: dict[int, list[str]] = {}
    for clip in clips:
        for index, dst in _frame_paths(out, clip):
            if not os.path.exists(dst):
                todo.setdefault(index, []).append(dst)
    if not todo:
        return SKIPPED
    report_progress(sum(c["frames"][1] - c["frames"][0] for c in clips) - sum(map(len, todo.values())))
    last = max(todo)
    with VideoReader(path) as reader:
        for frame in reader:
            targets = todo.pop(frame.index, None)
            if targets:
                img = fit_frame(frame.image, size)
                for dst in targets:
                    write_image(dst, img)
                report_progress(len(targets))
            if frame.index >= last:
                break
    if todo:
        raise InputError(f"{path}: decoding stopped before frame {min(todo)}, which the plan in "
                         f"{MANIFEST} needs (has the video changed? remove {CACHE_DIR} to re-analyse)")
    return WRITTEN


def _write_items(clips: list[dict], mine: list[Path], out: str, size) -> list[tuple]:
    """One write job per video of this shard that has clips: (video, OUT, its clips, size)."""
    by_video: dict[str, list[dict]] = {str(v): [] for v in mine}
    for clip in clips:
        if clip["source"] in by_video:
            by_video[clip["source"]].append({"name": clip["name"], "frames": clip["frames"]})
    return [(v, out, cs, tuple(size) if size else None) for v, cs in by_video.items() if cs]


# ------------------------------------------------------------------------------------- main
def _settings(frames_per_clip, stride, keep_short, scene_cuts, scene_threshold, scene_min_len, size,
              skip_static, static_threshold, allow_truncated) -> dict:
    if isinstance(frames_per_clip, bool) or not isinstance(frames_per_clip, int) or frames_per_clip < 1:
        raise ConfigError(f"frames_per_clip must be a positive integer, got {frames_per_clip!r}")
    stride = frames_per_clip if stride is None else stride
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ConfigError(f"stride must be a positive integer, got {stride!r}")
    if scene_cuts not in ("auto", "off") and not Path(scene_cuts).is_file():
        raise InputError(f"scene cut file not found: {scene_cuts}")
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ConfigError(f"size must be (width, height) with positive sides, got {size!r}")
    if not static_threshold >= 0:
        raise ConfigError(f"static threshold must be >= 0, got {static_threshold}")
    return {"frames_per_clip": frames_per_clip, "stride": stride, "keep_short": bool(keep_short),
            "scene_cuts": str(scene_cuts), "scene_threshold": float(scene_threshold),
            "scene_min_len": int(scene_min_len), "size": list(size) if size else None,
            "skip_static": bool(skip_static), "static_threshold": float(static_threshold),
            "allow_truncated": bool(allow_truncated)}


def extract(inputs: list[str | os.PathLike], out: str | os.PathLike, *,
            frames_per_clip: int = DEFAULT_FRAMES_PER_CLIP, stride: int | None = None,
            keep_short: bool = False, scene_cuts: str = "auto", scene_threshold: float = 27.0,
            scene_min_len: int = 15, size: tuple[int, int] | None = None, skip_static: bool = False,
            static_threshold: float = DEFAULT_STATIC_THRESHOLD, allow_truncated: bool = False,
            workers: int | None = None, shard: tuple[int, int] | None = None, plan_only: bool = False,
            dry_run: bool = False, progress: Progress = False, overwrite: bool = False) -> ExtractResult:
    """Cut `inputs` (video files or folders of them) into REDS-style clips under `out`.

    See the module docstring for the plan, numbering, resize, shards, resume and errors.
    `scene_cuts` is 'auto', 'off' or a file of cut frame indices (one input video only).
    `size` is (width, height). `workers=None` uses every core; 1 runs in-process. With
    `dry_run` nothing is written under `out` (the analysis still decodes every video).
    Raises `JobsFailed` (an InputError listing each bad video) before any frame is written.
    `overwrite` first removes what an earlier extract wrote into `out` (not with `shard`: the
    shards share `out`). `progress`: `vsrdata.progress` (False: silent; True: a bar on stderr; or a callback).

    Example::

        from vsrdata import extract
        result = extract(["footage/"], "my_reds/train_sharp", frames_per_clip=100, size=(1280, 720))
        print(len(result.clips), "clips,", result.frames, "frames")
    """
    cfg = _settings(frames_per_clip, stride, keep_short, scene_cuts, scene_threshold, scene_min_len,
                    size, skip_static, static_threshold, allow_truncated)
    check_shard(shard)
    check_progress(progress)
    workers = available_cores() if workers is None else workers
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    out = Path(out)
    _check_out(inputs, out)
    videos = find_videos(inputs)
    if cfg["scene_cuts"] not in ("auto", "off") and len(videos) > 1:
        raise ConfigError(f"a scene cut file applies to one video, got {len(videos)}; use auto or off")
    with nullcontext() if dry_run else OutputLock(out, "OUT", shard=shard):  # one writer of OUT (or shard)
        return _extract(videos, out, cfg, shard, workers, plan_only, dry_run, progress, overwrite)


def _extract(videos: list[Path], out: Path, cfg: dict, shard, workers: int, plan_only: bool, dry_run: bool,
             progress: Progress, overwrite: bool = False) -> ExtractResult:
    """`extract` once OUT is checked and locked: plan, manifest, then this shard's clips."""
    identity = _identity(cfg, videos)
    if overwrite and shard is not None:
        raise ConfigError("overwrite cannot be combined with shard (the shards share OUT); clear OUT once "
                          "before the array job", option="overwrite")
    if overwrite and not dry_run:
        _clear_previous(out)
    old = _check_manifest(out, identity)
    mine = [v for k, v in enumerate(videos) if shard is None or k % shard[1] == shard[0]]
    if plan_only:
        analyse_all(mine, out / CACHE_DIR, cfg, workers, progress)
        return ExtractResult(out, [], [], None)
    video_records, clips, warnings = plan_clips(videos, mine, out, cfg, workers, progress, dry_run)
    if not clips and video_records:
        raise InputError(why_no_clips(video_records, cfg), option="frames_per_clip")
    if old is not None and old.get("clips") is not None and old["clips"] != clips:
        raise OutputError(f"the clip plan differs from {out / MANIFEST} (a video changed since?); "
                          f"choose another OUT or remove it")
    if not dry_run:
        _write_manifest(out, identity, video_records, clips)
    items = _write_items(clips, mine, str(out), cfg["size"])
    weights = [sum(c["frames"][1] - c["frames"][0] for c in cs) for _, _, cs, _ in items]
    result = ExtractResult(out, video_records, clips, None, warnings, frames=sum(weights), dry_run=dry_run)
    if dry_run:
        existing = sum(os.path.exists(p) for _, o, cs, _ in items for c in cs for _, p in _frame_paths(o, c))
        result.summary = Summary(total=result.frames, written=result.frames - existing, skipped=existing,
                                 dry_run=True)
        return result
    for _, o, cs, _ in items:  # temps a killed run left (only this shard's clips)
        for c in cs:
            remove_stale_temps(os.path.join(o, c["name"]))
    summary = run_jobs(_write_video, items, workers=min(workers, max(1, len(items))), progress=progress,
                       desc="extract", unit="frame", weights=weights)
    summary.unit = "video"
    result.summary = summary
    if summary.failed:
        raise JobsFailed(summary)
    return result
