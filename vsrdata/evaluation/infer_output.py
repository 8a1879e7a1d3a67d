"""`infer`'s output decisions for a video input: bit depth, audio/subtitle plan, the writer.

See `vsrdata.evaluation.infer` (module docstring) for what is kept and what is said.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vsrdata.core.video import OUTPUT_EXTENSIONS, PIX_FMTS, VideoWriter, plan_streams
from vsrdata.errors import ConfigError
from vsrdata.evaluation import metrics

__all__ = ["OUTPUT_RULE", "to_image", "plan_output", "open_writer"]

OUTPUT_RULE = (f"a video OUTPUT ends in {', '.join(OUTPUT_EXTENSIONS)}; a frame-folder OUTPUT has no "
               f"extension or is an existing folder")


def to_image(out: torch.Tensor, deep: bool) -> np.ndarray:
    """A model output as an RGB image: uint8 as `metrics.tensor_to_uint8`, or uint16 for a deep
    (>8-bit) source: clamp to [0, 1], x65535, round half to even."""
    if not deep:
        return metrics.tensor_to_uint8(out)
    x = out.detach().float().clamp_(0, 1).mul_(65535.0).round_().squeeze(0).permute(1, 2, 0)
    return x.cpu().numpy().astype(np.uint16)


@dataclass
class _OutputPlan:
    pix_fmt: str | None = None
    streams: object = None  # core.video.StreamPlan for the input's audio/subtitles, or None


def plan_output(src, dst: Path, to_video: bool, codec, pix_fmt, warnings: list[str]) -> _OutputPlan:
    """Decide, before any work, the bit depth (sets `src.deep`) and the audio/subtitle plan;
    ConfigError for a codec that cannot encode `pix_fmt`."""
    plan = _OutputPlan(pix_fmt)
    info = src.info
    codec = codec or ("libvpx-vp9" if dst.suffix.lower() == ".webm" else "libx264")
    if to_video and pix_fmt is not None and pix_fmt not in _formats(codec):
        raise ConfigError(f"--codec {codec} cannot encode --pix-fmt {pix_fmt} (it takes "
                          f"{', '.join(f for f in PIX_FMTS if f in _formats(codec))})")
    if info is None:
        return plan
    if to_video and (info.audio or info.subtitles):
        plan.streams = plan_streams(info.path, dst.suffix)
        warnings.extend(plan.streams.changes)
    if info.bit_depth <= 8:
        return plan
    if not to_video:
        src.deep = True  # 16-bit PNG frames keep every bit
        return plan
    if pix_fmt is None:
        deep_fmt = "yuv444p10le" if codec == "ffv1" else "yuv420p10le"
        if deep_fmt in _formats(codec):
            plan.pix_fmt, src.deep = deep_fmt, True
        else:
            warnings.append(f"{info.bit_depth}-bit input written as 8-bit: {codec} has no 10-bit format here "
                            f"(use --codec libx264, libx265 or ffv1 to keep it)")
    elif "10" in pix_fmt:
        src.deep = True
    else:
        warnings.append(f"{info.bit_depth}-bit input written as 8-bit (--pix-fmt {pix_fmt})")
    return plan


def _formats(codec: str) -> set[str]:
    from av.codec import Codec

    return {f.name for f in Codec(codec, "w").video_formats}


def open_writer(dst: Path, result, src, codec, crf, plan: _OutputPlan, fps, first_time) -> VideoWriter:
    """The output video: audio/subtitles carried from a video input as planned, aligned on its
    first frame's time; the source's pixel aspect; a variable-rate input (without an explicit
    fps) is written at its own timestamps."""
    info = src.info
    vfr = info is not None and info.variable_rate and fps is None and info.time_base is not None
    sar = info.sample_aspect if info is not None else None
    if sar is not None and src.reader is not None and src.reader.orientation[0] % 2:
        sar = 1 / sar  # a quarter turn swaps the pixel's sides
    return VideoWriter(dst, result.fps, codec=codec, crf=crf, pix_fmt=plan.pix_fmt,
                       audio_from=info.path if plan.streams is not None else None, streams=plan.streams,
                       audio_shift=first_time or 0.0, time_base=info.time_base if vfr else None,
                       sample_aspect=sar)
