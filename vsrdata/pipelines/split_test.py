"""`split_test`: extract a test split in the layout the field's test scripts expect.

Output (schema ``vsrdata-split-test/1``, see `vsrdata.core.splits`)::

    OUT/.vsrdata-split-test      marker, written FIRST (options of the run)
    OUT/GT/<clip>/00000000.png   GT frames, renamed to integers in natural order
    OUT/BIx4/<clip>/00000000.png LR frames (BDx4 with degradation 'bd'; x<scale>)
    OUT/meta_info.txt            `<clip> <nframes> (h,w,c)` per clip (BasicSR style; GT size)
    OUT/mapping.txt              `<source clip>/<old name> <clip>/<new name>` per frame
    OUT/split.json               the machine-readable record, written LAST

What happens, in order:

1. **Select clips.** Layouts: Vimeo90K septuplet (`SRC/sequences/00001/0266/im1..im7.png`),
   REDS (`SRC/000/00000000.png`), a Vid4-style GT tree (`SRC/GT/<clip>/`, with its LR taken
   from `SRC/BIx4/` (or `BDx4`) when present), or any folder of clips. Clips come from a list
   file, a named partition (`core/splits.py`), `clips=[...]`, or by default from
   `SRC/sep_testlist.txt` (Vimeo) / every clip (other layouts); `limit` keeps the first N in list
   order. Ids are checked against path tricks (`..`, absolute paths); all missing ids are
   reported in one error (first 10 and the count) before anything is written. Clip `00001/0266`
   is written to folder `00001_0266`.
2. **Check sizes** (PNG headers only, so it is quick): every clip must be uniform (same size,
   channel count and bit depth as its first frame: `layouts.clip_shape`, the rule of every
   command); a given LR clip must have the same frame names and the size `GT // scale`. Any
   disagreement is one error naming the clip and the odd frame, before anything is written.
3. **Sizes and padding.** GT sides that are not a multiple of the scale are first cut at the
   bottom/right to the nearest multiple (mod-crop), because that is what the field's LR is made
   from (MATLAB `generate_LR_Vimeo90K.m`, BasicSR `mod_crop`); the recorded `gt_size` is that
   mod-cropped size, and `source_size` keeps the size of the source file. The LR size is
   `gt_size / scale`. Then, with `multiple` K, each LR frame is padded at the **bottom and
   right only** to the next multiple of K and its GT by the same amount times the scale
   (`pad`: replicate = repeat the edge, reflect = mirror without repeating the edge like
   np.pad 'reflect', zero), or with `crop=True` cut down to the previous multiple of K (GT by
   the same region times the scale; recorded as `lr_crop` / `gt_crop`). Since padding is only at
   the bottom/right, `splits.unpad` recovers the original exactly by taking the top-left corner.
4. **Write.** One job per frame (`runner.run_jobs`: spawn process pool, or in-process with one
   worker). LR frames are made with `vsrdata.core.degrade.degrade` (MATLAB-exact bicubic 'bi',
   or 'bd') from the mod-cropped GT, or read from the given LR tree. A frame that needs no
   change (PNG source, no mod-crop, no pad, no crop) is copied byte for byte, or with
   `link=True` hard-linked (falling back to a copy when linking fails, e.g. across devices).
   Every write goes to a hidden temporary name and is renamed into place, so a hard-linked
   output is *replaced*, never written through (the source frame is never modified).

Resume and safety: OUT must be empty, absent, or an earlier split-test output; anything else is
refused unless `overwrite`. The marker holds the options that decide the bytes written (scale,
degradation, padding, clip list...); re-running with the same options resumes (frames already
present are skipped, stale temporary files of a killed run are removed) and gives files
byte-identical to an uninterrupted run; different options are refused unless `overwrite`, which
first deletes OUT/GT, the LR folder and the record files (nothing else in OUT). OUT may not be,
contain, or lie inside the source or LR tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from vsrdata.core import splits
from vsrdata.core.degrade import DEGRADATIONS
from vsrdata.core.image_io import (PNG_IEND, frame_shape, is_image_file, read_image, remove_stale_temps,
                                   temp_path_for, write_bytes_atomic, write_image)
from vsrdata.core.layouts import (Clip, clip_root, clip_shape, clips_from_list, detect_layout,
                                  find_clips, read_clip_list, validate_clip_id)
from vsrdata.core.locks import LOCK_NAME, OutputLock
from vsrdata.errors import ConfigError, InputError, OutputError
from vsrdata.pipelines.runner import SKIPPED, WRITTEN, JobsFailed, Summary, available_cores, run_jobs

__all__ = ["split_test", "SplitResult", "JobsFailed", "LAYOUTS"]

LAYOUTS = ("auto", "vimeo", "reds", "gt-tree", "clips")


@dataclass
class SplitResult:
    """What `split_test` did (or, with `dry_run`, would do)."""

    out: Path
    layout: str
    gt_dir: str
    lr_dir: str
    lr_source: str            # 'generated' or the LR clip root that was read
    clips: int
    frames: int
    padded_clips: int
    summary: Summary
    linked: int = 0
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False

    def line(self) -> str:
        lr = "generated" if self.lr_source == "generated" else f"from {self.lr_source}"
        head = (f"{self.clips} clips, {self.frames} frames -> {self.out} "
                f"({self.gt_dir}, {self.lr_dir} {lr}; {self.padded_clips} clips padded/cropped)")
        tail = self.summary.line()
        if self.linked:
            tail += f"; {self.linked} GT/LR files hard-linked"
        return f"{head}; {tail}"


# ------------------------------------------------------------------------------ frame job
def _ok(path: str, shape: tuple[int, int]) -> bool:
    """An existing output of the expected size (writes are atomic, so it is complete)."""
    try:
        h, w = frame_shape(Path(path))[:2]
    except (InputError, OSError):
        return False
    return (h, w) == tuple(shape)


def _check_complete_png(src: str) -> None:
    """The check `read_image` makes, for files passed on without decoding: a PNG must end with
    its IEND chunk (a truncated file would otherwise be copied or linked as it is)."""
    try:
        with open(src, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64))
            tail = fh.read()
    except OSError as exc:
        raise InputError(f"cannot read {src}: {exc.strerror or exc}") from None
    if not tail.rstrip(b"\0").endswith(PNG_IEND):
        raise InputError(f"truncated PNG (no IEND chunk): {src}")


def _link_or_copy(src: str, dst: str, link: bool) -> None:
    """`dst` becomes a hard link to `src` (with `link`, when the filesystem allows) or a copy."""
    _check_complete_png(src)
    if link:
        tmp = temp_path_for(dst)
        try:
            Path(dst).parent.mkdir(parents=True, exist_ok=True)
            os.link(src, tmp)
            os.replace(tmp, dst)  # replaces, never writes through an existing link
            return
        except OSError:  # cross-device, no link support, ...: fall back to a copy
            try:
                tmp.unlink()
            except OSError:
                pass
    try:
        data = Path(src).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {src}: {exc.strerror or exc}") from None
    write_bytes_atomic(dst, data)


def _fit(img, geom: dict, which: str):
    """Mod-crop (GT), then pad or crop one frame per the clip's geometry."""
    h, w = geom[f"{which}_hw"]
    img = img[:h, :w]
    crop = geom[f"{which}_crop"]
    if crop is not None:
        return img[: crop[0], : crop[1]]
    pb, pr = geom[f"{which}_pad"]
    return splits.pad_bottom_right(img, pb, pr, geom["pad_mode"])


