"""Training from GT alone: the LQ window is degraded in the DataLoader workers by the degradation
engine (`vsrdata.core.degradations`), with a recipe (`train --degradation NAME|FILE`, or
`datasets.train.degradation` of a BasicSR option file). See docs/CONVENTIONS.md#on-the-fly-degradation.

- A sample: the GT window (the num_frame frames that a paired dataset would read as LQ, from the
  GT store) is cropped to gt_size x gt_size at one random position, flipped / transposed
  (`data.augment`), then degraded with `sample(recipe, seed, tag, num_frame, (gt_size, gt_size))`
  and `apply`: crop first, then degrade, as RealBasicVSR's training pipeline does. The recipes end
  with a resize to gt_size / scale (fixed recipes: `core.degrade` at the scale), so the LQ patch
  is exactly gt_size / scale (checked). GT = the window's centre frame.
- Draws: `tag` is "k/j" (`sampler.SampleKey`: sample j of iteration k of the global batch), so
  the degradation of a sample depends only on (degradation seed, k, j): a resumed run, 0 or N
  workers, and DDP ranks see the same LQ as one straight run.
- Validation stays on a FIXED LQ set, so scores compare across runs: `val_gt` + `val_lq` are used
  as given; a GT-only validation set (`--val` DIR: a split-test output, whose GT/ is used and
  whose BIx4/ is not, or a folder of GT clips; or `val_gt` alone) is degraded ONCE with the same
  recipe and the fixed seed `val_degradation_seed` (default 0; identity = clip name) into
  RUN/val_lq by `pipelines.degrade.degrade_tree` (its manifest RUN/val_lq/.vsrdata-degrade.json
  replays it). The start line says which.
- RUN/degradation.json records the recipe (every value), the seeds and the tag rule; a resumed
  run with another recipe or seed is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vsrdata.core.degradations import apply, load_recipe, recipe_from_dict, sample
from vsrdata.core.image_io import write_bytes_atomic
from vsrdata.errors import ConfigError, InputError
from vsrdata.evaluation.inference import frame_to_tensor
from vsrdata.training.data import ClipDataset, FrameStore, VimeoDataset, augment, read_window

__all__ = ["RECORD", "VAL_LQ", "DegradedClipDataset", "DegradedVimeoDataset", "build_degraded",
           "resolve_recipe"]

RECORD = "degradation.json"
VAL_LQ = "val_lq"
_FORMAT = "vsrdata-train-degradation/1"


def resolve_recipe(spec, scale: int) -> dict:
    """The recipe of `degradation` (a built-in name, a YAML file, or a mapping of recipe keys) at
    the model's scale; ConfigError naming the option when its scale differs."""
    if isinstance(spec, dict):
        recipe = recipe_from_dict(spec, name="degradation", scale=scale)
    elif isinstance(spec, str) and spec:
        recipe = load_recipe(spec, scale)
    else:
        raise ConfigError(f"invalid --degradation: expected a recipe name or file, got {spec!r}")
    if recipe["scale"] != scale:
        raise ConfigError(f"invalid --degradation: recipe {recipe['name']} is x{recipe['scale']}, "
                          f"the model is x{scale}")
    return recipe


