"""Running a model on frames: device, precision, frame -> tensor, and `restore` (one window).

Shared by `evaluate`, `infer` and training validation, so every path pads and tiles the same way:

- `frame_to_tensor`: a frame as read from disk (HxW gray, HxWx3 BGR, HxWx4 BGRA; uint8 or
  uint16) -> (3, H, W) float32 RGB in [0, 1] (/255 or /65535).
- `restore`: one window (t, 3, h, w) -> (3, s*h, s*w), padded to the model's size multiple by
  edge replication at the bottom/right and cut back, optionally in tiles.
- `restore_clip`: every (or some) centre frame of a clip, windows padded in time
  (`vsrdata.evaluation.windows`), memory bounded by the window.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vsrdata.core.image_io import to_rgb
from vsrdata.evaluation.windows import TEMPORAL_PADDINGS, SlidingWindow
from vsrdata.errors import ConfigError

__all__ = ["PRECISIONS", "autocast_for", "default_device", "frame_to_tensor", "model_meta", "pad_to_multiple",
           "resolve_device", "resolve_padding", "restore", "restore_clip"]

PRECISIONS = ("fp32", "fp16", "bf16")
Model = Callable[[torch.Tensor], torch.Tensor]


# -- device and precision -----------------------------------------------------------------------

def default_device() -> str:
    """'cuda' when a CUDA device is available, else 'cpu'."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """torch.device for `device` (default: `default_device()`); ConfigError when unusable."""
    name = str(device) if isinstance(device, torch.device) else (device or default_device())
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r} (use cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available (use --device cpu)")
    return dev


def autocast_for(dev: torch.device, precision: str):
    """The torch.autocast context for `precision` on `dev`: fp32 = disabled; bf16 on CPU or
    CUDA; fp16 on CUDA only (CPU float16 kernels are slow or missing)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    if precision == "fp32":
        return torch.autocast(dev.type, enabled=False)
    if precision == "fp16" and dev.type != "cuda":
        raise ConfigError(f"--precision fp16 needs a CUDA device (got {dev}; bf16 works on CPU)")
    return torch.autocast(dev.type, dtype=torch.float16 if precision == "fp16" else torch.bfloat16)


# -- model meta -----------------------------------------------------------------------------------

def model_meta(model) -> tuple[int, int, int, bool]:
    """(num_frame, scale, size_multiple, with_predeblur) of an EDVR or engine (its `.config`)."""
    cfg = getattr(model, "config", None)
    if cfg is None:
        raise ConfigError("the model has no .config (an EDVRConfig) to read num_frame/scale from")
    return cfg.num_frame, cfg.scale, cfg.size_multiple, bool(getattr(cfg, "with_predeblur", False))


def resolve_padding(padding: str | None, with_predeblur: bool) -> str:
    """The temporal padding to use: `padding`, or by default reflection_circle (replicate for the
    predeblur models, as the official scripts); ConfigError for an unknown mode."""
    if padding is None:
        return "replicate" if with_predeblur else "reflection_circle"
    if padding not in TEMPORAL_PADDINGS:
        raise ConfigError(f"unknown temporal padding {padding!r} (choose from {', '.join(TEMPORAL_PADDINGS)})")
    return padding


# -- frames and windows ---------------------------------------------------------------------------