def _frame_job(item: dict) -> str:
    """One frame (runs in a worker): GT output, then LR output; each skipped when present."""
    geom = item["geom"]
    gt_out_hw, lr_out_hw = geom["gt_out_hw"], geom["lr_out_hw"]
    need_gt = item["overwrite"] or not _ok(item["gt_dst"], gt_out_hw)
    need_lr = item["overwrite"] or not _ok(item["lr_dst"], lr_out_hw)
    if not (need_gt or need_lr):
        return SKIPPED
    gt = None
    if need_gt:
        if geom["gt_unchanged"] and item["gt_src"].lower().endswith(".png"):
            _link_or_copy(item["gt_src"], item["gt_dst"], item["link"])
        else:
            gt = read_image(item["gt_src"])
            write_image(item["gt_dst"], _fit(gt, geom, "gt"))
    if need_lr:
        if item["lr_src"] is None:
            from vsrdata.core.degrade import degrade  # needs cv2/scipy: imported in the worker

            if gt is None:
                gt = read_image(item["gt_src"])
            h, w = geom["gt_hw"]
            try:
                lr = degrade(gt[:h, :w], geom["scale"], geom["degradation"])
            except InputError as exc:  # degrade leaves naming the file to its caller
                raise InputError(f"{exc}: {item['gt_src']}") from None
            if tuple(lr.shape[:2]) != tuple(geom["lr_hw"]):  # pragma: no cover - degrade contract
                raise InputError(f"degrade gave {lr.shape[:2]} for {item['gt_src']}, expected {geom['lr_hw']}")
            write_image(item["lr_dst"], _fit(lr, geom, "lr"))
        elif geom["lr_unchanged"] and item["lr_src"].lower().endswith(".png"):
            _link_or_copy(item["lr_src"], item["lr_dst"], item["link"])
        else:
            lr = read_image(item["lr_src"])
            if tuple(lr.shape[:2]) != tuple(geom["lr_hw"]):
                raise InputError(f"LR frame {item['lr_src']} is {lr.shape[0]}x{lr.shape[1]}, "
                                 f"expected {geom['lr_hw'][0]}x{geom['lr_hw'][1]}")
            write_image(item["lr_dst"], _fit(lr, geom, "lr"))
    return WRITTEN


