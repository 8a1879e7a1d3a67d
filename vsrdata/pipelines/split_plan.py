"""`split_test`'s plan: select the clips, check their sizes and work out the padding.

Everything here reads PNG headers and folder listings only; nothing is written. The steps are
described in `vsrdata.pipelines.split_test` (1. select clips, 2. check sizes, 3. sizes and
padding); `plan_split` returns a `SplitPlan` holding the split.json record of every clip and one
frame item per output frame, which `split_write` turns into files.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from vsrdata.core import splits
from vsrdata.core.image_io import is_image_file
from vsrdata.core.layouts import (LAYOUTS, Clip, check_pair, clip_root, clip_shape, clips_from_list, detect_layout,
                                  find_clips, read_clip_list, validate_clip_id)
from vsrdata.errors import ConfigError, InputError, OutputError

__all__ = ["SplitPlan", "plan_split"]


@dataclass
class SplitPlan:
    """The whole split: `records` (output clip folder -> its split.json record, in clip order)
    and `items` (one per output frame, in clip order; `item["clip"]` is the clip's index k)."""

    layout: str
    lr_dir: str
    lr_base: Path | None  # the LR clip root read, or None when LR is generated
    selection: dict
    records: dict[str, dict] = field(default_factory=dict)
    items: list[dict] = field(default_factory=list)
    padded: int = 0  # clips whose size changes (padding or crop)
    warnings: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------- selection
def _resolve_layout(src: Path, layout: str) -> str:
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r} (choose from {', '.join(LAYOUTS)})", option="layout")
    if not src.is_dir():
        raise InputError(f"source folder does not exist: {src}" if not src.exists()
                         else f"source is not a folder: {src}")
    if layout != "auto":
        return layout
    if (src / "GT").is_dir():
        return "gt-tree"
    return detect_layout(src)


def _listed_ids(src: Path, layout: str, list_file, partition, clip_ids) -> tuple[list[str] | None, dict]:
    """(clip ids, or None for 'every clip'; the selection record) of the one selection given."""
    given = [n for n, v in (("list_file", list_file), ("partition", partition), ("clips", clip_ids))
             if v not in (None, "", [], ())]
    if len(given) > 1:
        raise ConfigError(f"choose one of {' / '.join(given)}, not several")
    if list_file:
        return read_clip_list(list_file), {"kind": "list", "name": Path(list_file).name}
    if partition:
        return splits.partition_clips(partition), {"kind": "partition", "name": partition.lower()}
    if clip_ids:
        if isinstance(clip_ids, str):
            clip_ids = clip_ids.split(",")
        return [validate_clip_id(c, "the clips given") for c in clip_ids if c.strip()], {"kind": "clips", "name": None}
    if layout == "vimeo":
        base = src.parent if src.name == "sequences" else src
        default = base / "sep_testlist.txt"
        if not default.is_file():
            raise ConfigError(f"no sep_testlist.txt in {base}: give a clip list or the partition vimeo-t "
                              "(a Vimeo90K tree mixes train and test clips)", option="partition")
        return read_clip_list(default), {"kind": "list", "name": default.name}
    return None, {"kind": "all", "name": None}


def _check_ids(ids: list[str], selection: dict) -> None:
    seen = set()
    for cid in ids:
        if cid in seen:
            raise InputError(f"clip {cid!r} is listed twice in the {selection['kind']}")
        seen.add(cid)
    if not ids:
        raise InputError(f"the clip {selection['kind']} {selection['name'] or ''} is empty")


def _find_listed(gt_root: Path, ids: list[str], selection: dict) -> list[Clip]:
    try:
        return clips_from_list(gt_root, ids)
    except InputError as exc:
        if selection["kind"] == "partition" and selection["name"] in ("reds-val", "redsofficial4"):
            raise InputError(f"{exc} (REDS validation clips are numbered 240-269 once val is merged "
                             "into train, as BasicSR's regroup_reds_dataset.py does)") from None
        raise


def _as_partition(selection: dict, names: list[str]) -> dict:
    """A selection that *is* a named split (e.g. all clips of a Vid4 tree) is recorded as that
    partition, so evaluation picks the matching protocol; `how` keeps the origin."""
    if selection["kind"] == "partition":
        return selection
    for pname in splits.PARTITIONS:
        members = splits.partition_clips(pname)
        if len(members) == len(names) and set(members) == set(names):
            how = f"{selection['kind']} {selection['name'] or ''}".strip()
            return {"kind": "partition", "name": pname, "how": how,
                    **{k: v for k, v in selection.items() if k not in ("kind", "name")}}
    return selection