def frame_to_tensor(img: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """A frame as `read_image` gives it (HxW gray, HxWx3 BGR, HxWx4 BGRA; uint8 or uint16) ->
    (3, H, W) float32 RGB in [0, 1] (uint8 / 255, uint16 / 65535), on `device` when given."""
    scale = 65535.0 if img.dtype == np.uint16 else 255.0
    x = torch.from_numpy(to_rgb(img)).permute(2, 0, 1).float().div_(scale)
    return x if device is None else x.to(device)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (..., C, H, W) at the bottom/right by edge replication to multiples of `multiple`."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    shape = x.shape
    flat = F.pad(x.reshape(-1, shape[-3], h, w), (0, pw, 0, ph), mode="replicate")
    return flat.reshape(*shape[:-2], h + ph, w + pw)


def _round_up(value: int, multiple: int) -> int:
    return -(-int(value) // multiple) * multiple


def _restore_tiled(model: Model, x: torch.Tensor, scale: int, tile: int, overlap: int) -> torch.Tensor:
    """(1, t, 3, H, W) -> (3, s*H, s*W): each tile run with `overlap` context on every inner side;
    only the tile's own region of its output is kept (no blending)."""
    hp, wp = x.shape[-2:]
    out = None
    for y0 in range(0, hp, tile):
        y1 = min(y0 + tile, hp)
        ey0, ey1 = max(0, y0 - overlap), min(hp, y1 + overlap)
        for x0 in range(0, wp, tile):
            x1 = min(x0 + tile, wp)
            ex0, ex1 = max(0, x0 - overlap), min(wp, x1 + overlap)
            part = model(x[..., ey0:ey1, ex0:ex1])[0]
            if out is None:
                out = torch.empty((part.shape[0], hp * scale, wp * scale), dtype=part.dtype, device=part.device)
            out[:, y0 * scale:y1 * scale, x0 * scale:x1 * scale] = part[
                :, (y0 - ey0) * scale:(y1 - ey0) * scale, (x0 - ex0) * scale:(x1 - ex0) * scale]
    return out


def restore(model: Model, window: torch.Tensor, *, scale: int, multiple: int, tile: int | None = None,
            tile_overlap: int = 16, autocast=None) -> torch.Tensor:
    """Run the model on one window of frames of any size.

    Args:
        model: an EDVR module or an engine (`vsrdata.evaluation.engines`): (1, t, 3, H, W)
            float32 -> (1, 3, scale*H, scale*W), H and W multiples of `multiple`.
        window: (t, 3, h, w) float RGB in [0, 1] on the model's device.
        scale: output / input size ratio of the model.
        multiple: the model's size constraint; the window is padded (edge replication, bottom /
            right) to multiples of it and the output is cut back to (scale*h, scale*w).
        tile: optional tile side in input pixels (rounded up to `multiple`): the frame is cut into
            tiles, each extended by `tile_overlap` (rounded up to `multiple`) on every side that is
            inside the frame, restored separately, and only each tile's own region of the output
            is kept (no blending). With an overlap at least the model's receptive field, the
            result equals the untiled one up to float rounding.
        autocast: a torch.autocast context (fp32 when None).

    Returns:
        (3, scale*h, scale*w) float tensor (not clamped).
    """
    h, w = window.shape[-2:]
    x = pad_to_multiple(window, multiple)[None]  # (1, t, 3, H, W)
    hp, wp = x.shape[-2:]
    ctx = autocast if autocast is not None else torch.autocast(x.device.type, enabled=False)
    with torch.inference_mode(), ctx:
        if not tile or (tile >= hp and tile >= wp):
            out = model(x)[0]
        else:
            overlap = _round_up(max(int(tile_overlap), 0), multiple)
            out = _restore_tiled(model, x, scale, _round_up(tile, multiple), overlap)
    return out[:, : h * scale, : w * scale].float()


def restore_clip(model: Model, frames: Iterable[np.ndarray], *, num_frame: int, scale: int, multiple: int,
                 padding: str, device: torch.device, length: int | None = None,
                 centers: Sequence[int] | None = None, cuts: Sequence[int] = (), autocast=None
                 ) -> Iterator[tuple[int, torch.Tensor]]:
    """Restore the frames of a clip: yields (t, (3, s*h, s*w) float output) per centre `t`.

    `frames` are read lazily (at most ~2 * num_frame held, `windows.SlidingWindow`), windows are
    padded in time by `padding` and never cross `cuts`; `centers` picks the frames (default all).
    """
    tensors = (frame_to_tensor(img, device) for img in frames)
    for t, window in SlidingWindow(tensors, num_frame, padding, length=length, centers=centers, cuts=cuts):
        yield t, restore(model, torch.stack(window), scale=scale, multiple=multiple, autocast=autocast)