# ------------------------------------------------------------------------------ planning
def _resolve_layout(src: Path, layout: str) -> str:
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r} (choose from {', '.join(LAYOUTS)})")
    if not src.is_dir():
        raise InputError(f"source folder does not exist: {src}" if not src.exists()
                         else f"source is not a folder: {src}")
    if layout != "auto":
        return layout
    if (src / "GT").is_dir():
        return "gt-tree"
    return detect_layout(src)


def _select(src: Path, gt_root: Path, layout: str, list_file, partition, clip_ids, limit):
    """(ids or None for 'every clip', selection record)."""
    given = [n for n, v in (("list_file", list_file), ("partition", partition), ("clips", clip_ids))
             if v not in (None, "", [], ())]
    if len(given) > 1:
        raise ConfigError(f"choose one of {' / '.join(given)}, not several")
    if list_file:
        ids = read_clip_list(list_file)
        selection = {"kind": "list", "name": Path(list_file).name}
    elif partition:
        ids = splits.partition_clips(partition)
        selection = {"kind": "partition", "name": partition.lower()}
    elif clip_ids:
        if isinstance(clip_ids, str):
            clip_ids = clip_ids.split(",")
        ids = [validate_clip_id(c, "the clips given") for c in clip_ids if c.strip()]
        selection = {"kind": "clips", "name": None}
    elif layout == "vimeo":
        base = src.parent if src.name == "sequences" else src
        default = base / "sep_testlist.txt"
        if not default.is_file():
            raise ConfigError(f"no sep_testlist.txt in {base}: give a clip list or the partition vimeo-t "
                              "(a Vimeo90K tree mixes train and test clips)", option="partition")
        ids = read_clip_list(default)
        selection = {"kind": "list", "name": default.name}
    else:
        ids = None
        selection = {"kind": "all", "name": None}
    if ids is not None:
        seen = set()
        for cid in ids:
            if cid in seen:
                raise InputError(f"clip {cid!r} is listed twice in the {selection['kind']}")
            seen.add(cid)
        if not ids:
            raise InputError(f"the clip {selection['kind']} {selection['name'] or ''} is empty")
    if limit is not None:
        if limit < 1:
            raise ConfigError(f"limit must be >= 1, got {limit}", option="limit")
        selection["limit"] = limit
    if ids is not None:
        ids = ids[:limit] if limit else ids
        try:
            clips = clips_from_list(gt_root, ids)
        except InputError as exc:
            if selection["kind"] == "partition" and selection["name"] in ("reds-val", "redsofficial4"):
                raise InputError(f"{exc} (REDS validation clips are numbered 240-269 once val is merged "
                                 "into train, as BasicSR's regroup_reds_dataset.py does)") from None
            raise
    else:
        clips = find_clips(gt_root)
        if not clips:
            raise InputError(f"no image frames found under {gt_root}")
        clips = clips[:limit] if limit else clips
    names = [c.name for c in clips]
    if selection["kind"] != "partition":
        # A selection that *is* a named split (e.g. all clips of a Vid4 tree) is recorded as
        # that partition, so evaluation picks the matching protocol; `how` keeps the origin.
        for pname in splits.PARTITIONS:
            if len(splits.partition_clips(pname)) == len(names) and set(splits.partition_clips(pname)) == set(names):
                how = f"{selection['kind']} {selection['name'] or ''}".strip()
                selection = {"kind": "partition", "name": pname, "how": how,
                             **{k: v for k, v in selection.items() if k not in ("kind", "name")}}
                break
    selection["count"] = len(clips)
    selection["sha256"] = hashlib.sha256("\n".join(names).encode()).hexdigest()
    return clips, selection


