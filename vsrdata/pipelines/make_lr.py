"""`make_lr`: write the low-resolution (LR) copy of every frame of a dataset tree.

What it does, in order:

1. **Plan.** `find_clips(SRC)` lists every clip (Vimeo90K septuplet `sequences/...`, REDS
   `<clip>/<frame>`, Vid4 or any folder of clips at any depth; symlinks followed). A clip must
   be uniform (`layouts.clip_shape`: every frame of the size, channels and bit depth of its
   first), or the run is refused before anything is written. Each frame `SRC/<rel>` maps to
   `DST/<rel>` with the extension replaced by `.png`, so the relative structure is mirrored
   (a Vimeo90K tree gives `DST/sequences/00001/0001/im1.png`, as BasicSR's
   `vimeo_septuplet_matlabLRx4/sequences/...`). Frames are in a fixed order: clips by natural
   sort of their names, frames by natural sort inside a clip.
2. **Shard** (`shard=(I, N)`): frame number k of that order belongs to shard k mod N. The N
   shards are disjoint, cover every frame, are balanced to within one frame, and depend only on
   the source tree, so N machines can each run one shard into the same DST.
3. **Run.** Each frame is one job (`runner.run_jobs`; a spawn process pool, or in-process with
   `workers=1`): read it unchanged (`image_io.read_image`), `degrade(img, scale, kind)`, write
   a PNG (cv2's default compression, level 3) through a temporary hidden name and a rename
   (`image_io.write_image`). Bit depth (uint8/uint16) and channel count (gray stays gray) are
   kept. Only paths cross the process boundary.

Resume: an existing output is skipped (unless `overwrite`); since outputs only appear by rename,
an existing output is always complete. Before running, hidden temporary files that a killed run
left for *this shard's* outputs are deleted (those of other shards are left alone: another
machine may be writing them). A re-run after `kill -9` therefore completes the tree, and the
result is byte-identical to an uninterrupted run (PNG encoding is deterministic).

Manifest: `DST/.make_lr.json` records the scale and degradation (written before the frames);
a DST made with another scale or degradation is refused unless `overwrite`, so BI and BD
frames never mix in one tree. It is a dot-file so that readers listing the LR root (BasicSR's
`VideoTestDataset` globs `*` and takes every entry for a clip folder) see clip folders only.
Trees made before this name read their `make_lr.json` for the check, which is then replaced by
the hidden file.

Bad frames (unreadable, truncated, alpha channel, smaller than the scale): the frame fails with
a one-line message naming the file and nothing is written for it; the other frames are still
processed; at the end `JobsFailed` (an `InputError`) is raised, naming the first bad file and
carrying the `Summary`. A re-run after fixing the inputs only does the missing frames.
"""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from pathlib import Path

from vsrdata.core.degrade import DEGRADATIONS, degrade
from vsrdata.core.image_io import read_image, remove_stale_temps, write_bytes_atomic, write_image
from vsrdata.core.layouts import clip_shape, find_clips
from vsrdata.core.locks import OutputLock
from vsrdata.core.paths import refuse_inside
from vsrdata.errors import ConfigError, InputError, OutputError
from vsrdata.pipelines.runner import available_cores, check_shard, run_jobs
from vsrdata.pipelines.summary import SKIPPED, WRITTEN, JobsFailed, Summary
from vsrdata.progress import Progress, check_progress

__all__ = ["make_lr", "plan_make_lr", "Summary", "JobsFailed"]

_EXAMPLES = 5
MANIFEST = ".make_lr.json"
OLD_MANIFEST = "make_lr.json"   # before 0.x: visible, broke BasicSR's listing of an LQ root
MANIFEST_FORMAT = "vsrdata-make-lr/1"
_METHODS = {
    "bi": "mod-crop to a multiple of the scale, then MATLAB imresize(I, 1/scale, 'bicubic') with "
          "antialiasing, rounded once (vsrdata.core.degrade, BI)",
    "bd": "Gaussian blur sigma 1.6 with replicated borders, then every scale-th pixel "
          "(MATLAB imresize_BD convention; vsrdata.core.degrade, BD)",
    "bd-duf": "BasicSR duf_downsample: 13x13 Gaussian sigma 0.4*scale (scipy gaussian_filter of a delta), "
              "reflect padding, stride scale (vsrdata.core.degrade, BD-DUF)",
}


