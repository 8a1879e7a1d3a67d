"""Named test splits as data, and the record `vsrdata split-test` leaves behind.

Named partitions (docs/CONVENTIONS.md#partitions, matching BasicSR's `meta_info_*_test_GT.txt` files):

- ``reds4``         REDS4: clips 000, 011, 015, 020 of the REDS training set (100 frames each).
- ``reds-val``      REDS official validation: clips 240..269, i.e. the 30 validation clips after
                    the usual val-into-train merge (val clip i -> 240 + i).
- ``redsofficial4`` REDSofficial4: 240, 241, 246, 257.
- ``vimeo-t``       Vimeo90K-T, all 7,824 test clips (same set as ``sep_testlist.txt``).
- ``vimeo-t-fast`` / ``vimeo-t-medium`` / ``vimeo-t-slow``: the motion subsets (1,225 / 4,977 /
                    1,613 clips; 9 test clips belong to none).
- ``vid4``          calendar, city, foliage, walk (frame counts and sizes in `VID4`).

The Vimeo90K lists are package data (`vsrdata/data/vimeo90k/`, provenance in PROVENANCE.md),
loaded with importlib.resources.

`split.json` (schema ``vsrdata-split-test/1``) is written last by split-test; `load_split` reads
it and `unpad` cuts a padded (or super-resolved padded) frame back to the original region.
Padding is only ever added at the bottom and right, so the original region is always the
top-left ``gt_size`` (or ``lr_size``) corner.

numpy-only (no cv2, no Click), like the rest of `vsrdata.core`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from vsrdata.errors import ConfigError, InputError

SPLIT_FORMAT = "vsrdata-split-test/1"
SPLIT_FILE = "split.json"
META_FILE = "meta_info.txt"
MAPPING_FILE = "mapping.txt"
MARKER_FILE = ".vsrdata-split-test"
#: Spatial padding at the bottom/right of a test frame (temporal padding: evaluation/windows.py).
SPATIAL_PADDINGS = ("replicate", "reflect", "zero")

# --- named partitions (data) ----------------------------------------------------------------

REDS4 = ("000", "011", "015", "020")
REDS_VAL = tuple(f"{i:03d}" for i in range(240, 270))
REDS_OFFICIAL4 = ("240", "241", "246", "257")


@dataclass(frozen=True)
class Vid4Clip:
    """One Vid4 clip of the standard release (docs/CONVENTIONS.md#layouts): frame count and GT size."""

    frames: int
    gt_h: int
    gt_w: int

    @property
    def lr_hw(self) -> tuple[int, int]:
        return self.gt_h // 4, self.gt_w // 4


VID4 = {
    "calendar": Vid4Clip(41, 576, 720),
    "city": Vid4Clip(34, 576, 704),
    "foliage": Vid4Clip(49, 480, 720),
    "walk": Vid4Clip(47, 480, 720),
}

_VIMEO_FILES = {
    "vimeo-t": "meta_info_Vimeo90K_test_GT_clips.txt",
    "vimeo-t-fast": "test_fast_clips.txt",
    "vimeo-t-medium": "test_medium_clips.txt",
    "vimeo-t-slow": "test_slow_clips.txt",
}


@dataclass(frozen=True)
class Partition:
    """A named list of clip ids and the dataset layout it refers to."""

    name: str
    layout: str  # 'reds' | 'vimeo' | 'gt-tree'
    description: str


PARTITIONS = {
    "reds4": Partition("reds4", "reds", "REDS4: train clips 000, 011, 015, 020"),
    "reds-val": Partition("reds-val", "reds", "REDS official validation: clips 240-269 (val merged into train)"),
    "redsofficial4": Partition("redsofficial4", "reds", "REDSofficial4: 240, 241, 246, 257"),
    "vimeo-t": Partition("vimeo-t", "vimeo", "Vimeo90K-T: all 7,824 test clips"),
    "vimeo-t-fast": Partition("vimeo-t-fast", "vimeo", "Vimeo90K-T fast-motion subset (1,225 clips)"),
    "vimeo-t-medium": Partition("vimeo-t-medium", "vimeo", "Vimeo90K-T medium-motion subset (4,977 clips)"),
    "vimeo-t-slow": Partition("vimeo-t-slow", "vimeo", "Vimeo90K-T slow-motion subset (1,613 clips)"),
    "vid4": Partition("vid4", "gt-tree", "Vid4: calendar, city, foliage, walk"),
}


@lru_cache(maxsize=None)
def _vimeo_list(filename: str) -> tuple[str, ...]:
    text = resources.files("vsrdata").joinpath("data", "vimeo90k", filename).read_text()
    return tuple(line.split()[0] for line in text.splitlines() if line.strip())


def partition_clips(name: str) -> list[str]:
    """Clip ids of a named partition, in the order of its reference list."""
    key = name.lower()
    if key == "reds4":
        return list(REDS4)
    if key == "reds-val":
        return list(REDS_VAL)
    if key == "redsofficial4":
        return list(REDS_OFFICIAL4)
    if key == "vid4":
        return list(VID4)
    if key in _VIMEO_FILES:
        return list(_vimeo_list(_VIMEO_FILES[key]))
    raise ConfigError(f"unknown partition {name!r} (known: {', '.join(PARTITIONS)})")


def clip_folder_name(clip_id: str) -> str:
    """Output folder of a clip: '/' becomes '_' (Vimeo `00001/0266` -> `00001_0266`)."""
    return clip_id.replace("/", "_")


def frame_name(index: int) -> str:
    """Output frame name: zero-padded 8-digit integer, as REDS / BasicSR test sets use."""
    return f"{index:08d}.png"


def lr_dir_name(degradation: str, scale: int) -> str:
    """`BIx4` / `BDx4`: the LR folder name the field's test scripts expect."""
    return f"{degradation.upper()}x{scale}"


# --- padding ------------------------------------------------------------------------------

def pad_amount(size: int, multiple: int) -> int:
    """How much to add to `size` to reach the next multiple of `multiple` (0 if already one)."""
    if multiple < 1:
        raise ConfigError(f"multiple must be >= 1, got {multiple}", option="multiple")
    return (-size) % multiple


_NP_MODES = {"replicate": "edge", "reflect": "reflect", "zero": "constant"}


def pad_bottom_right(img: np.ndarray, bottom: int, right: int, mode: str) -> np.ndarray:
    """Pad an HxW[xC...] array by `bottom` rows and `right` columns.

    Modes: 'replicate' repeats the last row/column (np.pad 'edge', MATLAB padarray 'replicate');
    'reflect' mirrors without repeating the edge pixel (np.pad 'reflect': ... c b | a b c),
    'zero' fills with 0. Dtype is kept; nothing is added at the top or left.
    """
    if mode not in _NP_MODES:
        raise ConfigError(f"unknown pad mode {mode!r} (choose from {', '.join(SPATIAL_PADDINGS)})")
    if bottom < 0 or right < 0:
        raise ConfigError(f"padding must be >= 0, got bottom={bottom}, right={right}")
    if bottom == 0 and right == 0:
        return img
    widths = [(0, bottom), (0, right)] + [(0, 0)] * (img.ndim - 2)
    return np.pad(img, widths, mode=_NP_MODES[mode])


# --- the split record ---------------------------------------------------------------------

def load_split(out_dir: str | os.PathLike) -> dict:
    """Read `OUT/split.json` written by `vsrdata split-test`.

    Raises InputError when it is missing, not JSON, or not schema ``vsrdata-split-test/1``.
    """
    path = Path(out_dir) / SPLIT_FILE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"no {SPLIT_FILE} in {out_dir} (not a finished `vsrdata split-test` output)") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(record, dict) or record.get("format") != SPLIT_FORMAT:
        raise InputError(f"{path} is not a {SPLIT_FORMAT} record")
    for key in ("scale", "gt_dir", "lr_dir", "clips"):
        if key not in record:
            raise InputError(f"{path} lacks the {key!r} field")
    return record