def _lr_clip(lr_base: Path, clip: Clip, scale: int) -> Clip:
    """The LR clip paired with `clip`: same clip name under `lr_base` (or under `lr_base/X<scale>`,
    REDS' `train_sharp_bicubic/X4`), with exactly the same frame names."""
    directory = lr_base / clip.name if clip.name else lr_base
    if not directory.is_dir() and (lr_base / f"X{scale}").is_dir():
        directory = lr_base / f"X{scale}" / clip.name
    label = clip.name or clip.root.name
    names = set()
    if directory.is_dir():
        names = {e.name for e in os.scandir(directory)
                 if e.is_file() and is_image_file(e.name) and not e.name.startswith(".")}
    if not names:
        raise InputError(f"LR clip {label!r} not found under {lr_base}")
    missing = [n for n in clip.frames if n not in names]
    extra = sorted(names - set(clip.frames))
    if missing or extra:
        what = f"{missing[0]} has no LR frame" if missing else f"LR frame {extra[0]} has no GT frame"
        raise InputError(f"clip {label!r}: GT and LR frames differ ({what}; "
                         f"{len(clip.frames)} GT vs {len(names)} LR frames)")
    return Clip(name=directory.relative_to(lr_base).as_posix(), root=lr_base, frames=clip.frames)