def _check_manifest(dst: Path, scale: int, degradation: str, overwrite: bool, write: bool) -> None:
    """DST/.make_lr.json records how the frames under DST were made (the field's LR sets are
    otherwise indistinguishable: BI vs BD mix-ups are a known cause of "the model does not
    work"). A DST made with another scale or degradation is refused unless `overwrite`."""
    path = dst / MANIFEST
    if not path.is_file() and (dst / OLD_MANIFEST).is_file():
        path = dst / OLD_MANIFEST
    if path.is_file() and not overwrite:
        try:
            old = json.loads(path.read_text())
            old_key = (int(old["scale"]), str(old["degradation"]))
        except (ValueError, KeyError, TypeError, OSError):
            raise OutputError(f"unreadable {path}: remove it or overwrite", option="overwrite") from None
        if old_key != (scale, degradation):
            raise OutputError(f"{dst} already holds x{old_key[0]} '{old_key[1]}' frames ({path.name}); "
                              f"refusing to mix in x{scale} '{degradation}' (choose another DST or overwrite)",
                              option="overwrite")
    if write:
        record = {"format": MANIFEST_FORMAT, "scale": scale, "degradation": degradation,
                  "method": _METHODS[degradation]}
        write_bytes_atomic(dst / MANIFEST, (json.dumps(record, indent=1) + "\n").encode())
        if (dst / OLD_MANIFEST).is_file():
            (dst / OLD_MANIFEST).unlink()


def _check_folders(src: Path, dst: Path) -> None:
    if not src.exists():
        raise InputError(f"source folder does not exist: {src}")
    if not src.is_dir():
        raise InputError(f"source is not a folder: {src}")
    if dst.exists() and not dst.is_dir():
        raise OutputError(f"destination exists and is not a folder: {dst}")
    refuse_inside(dst, [src], what="destination", choose="a DST", source="source folder")


def plan_make_lr(src: str | os.PathLike, dst: str | os.PathLike,
                 shard: tuple[int, int] | None = None) -> list[tuple[str, str]]:
    """The (source frame, output PNG) path pairs of this shard, in processing order (module doc).

    Paths are plain strings (a few hundred bytes per frame, so Vimeo90K's 640k frames plan in
    a few hundred MB at most). Raises InputError for a missing/empty source, a clip whose frames
    differ in size, channel count or bit depth (`layouts.clip_shape`, read from PNG headers), or
    two sources mapping to one output (e.g. `im1.png` and `im1.jpg`), OutputError when DST is SRC or lies
    inside it (symlinks resolved) or an output would land inside SRC, ConfigError for a bad shard.
    """
    check_shard(shard)
    src, dst = Path(src), Path(dst)
    _check_folders(src, dst)
    # SRC inside DST is allowed (e.g. `make-lr data/GT data`), as long as no output lands in SRC.
    src_real, dst_real = src.resolve(), dst.resolve()
    src_in_dst = src_real.relative_to(dst_real).parts if dst_real in src_real.parents else None
    pairs: list[tuple[str, str]] = []
    for clip in find_clips(src):
        clip_shape(clip)  # a clip mixing sizes/depths/channels is refused before anything is written
        rel_dir = clip.path.relative_to(src)
        src_dir, out_dir = str(clip.path), str(dst / rel_dir)
        seen: dict[str, str] = {}
        for frame in clip.frames:
            out_name = os.path.splitext(frame)[0] + ".png"
            if out_name in seen:
                raise InputError(f"{os.path.join(src_dir, seen[out_name])} and {os.path.join(src_dir, frame)} "
                                 f"would both be written to {os.path.join(out_dir, out_name)}")
            seen[out_name] = frame
            pairs.append((os.path.join(src_dir, frame), os.path.join(out_dir, out_name)))
        if src_in_dst and rel_dir.parts[:len(src_in_dst)] == src_in_dst:
            raise OutputError(f"output {pairs[-1][1]} would be written inside the source folder {src}")
    if not pairs:
        raise InputError(f"no image frames found under {src}")
    if shard is not None:
        pairs = pairs[shard[0]::shard[1]]
    return pairs


