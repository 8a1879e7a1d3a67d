"""A BasicSR-style test set (GT root + LQ root [+ meta info]) read in place, without split-test.

Layouts (BasicSR `VideoTestDataset`, see docs/CONVENTIONS.md):
- REDS4: GT `train_sharp/<clip>/`, LQ `train_sharp_bicubic/X4/<clip>/` (an LQ root without the
  `X4` level is looked into as well), clips from `meta_info_REDS4_test_GT.txt` (lines
  `<clip> <frames> (h,w,c)`); without a meta file every clip folder of the GT root.
- Vid4: `GT/<clip>/` and `BIx4/<clip>/`.
Frames are taken in natural order of their names; GT and LQ clips must hold the same names.

`testset_record(...)` describes the set with the same per-clip record `vsrdata split-test` writes
(`gt_size`, `lr_size`, `gt_pad`, `lr_pad`, frames), with nothing padded on disk: frames whose LQ
sides are not multiples of the model's size multiple are padded in memory at the bottom/right by
edge replication (split-test's default `replicate`) inside `inference.restore` and cut back with
`splits.unpad`, so the scores equal those of split-test's output of the same clips.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from vsrdata.core import splits
from vsrdata.core.image_io import is_image_file, read_image
from vsrdata.core.layouts import natural_key, no_frames_error
from vsrdata.errors import InputError

_META_LINE = re.compile(r"^\s*(\S+)(?:\s+\d+)?(?:\s+\(.*\))?\s*$")


def read_meta_clips(meta: str | os.PathLike) -> list[str]:
    """Clip names of a BasicSR meta info file (first field of each non-empty line)."""
    path = Path(meta)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InputError(f"cannot read meta info file {path}: {exc.strerror or exc}") from None
    names = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        m = _META_LINE.match(line)
        if not m:
            raise InputError(f"{path} line {n}: expected '<clip> <frames> (h,w,c)', got {line.strip()!r}")
        names.append(m.group(1).split("/")[0])
    if not names:
        raise InputError(f"meta info file {path} lists no clips")
    return list(dict.fromkeys(names))


def _frames(folder: Path) -> list[str]:
    return sorted((p.name for p in folder.iterdir() if is_image_file(p) and not p.name.startswith(".")),
                  key=natural_key)


def _lq_root(gt_root: Path, lq_root: Path, first_clip: str) -> Path:
    if (lq_root / first_clip).is_dir():
        return lq_root
    if (lq_root / "X4" / first_clip).is_dir():  # BasicSR's REDS regroup writes the LQ under X4/
        return lq_root / "X4"
    raise InputError(f"LQ clip {first_clip!r} not found in {lq_root} (nor in {lq_root / 'X4'})")


def testset_clips(gt_root, lq_root, meta_info=None) -> tuple[Path, Path, list[tuple[str, list[str]]]]:
    """(gt_root, lq_root actually used, [(clip, frame names in natural order)])."""
    gt_root, lq_root = Path(gt_root), Path(lq_root)
    if not gt_root.is_dir():
        raise InputError(f"GT root not found: {gt_root}")
    if not lq_root.is_dir():
        raise InputError(f"LQ root not found: {lq_root}")
    if meta_info:
        names = read_meta_clips(meta_info)
    else:
        names = sorted((p.name for p in gt_root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                       key=natural_key)
    if not names:
        raise InputError(f"GT root {gt_root} holds no clip folders")
    lq_root = _lq_root(gt_root, lq_root, names[0])
    clips = []
    for name in names:
        gdir, ldir = gt_root / name, lq_root / name
        if not gdir.is_dir():
            raise InputError(f"clip {name!r} not found in GT root {gt_root}")
        gf = _frames(gdir)
        if not gf:
            raise no_frames_error(gdir)
        if not ldir.is_dir():
            raise InputError(f"clip {name!r} not found in LQ root {lq_root}")
        lf = _frames(ldir)
        if gf != lf:
            raise InputError(f"clip {name!r}: GT and LQ frame names differ ({len(gf)} GT, {len(lf)} LQ frames; "
                             f"first difference {next((a for a, b in zip(gf, lf) if a != b), None)!r})")
        clips.append((name, gf))
    return gt_root, lq_root, clips


def _size(path: Path) -> tuple[int, int]:
    h, w = read_image(path).shape[:2]
    return int(h), int(w)


def testset_record(gt_root, lq_root, meta_info=None, *, scale: int | None = None) -> dict:
    """A split-test-style record (schema of `splits.load_split`) of a BasicSR test set in place.
    `scale` None: GT size / LQ size of the first clip (4 for SR sets, 1 for deblur sets)."""
    gt_root, lq_root, clips = testset_clips(gt_root, lq_root, meta_info)
    if scale is None:
        name, frames = clips[0]
        (gh, gw), (lh, lw) = _size(gt_root / name / frames[0]), _size(lq_root / name / frames[0])
        scale = gh // lh if lh and gh % lh == 0 and gw == lw * (gh // lh) else 4
    record = {"format": splits.SPLIT_FORMAT, "scale": scale, "gt_dir": str(gt_root.resolve()),
              "lr_dir": str(lq_root.resolve()), "clips": {}, "layout": "basicsr",
              "selection": _selection(meta_info, [c for c, _ in clips])}
    for name, frames in clips:
        gh, gw = _size(gt_root / name / frames[0])
        lh, lw = _size(lq_root / name / frames[0])
        if (gh, gw) != (lh * scale, lw * scale):
            raise InputError(f"clip {name!r}: GT {gw}x{gh} is not {scale}x the LQ {lw}x{lh} "
                             f"({gt_root / name / frames[0]})")
        record["clips"][name] = {
            "source": name, "frames": {f: f for f in frames},
            "gt_size": [gh, gw], "lr_size": [lh, lw], "gt_pad": [0, 0], "lr_pad": [0, 0],
            "gt_crop": None, "lr_crop": None,
        }
    return record


def _selection(meta_info, names: list[str]) -> dict:
    """The named partition the clips form (reds4 / vid4), so `evaluate` picks its protocol."""
    if sorted(names) == sorted(splits.REDS4):
        return {"kind": "partition", "name": "reds4"}
    if sorted(names) == sorted(splits.VID4):
        return {"kind": "partition", "name": "vid4"}
    return {"kind": "basicsr", "meta_info": str(meta_info) if meta_info else None}


def val_clips_from_roots(gt_root, lq_root, meta_info=None) -> list:
    """The clips (`vsrdata.evaluation.scoring.ClipJob`, in the meta file's order) of a BasicSR
    `datasets.val` entry, for training validation."""
    from vsrdata.evaluation.scoring import clip_jobs

    return clip_jobs(testset_record(gt_root, lq_root, meta_info), Path(gt_root))