def _plan_clip(clip: Clip, lr_base: Path | None, scale: int, multiple: int, crop: bool,
               warnings: list[str]) -> tuple[dict, dict, Clip | None]:
    """Check one clip's frame sizes (and its LR clip's) and work out its sizes and padding.

    Returns (the clip's split.json record, the geometry every frame job of the clip needs,
    the paired LR clip or None when LR is generated).
    """
    label = clip.name or clip.root.name
    h0, w0, ch, dtype = clip_shape(clip, "GT")
    lr_h, lr_w = h0 // scale, w0 // scale
    if lr_h < 1 or lr_w < 1:
        raise InputError(f"clip {label!r}: frames are {h0}x{w0}, smaller than the scale {scale}")
    if ch == 4:
        raise InputError(f"clip {label!r}: frames have an alpha channel (RGBA), which is not supported")
    lr_clip = _lr_clip(lr_base, clip, scale) if lr_base is not None else None
    if lr_clip is not None:
        lh, lw, lc, ldt = clip_shape(lr_clip, "LR")
        if (lh, lw) != (lr_h, lr_w) or (lc, ldt) != (ch, dtype):
            raise InputError(f"clip {label!r}: GT {h0}x{w0}x{ch} and LR {lh}x{lw}x{lc} disagree with "
                             f"scale {scale} (expected LR {lr_h}x{lr_w}x{ch})")
    # GT used = the mod-cropped source (top-left), the region the LR is made from.
    gt_h, gt_w = lr_h * scale, lr_w * scale
    if (h0, w0) != (gt_h, gt_w):
        warnings.append(f"clip {label!r}: GT {h0}x{w0} is not a multiple of the scale {scale}; "
                        f"using its top-left {gt_h}x{gt_w} (mod-crop)")
    if crop:
        lr_crop = (lr_h - lr_h % multiple, lr_w - lr_w % multiple)
        if 0 in lr_crop:
            raise InputError(f"clip {label!r}: LR {lr_h}x{lr_w} is smaller than the multiple {multiple}, "
                             "cannot crop (pad instead)", option="multiple")
        gt_crop = (lr_crop[0] * scale, lr_crop[1] * scale)
        lr_pad = gt_pad = (0, 0)
        lr_out, gt_out = lr_crop, gt_crop
        changed = lr_crop != (lr_h, lr_w)
    else:
        lr_crop = gt_crop = None
        lr_pad = (splits.pad_amount(lr_h, multiple), splits.pad_amount(lr_w, multiple))
        gt_pad = (lr_pad[0] * scale, lr_pad[1] * scale)
        lr_out = (lr_h + lr_pad[0], lr_w + lr_pad[1])
        gt_out = (gt_h + gt_pad[0], gt_w + gt_pad[1])
        changed = lr_pad != (0, 0)
    geom = {
        "scale": scale, "gt_hw": (gt_h, gt_w), "lr_hw": (lr_h, lr_w),
        "gt_pad": gt_pad, "lr_pad": lr_pad, "gt_crop": gt_crop, "lr_crop": lr_crop,
        "gt_out_hw": gt_out, "lr_out_hw": lr_out,
        "gt_unchanged": not changed and (gt_h, gt_w) == (h0, w0),  # copy/link the source file
        "lr_unchanged": not changed,
    }
    record = {
        "source": clip.name,
        "num_frames": len(clip.frames),
        "gt_size": [gt_h, gt_w, ch],
        "lr_size": [lr_h, lr_w, ch],
        "lr_pad": list(lr_pad),
        "gt_pad": list(gt_pad),
        "gt_crop": list(gt_crop) if gt_crop else None,
        "lr_crop": list(lr_crop) if lr_crop else None,
        "source_size": [h0, w0, ch],
        "dtype": dtype,
        "frames": {splits.frame_name(i): name for i, name in enumerate(clip.frames)},
    }
    return record, geom, lr_clip


def _check_out(out: Path, sources: list[Path]) -> None:
    if out.exists() and not out.is_dir():
        raise OutputError(f"OUT exists and is not a folder: {out}")
    out_real = out.resolve()
    for src in sources:
        src_real = src.resolve()
        if out_real == src_real or src_real in out_real.parents or out_real in src_real.parents:
            raise OutputError(f"OUT {out} overlaps the source tree {src} (choose an OUT outside it)")


def _read_marker(out: Path) -> dict | None:
    path = out / splits.MARKER_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _prepare_out(out: Path, marker: dict, overwrite: bool, lr_dir: str, check_only: bool = False) -> None:
    """Refuse a foreign or differently-made OUT (unless overwrite); on overwrite clear our
    folders and record files (unless `check_only`)."""
    for name in ("GT", lr_dir):
        if (out / name).is_symlink():
            raise OutputError(f"{out / name} is a symbolic link; split-test writes real folders there")
    existing = _read_marker(out) if out.is_dir() else None
    non_empty = out.is_dir() and any(p.name != LOCK_NAME for p in out.iterdir())
    if not overwrite:
        if existing is None and non_empty:
            raise OutputError(f"OUT {out} is not empty and was not made by split-test "
                              "(overwrite to write into it anyway, or choose another OUT)", option="overwrite")
        if existing is not None and existing != marker:
            diff = sorted({"clip selection" if k.startswith("clips") else k
                           for k in set(existing) | set(marker) if existing.get(k) != marker.get(k)})
            raise OutputError(f"OUT {out} holds a split-test output made with different "
                              f"{', '.join(diff) or 'options'} (overwrite to redo it, or choose another OUT)",
                              option="overwrite")
        return
    if check_only:
        return
    old_lr = existing.get("lr_dir") if existing else None
    for name in {"GT", lr_dir, old_lr} - {None}:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
    for name in (splits.SPLIT_FILE, splits.META_FILE, splits.MAPPING_FILE, splits.MARKER_FILE):
        try:
            (out / name).unlink()
        except FileNotFoundError:
            pass


