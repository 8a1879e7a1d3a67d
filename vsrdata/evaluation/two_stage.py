"""Two-stage EDVR (`--stage2 CKPT`): stage 1 restores the clip, stage 2 refines its frames.

Following the original EDVR's competition setup (docs/CONVENTIONS.md#stage-2): stage 2 is an
EDVR with hr_in (scale 1) whose input frames are stage 1's outputs. Here stage 1 (with its
`--tta`) streams its restored frames, each rounded to 8 bits exactly as `infer` writes a PNG
(`metrics.tensor_to_uint8`, BGR), into stage 2's own temporal windows (its own padding; the
same scene cuts). Neither stage holds more than its window (~2 * num_frame frames), so memory
stays flat in the video's length, and the result equals running stage 1 to a folder and stage 2
on that folder, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np

from vsrdata.errors import ConfigError

__all__ = ["Stage", "check_stages", "stage_frames", "stage_of"]


@dataclass
class Stage:
    """One model of the chain with the settings its windows need."""

    model: object  # an engine (vsrdata.evaluation.engines)
    num_frame: int
    scale: int
    multiple: int
    padding: str
    name: str = "model"  # the checkpoint file name, for reports


def stage_of(model, padding: str | None, name: str = "model") -> Stage:
    """The Stage of an engine: its window, scale and size multiple; `padding` or its default."""
    from vsrdata.evaluation.inference import model_meta, resolve_padding

    num_frame, scale, multiple, predeblur = model_meta(model)
    return Stage(model, num_frame, scale, multiple, resolve_padding(padding, predeblur), name)


def _stage2_preset(engine) -> str | None:
    from vsrdata.edvr.checkpoint import preset_name
    from vsrdata.edvr.config import STAGE2_PRESETS

    name = preset_name(engine.config)
    if name in STAGE2_PRESETS:
        return name
    cfg = engine.config
    return "stage-2 (hr_in without predeblur)" if cfg.hr_in and not cfg.with_predeblur else None


def check_stages(stage1, stage2, stage1_name: str, stage2_name: str) -> None:
    """ConfigError (one line) for a chain that cannot work: a stage-2 network given as stage 1,
    or a stage 2 that is not at scale 1 (hr_in: it takes the stage-1 output at its size)."""
    kind = _stage2_preset(stage1)
    if kind is not None:
        raise ConfigError(f"{stage1_name} is a stage-2 network ({kind}): give it as --stage2 and a stage-1 "
                          "checkpoint as CHECKPOINT")
    if stage2.config.scale != 1:
        raise ConfigError(f"--stage2 {stage2_name} is an x{stage2.config.scale} network; stage 2 takes the "
                          "stage-1 output at its own size (an hr_in model at scale 1, e.g. edvr-stage2-sr)")


def stage_frames(stage: Stage, frames: Iterable[np.ndarray], *, device, length: int | None,
                 cuts: Sequence[int] = ()) -> Iterator[np.ndarray]:
    """Every frame of the clip restored by `stage`, as the HxWx3 uint8 BGR frame `infer` writes
    (clamped, x255, rounded), one at a time (lazy: stage 2's window pulls them)."""
    from vsrdata.evaluation import metrics
    from vsrdata.evaluation.inference import restore_clip

    for _, out in restore_clip(stage.model, frames, num_frame=stage.num_frame, scale=stage.scale,
                               multiple=stage.multiple, padding=stage.padding, device=device, length=length,
                               cuts=cuts):
        yield np.ascontiguousarray(metrics.tensor_to_uint8(out)[..., ::-1])