def unpad(img, clip_record: dict, which: str = "gt"):
    """Cut a stored (padded or cropped) frame back to the region that is scored.

    `img` is any array whose first two axes are H, W (HxW, HxWxC; for a torch CHW tensor, use
    this on its numpy HWC form). `clip_record` is ``load_split(out)["clips"][clip]``.

    - Padded split (``gt_crop`` null): the stored frame is ``size + pad``; the original
      ``gt_size`` / ``lr_size`` region is its top-left corner, returned exactly (a view).
      An SR output of the padded LR frame has the padded GT size and is cut the same way.
    - Cropped split (``--crop``): nothing was added, the stored frame already is the scored
      region (``gt_crop`` / ``lr_crop``); it is returned unchanged after the size check.

    Raises InputError when the array does not have the size the record promises.
    """
    if which not in ("gt", "lr"):
        raise ConfigError(f"which must be 'gt' or 'lr', got {which!r}")
    h, w = (int(v) for v in clip_record[f"{which}_size"][:2])
    crop = clip_record.get(f"{which}_crop")
    if crop:
        expect = (int(crop[0]), int(crop[1]))
        keep = expect
    else:
        pb, pr = (int(v) for v in clip_record.get(f"{which}_pad", (0, 0)))
        expect = (h + pb, w + pr)
        keep = (h, w)
    shape = tuple(img.shape[:2])
    if shape != expect:
        raise InputError(f"{which.upper()} frame is {shape[0]}x{shape[1]} but the split record of "
                         f"clip {clip_record.get('source', '?')!r} expects {expect[0]}x{expect[1]}")
    return img[: keep[0], : keep[1]]
