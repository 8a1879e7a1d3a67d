"""The per-clip scorer: restore a clip's frames and score each against its GT frame.

Shared by `evaluate` (every clip of a test set, in one process or split across processes) and
training validation. Conventions (docs/CONVENTIONS.md#metrics):

- Outputs are clamped, x255, rounded to uint8 (`metrics.tensor_to_uint8`) and cut back to the
  original region recorded by split-test (`splits.unpad`): padding is never scored.
- PSNR on RGB and on Y is always recorded; the protocol's channel gives `psnr` and `ssim`.
- Border frames are the first and last num_frame // 2 frames of a clip (EDVR-old).
- Bicubic baseline: MATLAB-style `imresize` of the original (unpadded) LR frame
  (`vsrdata.core.resize`).

GT decoding and PSNR/SSIM (cv2 / numpy, which release the GIL) run in one worker thread while
the model restores the next frame; at most 2 frames wait, so memory stays bounded.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from vsrdata.core import splits
from vsrdata.core.image_io import check_frame_layout, frame_shape, read_image, to_rgb, write_image
from vsrdata.core.layouts import Clip, check_pair, clip_shape, natural_key
from vsrdata.evaluation import metrics
from vsrdata.evaluation.inference import restore_clip
from vsrdata.evaluation.metric_suite import ClipState, MetricSuite
from vsrdata.evaluation.protocols import Protocol
from vsrdata.evaluation.report import ClipScores, FrameScore, gain_crop_origin, write_strip
from vsrdata.evaluation.two_stage import Stage, stage_frames
from vsrdata.errors import InputError

__all__ = ["ClipJob", "Runner", "ScoreOptions", "bicubic_rgb", "clip_jobs", "score_clip"]

Tick = Callable[[int, "int | None"], None]  # (frames just done, total or None): the inner loops' progress


@dataclass
class Runner:
    """What restores the frames: a model / engine, or the bicubic baseline (`model` None)."""

    model: Callable[[torch.Tensor], torch.Tensor] | None
    num_frame: int
    scale: int
    multiple: int
    padding: str
    device: torch.device
    autocast: object = None
    model_name: str = "model"
    preset: str = "-"
    stage2: object = None  # a two_stage.Stage refining the model's frames (--stage2), or None


@dataclass
class ClipJob:
    """One clip to score: frame i is restored from the LR (LQ) frames `lq_paths` and scored against `gt_paths[i]`
    (named by the GT file name); `rec` is its split record (sizes and padding for `unpad`)."""

    name: str
    rec: dict
    lq_paths: list[Path]
    gt_paths: list[Path]
    centers: list[int]
    cuts: Sequence[int] = ()


@dataclass
class ScoreOptions:
    protocol: Protocol
    with_bicubic: bool = False
    strips: bool = False
    strip_crop: int = 192
    save_frames: bool = False
    out: Path | None = None  # where strips (compare/) and frames (frames/) go
    save_as: Callable[[str, str], Path] | None = None  # (clip, GT frame name) -> a further copy of the frame
    suite: MetricSuite | None = None  # metrics beyond PSNR/SSIM; reference False = no GT

    @property
    def reference(self) -> bool:
        return self.suite is None or self.suite.reference


def clip_jobs(record: dict, root: Path, *, centre_only: bool = False, max_frames: int = 0,
              reference: bool = True) -> list[ClipJob]:
    """One ClipJob per clip of a split record (`splits.load_split`, `basicsr_testset.testset_record`),
    in its order; frames in natural order. Scored frames: all, the first `max_frames` (> 0), or
    only the centre one (`centre_only`, Vimeo90K-T). A record without GT (`lq_only`) names its
    frames by the LQ files (they are never read as GT); `reference` False: GT frames are not checked."""
    gt_dir, lr_dir = Path(root) / (record["gt_dir"] or record["lr_dir"]), Path(root) / record["lr_dir"]
    if not record["clips"]:
        raise InputError(f"{Path(root) / splits.SPLIT_FILE} lists no clips")
    jobs = []
    for name, rec in record["clips"].items():
        names = sorted(rec.get("frames") or {}, key=natural_key)
        if not names:
            raise InputError(f"clip {name!r} of {Path(root) / splits.SPLIT_FILE} has no frames")
        count = len(names) if not max_frames else min(len(names), max_frames)
        centers = [len(names) // 2] if centre_only else list(range(count))
        jobs.append(ClipJob(name, rec, [lr_dir / name / n for n in names], [gt_dir / name / n for n in names],
                            centers))
        _check_clip(jobs[-1], lr_dir, names, reference and bool(record["gt_dir"]))
    return jobs


def _check_clip(job: ClipJob, lr_dir: Path, names: list[str], reference: bool = True) -> None:
    """The frame contract before any work (docs/CONVENTIONS.md#frame-contract): a uniform LQ clip
    and (with a ground truth) GT frames of the same channels and bit depth (from PNG headers)."""
    lq = clip_shape(Clip(name=job.name, root=lr_dir, frames=tuple(names)), "LQ")
    if not reference:
        return
    first = job.gt_paths[job.centers[0]]  # a scored frame: its GT exists
    gt = frame_shape(first)
    check_frame_layout(gt[:3], str(first))
    check_pair(gt, lq, f"clip {job.name!r}")


def bicubic_rgb(lr_bgr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB-style bicubic upscaling of an LR frame (any `read_image` frame) -> HxWx3 uint8 RGB."""
    from vsrdata.core.resize import imresize

    rgb = to_rgb(lr_bgr)
    if scale == 1:
        return rgb
    up = imresize(rgb, scale)
    if up.dtype != np.uint8:
        up = np.clip(np.round(up), 0, 255).astype(np.uint8)
    return up


def _gt_rgb(path: Path, rec: dict) -> np.ndarray:
    gt = read_image(path)
    if gt.dtype != np.uint8:
        raise InputError(f"GT frame is {gt.dtype}, the metrics need 8-bit frames: {path}")
    return np.ascontiguousarray(splits.unpad(to_rgb(gt), rec, "gt"))


def _scores(out: np.ndarray, gt: np.ndarray, proto: Protocol) -> tuple[float, float, float, float]:
    """(psnr on protocol channel, ssim on it, psnr RGB, psnr Y)."""
    cb = proto.crop_border
    p_rgb = metrics.calculate_psnr(out, gt, cb, test_y_channel=False)
    p_y = metrics.calculate_psnr(out, gt, cb, test_y_channel=True)
    y = proto.channel == "y"
    ssim = metrics.calculate_ssim(out, gt, cb, test_y_channel=y)
    return (p_y if y else p_rgb), ssim, p_rgb, p_y


def _restored(r: Runner, job: ClipJob, strip_at: int, want_bicubic: bool
              ) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """Yield (frame index, restored HxWx3 uint8 RGB cut to the scored region, bicubic or None)."""
    def lr(t: int) -> np.ndarray:
        return splits.unpad(read_image(job.lq_paths[t]), job.rec, "lr")

    if r.model is None:  # bicubic baseline: no window needed
        for t in job.centers:
            up = bicubic_rgb(lr(t), r.scale)
            yield t, up, up
        return
    frames = (read_image(p) for p in job.lq_paths)
    last = Stage(r.model, r.num_frame, r.scale, r.multiple, r.padding)
    device = r.device
    if r.stage2 is not None:  # stage 1 streams its (8-bit) frames into stage 2's windows
        frames = stage_frames(last, frames, device=r.device, length=len(job.lq_paths), cuts=job.cuts)
        last, device = r.stage2, r.stage2.model.device
    for t, out in restore_clip(last.model, frames, num_frame=last.num_frame, scale=last.scale,
                               multiple=last.multiple, padding=last.padding, device=device,
                               length=len(job.lq_paths), centers=job.centers, cuts=job.cuts, autocast=r.autocast):
        out_rgb = np.ascontiguousarray(splits.unpad(metrics.tensor_to_uint8(out), job.rec, "gt"))
        bic = bicubic_rgb(lr(t), r.scale) if want_bicubic or t == strip_at else None
        yield t, out_rgb, bic


def _score_frame(r: Runner, job: ClipJob, o: ScoreOptions, t: int, out_rgb: np.ndarray,
                 bic_rgb: np.ndarray | None, strip_here: bool, state: ClipState | None = None
                 ) -> tuple[FrameScore, str | None]:
    """Score frame t; write it (save_frames) and the clip's strip (strip_here). -> (score, strip path)."""
    gt_path = job.gt_paths[t]
    name = gt_path.name
    gt = _gt_rgb(gt_path, job.rec) if o.reference else None
    if gt is not None and out_rgb.shape != gt.shape:
        raise InputError(f"clip {job.name!r} frame {name}: restored {out_rgb.shape[0]}x{out_rgb.shape[1]} "
                         f"but GT is {gt.shape[0]}x{gt.shape[1]}")
    proto = o.protocol
    nan = float("nan")
    psnr = ssim = p_rgb = p_y = nan
    bic_psnr = None
    try:
        if gt is not None:
            psnr, ssim, p_rgb, p_y = _scores(out_rgb, gt, proto)
            if o.with_bicubic and r.model is not None and bic_rgb is not None:
                bic_psnr = metrics.calculate_psnr(bic_rgb, gt, proto.crop_border, proto.channel == "y")
        extra = o.suite.frame(state, out_rgb, gt, bic_rgb if r.model is not None else None) if o.suite else {}
    except ValueError as exc:  # e.g. a frame smaller than the SSIM window, crop_border too large
        raise InputError(f"clip {job.name!r} frame {name}: {exc}") from None
    if o.save_frames:
        write_image(o.out / "frames" / job.name / name, np.ascontiguousarray(out_rgb[..., ::-1]))
    if o.save_as is not None:
        write_image(o.save_as(job.name, name), np.ascontiguousarray(out_rgb[..., ::-1]))
    strip = _write_clip_strip(r, job, o, t, out_rgb, bic_rgb, gt, psnr) if strip_here else None
    half = r.num_frame // 2
    border = t < half or t >= len(job.gt_paths) - half
    return FrameScore(name, t, border, psnr, ssim, p_rgb, p_y, bic_psnr, extra), strip


def _write_clip_strip(r: Runner, job: ClipJob, o: ScoreOptions, t: int, out_rgb: np.ndarray,
                      bic_rgb: np.ndarray | None, gt: np.ndarray, psnr: float) -> dict:
    """compare/<clip>.png: bicubic | model | GT at the crop where the model gains most over
    bicubic (the centre crop for the bicubic baseline) -> the strip record of `ClipScores.strip`."""
    has_bic = r.model is not None and bic_rgb is not None
    panels = [("bicubic", bic_rgb)] if has_bic else []
    panels += [(r.model_name if r.model is not None else "bicubic", out_rgb)]
    panels += [("GT", gt)] if gt is not None else []
    size = o.strip_crop
    if gt is not None and has_bic:
        y0, x0 = gain_crop_origin(out_rgb, bic_rgb, gt, size)
    else:  # no ground truth (no gain to measure) or no bicubic panel: the centre crop
        gt = out_rgb if gt is None else gt
        y0, x0 = (gt.shape[0] - min(size, gt.shape[0])) // 2, (gt.shape[1] - min(size, gt.shape[1])) // 2
    path = write_strip(o.out / "compare" / f"{job.name}.png", panels, size, origin=(y0, x0))
    cb, y = o.protocol.crop_border, o.protocol.channel == "y"
    bic_psnr = (metrics.calculate_psnr(bic_rgb, gt, cb, y) if has_bic and len(panels) == 3
                else (psnr if r.model is None else None))
    return {"path": path, "frame": job.gt_paths[t].name, "index": t, "x": x0, "y": y0,
            "w": min(size, gt.shape[1]), "h": min(size, gt.shape[0]), "psnr": psnr, "bicubic_psnr": bic_psnr}


def score_clip(runner: Runner, job: ClipJob, opts: ScoreOptions,
               progress: Tick | None = None) -> tuple[ClipScores, str | None]:
    """Restore and score the frames `job.centers` of one clip -> (ClipScores, strip path or None).

    The strip (with `opts.strips`) shows the middle one of the scored frames, cropped where the
    model gains most over bicubic (recorded in `ClipScores.strip`). `progress(1, None)`
    is called per scored frame.
    """
    clip, strips = ClipScores(job.name), []
    strip_at = job.centers[len(job.centers) // 2]
    want_bicubic = opts.with_bicubic or runner.model is None or not opts.reference
    state = opts.suite.start_clip(job.name) if opts.suite else None

    def collect(future) -> None:
        score, strip = future.result()
        clip.frames.append(score)
        if strip:
            strips.append(strip["path"])
            clip.strip = strip
        if progress:
            progress(1, None)

    try:
        # one worker: frames are scored in order (the sequence metrics rely on it)
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending: deque = deque()
            for t, out_rgb, bic in _restored(runner, job, strip_at, want_bicubic):
                strip_here = opts.strips and t == strip_at
                pending.append(pool.submit(_score_frame, runner, job, opts, t, out_rgb, bic, strip_here, state))
                while len(pending) > 2 or (pending and pending[0].done()):
                    collect(pending.popleft())
            while pending:
                collect(pending.popleft())
        if state is not None:
            opts.suite.finish_clip(state, clip.frames)
    finally:
        if state is not None:
            opts.suite.abort_clip(state)
    return clip, (strips[0] if strips else None)
