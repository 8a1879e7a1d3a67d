"""Build a BasicSR-readable LMDB from a frame tree, streaming, resumable, in constant memory.

Plan: the clips of SRC (Vimeo90K septuplet with mode `gt4` = im4 only / `lr7` = im1..im7, REDS,
or any folder of clips; optionally only and in the order of `--list`), frames in natural order.
Worker processes of the runner's pool (`runner.map_ordered`) read and PNG-encode frames
(`image_io.read_image` + `encode_png`, level 1 by default, as the field stores them); the parent
is the only writer and puts values into the LMDB in plan order (`LmdbWriter`: commits every N
images / M bytes, grows the map on demand, locks the DB). At most 4 frames per worker are in
flight, so memory is O(workers + commit batch), not O(dataset) -- unlike BasicSR's
`multiprocessing_read=True`, which holds every encoded frame in a dict first. A bad frame stops
the pool cleanly (queued frames cancelled, the frames being encoded finish) within seconds.

Resume: keys already committed by an interrupted run are skipped (not even read); the finished
DB has the same keys, values and `meta_info.txt` as an uninterrupted build.

Shards (`shard=(I, N)`): frame k of the plan goes to shard k mod N (make-lr's rule);
`pipelines.lmdb_merge` joins the N shard DBs into the DB an unsharded build writes.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from vsrdata.core import image_io
from vsrdata.core.layouts import (VIMEO_MODES, Clip, check_uniform, clips_from_list, detect_layout, find_clips,
                                  read_clip_list)
from vsrdata.core.lmdb.keys import KEY_STYLES, SHARD_FILE, make_key
from vsrdata.core.lmdb.writer import LmdbWriter
from vsrdata.core.paths import refuse_inside
from vsrdata.errors import ConfigError, InputError, VsrDataError
from vsrdata.pipelines.runner import available_cores, check_shard, map_ordered
from vsrdata.progress import Progress, Reporter, check_progress

SHARD_FORMAT = "vsrdata-lmdb-shard/1"
_MIB = 1 << 20


@dataclass
class BuildSummary:
    """What `build_lmdb` did. `peak_anon_mib`: the largest sampled anonymous RSS of the builder
    and its workers together (Linux /proc; None elsewhere)."""

    db: Path
    layout: str
    key_style: str
    total: int = 0
    written: int = 0
    skipped: int = 0
    bytes_written: int = 0
    commits: int = 0
    map_size: int = 0
    map_growths: int = 0
    seconds: float = 0.0
    resumed: bool = False
    peak_anon_mib: float | None = None
    warnings: list[str] = field(default_factory=list)

    def line(self) -> str:
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        resumed = f", {self.skipped} kept from the interrupted run" if self.skipped else ""
        mem = f", peak RAM {self.peak_anon_mib:.0f} MiB" if self.peak_anon_mib else ""
        return (f"{self.db}: {self.total} keys ({self.key_style}), {self.written} written{resumed}, "
                f"{self.bytes_written / _MIB:.1f} MiB in {self.seconds:.1f} s ({rate:.1f} frames/s), "
                f"{self.commits} commits, map {self.map_size / _MIB:.0f} MiB{mem}")


# ---------------------------------------------------------------------------------------- plan
def plan_clips(src: str | os.PathLike, *, vimeo_mode: str | None = None,
               list_path: str | os.PathLike | None = None) -> tuple[str, list[Clip]]:
    """(layout, clips with the frames to store) for SRC, in write order.

    Vimeo90K needs `vimeo_mode`: 'gt4' keeps im4 of every clip (BasicSR's
    `vimeo90k_train_GT_only4th.lmdb`), 'lr7' keeps im1..im7 (`vimeo90k_train_LR7frames.lmdb`).
    With `list_path` only the listed clips are used, in list order (the field's Vimeo LMDBs
    follow `sep_trainlist.txt`); otherwise all clips in natural order.
    """
    src = Path(src)
    if not src.is_dir():
        raise InputError(f"source is not a directory: {src}")
    layout = detect_layout(src)
    if vimeo_mode is not None and vimeo_mode not in VIMEO_MODES:
        raise ConfigError(f"unknown vimeo_mode {vimeo_mode!r} (choose from {', '.join(VIMEO_MODES)})",
                          option="vimeo_mode")
    if layout == "vimeo" and vimeo_mode is None:
        raise ConfigError(f"{src} is a Vimeo90K tree: choose the Vimeo mode gt4 (GT LMDB, im4 only) "
                          f"or lr7 (all seven frames, the LQ LMDB)", option="vimeo_mode")
    if layout != "vimeo" and vimeo_mode is not None:
        raise ConfigError(f"a Vimeo mode is given but {src} is not a Vimeo90K tree (no sequences/ folder)",
                          option="vimeo_mode")
    clips = clips_from_list(src, read_clip_list(list_path)) if list_path else find_clips(src)
    if not clips:
        raise InputError(f"no image frames found under {src}")
    if layout != "vimeo":
        return layout, check_uniform(clips)
    wanted = ("im4",) if vimeo_mode == "gt4" else tuple(f"im{i}" for i in range(1, 8))
    selected = []
    for clip in clips:
        by_stem = {f.rsplit(".", 1)[0]: f for f in clip.frames}
        missing = [s for s in wanted if s not in by_stem]
        if missing:
            raise InputError(f"Vimeo90K clip {clip.path} lacks {', '.join(m + '.png' for m in missing)}")
        selected.append(Clip(name=clip.name, root=clip.root, frames=tuple(by_stem[s] for s in wanted)))
    return layout, check_uniform(selected)


def _items(clips: list[Clip], key_style: str, vimeo: bool) -> Iterator[tuple[str, Path]]:
    for clip in clips:
        seen = set()
        for frame in clip.frames:
            key = make_key(clip.name, frame, key_style, vimeo=vimeo)
            if key in seen:
                raise InputError(f"two frames of clip {clip.path} map to the LMDB key {key!r} "
                                 f"(same name, different extensions?)")
            seen.add(key)
            yield key, clip.path / frame


# ------------------------------------------------------------------------------------- workers
def read_encode(path: str, compress_level: int) -> tuple[bytes, tuple[int, ...], str]:
    """Worker job: read one frame unchanged and PNG-encode it (the bytes BasicSR would store).
    Returns (png_bytes, shape, dtype name). Raises InputError naming the file."""
    img = image_io.read_image(path)
    return image_io.encode_png(img, compress_level), img.shape, img.dtype.name


class _Refetch:
    """Re-create a value from its frame path (used only to replay a batch after a map growth,
    so the writer does not keep the batch's PNG bytes in RAM)."""

    def __init__(self, compress_level: int):
        self.compress_level = compress_level

    def __call__(self, path: str) -> bytes:
        return read_encode(path, self.compress_level)[0]


def _check_not_inside(src: Path, db: Path) -> None:
    """Refuse a DB that is SRC or lies inside it (symlinks resolved): a later plan of SRC would
    walk the DB folder, and a clean-up of the DB could touch source frames."""
    refuse_inside(db, [src], what="DB", choose="a DB path", source="source folder")


def _encode(item: tuple[str, str, int]) -> tuple[bytes, tuple[int, ...], str]:
    """Pool job: `read_encode` of the frame of one (key, path, compress_level) item."""
    return read_encode(item[1], item[2])


# -------------------------------------------------------------------------------------- memory
def process_tree_anon_bytes(pid: int | None = None) -> int | None:
    """RssAnon of `pid` (default: this process) plus all its descendants, from /proc (Linux);
    None where /proc is not available. File-backed pages (the LMDB map, page cache) are not
    counted: the kernel can drop them (see docs/CONVENTIONS.md#lmdb)."""
    pid = os.getpid() if pid is None else pid
    total, stack, seen = 0, [pid], set()
    found = False
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("RssAnon:"):
                        total += int(line.split()[1]) * 1024
                        found = True
                        break
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as fh:
                    stack.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError):
            continue
    return total if found else None