def _select(src: Path, gt_root: Path, layout: str, list_file, partition, clip_ids, limit):
    """(the selected clips in order, the selection record of split.json)."""
    ids, selection = _listed_ids(src, layout, list_file, partition, clip_ids)
    if ids is not None:
        _check_ids(ids, selection)
    if limit is not None:
        if limit < 1:
            raise ConfigError(f"limit must be >= 1, got {limit}", option="limit")
        selection["limit"] = limit
    if ids is not None:
        clips = _find_listed(gt_root, ids[:limit] if limit else ids, selection)
    else:
        clips = find_clips(gt_root)
        if not clips:
            raise InputError(f"no image frames found under {gt_root}")
        clips = clips[:limit] if limit else clips
    names = [c.name for c in clips]
    selection = _as_partition(selection, names)
    selection["count"] = len(clips)
    selection["sha256"] = hashlib.sha256("\n".join(names).encode()).hexdigest()
    return clips, selection


# ---------------------------------------------------------------------------- clip sizes
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


def _check_clip(clip: Clip, lr_base: Path | None, scale: int):
    """(GT shape (h, w, channels, dtype), the paired LR clip or None) after checking both."""
    label = clip.name or clip.root.name
    h0, w0, ch, dtype = clip_shape(clip, "GT")
    lr_h, lr_w = h0 // scale, w0 // scale
    if lr_h < 1 or lr_w < 1:
        raise InputError(f"clip {label!r}: frames are {h0}x{w0}, smaller than the scale {scale}")
    lr_clip = _lr_clip(lr_base, clip, scale) if lr_base is not None else None
    if lr_clip is not None:
        lh, lw, lc, ldt = clip_shape(lr_clip, "LR")
        check_pair((h0, w0, ch, dtype), (lh, lw, lc, ldt), f"clip {label!r}")
        if (lh, lw) != (lr_h, lr_w) or (lc, ldt) != (ch, dtype):
            raise InputError(f"clip {label!r}: GT {h0}x{w0}x{ch} and LR {lh}x{lw}x{lc} disagree with "
                             f"scale {scale} (expected LR {lr_h}x{lr_w}x{ch})")
    return (h0, w0, ch, dtype), lr_clip


def _geometry(label: str, h0: int, w0: int, scale: int, multiple: int, crop: bool) -> dict:
    """Output sizes of one clip: mod-crop, then pad (or crop) to the multiple (module doc, 3)."""
    lr_h, lr_w = h0 // scale, w0 // scale
    gt_h, gt_w = lr_h * scale, lr_w * scale  # the mod-cropped source (top-left): the LR's region
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
    return {
        "scale": scale, "gt_hw": (gt_h, gt_w), "lr_hw": (lr_h, lr_w),
        "gt_pad": gt_pad, "lr_pad": lr_pad, "gt_crop": gt_crop, "lr_crop": lr_crop,
        "gt_out_hw": gt_out, "lr_out_hw": lr_out,
        "gt_unchanged": not changed and (gt_h, gt_w) == (h0, w0),  # copy/link the source file
        "lr_unchanged": not changed,
    }


def _plan_clip(clip: Clip, lr_base: Path | None, scale: int, multiple: int, crop: bool,
               warnings: list[str]) -> tuple[dict, dict, Clip | None]:
    """Check one clip's frame sizes (and its LR clip's) and work out its sizes and padding.

    Returns (the clip's split.json record, the geometry every frame job of the clip needs,
    the paired LR clip or None when LR is generated).
    """
    label = clip.name or clip.root.name
    (h0, w0, ch, dtype), lr_clip = _check_clip(clip, lr_base, scale)
    geom = _geometry(label, h0, w0, scale, multiple, crop)
    (gt_h, gt_w), (lr_h, lr_w) = geom["gt_hw"], geom["lr_hw"]
    if (h0, w0) != (gt_h, gt_w):
        warnings.append(f"clip {label!r}: GT {h0}x{w0} is not a multiple of the scale {scale}; "
                        f"using its top-left {gt_h}x{gt_w} (mod-crop)")
    gt_crop, lr_crop = geom["gt_crop"], geom["lr_crop"]
    record = {
        "source": clip.name,
        "num_frames": len(clip.frames),
        "gt_size": [gt_h, gt_w, ch],
        "lr_size": [lr_h, lr_w, ch],
        "lr_pad": list(geom["lr_pad"]),
        "gt_pad": list(geom["gt_pad"]),
        "gt_crop": list(gt_crop) if gt_crop else None,
        "lr_crop": list(lr_crop) if lr_crop else None,
        "source_size": [h0, w0, ch],
        "dtype": dtype,
        "frames": {splits.frame_name(i): name for i, name in enumerate(clip.frames)},
    }
    return record, geom, lr_clip


