"""Validation during training: the clips of a split-test output and their PSNR / SSIM.

Narrow interface for the loop: `load_val_clips(root)` / `val_clips_from_roots(...)` give
`ValClip`s, `check_val_clips(clips, scale, source)` checks their sizes before any training, and
`validate(model, clips, ...)` returns {'psnr', 'ssim', 'per_clip'} (RGB, crop 0; mean of
per-clip means, as EDVR/BasicSR report).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vsrdata.core.image_io import read_image
from vsrdata.core.layouts import find_clips, natural_key
from vsrdata.edvr.checkpoint.keys import bare_model
from vsrdata.evaluation.windows import temporal_indices
from vsrdata.errors import InputError
from vsrdata.training.data import to_tensor


@dataclass
class ValClip:
    name: str
    lq_paths: list[Path]
    gt_paths: list[Path]
    gt_hw: tuple[int, int] | None  # original (unpadded) GT size to score, or None for the full frame


def load_val_clips(root: str | os.PathLike) -> list[ValClip]:
    """Clips of a split-test output (or any folder with GT/ and BIx4|BDx4|LR/ clip folders).

    With `split.json` (schema vsrdata-split-test/1) the LR folder and each clip's original GT size
    (or `gt_crop`) are read from it, so padding added by split-test is removed before scoring.
    """
    root = Path(root)
    record = None
    meta = root / "split.json"
    if meta.is_file():
        try:
            record = json.loads(meta.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read {meta}: {exc}") from None
    gt_dir = root / (record.get("gt_dir", "GT") if record else "GT")
    if record and record.get("lr_dir"):
        lr_dir = root / record["lr_dir"]
    else:
        cands = [root / d for d in ("BIx4", "BDx4", "LR", "LQ") if (root / d).is_dir()]
        lr_dir = cands[0] if cands else root / "BIx4"
    if not gt_dir.is_dir() or not lr_dir.is_dir():
        raise InputError(f"validation set {root} needs GT/ and BIx4/ (a `vsrdata split-test` output)")
    gt_clips = {c.name: c for c in find_clips(gt_dir)}
    lr_clips = {c.name: c for c in find_clips(lr_dir)}
    clips = []
    for name in sorted(gt_clips, key=natural_key):
        if name not in lr_clips:
            raise InputError(f"validation clip {name} has no LR frames in {lr_dir}")
        g, l = gt_clips[name], lr_clips[name]
        if len(g.frames) != len(l.frames):
            raise InputError(f"validation clip {name}: {len(g.frames)} GT frames but {len(l.frames)} LR frames")
        hw = None
        if record and name in record.get("clips", {}):
            rec = record["clips"][name]
            if rec.get("gt_crop"):
                hw = tuple(rec["gt_crop"][:2])
            elif rec.get("gt_size"):
                hw = tuple(rec["gt_size"][:2])
        clips.append(ValClip(name, l.frame_paths(), g.frame_paths(), hw))
    if not clips:
        raise InputError(f"validation set {root} holds no clips")
    return clips


def check_val_clips(clips: list[ValClip], scale: int, source) -> None:
    """InputError unless every clip's GT frame is `scale` x its LR frame (first frames compared)."""
    for clip in clips:
        (gh, gw), (lh, lw) = read_image(clip.gt_paths[0]).shape[:2], read_image(clip.lq_paths[0]).shape[:2]
        if (gh, gw) != (lh * scale, lw * scale):
            raise InputError(f"validation clip {clip.name}: GT {gw}x{gh} is not {scale}x the LR {lw}x{lh} "
                             f"({source})")


@torch.no_grad()
def validate(model: torch.nn.Module, clips, num_frame: int, device: torch.device, pad_mode: str = "reflection_circle",
             max_frames: int = 0, autocast=contextlib.nullcontext) -> dict:
    """PSNR and SSIM (RGB, crop 0; mean of per-clip means, EDVR/BasicSR) of `model` on validation
    clips: {'psnr', 'ssim', 'per_clip': {clip: psnr}}."""
    from vsrdata.evaluation.metrics import calculate_psnr, calculate_ssim, tensor_to_uint8

    base = bare_model(model)
    size_multiple, scale = base.config.size_multiple, base.config.scale
    was_training = model.training
    model.eval()
    per_clip, ssim_per_clip = {}, []
    try:
        for clip in clips:
            lqs = torch.stack([to_tensor(read_image(p)) for p in clip.lq_paths])
            n = len(clip.lq_paths)
            count = n if not max_frames else min(n, max_frames)
            scores, ssims = [], []
            for i in range(count):
                idx = temporal_indices(i, n, num_frame, pad_mode)
                x = lqs[idx][None].to(device)
                h, w = x.shape[-2:]
                ph, pw = -h % size_multiple, -w % size_multiple
                if ph or pw:  # frames not padded by split-test: replicate-pad bottom/right, crop after
                    x = torch.nn.functional.pad(x[0], (0, pw, 0, ph), mode="replicate")[None]
                with autocast():
                    out = model(x)
                sr = tensor_to_uint8(out[0, :, :h * scale, :w * scale].float())
                gt = read_image(clip.gt_paths[i])[:, :, ::-1]
                if clip.gt_hw:
                    h, w = clip.gt_hw
                    sr, gt = sr[:h, :w], gt[:h, :w]
                if sr.shape != gt.shape:
                    raise InputError(f"validation clip {clip.name}: output {sr.shape} vs GT {gt.shape}")
                gt = np.ascontiguousarray(gt)
                scores.append(calculate_psnr(sr, gt))
                ssims.append(calculate_ssim(sr, gt))
            per_clip[clip.name] = float(np.mean(scores))
            ssim_per_clip.append(float(np.mean(ssims)))
    finally:
        model.train(was_training)
    return {"psnr": float(np.mean(list(per_clip.values()))), "ssim": float(np.mean(ssim_per_clip)),
            "per_clip": per_clip}