# -------------------------------------------------------------------------------------- build
def _check_options(src: Path, db: Path, key_style: str, compress_level: int, shard) -> None:
    if key_style not in KEY_STYLES:
        raise ConfigError(f"unknown key style {key_style!r} (choose from {', '.join(KEY_STYLES)})",
                          option="key_style")
    if not 0 <= int(compress_level) <= 9:
        raise ConfigError(f"compress level must be 0..9, got {compress_level}", option="compress_level")
    _check_not_inside(src, db)
    check_shard(shard)


def _count(summary: BuildSummary, writer: LmdbWriter) -> None:
    """Copy the finished writer's counts into the summary."""
    summary.map_size = writer.map_size or 0
    summary.written = writer.written
    summary.skipped = writer.existing
    summary.bytes_written = writer.bytes_written
    summary.commits = writer.commits
    summary.map_growths = writer.map_growths


def build_lmdb(src: str | os.PathLike, db: str | os.PathLike, *, vimeo_mode: str | None = None,
               list_path: str | os.PathLike | None = None, key_style: str = "basicsr",
               compress_level: int = 1, workers: int | None = None, map_size: int | None = None,
               commit_images: int = 1000, commit_bytes: int = 64 * _MIB, overwrite: bool = False,
               allow_mixed: bool = False, shard: tuple[int, int] | None = None,
               progress: Progress = False) -> BuildSummary:
    """Write every planned frame of SRC into the LMDB folder DB (see the module docstring).

    `shard=(I, N)`: only frame k of the plan with k mod N == I (make-lr's rule), into a shard
    DB that records (I, N) and the plan's size in `vsrdata_shard.json`; `vsrdata lmdb-merge`
    joins the N shard DBs into the DB one unsharded build writes.

    `progress` counts frames (written or kept; task 'to-lmdb', unit 'img'): `vsrdata.progress`.
    Raises InputError for
    a bad frame (after committing every frame before it, so the DB stays valid and a re-run
    resumes), ConfigError for bad options, OutputError when DB cannot be written.

    Example::

        from vsrdata import build_lmdb
        summary = build_lmdb("REDS/train_sharp", "REDS/train_sharp_with_val.lmdb")  # keys 000/00000000
    """
    start = time.perf_counter()
    check_progress(progress)
    src_path, db_path = Path(src), Path(db)
    _check_options(src_path, db_path, key_style, compress_level, shard)
    layout, clips = plan_clips(src_path, vimeo_mode=vimeo_mode, list_path=list_path)
    plan_total = sum(len(c.frames) for c in clips)
    total = plan_total if shard is None else len(range(shard[0], plan_total, shard[1]))
    if total == 0:
        raise InputError(f"shard {shard[0]}/{shard[1]} of {src} holds no frames ({plan_total} in all)")
    summary = BuildSummary(db=db_path, layout=layout, key_style=key_style, total=total)
    if layout == "clips" and clips and all(c.name.split("/")[0].upper() == "X4" for c in clips):
        summary.warnings.append("all clips are under X4/: keys will start with 'X4/' (BasicSR's REDS "
                                "gotcha); point SRC at the X4 folder to get '000/00000000' keys")
    settings = {"key_style": key_style, "vimeo_mode": vimeo_mode}
    if shard is not None:
        settings["shard"] = list(shard)
    workers = max(1, min(workers or available_cores(), total))
    with LmdbWriter(db_path, settings=settings, compress_level=compress_level, map_size=map_size,
                    commit_images=commit_images, commit_bytes=commit_bytes, overwrite=overwrite,
                    expected_items=total, refetch=_Refetch(compress_level)) as writer:
        summary.resumed = writer.resumed
        items = ((key, str(path), compress_level) for key, path in _items(clips, key_style, layout == "vimeo"))
        if shard is not None:
            items = itertools.islice(items, shard[0], None, shard[1])
            record = {"format": SHARD_FORMAT, "shard": list(shard), "frames": plan_total,
                      "key_style": key_style, "compress_level": int(compress_level)}
            image_io.write_bytes_atomic(db_path / SHARD_FILE, (json.dumps(record) + "\n").encode())
        with Reporter(progress, "to-lmdb", "img", total) as bar:
            peak = _write_all(writer, items, workers, allow_mixed, bar, total)
        writer.finish()
        _count(summary, writer)
    summary.peak_anon_mib = peak / _MIB if peak else None
    summary.seconds = time.perf_counter() - start
    return summary


