"""Validation during training: the evaluator's per-clip scorer on the validation clips.

Narrow interface for the loop:

- `load_val_clips(root)`: the clips of a split-test output, read through `core.splits.load_split`
  (its split.json gives the LR folder and each clip's sizes and padding), or of a folder holding
  GT/ and BIx4|BDx4|LR|LQ/ clip folders without split.json, read in place as a BasicSR test set
  (`evaluation.basicsr_testset.testset_record`). BasicSR `datasets.val` roots:
  `evaluation.basicsr_testset.val_clips_from_roots`. Both give `evaluation.scoring.ClipJob`s.
- `check_val_clips(clips, scale, source)` checks their sizes before any training step.
- `estimate_seconds(model, clips, ...)`: the expected duration of one validation (one frame timed).
- `validate(model, clips, ...)` scores them with `evaluation.scoring.score_clip` (RGB, crop 0,
  every frame or the first `max_frames`; windows padded in time and frames in space exactly as
  `vsrdata evaluate` does) and returns {'psnr', 'ssim', 'per_clip', 'extra', 'metric', 'report'}:
  means of per-clip means (`extra`: the other `metrics` asked for, evaluate's names),
  as EDVR/BasicSR report. With several processes (`env`), clip i is scored by rank i % world and
  every rank gets all the scores (`evaluation.distributed.map_sharded`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import torch

from vsrdata.core import splits
from vsrdata.core.image_io import read_image
from vsrdata.core.layouts import natural_key
from vsrdata.edvr.checkpoint.keys import bare_model
from vsrdata.errors import InputError
from vsrdata.evaluation.distributed import DistEnv, map_sharded
from vsrdata.evaluation.metric_suite import MetricSuite, parse_metrics
from vsrdata.evaluation.protocols import Protocol
from vsrdata.evaluation.report import EvalReport, score_label
from vsrdata.evaluation.scoring import ClipJob, Runner, ScoreOptions, clip_jobs, score_clip

__all__ = ["check_val_clips", "estimate_seconds", "load_val_clips", "val_protocol", "validate", "write_run_report"]

_LR_DIRS = ("BIx4", "BDx4", "LR", "LQ")  # looked for, in this order, without a split.json


def load_val_clips(root: str | os.PathLike) -> list[ClipJob]:
    """The validation clips of `root` (see the module docstring), in natural order of their names."""
    from vsrdata.evaluation.basicsr_testset import testset_record

    root = Path(root)
    if (root / splits.SPLIT_FILE).is_file():
        record = splits.load_split(root)
    else:
        lr_dir = next((root / d for d in _LR_DIRS if (root / d).is_dir()), None)
        if not (root / "GT").is_dir() or lr_dir is None:
            raise InputError(f"validation set {root} needs GT/ and BIx4/ (a `vsrdata split-test` output)")
        record = testset_record(root / "GT", lr_dir)
    clips = sorted(clip_jobs(record, root), key=lambda c: natural_key(c.name))
    if not clips:
        raise InputError(f"validation set {root} holds no clips")
    return clips


def check_val_clips(clips: list[ClipJob], scale: int, source) -> None:
    """InputError unless every clip's GT frame is `scale` x its LR frame (first frames compared)."""
    for clip in clips:
        (gh, gw), (lh, lw) = read_image(clip.gt_paths[0]).shape[:2], read_image(clip.lq_paths[0]).shape[:2]
        if (gh, gw) != (lh * scale, lw * scale):
            raise InputError(f"validation clip {clip.name}: GT {gw}x{gh} is not {scale}x the LR {lw}x{lh} "
                             f"({source})")


def val_protocol(max_frames: int = 0) -> str:
    """The protocol name of training validation: the REDS4 one (RGB, crop 0, every frame), or its
    first `max_frames` frames of each clip (scores then differ from `vsrdata evaluate`'s)."""
    return "reds4" if not max_frames else f"reds4, first {max_frames} frames"


