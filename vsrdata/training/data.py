"""Training data for EDVR: frame stores (LMDB or folders), REDS / Vimeo90K / generic-clip datasets,
aligned random crops and flips (the sample stream is `vsrdata.training.sampler`; validation clips
are `vsrdata.training.validate`).

Conventions matched (facts from BasicSR `basicsr/data/reds_dataset.py`,
`basicsr/data/vimeo90k_dataset.py`, `basicsr/data/transforms.py`, `basicsr/data/data_util.py`;
docs/CONVENTIONS.md#training, #layouts, #partitions; the code is our own):
- REDS / clips: every frame of every training clip is a key and the key's frame is the centre;
  an interval is drawn from `interval_list`; when the window would leave the clip, the centre is
  redrawn uniformly among the centres whose window fits. GT = the centre frame only.
  The chosen validation partition (REDS4 = 000, 011, 015, 020; official = 240-269) is removed.
- Vimeo90K: GT = im4; the n LQ frames are im{i + (9 - n) // 2}, i = 0..n-1 (7 -> 1-7, 5 -> 2-6).
- Crop: a random LQ patch of gt_size / scale and the GT patch at scale x the same position.
  Augment: hflip, then vflip and transpose (BasicSR's "rot"), each with p = 0.5, identical for
  every frame and the GT. Optional random temporal reverse of the LQ frames (p = 0.5).
- Tensors: RGB float32 in [0, 1] (uint16 frames are divided by 65535); LQ (t, 3, h, w), GT (3, H, W).

Determinism: every random choice of a sample comes from a numpy Generator seeded with
(seed, salt, global sample position). The sampler hands out positions, so a sample does not
depend on the worker, the number of workers or the rank that loads it: a resumed run or a DDP run
sees exactly the samples of a straight single-process run with the same global batch.
LMDBs are opened lazily in each worker process (LmdbReader opens on first use).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from vsrdata.core.image_io import check_frame_layout, frame_shape, read_image
from vsrdata.core.layouts import check_pair, clip_shape, find_clips, natural_key
from vsrdata.errors import InputError, VsrDataError
from vsrdata.evaluation.inference import frame_to_tensor

# ---------------------------------------------------------------------------------------------
# Frame stores


def is_lmdb(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "data.mdb").is_file()


def _split_key(key: str, style: str) -> tuple[str, str]:
    """LMDB key -> (clip, frame). basicsr: `000/00000000`, `00001/0001/im4`;
    mmagic / edvr-old: `000_00000000`, `00001_0001_4`."""
    sep = "/" if style == "basicsr" else "_"
    if sep not in key:
        return "", key
    clip, frame = key.rsplit(sep, 1)
    return clip, frame


def canonical_clip(name: str) -> str:
    """Clip ids compared across stores and lists: `00001/0001` and `00001_0001` are the same clip."""
    return name.replace("/", "_")


def _frame_number(name: str) -> int | None:
    m = re.search(r"(\d+)$", name)
    return int(m.group(1)) if m else None


class FrameStore:
    """Frames of many clips, from an LMDB (BasicSR or mmagic keys) or a folder of clip folders.

    `clips`: {canonical clip id: [frame names in temporal order]}; `get(clip, frame)` returns the
    frame as cv2 decodes it (HxWxC BGR, uint8/uint16). Picklable: an LMDB reader is created lazily
    in each process. Every failure is an InputError whose one-line message names the DB (or file)
    and the key, so it reads the same when raised inside a DataLoader worker. Clips must be
    uniform (checked when indexing: PNG headers of a folder, the meta info of an LMDB).
    """

    def __init__(self, path: str | os.PathLike, what: str = "frames"):
        self.path = Path(path)
        self.what = what
        if not self.path.exists():
            raise InputError(f"{what} not found: {self.path}")
        self.kind = "lmdb" if is_lmdb(self.path) else "folder"
        self._reader = None
        self.clips: dict[str, list[str]] = {}
        self._keys: dict[tuple[str, str], str] = {}  # (clip, frame) -> LMDB key or file path
        if self.kind == "lmdb":
            self._index_lmdb()
        else:
            if not self.path.is_dir():
                raise InputError(f"{what} must be an LMDB folder (with data.mdb) or a folder of clips: {self.path}")
            self._index_folder()
        if not self.clips:
            raise InputError(f"{what} holds no frames: {self.path}")

    def _index_lmdb(self) -> None:
        reader = self.reader
        try:
            keys = list(reader.keys())
            if hasattr(reader, "check_keys"):
                reader.check_keys()  # meta info and DB must agree: no clip dropped silently
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"cannot read LMDB {self.path}: {exc}") from None
        style = getattr(reader, "key_style", "basicsr")
        for key in keys:
            clip, frame = _split_key(key, style)
            cid = canonical_clip(clip)
            self.clips.setdefault(cid, []).append(frame)
            self._keys[(cid, frame)] = key
        for cid, frames in self.clips.items():
            frames.sort(key=natural_key)
            self._check_lmdb_clip(cid, frames)

    def _check_lmdb_clip(self, cid: str, frames: list[str]) -> None:
        """The uniform-clip rule (`layouts.clip_shape`) on the shapes of the meta info."""
        if not hasattr(self.reader, "shape"):
            return
        try:
            shapes = [tuple(self.reader.shape(self._keys[(cid, f)])) for f in frames]
        except InputError:
            return  # no per-key shapes (e.g. a pickled meta): checked per sample instead
        check_frame_layout(shapes[0], f"key {self._keys[(cid, frames[0])]} of {self.what} {self.path} (meta info)")
        for frame, shape in zip(frames, shapes):
            if shape != shapes[0]:
                raise InputError(f"clip {cid} of {self.what} {self.path} mixes frame formats: key "
                                 f"{self._keys[(cid, frame)]} is {shape}, its first frame "
                                 f"{self._keys[(cid, frames[0])]} is {shapes[0]} (meta info)")

    def _index_folder(self) -> None:
        for clip in find_clips(self.path):  # links followed, cycles skipped with a warning
            clip_shape(clip)  # a clip mixing sizes / depths / channels is refused here, not mid-run
            cid = canonical_clip(clip.name)
            names = []
            for fname in clip.frames:
                stem = fname.rsplit(".", 1)[0]
                names.append(stem)
                self._keys[(cid, stem)] = str(clip.path / fname)
            self.clips[cid] = names

    @property
    def reader(self):
        if self._reader is None:
            from vsrdata.core.lmdb.reader import LmdbReader

            self._reader = LmdbReader(self.path)
        return self._reader

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_reader"] = None  # each worker opens its own environment
        return state

    def get(self, clip: str, frame: str) -> np.ndarray:
        """The frame as HxWx3 BGR (grey repeated to 3 channels), uint8/uint16."""
        img = self._read(clip, frame)
        return img[:, :, None].repeat(3, axis=2) if img.ndim == 2 else img

    def _read(self, clip: str, frame: str) -> np.ndarray:
        key = self._keys.get((clip, frame))
        if key is None:
            raise InputError(f"frame {clip}/{frame} missing in {self.what} {self.path}")
        try:
            img = self.reader.get(key) if self.kind == "lmdb" else read_image(key)
        except VsrDataError:
            raise  # already one line naming the DB (or file) and the key
        except Exception as exc:  # e.g. lmdb.Error: still one line, whatever process reads it
            where = f"key {key!r} of {self.what} {self.path}" if self.kind == "lmdb" else key
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"cannot read {where}: {reason}") from None
        check_frame_layout(img.shape, f"key {key!r} of {self.what} {self.path}" if self.kind == "lmdb" else key)
        return img

    def layout(self, clip: str, frame: str) -> tuple[int, int, int, str]:
        """(h, w, channels, dtype) of a frame as stored (grey stays 1 channel): the pair rule
        (`layouts.check_pair`) compares these of the GT and LQ stores."""
        if self.kind == "folder" and (clip, frame) in self._keys:
            return frame_shape(self._keys[(clip, frame)])
        img = self._read(clip, frame)
        return img.shape[0], img.shape[1], (img.shape[2] if img.ndim == 3 else 1), str(img.dtype)

    def shape(self, clip: str, frame: str) -> tuple[int, int]:
        if self.kind == "lmdb" and hasattr(self.reader, "shape"):
            try:
                return tuple(self.reader.shape(self._keys[(clip, frame)]))[:2]
            except Exception:
                pass
        return self.get(clip, frame).shape[:2]


# ---------------------------------------------------------------------------------------------
# Crops, augmentation, tensors


def paired_random_crop(gt: np.ndarray, lqs: list[np.ndarray], gt_size: int, scale: int,
                       rng: np.random.Generator, name: str = "") -> tuple[np.ndarray, list[np.ndarray]]:
    """Crop an LQ patch of gt_size // scale at a random position (same for every LQ frame) and the
    GT patch at scale x that position. The GT may be up to scale - 1 pixels larger than scale x
    the LQ (the bottom rows / right columns that make-lr's mod-crop left out, e.g. 320 wide at x3;
    they are never sampled). Raises InputError when the frames are too small or the GT is not
    scale x the LQ."""
    lq_size = gt_size // scale
    h, w = lqs[0].shape[:2]
    if not (0 <= gt.shape[0] - h * scale < scale and 0 <= gt.shape[1] - w * scale < scale):
        raise InputError(f"GT {gt.shape[1]}x{gt.shape[0]} is not {scale}x the LQ {w}x{h}{name}")
    if h < lq_size or w < lq_size:
        raise InputError(f"crop gt_size {gt_size} (LQ {lq_size}) is larger than the frames "
                         f"(LQ {w}x{h}){name}")
    top = int(rng.integers(0, h - lq_size + 1))
    left = int(rng.integers(0, w - lq_size + 1))
    lqs = [im[top:top + lq_size, left:left + lq_size] for im in lqs]
    gt = gt[top * scale:(top + lq_size) * scale, left * scale:(left + lq_size) * scale]
    return gt, lqs


def augment(imgs: list[np.ndarray], rng: np.random.Generator, hflip: bool = True,
            rot: bool = True) -> list[np.ndarray]:
    """Horizontal flip, vertical flip, transpose (each p = 0.5; the last two only with `rot`),
    applied identically to all images. Three draws are always made so the random stream does not
    depend on the options."""
    do_h, do_v, do_t = rng.random(3) < 0.5
    out = []
    for im in imgs:
        if hflip and do_h:
            im = im[:, ::-1]
        if rot and do_v:
            im = im[::-1]
        if rot and do_t:
            im = im.transpose(1, 0, 2)
        out.append(im)
    return out


# ---------------------------------------------------------------------------------------------
# Datasets


def read_window(store: FrameStore, clip: str, frames: list[str], rng: np.random.Generator,
                random_reverse: bool) -> tuple[list[str], list[np.ndarray]]:
    """(frame names, HWC images) of a window of `clip`: reversed when `random_reverse` and rng's
    next draw < 0.5 (drawn only then); a frame of another shape than the first (stored values may
    disagree with the meta info) is an InputError naming the clip, the store and both frames."""
    if random_reverse and rng.random() < 0.5:
        frames = frames[::-1]
    images = [store.get(clip, f) for f in frames]
    for name, im in zip(frames, images):
        if im.shape != images[0].shape:
            raise InputError(f"clip {clip} of {store.what} {store.path}: frame {name} is "
                             f"{im.shape[1]}x{im.shape[0]}, frame {frames[0]} is "
                             f"{images[0].shape[1]}x{images[0].shape[0]}")
    return frames, images


class _PairedBase(Dataset):
    def __init__(self, gt: FrameStore, lq: FrameStore, *, num_frame: int, gt_size: int, scale: int,
                 random_reverse: bool, use_hflip: bool, use_rot: bool):
        self.gt, self.lq = gt, lq
        self.num_frame, self.gt_size, self.scale = int(num_frame), int(gt_size), int(scale)
        self.random_reverse, self.use_hflip, self.use_rot = random_reverse, use_hflip, use_rot
        if self.gt_size % self.scale:
            raise InputError(f"gt_size {gt_size} is not divisible by the scale {scale}")
        self.keys: list = []

    def __len__(self) -> int:
        return len(self.keys)

    def _check_sizes(self, clip: str, gt_frame: str, lq_frame: str) -> None:
        check_pair(self.gt.layout(clip, gt_frame), self.lq.layout(clip, lq_frame),
                   f"clip {clip} ({self.gt.path}, {self.lq.path})")
        gh, gw = self.gt.shape(clip, gt_frame)
        lh, lw = self.lq.shape(clip, lq_frame)
        lq_size = self.gt_size // self.scale
        if not (0 <= gh - lh * self.scale < self.scale and 0 <= gw - lw * self.scale < self.scale):
            raise InputError(f"clip {clip}: GT {gw}x{gh} is not {self.scale}x the LQ {lw}x{lh} "
                             f"({self.gt.path}, {self.lq.path})")
        if lh < lq_size or lw < lq_size:
            raise InputError(f"gt_size {self.gt_size} is larger than the frames of clip {clip} "
                             f"(GT {gw}x{gh}, LQ {lw}x{lh})")

    def _sample(self, clip: str, gt_frame: str, lq_frames: list[str], rng: np.random.Generator,
                tag: str = "") -> dict:
        gt = self.gt.get(clip, gt_frame)
        lq_frames, lqs = read_window(self.lq, clip, lq_frames, rng, self.random_reverse)
        where = f" (clip {clip}, frame {gt_frame} of {self.gt.path} and {self.lq.path})"
        gt, lqs = paired_random_crop(gt, lqs, self.gt_size, self.scale, rng, name=where)
        *lqs, gt = augment(lqs + [gt], rng, self.use_hflip, self.use_rot)
        return {"lq": torch.stack([frame_to_tensor(im) for im in lqs]), "gt": frame_to_tensor(gt)}

    @staticmethod
    def _unpack(item) -> tuple[int, np.random.Generator, str]:
        """(index, rng, tag) of a sampler item (`sampler.SampleKey` or (index, seed)) or a bare index."""
        index, seed = (item[0], item[1]) if isinstance(item, (tuple, list)) else (item, item)
        tag = item[2] if isinstance(item, (tuple, list)) and len(item) > 2 else f"index/{int(index)}/{int(seed)}"
        return int(index), np.random.default_rng(int(seed)), tag


class ClipDataset(_PairedBase):
    """REDS-style training set (also any folder/LMDB of clips with numbered frames).

    Keys are (clip, frame index) for every frame of every clip not in `exclude_clips`; the GT
    and LQ stores must hold the same clips with the same frame counts. `clip_ids` (e.g. the clips
    of BasicSR's `meta_info_REDS_GT.txt`, as its REDSDataset reads them) restricts training to
    those clips; each must be in the GT store.
    """

    def __init__(self, gt: FrameStore, lq: FrameStore, *, num_frame: int = 5, gt_size: int = 256,
                 scale: int = 4, interval_list=(1,), random_reverse: bool = False,
                 use_hflip: bool = True, use_rot: bool = True, exclude_clips=(), clip_ids=None):
        super().__init__(gt, lq, num_frame=num_frame, gt_size=gt_size, scale=scale,
                         random_reverse=random_reverse, use_hflip=use_hflip, use_rot=use_rot)
        self.interval_list = [int(i) for i in interval_list]
        excluded = {canonical_clip(c) for c in exclude_clips}
        if clip_ids is not None:
            listed = list(dict.fromkeys(canonical_clip(c) for c in clip_ids))
            absent = [c for c in listed if c not in gt.clips]
            if absent:
                raise InputError(f"{len(absent)} listed clip(s) not in {gt.path}: {', '.join(absent[:5])}")
        candidates = listed if clip_ids is not None else sorted(gt.clips, key=natural_key)
        clips = [c for c in candidates if c not in excluded]
        self.left_out = [c for c in candidates if c in excluded]  # validation clips found in the data
        if not clips:
            raise InputError(f"no training clips left in {gt.path} after removing the validation clips")
        missing = [c for c in clips if c not in lq.clips]
        if missing:
            raise InputError(f"{len(missing)} GT clip(s) have no LQ frames in {lq.path}: {', '.join(missing[:5])}")
        span = (self.num_frame - 1) * min(self.interval_list) + 1
        self.frames: dict[str, list[str]] = {}
        for c in clips:
            if gt.clips[c] != lq.clips[c]:
                raise InputError(f"clip {c}: GT and LQ frame names differ ({len(gt.clips[c])} vs "
                                 f"{len(lq.clips[c])} frames)")
            if len(gt.clips[c]) < span:
                raise InputError(f"clip {c} has {len(gt.clips[c])} frames, fewer than the {span} a "
                                 f"{self.num_frame}-frame window needs")
            self.frames[c] = gt.clips[c]
            self.keys.extend((c, i) for i in range(len(gt.clips[c])))
        first = clips[0]
        self._check_sizes(first, self.frames[first][0], self.frames[first][0])

    def __getitem__(self, item) -> dict:
        index, rng, tag = self._unpack(item)
        clip, centre = self.keys[index]
        frames = self.frames[clip]
        n = len(frames)
        fitting = [i for i in self.interval_list if (self.num_frame - 1) * i + 1 <= n]
        interval = fitting[int(rng.integers(0, len(fitting)))]
        half = (self.num_frame // 2) * interval
        if centre - half < 0 or centre + half > n - 1:
            centre = int(rng.integers(half, n - half))
        names = [frames[i] for i in range(centre - half, centre + half + 1, interval)]
        return self._sample(clip, frames[centre], names, rng, tag)


class VimeoDataset(_PairedBase):
    """Vimeo90K septuplets: GT = im4, LQ = n frames centred on im4 (index i + (9 - n) // 2).

    The GT store may hold all seven frames or only im4 (BasicSR's `GT_only4th` LMDB); the LQ
    store must hold seven frames per clip. `clip_ids` (e.g. from sep_trainlist.txt) selects and
    orders the clips; by default every GT clip is used.
    """

    def __init__(self, gt: FrameStore, lq: FrameStore, *, num_frame: int = 7, gt_size: int = 256,
                 scale: int = 4, clip_ids=None, random_reverse: bool = False, use_hflip: bool = True,
                 use_rot: bool = True):
        super().__init__(gt, lq, num_frame=num_frame, gt_size=gt_size, scale=scale,
                         random_reverse=random_reverse, use_hflip=use_hflip, use_rot=use_rot)
        if not 1 <= self.num_frame <= 7 or self.num_frame % 2 == 0:
            raise InputError(f"Vimeo90K training needs an odd num_frame in 1..7, got {num_frame}")
        ids = [canonical_clip(c) for c in clip_ids] if clip_ids is not None else sorted(gt.clips, key=natural_key)
        missing = [c for c in ids if c not in gt.clips or c not in lq.clips]
        if missing:
            raise InputError(f"{len(missing)} Vimeo90K clip(s) missing in {gt.path} or {lq.path}: "
                             f"{', '.join(missing[:5])}")
        numbers = [i + (9 - self.num_frame) // 2 for i in range(self.num_frame)]  # BasicSR: i = 0..n-1
        self.gt_frame: dict[str, str] = {}
        self.lq_frames: dict[str, list[str]] = {}
        for c in ids:
            self.gt_frame[c] = self._pick(gt, c, [4])[0]
            self.lq_frames[c] = self._pick(lq, c, numbers)
            self.keys.append(c)
        if not self.keys:
            raise InputError(f"no Vimeo90K clips in {gt.path}")
        self._check_sizes(ids[0], self.gt_frame[ids[0]], self.lq_frames[ids[0]][0])

    @staticmethod
    def _pick(store: FrameStore, clip: str, numbers: list[int]) -> list[str]:
        by_number = {_frame_number(f): f for f in store.clips[clip]}
        out = []
        for k in numbers:
            if k not in by_number:
                raise InputError(f"Vimeo90K clip {clip} has no frame im{k} in {store.path}")
            out.append(by_number[k])
        return out

    def __getitem__(self, item) -> dict:
        index, rng, tag = self._unpack(item)
        clip = self.keys[index]
        return self._sample(clip, self.gt_frame[clip], list(self.lq_frames[clip]), rng, tag)