class _MixedCheck:
    """Refuse a frame whose bit depth or channel count differs from the first frame's."""

    def __init__(self, allow: bool):
        self.allow, self.first = allow, None

    def __call__(self, shape: tuple[int, ...], dtype: str, path: str) -> None:
        channels = shape[2] if len(shape) > 2 else 1
        if self.first is None:
            self.first = (dtype, channels, path)
        elif not self.allow and (dtype, channels) != self.first[:2]:
            ref_dtype, ref_ch, ref_path = self.first
            raise InputError(f"{path} is {dtype} with {channels} channel(s) but {ref_path} is "
                             f"{ref_dtype} with {ref_ch}: mixed bit depths/channel counts in one "
                             f"LMDB are refused unless allowed", option="allow_mixed")


def _write_all(writer: LmdbWriter, items, workers: int, allow_mixed: bool,
               bar: Reporter, total: int) -> int:
    """Encode `items` in the runner's pool and put them in order; returns the peak anon RSS
    sampled (bytes). A frame an interrupted run committed is not re-read (`local`)."""
    check_mixed = _MixedCheck(allow_mixed)

    def stored(item):
        head = writer.stored_shape_and_depth(item[0])
        return None if head is None else ("stored", *head)

    peak, last_sample, done = 0, 0.0, 0
    with closing(map_ordered(_encode, items, workers=workers, local=stored)) as results:
        results = iter(results)
        while True:
            try:
                (key, path, _), result = next(results)
            except StopIteration:
                break
            except VsrDataError as exc:
                raise InputError(f"{exc} ({writer.existing + writer.written} frames before it are in "
                                 f"{writer.path}: fix or remove the frame and re-run to resume)") from None
            if result[0] == "stored":
                check_mixed(result[1], "uint16" if result[2] == 16 else "uint8", path)
                writer.add_existing(key, result[1])
            else:
                value, shape, dtype = result
                check_mixed(shape, dtype, path)
                writer.put(key, value, shape, path)
            done += 1
            bar.to(done, total)
            now = time.monotonic()
            if now - last_sample > 0.25:
                last_sample = now
                peak = max(peak, process_tree_anon_bytes() or 0)
    return max(peak, process_tree_anon_bytes() or 0)