def validate(model: torch.nn.Module, clips: list[ClipJob], num_frame: int, device: torch.device,
             pad_mode: str = "reflection_circle", max_frames: int = 0, autocast=contextlib.nullcontext,
             env: DistEnv | None = None, metrics: str = "psnr,ssim", out_dir: Path | None = None,
             progress=None) -> dict:
    """PSNR and SSIM (RGB, crop 0; mean of per-clip means, EDVR/BasicSR) of `model` on the
    validation clips: {'psnr', 'ssim', 'per_clip': {clip: psnr}, 'metric': 'PSNR-RGB (reds4)',
    'report': EvalReport}. `autocast` is a context factory (the training precision); `env`
    splits the clips across processes (all of them must call this), None = this process scores
    every clip. `out_dir`: comparison strips go to out_dir/compare (for report.html).
    `progress(n, total)`: n frames of this process done, total its frames (the `evaluate` kind)."""
    base = bare_model(model)
    runner, opts, suite = _scorer(base, num_frame, device, pad_mode, autocast, metrics, out_dir)
    jobs = _val_jobs(clips, max_frames)
    env = env or DistEnv()
    tick = None
    if progress is not None:
        total = sum(len(jobs[i].centers) for i in range(env.rank, len(jobs), env.world))
        progress(0, total)
        tick = lambda n, _t: progress(n, total)  # noqa: E731
    was_training = base.training
    base.eval()
    try:
        scored = map_sharded(lambda job: score_clip(runner, job, opts, tick)[0], jobs, env)
    finally:
        base.train(was_training)
    proto = val_protocol(max_frames)
    report = EvalReport({"protocol": proto, "model": "model", "channel": "rgb", "crop_border": 0, "frames": "all",
                         "padding": pad_mode, "num_frame": num_frame, "average": "clip"}, scored)
    per_clip = {c.name: c.psnr for c in scored}
    extra = {}
    for key in suite.extra:
        vals = [v for v in (c.metric(key) for c in scored) if v is not None]
        extra[key] = float(np.mean(vals)) if vals else None
    return {"psnr": float(np.mean(list(per_clip.values()))), "ssim": float(np.mean([c.ssim for c in scored])),
            "per_clip": per_clip, "extra": extra, "metric": score_label("PSNR", "rgb", proto), "report": report}


def _scorer(base: torch.nn.Module, num_frame: int, device: torch.device, pad_mode: str, autocast, metrics: str,
            out_dir: Path | None) -> tuple[Runner, ScoreOptions, MetricSuite]:
    """The Runner and ScoreOptions of training validation (RGB, crop 0, every frame)."""
    cfg = base.config
    runner = Runner(base, num_frame, cfg.scale, cfg.size_multiple, pad_mode, device, autocast(), "model")
    suite = MetricSuite(parse_metrics(metrics), 0, True, None, str(device))
    opts = ScoreOptions(Protocol("rgb", 0, "all"), suite=suite if suite.extra else None, strips=out_dir is not None,
                        out=out_dir)
    return runner, opts, suite


def _val_jobs(clips: list[ClipJob], max_frames: int) -> list[ClipJob]:
    """The clips with their scored frames: all, or the first `max_frames`."""
    return [dataclasses.replace(c, centers=list(range(min(len(c.lq_paths), max_frames or len(c.lq_paths)))))
            for c in clips]


def estimate_seconds(model: torch.nn.Module, clips: list[ClipJob], num_frame: int, device: torch.device,
                     pad_mode: str = "reflection_circle", max_frames: int = 0, autocast=contextlib.nullcontext,
                     env: DistEnv | None = None, metrics: str = "psnr,ssim") -> float:
    """The expected duration of one `validate` call in this process, in seconds: one frame of the
    first clip restored and scored exactly as `validate` does (its window read, the forward, PSNR /
    SSIM and the other `metrics`), timed, times the frames this process scores. The one frame is
    the first forward of the run (allocations, thread pools), so the estimate leans high. The
    model's weights and the random streams are untouched (eval mode, no gradients)."""
    base = bare_model(model)
    runner, opts, _ = _scorer(base, num_frame, device, pad_mode, autocast, metrics, None)
    jobs = _val_jobs(clips, max_frames)
    env = env or DistEnv()
    frames = sum(len(jobs[i].centers) for i in range(env.rank, len(jobs), env.world))
    if not frames:
        return 0.0
    one = dataclasses.replace(jobs[0], centers=jobs[0].centers[len(jobs[0].centers) // 2:][:1])
    was_training = base.training
    base.eval()
    try:
        started = time.perf_counter()
        score_clip(runner, one, opts)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - started) * frames
    finally:
        base.train(was_training)


def write_run_report(report: EvalReport, run_dir: Path, it: int, curves: Path) -> Path:
    """RUN/report.html: the latest validation's page with the run's training curves."""
    from vsrdata.evaluation.report_html import write_html

    report.protocol["model"] = f"{run_dir.name} @ iter {it}"
    return write_html(report, run_dir / "report.html", curves_png=curves,
                      title=f"{run_dir.name}: validation at iteration {it}")
