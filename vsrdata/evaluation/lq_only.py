"""Test sets without ground truth (VideoLQ-style): LQ clip folders only, scored with no-reference metrics.

`lq_only_record(lq_root)` describes `lq_root/<clip>/<frames>` with the per-clip record split-test
writes (nothing padded on disk; frames in natural order); the GT sizes are those of the output,
`lr_size` x the model's scale, filled in by `set_scale` once the model is known.
`has_ground_truth(record, root)` tells whether a split-test output still has its GT folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from vsrdata.core import splits
from vsrdata.core.image_io import is_image_file, read_image
from vsrdata.core.layouts import natural_key
from vsrdata.errors import InputError

__all__ = ["has_ground_truth", "lq_only_record", "set_scale"]


def lq_only_record(lq_root: str | os.PathLike) -> dict:
    """A split-test-style record of the clip folders of `lq_root` (scale unknown: None)."""
    root = Path(lq_root)
    if not root.is_dir():
        raise InputError(f"LQ root not found: {root}")
    names = sorted((p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=natural_key)
    if not names:
        raise InputError(f"LQ root {root} holds no clip folders")
    record = {"format": splits.SPLIT_FORMAT, "scale": None, "gt_dir": None, "lr_dir": str(root.resolve()),
              "clips": {}, "layout": "lq-only", "selection": {"kind": "lq-only"}}
    for name in names:
        frames = sorted((p.name for p in (root / name).iterdir() if is_image_file(p) and not p.name.startswith(".")),
                        key=natural_key)
        if not frames:
            raise InputError(f"clip {name!r} has no frames in {root / name}")
        h, w = read_image(root / name / frames[0]).shape[:2]
        record["clips"][name] = {"source": name, "frames": {f: f for f in frames}, "lr_size": [int(h), int(w)],
                                 "gt_size": None, "gt_pad": [0, 0], "lr_pad": [0, 0], "gt_crop": None,
                                 "lr_crop": None}
    return record


def set_scale(record: dict, scale: int) -> None:
    """Fill the scale and each clip's output size (lr_size x scale) of an LQ-only record."""
    record["scale"] = int(scale)
    for rec in record["clips"].values():
        rec["gt_size"] = [rec["lr_size"][0] * scale, rec["lr_size"][1] * scale]


def has_ground_truth(record: dict, root: Path) -> bool:
    """Whether the record's GT folder exists (a split-test output may be shipped without it)."""
    gt_dir = record.get("gt_dir")
    return bool(gt_dir) and (Path(root) / gt_dir).is_dir()