def _remove_stale_temps(pairs: list[tuple[str, str]]) -> int:
    """Delete hidden temp files (`.<name>.<pid>.tmp`) of the planned outputs; returns the count."""
    wanted: dict[str, set[str]] = {}
    for _, out in pairs:
        directory, name = os.path.split(out)
        wanted.setdefault(directory, set()).add(name)
    return sum(remove_stale_temps(directory, names) for directory, names in wanted.items())


def _make_one(item: tuple[str, str, int, str, bool]) -> str:
    """Job for one frame (runs in a worker): read, degrade, write atomically."""
    src, dst, scale, kind, overwrite = item
    if not overwrite and os.path.exists(dst):
        return SKIPPED
    img = read_image(src, allow_alpha=False)
    height, width = img.shape[:2]
    if height < scale or width < scale:
        raise InputError(f"frame is {width}x{height}, smaller than the scale {scale}: {src}")
    try:
        lr = degrade(img, scale, kind)
    except InputError as exc:  # degrade does not know the file name
        raise InputError(f"{exc}: {src}") from None
    write_image(dst, lr)
    return WRITTEN


def make_lr(src: str | os.PathLike, dst: str | os.PathLike, scale: int = 4, degradation: str = "bi",
            workers: int | None = None, overwrite: bool = False,
            shard: tuple[int, int] | None = None, dry_run: bool = False,
            progress: Progress = False) -> Summary:
    """Write `degrade(frame, scale, degradation)` of every frame under `src` to `dst` as PNG.

    See the module docstring for layout, sharding, resume and error handling.
    `workers=None` uses every core this process may use; 1 runs in-process.
    With `dry_run`, nothing is written: the returned Summary has `written` = frames that would be
    written, `skipped` = outputs that already exist, and `examples` = the first few pairs.
    Raises `JobsFailed` (an InputError, with `.summary`) after the run if any frame failed.
    The Summary's `out` is `dst`. `progress`: `vsrdata.progress` (False: silent; True: a bar on stderr; or a callback).

    Example::

        from vsrdata import make_lr
        summary = make_lr("vimeo_septuplet/sequences", "vimeo_septuplet_matlabLRx4/sequences",
                          scale=4, degradation="bi")  # MATLAB-exact bicubic x4
        print(summary.line())
    """
    check_progress(progress)
    if degradation not in DEGRADATIONS:
        raise ConfigError(f"unknown degradation {degradation!r}: expected one of {', '.join(DEGRADATIONS)}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ConfigError(f"scale must be a positive integer, got {scale!r}")
    if workers is None:
        workers = available_cores()
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")

    pairs = plan_make_lr(src, dst, shard)
    # One writer per DST (per shard): two runs at once could mix BI and BD frames (--overwrite).
    with nullcontext() if dry_run else OutputLock(dst, "DST", shard=shard):
        examples = [(Path(a), Path(b)) for a, b in pairs[:_EXAMPLES]]
        _check_manifest(Path(dst), scale, degradation, overwrite, write=not dry_run)
        if dry_run:
            existing = 0 if overwrite else sum(1 for _, out in pairs if os.path.exists(out))
            return Summary(total=len(pairs), written=len(pairs) - existing, skipped=existing,
                           dry_run=True, examples=examples, out=Path(dst))

        _remove_stale_temps(pairs)
        items = [(s, d, scale, degradation, overwrite) for s, d in pairs]
        del pairs
        summary = run_jobs(_make_one, items, workers=workers, progress=progress,
                           desc="make-lr", unit="frame")
        summary.examples, summary.out = examples, Path(dst)
        if summary.failed:
            raise JobsFailed(summary)
        return summary