class _Degrading:
    """Mixin over the paired datasets: the store's frames are GT; the LQ is made per sample."""

    recipe: dict
    degradation_seed: int

    def _check_sizes(self, clip: str, gt_frame: str, lq_frame: str) -> None:
        h, w = self.gt.shape(clip, gt_frame)
        if h < self.gt_size or w < self.gt_size:
            raise InputError(f"gt_size {self.gt_size} is larger than the frames of clip {clip} (GT {w}x{h}, "
                             f"{self.gt.path})")

    def _sample(self, clip: str, gt_frame: str, lq_frames: list[str], rng: np.random.Generator,
                tag: str = "") -> dict:
        lq_frames, window = read_window(self.gt, clip, lq_frames, rng, self.random_reverse)
        h, w = window[0].shape[:2]
        size = self.gt_size
        if h < size or w < size:
            raise InputError(f"gt_size {size} is larger than the frames of clip {clip} (GT {w}x{h}, {self.gt.path})")
        top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        window = augment([im[top:top + size, left:left + size] for im in window], rng, self.use_hflip, self.use_rot)
        window = [np.ascontiguousarray(im) for im in window]
        params = sample(self.recipe, self.degradation_seed, tag, len(window), (size, size))
        try:
            lqs = apply(window, params)
        except InputError as exc:
            raise InputError(f"{exc} (clip {clip} of {self.gt.path}, --degradation {self.recipe['name']})") from None
        want = (size // self.scale, size // self.scale)
        if lqs[0].shape[:2] != want:  # pragma: no cover - every recipe ends at the target size
            raise InputError(f"recipe {self.recipe['name']} made a {lqs[0].shape[1]}x{lqs[0].shape[0]} LQ patch "
                             f"from a {size}x{size} GT patch (want {want[1]}x{want[0]})")
        gt = window[lq_frames.index(gt_frame)]
        return {"lq": torch.stack([frame_to_tensor(im) for im in lqs]), "gt": frame_to_tensor(gt)}


class DegradedClipDataset(_Degrading, ClipDataset):
    """`ClipDataset` keys and windows over a GT store alone; LQ made on the fly (module docstring)."""

    def __init__(self, gt: FrameStore, recipe: dict, degradation_seed: int, **kw):
        self.recipe, self.degradation_seed = recipe, int(degradation_seed)
        super().__init__(gt, gt, **kw)


class DegradedVimeoDataset(_Degrading, VimeoDataset):
    """`VimeoDataset` over a GT store holding all seven frames; LQ made on the fly."""

    def __init__(self, gt: FrameStore, recipe: dict, degradation_seed: int, **kw):
        self.recipe, self.degradation_seed = recipe, int(degradation_seed)
        super().__init__(gt, gt, **kw)


def degradation_seed(cfg) -> int:
    return int(cfg.seed if cfg.degradation_seed is None else cfg.degradation_seed)


def _val_source(cfg, scale: int) -> tuple[Path, dict | None, str | None]:
    """(GT folder, split record or None, meta info) of a GT-only validation set. Without a split
    record (which records padding) every GT frame must be a multiple of the scale."""
    from vsrdata.core import splits
    from vsrdata.core.layouts import clip_shape, find_clips

    root = Path(cfg.val_gt or cfg.val_path)
    if not cfg.val_gt and (root / splits.SPLIT_FILE).is_file():
        record = splits.load_split(root)
        return root / record["gt_dir"], record, None
    if not root.is_dir():
        raise InputError(f"validation set not found: {root}")
    gt_dir = root / "GT" if not cfg.val_gt and (root / "GT").is_dir() else root
    for clip in find_clips(gt_dir):
        h, w = clip_shape(clip)[:2]
        if h % scale or w % scale:
            raise InputError(f"validation clip {clip.path} is {w}x{h}, not a multiple of the scale {scale}: "
                             "make the validation set with `vsrdata split-test` (it pads and records the padding)")
    return gt_dir, None, (cfg.val_meta_info if cfg.val_gt else None)


def _val_clips(cfg, recipe: dict, scale: int, run_dir: Path, master: bool,
               barrier: Callable[[BaseException | None], None], resumed: bool) -> tuple[list | None, str]:
    """(validation clips, the start line's words about them); see the module docstring."""
    from vsrdata.training.setup import build_val_clips

    if cfg.val_gt and cfg.val_lq:
        return build_val_clips(cfg, scale), f"validation on the given LQ {cfg.val_lq} (made offline)"
    if not cfg.val_gt and not cfg.val_path:
        return None, "no validation set"
    from vsrdata.core.layouts import natural_key
    from vsrdata.evaluation.basicsr_testset import testset_record
    from vsrdata.evaluation.scoring import clip_jobs
    from vsrdata.pipelines.degrade import degrade_tree
    from vsrdata.training.validate import check_val_clips

    gt_dir, record, meta = _val_source(cfg, scale)
    out = run_dir / VAL_LQ
    error = None
    if master:
        try:
            degrade_tree(gt_dir, out, recipe=recipe, seed=int(cfg.val_degradation_seed),
                         workers=max(1, cfg.num_workers), overwrite=not resumed, progress=False)
        except Exception as exc:  # every rank must hear of it (setup.rank0_outcome), then it is re-raised
            error = exc
    barrier(error)
    record = dict(record, lr_dir=str(out.resolve())) if record else testset_record(gt_dir, out, meta, scale=scale)
    clips = sorted(clip_jobs(record, Path(cfg.val_path or gt_dir)), key=lambda c: natural_key(c.name))
    check_val_clips(clips, scale, out)
    return clips, (f"validation on a fixed LQ set: the GT of {cfg.val_gt or cfg.val_path} degraded once with "
                   f"{recipe['name']}, seed {cfg.val_degradation_seed}, into {out}")


def _record(cfg, recipe: dict, run_dir: Path, resumed: bool) -> dict:
    """RUN/degradation.json's content; a resumed run must match what the run started with."""
    rec = {"format": _FORMAT, "recipe": recipe, "seed": degradation_seed(cfg),
           "identity": "k/j: sample j of iteration k (k >= 1) of the global batch, '/salt' after a rollback",
           "val_seed": int(cfg.val_degradation_seed)}
    path = run_dir / RECORD
    if resumed and path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            raise InputError(f"cannot read {path}: remove it to resume") from None
        for key, what in (("recipe", "recipe"), ("seed", "--degradation-seed"), ("val_seed", "val_degradation_seed")):
            if json.loads(json.dumps(rec[key])) != old.get(key):
                raise ConfigError(f"invalid --degradation: this run was trained with another {what} ({path}); "
                                  "resume with the same recipe and seeds")
    return rec


def build_degraded(cfg, num_frame: int, scale: int, ids, exclude, common: dict, *, run_dir: Path, master: bool,
                   barrier: Callable[[BaseException | None], None], resumed: bool):
    """The on-the-fly training dataset (its `note` is the start line's words) and the validation
    clips; writes RUN/degradation.json (rank 0)."""
    recipe = resolve_recipe(cfg.degradation, scale)
    gt = FrameStore(cfg.gt_path, "training GT")
    seed = degradation_seed(cfg)
    if cfg.dataset == "vimeo":
        dataset = DegradedVimeoDataset(gt, recipe, seed, clip_ids=ids, **common)
    else:
        dataset = DegradedClipDataset(gt, recipe, seed, interval_list=cfg.interval_list, exclude_clips=exclude,
                                      clip_ids=ids, **common)
    rec = _record(cfg, recipe, run_dir, resumed)
    val, val_note = _val_clips(cfg, recipe, scale, run_dir, master, barrier, resumed)
    if master:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(run_dir / RECORD, (json.dumps(rec, indent=1, sort_keys=True) + "\n").encode())
    dataset.note = (f"LQ made on the fly from the GT by recipe {recipe['name']} x{scale}, seed {seed} "
                    f"(sample j of iteration k drawn from (seed, 'k/j'), recorded in {run_dir / RECORD}); {val_note}")
    return dataset, val