_FLAT_LIST = re.compile(r"\[\s+([^\[\]{}\"]*?)\s+\]")


def _json_text(obj) -> bytes:
    """Indented JSON with number lists on one line (`"gt_size": [148, 268, 3]`)."""
    text = json.dumps(obj, indent=2)
    text = _FLAT_LIST.sub(lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
    return (text + "\n").encode()


# ------------------------------------------------------------------------------ entry point
def split_test(src: str | os.PathLike, out: str | os.PathLike, *, layout: str = "auto",
               list_file: str | os.PathLike | None = None, partition: str | None = None,
               clips: list[str] | str | None = None, limit: int | None = None,
               lr_root: str | os.PathLike | None = None, scale: int = 4, degradation: str = "bi",
               multiple: int = 4, pad: str | None = "replicate", crop: bool = False,
               link: bool = False, overwrite: bool = False, workers: int | None = None,
               dry_run: bool = False, progress: bool = True) -> SplitResult:
    """Extract a test split from `src` into `out` (see the module docstring for every step).

    Selection: at most one of `list_file`, `partition` (a name of `splits.PARTITIONS`), `clips`
    (ids or a comma-separated string); `limit` keeps the first N. `lr_root`: read LR frames from
    this tree (same clip/frame names) instead of generating them with `degrade`. `pad` is
    ignored (recorded as null) when `crop` is set. `workers=None` uses every core.

    Raises ConfigError (bad options), InputError (missing/unsafe clips, size mismatches, bad
    frames: `JobsFailed` after the other frames were written), OutputError (unusable OUT).

    Example::

        from vsrdata import split_test
        result = split_test("REDS/train_sharp", "datasets/REDS4", partition="reds4")
        print(result.line())  # datasets/REDS4/GT/<clip>/00000000.png and BIx4/...
    """
    src, out = Path(src), Path(out)
    if degradation not in DEGRADATIONS:
        raise ConfigError(f"unknown degradation {degradation!r} (choose from bi, bd)")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ConfigError(f"scale must be a positive integer, got {scale!r}", option="scale")
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ConfigError(f"multiple must be a positive integer, got {multiple!r}", option="multiple")
    pad_mode = None if crop else (pad or "replicate")
    if pad_mode is not None and pad_mode not in splits.SPATIAL_PADDINGS:
        raise ConfigError(f"unknown pad mode {pad!r} (choose from {', '.join(splits.SPATIAL_PADDINGS)})")
    if workers is None:
        workers = available_cores()
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}", option="workers")

    layout = _resolve_layout(src, layout)
    gt_root = clip_root(src / "GT" if layout == "gt-tree" else src)
    lr_dir = splits.lr_dir_name(degradation, scale)
    if lr_root is None and layout == "gt-tree" and (src / lr_dir).is_dir():
        lr_root = src / lr_dir  # Vid4-style tree: use its own LR frames
    lr_base = clip_root(lr_root) if lr_root is not None else None
    if lr_base is None and scale == 1:
        raise ConfigError("scale 1 needs an LR tree to read (there is nothing to downscale)", option="lr_root")
    _check_out(out, [src] + ([Path(lr_root)] if lr_root is not None else []))

    selected, selection = _select(src, gt_root, layout, list_file, partition, clips, limit)
    warnings: list[str] = []

    # Plan every clip (sizes from PNG headers) before anything is written.
    folders: dict[str, str] = {}
    records: dict[str, dict] = {}
    items: list[dict] = []
    padded = 0
    for clip in selected:
        label = clip.name or clip.root.name
        folder = splits.clip_folder_name(label)
        if folder in folders:
            raise InputError(f"clips {folders[folder]!r} and {label!r} would both be written to {folder}")
        folders[folder] = label
        record, geom, lr_clip = _plan_clip(clip, lr_base, scale, multiple, crop, warnings)
        geom.update(degradation=degradation, pad_mode=pad_mode)
        padded += not geom["lr_unchanged"]
        for new, name in record["frames"].items():
            items.append({
                "gt_src": str(clip.path / name),
                "lr_src": str(lr_clip.path / name) if lr_clip is not None else None,
                "gt_dst": str(out / "GT" / folder / new),
                "lr_dst": str(out / lr_dir / folder / new),
                "geom": geom, "link": link, "overwrite": overwrite,
            })
        records[folder] = record
        ref = splits.VID4.get(label) if selection.get("name") == "vid4" else None
        h0, w0 = record["source_size"][:2]
        if ref is not None and (ref.frames, ref.gt_h, ref.gt_w) != (len(clip.frames), h0, w0):
            warnings.append(f"clip {label!r}: {len(clip.frames)} frames of {h0}x{w0}, the standard Vid4 "
                            f"release has {ref.frames} of {ref.gt_h}x{ref.gt_w} (a different release?)")

    if layout == "vimeo":
        train = (src.parent if src.name == "sequences" else src) / "sep_trainlist.txt"
        if train.is_file():
            overlap = set(read_clip_list(train)) & {c.name for c in selected}
            if overlap:
                warnings.append(f"{len(overlap)} selected clip(s) are in {train.name}, e.g. {sorted(overlap)[0]}")

    lr_source = "generated" if lr_base is None else str(lr_base)
    marker = {
        "format": splits.SPLIT_FORMAT, "scale": scale, "degradation": degradation, "lr_dir": lr_dir,
        "multiple": multiple, "pad_mode": pad_mode, "crop": bool(crop),
        "lr_source": "generated" if lr_base is None else "given",
        "clips": selection["count"], "clips_sha256": selection["sha256"],
    }
    result = SplitResult(out=out, layout=layout, gt_dir="GT", lr_dir=lr_dir, lr_source=lr_source,
                         clips=len(records), frames=len(items), padded_clips=padded,
                         summary=Summary(total=len(items)), warnings=warnings, dry_run=dry_run)
    if dry_run:
        _prepare_out(out, marker, overwrite, lr_dir, check_only=True)
        existing = 0 if overwrite else sum(
            1 for it in items if _ok(it["gt_dst"], it["geom"]["gt_out_hw"])
            and _ok(it["lr_dst"], it["geom"]["lr_out_hw"]))
        result.summary = Summary(total=len(items), written=len(items) - existing, skipped=existing,
                                 dry_run=True)
        return result

    # One writer per OUT: a second run (--overwrite) would delete or mix the first one's frames.
    with OutputLock(out, "OUT"):
        _prepare_out(out, marker, overwrite, lr_dir)
        write_bytes_atomic(out / splits.MARKER_FILE, _json_text(marker))  # first: OUT is ours now
        for directory in (out / sub / folder for sub in ("GT", lr_dir) for folder in records):
            remove_stale_temps(directory)

        summary = run_jobs(_frame_job, items, workers=workers, progress=progress, desc="split-test",
                           unit="frame")
        result.summary = summary
        if summary.failed:
            raise JobsFailed(summary)
        if link:
            result.linked = sum(1 for it in items for s, d in (("gt_src", "gt_dst"), ("lr_src", "lr_dst"))
                                if it[s] and _same_file(it[s], it[d]))

        meta = "".join(f"{folder} {rec['num_frames']} ({rec['gt_size'][0]},{rec['gt_size'][1]},{rec['gt_size'][2]})\n"
                       for folder, rec in records.items())
        mapping = "".join(f"{rec['source'] + '/' if rec['source'] else ''}{old} {folder}/{new}\n"
                          for folder, rec in records.items() for new, old in rec["frames"].items())
        record = {
            "format": splits.SPLIT_FORMAT, "scale": scale, "degradation": degradation,
            "gt_dir": "GT", "lr_dir": lr_dir, "multiple": multiple, "pad_mode": pad_mode,
            "crop": bool(crop), "layout": layout,
            "lr_source": "generated" if lr_base is None else "given",
            "selection": selection, "clips": records,
        }
        write_bytes_atomic(out / splits.META_FILE, meta.encode())
        write_bytes_atomic(out / splits.MAPPING_FILE, mapping.encode())
        write_bytes_atomic(out / splits.SPLIT_FILE, _json_text(record))  # last: the output is complete
        return result


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