# ---------------------------------------------------------------------------------- plan
def _check_out(out: Path, sources: list[Path]) -> None:
    if out.exists() and not out.is_dir():
        raise OutputError(f"OUT exists and is not a folder: {out}")
    out_real = out.resolve()
    for src in sources:
        src_real = src.resolve()
        if out_real == src_real or src_real in out_real.parents or out_real in src_real.parents:
            raise OutputError(f"OUT {out} overlaps the source tree {src} (choose an OUT outside it)")


def _vid4_warning(label: str, record: dict) -> str | None:
    ref = splits.VID4.get(label)
    h0, w0 = record["source_size"][:2]
    n = record["num_frames"]
    if ref is None or (ref.frames, ref.gt_h, ref.gt_w) == (n, h0, w0):
        return None
    return (f"clip {label!r}: {n} frames of {h0}x{w0}, the standard Vid4 release has "
            f"{ref.frames} of {ref.gt_h}x{ref.gt_w} (a different release?)")


def _vimeo_train_overlap(src: Path, selected: list[Clip]) -> str | None:
    train = (src.parent if src.name == "sequences" else src) / "sep_trainlist.txt"
    if not train.is_file():
        return None
    overlap = set(read_clip_list(train)) & {c.name for c in selected}
    if not overlap:
        return None
    return f"{len(overlap)} selected clip(s) are in {train.name}, e.g. {sorted(overlap)[0]}"


def _add_clip(plan: SplitPlan, k: int, clip: Clip, out: Path, geom_extra: dict, multiple: int,
              crop: bool, folders: dict[str, str], frame_options: dict) -> None:
    """Plan clip number k: its record and one item per frame."""
    label = clip.name or clip.root.name
    folder = splits.clip_folder_name(label)
    if folder in folders:
        raise InputError(f"clips {folders[folder]!r} and {label!r} would both be written to {folder}")
    folders[folder] = label
    record, geom, lr_clip = _plan_clip(clip, plan.lr_base, geom_extra["scale"], multiple, crop, plan.warnings)
    geom.update(degradation=geom_extra["degradation"], pad_mode=geom_extra["pad_mode"])
    plan.padded += not geom["lr_unchanged"]
    for new, name in record["frames"].items():
        plan.items.append({
            "clip": k,
            "gt_src": str(clip.path / name),
            "lr_src": str(lr_clip.path / name) if lr_clip is not None else None,
            "gt_dst": str(out / "GT" / folder / new),
            "lr_dst": str(out / plan.lr_dir / folder / new),
            "geom": geom, **frame_options,
        })
    plan.records[folder] = record
    if plan.selection.get("name") == "vid4" and (warning := _vid4_warning(label, record)):
        plan.warnings.append(warning)


def plan_split(src: Path, out: Path, *, layout: str, list_file, partition, clips, limit, lr_root,
               scale: int, degradation: str, multiple: int, pad_mode: str | None, crop: bool,
               link: bool, overwrite: bool) -> SplitPlan:
    """Select and check every clip (PNG headers only) and plan every output frame (steps 1-3 of
    the `split_test` module docstring). Raises ConfigError / InputError before anything is written."""
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
    plan = SplitPlan(layout=layout, lr_dir=lr_dir, lr_base=lr_base, selection=selection)
    folders: dict[str, str] = {}
    geom_extra = {"scale": scale, "degradation": degradation, "pad_mode": pad_mode}
    for k, clip in enumerate(selected):
        _add_clip(plan, k, clip, out, geom_extra, multiple, crop, folders,
                  {"link": link, "overwrite": overwrite})
    if layout == "vimeo" and (warning := _vimeo_train_overlap(src, selected)):
        plan.warnings.append(warning)
    return plan
