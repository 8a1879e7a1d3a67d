"""`evaluate`: score EDVR (or the bicubic baseline) on a split-test output. The model-running
helpers here (`load_model`, `restore`) are shared with `vsrdata.evaluation.infer`.

Protocol (docs/CONVENTIONS.md#metrics; EDVR-old `test_Vid4_REDS4_with_GT.py`, BasicSR
`video_test_dataset.py` / `video_base_model.py`; our own code):

- Each frame of a clip is restored from the window of `num_frame` LR frames centred on it; at
  the clip ends the window is padded in time (`windows.temporal_indices`). Default padding:
  ``reflection_circle`` (EDVR-old ``new_info``, what the SR models were scored with) and
  ``replicate`` for the predeblur models (SRblur / deblur / deblurcomp), as the official scripts.
- Outputs are clamped, x255, rounded to uint8 (`metrics.tensor_to_uint8`) and cut back to the
  original region recorded by split-test (`splits.unpad`): padding added to reach a multiple of 4
  is never scored. LR frames whose sides are not a multiple of the model's `size_multiple` (a
  split made with another --multiple) are padded here by edge replication and cut back as well.
- Protocols (channel, crop_border, which frames):
  ``vid4`` Y, 0, all;  ``reds4`` RGB, 0, all;  ``vimeo-t`` Y, 0, centre frame only (im4 of the
  septuplet: the window is im1-7 for 7-frame models, im2-6 for 5-frame ones);  ``generic`` Y, 0,
  all (most video-SR tables outside REDS report Y). ``auto`` picks one from the split record
  (partition vid4 / reds4, redsofficial4, reds-val / the Vimeo layout), else generic.
  PSNR on both RGB and Y is always recorded; Center/Border/SSIM use the protocol's channel.
- Border frames are the first and last num_frame // 2 frames of a clip (EDVR-old); Center PSNR
  is over the others. Averages: mean of per-clip means (default) or over all frames.
- Bicubic baseline: MATLAB-style `imresize` (x scale, bicubic, antialiasing) of the original
  (unpadded) LR centre frame, via `vsrdata.core.resize`.

Memory is bounded by the window (2 * num_frame LR frames are held), not by the clip length.
The model runs through an engine (`vsrdata.evaluation.engines`: PyTorch, channels_last on CPU, fp32 /
bf16 / fp16 autocast; or ONNX Runtime on a `vsrdata export` file) under `torch.inference_mode()`.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from vsrdata.core import splits
from vsrdata.core.image_io import bgr_to_rgb, read_image, write_image
from vsrdata.core.layouts import natural_key
from vsrdata.evaluation import metrics
from vsrdata.evaluation.engines import PRECISIONS, default_device, load_engine, load_model
from vsrdata.evaluation.engines import autocast_for as _autocast, resolve_device as _device
from vsrdata.evaluation.report import ClipScores, EvalReport, FrameScore, write_strip
from vsrdata.evaluation.windows import TEMPORAL_PADDINGS, SlidingWindow
from vsrdata.errors import CheckpointError, ConfigError, InputError

__all__ = ["PROTOCOLS", "PRECISIONS", "evaluate", "load_engine", "load_model", "restore", "default_device"]

Progress = Callable[[int, "int | None"], None]  # (frames just done, total or None)


@dataclass(frozen=True)
class Protocol:
    channel: str  # 'y' | 'rgb'
    crop_border: int
    frames: str  # 'all' | 'center'


PROTOCOLS = {
    "vid4": Protocol("y", 0, "all"),
    "reds4": Protocol("rgb", 0, "all"),
    "vimeo-t": Protocol("y", 0, "center"),
    "generic": Protocol("y", 0, "all"),
}
_REDS_NAMES = ("reds4", "redsofficial4", "reds-val")


# -- model meta ---------------------------------------------------------------------------------

def _model_meta(model: torch.nn.Module) -> tuple[int, int, int, bool]:
    """(num_frame, scale, size_multiple, with_predeblur) of an EDVR (or a look-alike with `.config`)."""
    cfg = getattr(model, "config", None)
    if cfg is None:
        raise ConfigError("the model has no .config (an EDVRConfig) to read num_frame/scale from")
    return cfg.num_frame, cfg.scale, cfg.size_multiple, bool(getattr(cfg, "with_predeblur", False))


# -- running the model ------------------------------------------------------------------------

def frame_to_tensor(img: np.ndarray) -> torch.Tensor:
    """HxWx3 BGR uint8/uint16 (or HxW gray) frame -> (3, H, W) float32 RGB in [0, 1]."""
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    elif img.shape[2] == 4:
        img = img[..., :3]
    scale = 65535.0 if img.dtype == np.uint16 else 255.0
    rgb = np.ascontiguousarray(bgr_to_rgb(img))
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div_(scale)


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (..., H, W) at the bottom/right by edge replication to multiples of `multiple`."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    shape = x.shape
    flat = x.reshape(-1, shape[-3], h, w)
    flat = F.pad(flat, (0, pw, 0, ph), mode="replicate")
    return flat.reshape(*shape[:-2], h + ph, w + pw)


def _tile_starts(size: int, tile: int) -> list[int]:
    return list(range(0, size, tile))


def restore(model: Callable[[torch.Tensor], torch.Tensor], window: torch.Tensor, *, scale: int, multiple: int,
            tile: int | None = None, tile_overlap: int = 16, autocast=None) -> torch.Tensor:
    """Run the model on one window of frames of any size.

    Args:
        model: an EDVR module or an engine (`vsrdata.evaluation.engines`): (1, t, 3, H, W) float32 ->
            (1, 3, scale*H, scale*W), H and W multiples of `multiple`.
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
    t, c, h, w = window.shape
    x = _pad_to_multiple(window, multiple)[None]  # (1, t, 3, H, W)
    hp, wp = x.shape[-2:]
    ctx = autocast if autocast is not None else torch.autocast(x.device.type, enabled=False)
    with torch.inference_mode(), ctx:
        if not tile or (tile >= hp and tile >= wp):
            out = model(x)[0]
        else:
            tile = -(-int(tile) // multiple) * multiple
            ov = -(-max(int(tile_overlap), 0) // multiple) * multiple
            out = None
            for y0 in _tile_starts(hp, tile):
                y1 = min(y0 + tile, hp)
                ey0, ey1 = max(0, y0 - ov), min(hp, y1 + ov)
                for x0 in _tile_starts(wp, tile):
                    x1 = min(x0 + tile, wp)
                    ex0, ex1 = max(0, x0 - ov), min(wp, x1 + ov)
                    part = model(x[..., ey0:ey1, ex0:ex1])[0]
                    if out is None:
                        out = torch.empty((part.shape[0], hp * scale, wp * scale), dtype=part.dtype,
                                          device=part.device)
                    out[:, y0 * scale:y1 * scale, x0 * scale:x1 * scale] = part[
                        :, (y0 - ey0) * scale:(y1 - ey0) * scale, (x0 - ex0) * scale:(x1 - ex0) * scale]
    return out[:, : h * scale, : w * scale].float()


def _check_padding(padding: str | None, with_predeblur: bool) -> str:
    if padding is None:
        return "replicate" if with_predeblur else "reflection_circle"
    if padding not in TEMPORAL_PADDINGS:
        raise ConfigError(f"unknown temporal padding {padding!r} (choose from {', '.join(TEMPORAL_PADDINGS)})")
    return padding


# -- evaluate ---------------------------------------------------------------------------------

def resolve_protocol(name: str, record: dict) -> str:
    """`name`, or for 'auto' the protocol that fits the split record (see module docstring)."""
    if name != "auto":
        if name not in PROTOCOLS:
            raise ConfigError(f"unknown protocol {name!r} (choose from auto, {', '.join(PROTOCOLS)})")
        return name
    sel = record.get("selection") or {}
    part = str(sel.get("name") or "").lower() if sel.get("kind") == "partition" else ""
    if part == "vid4":
        return "vid4"
    if part in _REDS_NAMES:
        return "reds4"
    if part.startswith("vimeo-t") or record.get("layout") == "vimeo":
        return "vimeo-t"
    return "generic"


def _bicubic(lr_bgr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB-style bicubic upscaling of an LR frame -> HxWx3 uint8 RGB."""
    from vsrdata.core.resize import imresize

    if lr_bgr.ndim == 2:
        lr_bgr = np.repeat(lr_bgr[..., None], 3, axis=2)
    rgb = np.ascontiguousarray(bgr_to_rgb(lr_bgr[..., :3]))
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
    if gt.ndim == 2:
        gt = np.repeat(gt[..., None], 3, axis=2)
    return np.ascontiguousarray(bgr_to_rgb(splits.unpad(gt[..., :3], rec, "gt")))


def _scores(out: np.ndarray, gt: np.ndarray, proto: Protocol) -> tuple[float, float, float, float]:
    """(psnr on protocol channel, ssim on it, psnr RGB, psnr Y)."""
    cb = proto.crop_border
    p_rgb = metrics.calculate_psnr(out, gt, cb, test_y_channel=False)
    p_y = metrics.calculate_psnr(out, gt, cb, test_y_channel=True)
    y = proto.channel == "y"
    ssim = metrics.calculate_ssim(out, gt, cb, test_y_channel=y)
    return (p_y if y else p_rgb), ssim, p_rgb, p_y


@dataclass
class _Setup:
    model: torch.nn.Module | None
    num_frame: int
    scale: int
    multiple: int
    padding: str
    device: torch.device
    autocast: object
    model_name: str
    preset: str


def evaluate(split_dir: str | os.PathLike | None, checkpoint: str | os.PathLike | None = None, *,
             bicubic: bool = False, model: torch.nn.Module | None = None, preset: str | None = None,
             protocol: str = "auto", channel: str | None = None, crop_border: int | None = None,
             frames: str | None = None, padding: str | None = None, average: str = "clip",
             device: str | None = None, precision: str = "fp32", out_dir: str | os.PathLike | None = None,
             save_frames: bool = False, strips: bool = True, strip_crop: int = 192,
             with_bicubic: bool = False, dcn_backend: str | None = None, scene_cuts: str = "off",
             scene_threshold: float = 27.0, scene_min_len: int = 15,
             progress: Progress | None = None, engine: str | None = None, gt: str | os.PathLike | None = None,
             lq: str | os.PathLike | None = None, meta_info: str | os.PathLike | None = None) -> EvalReport:
    """Score a model (a `checkpoint`, or an already built `model`) or the bicubic baseline
    (`bicubic=True`) on the split-test output `split_dir`; see the module docstring.
    `engine`: 'torch', 'onnxruntime' (`checkpoint` is a `vsrdata export` file) or None (by the
    checkpoint's suffix); see `vsrdata.evaluation.engines`.

    `channel` ('y'/'rgb'), `crop_border` and `frames` ('all'/'center') override the protocol's.
    Writes report.json / report.csv / report.txt, comparison strips (compare/<clip>.png) and,
    with `save_frames`, the restored frames (frames/<clip>/<name>.png) into `out_dir`
    (default results/<split name>/<checkpoint stem or 'bicubic'>). Returns the EvalReport.

    Instead of `split_dir`, `gt` and `lq` (and optionally `meta_info`) name a BasicSR-style test
    set read in place (`vsrdata.evaluation.basicsr_testset`: REDS4 train_sharp + train_sharp_bicubic/X4
    + meta_info_REDS4_test_GT.txt, Vid4 GT/ + BIx4/); the scores equal those of split-test's
    output of the same clips. The report's protocol records which checkpoint entry was loaded
    (`weights_key`: params, params_ema, ...).

    `scene_cuts` ('off' by default, the papers' protocol): 'auto' detects shot boundaries in each
    clip's LR frames (`vsrdata.core.scenes`), or a JSON FILE maps clip names to cut lists; windows
    then stay inside their shot (`windows.shot_temporal_indices`) and the cuts used are
    recorded in `out_dir`/scenes.json.

    Raises InputError (not a split-test output, unreadable frames), CheckpointError (missing or
    mismatching weights), ConfigError (bad options, model scale that does not fit the split).

    Example::

        from vsrdata import evaluate
        report = evaluate("datasets/REDS4", "EDVR_M_x4_SR_REDS_official-32075921.pth")  # RGB PSNR/SSIM
    """
    if (gt is None) != (lq is None) or (gt is not None and split_dir is not None):
        raise ConfigError("give either a split-test DATASET or both --gt and --lq")
    if gt is not None:
        from vsrdata.evaluation.basicsr_testset import testset_record

        record = testset_record(gt, lq, meta_info)
        split_dir = Path(gt)
    elif split_dir is None:
        raise ConfigError("give a split-test DATASET or --gt and --lq")
    else:
        split_dir = Path(split_dir)
        record = splits.load_split(split_dir)
    proto_name = resolve_protocol(protocol, record)
    base = PROTOCOLS[proto_name]
    proto = Protocol(
        channel=(channel or base.channel).lower(),
        crop_border=base.crop_border if crop_border is None else int(crop_border),
        frames=frames or base.frames,
    )
    if proto.channel not in ("y", "rgb"):
        raise ConfigError(f"channel must be 'y' or 'rgb', got {channel!r}")
    if proto.frames not in ("all", "center"):
        raise ConfigError(f"frames must be 'all' or 'center', got {frames!r}")
    if average not in metrics.AVERAGE_MODES:
        raise ConfigError(f"unknown average {average!r} (choose from {', '.join(metrics.AVERAGE_MODES)})")
    setup = _setup(record, checkpoint, bicubic, model, preset, padding, device, precision, dcn_backend,
                   engine)

    tag = "bicubic" if setup.model is None else (Path(checkpoint).stem if checkpoint else "model")
    out = Path(out_dir) if out_dir is not None else Path("results") / split_dir.resolve().name / tag
    gt_dir, lr_dir = split_dir / record["gt_dir"], split_dir / record["lr_dir"]
    clips = record["clips"]
    if not clips:
        raise InputError(f"{split_dir / splits.SPLIT_FILE} lists no clips")

    plan = []
    for name, rec in clips.items():
        names = sorted(rec.get("frames") or {}, key=natural_key)
        if not names:
            raise InputError(f"clip {name!r} of {split_dir / splits.SPLIT_FILE} has no frames")
        centers = [len(names) // 2] if proto.frames == "center" else list(range(len(names)))
        plan.append((name, rec, names, centers))
    total = sum(len(p[3]) for p in plan)
    clip_cuts = _clip_cuts(scene_cuts, plan, lr_dir, scene_threshold, scene_min_len, setup.model is None)
    if progress:
        progress(0, total)

    report_clips, strip_paths = [], []
    half = setup.num_frame // 2

    def score(name, rec, names, t, out_rgb, bic_rgb, strip_here) -> FrameScore:
        gt = _gt_rgb(gt_dir / name / names[t], rec)
        if out_rgb.shape != gt.shape:
            raise InputError(f"clip {name!r} frame {names[t]}: restored {out_rgb.shape[0]}x{out_rgb.shape[1]} "
                             f"but GT is {gt.shape[0]}x{gt.shape[1]}")
        try:
            psnr, ssim, p_rgb, p_y = _scores(out_rgb, gt, proto)
            bic_psnr = None
            if with_bicubic and setup.model is not None and bic_rgb is not None:
                bic_psnr = metrics.calculate_psnr(bic_rgb, gt, proto.crop_border, proto.channel == "y")
        except ValueError as exc:  # e.g. a frame smaller than the SSIM window, crop_border too large
            raise InputError(f"clip {name!r} frame {names[t]}: {exc}") from None
        if save_frames:
            write_image(out / "frames" / name / names[t], np.ascontiguousarray(out_rgb[..., ::-1]))
        if strip_here:
            panels = [("bicubic", bic_rgb)] if setup.model is not None and bic_rgb is not None else []
            panels += [(setup.model_name if setup.model is not None else "bicubic", out_rgb), ("GT", gt)]
            strip_paths.append(write_strip(out / "compare" / f"{name}.png", panels, strip_crop))
        border = t < half or t >= len(names) - half
        return FrameScore(names[t], t, border, psnr, ssim, p_rgb, p_y, bic_psnr)

    # Scoring (GT decode, PSNR/SSIM: cv2/numpy, which release the GIL) runs in one worker thread
    # while the model restores the next frame; at most 2 frames wait, so memory stays bounded.
    with ThreadPoolExecutor(max_workers=1) as pool:
        for name, rec, names, centers in plan:
            clip = ClipScores(name)
            strip_at = centers[len(centers) // 2]
            lr_paths = [lr_dir / name / n for n in names]
            pending: deque = deque()
            for t, out_rgb, bic_rgb in _restore_clip(setup, rec, lr_paths, centers, strip_at, clip_cuts.get(name, ()),
                                                     with_bicubic or setup.model is None):
                pending.append(pool.submit(score, name, rec, names, t, out_rgb, bic_rgb, strips and t == strip_at))
                while len(pending) > 2 or (pending and pending[0].done()):
                    clip.frames.append(pending.popleft().result())
                    if progress:
                        progress(1, total)
            while pending:
                clip.frames.append(pending.popleft().result())
                if progress:
                    progress(1, total)
            report_clips.append(clip)

    weights_key = None
    if checkpoint is not None and setup.model is not None and Path(checkpoint).suffix != ".onnx":
        from vsrdata.edvr.checkpoint import read_checkpoint

        weights_key = read_checkpoint(checkpoint).param_key
    report = EvalReport(protocol={
        "split": str(split_dir) if gt is None else None,
        "gt": str(gt) if gt is not None else None, "lq": str(record["lr_dir"]) if gt is not None else None,
        "meta_info": str(meta_info) if meta_info else None, "weights_key": weights_key, "protocol": proto_name, "model": setup.model_name, "preset": setup.preset,
        "checkpoint": str(checkpoint) if checkpoint else None, "channel": proto.channel,
        "crop_border": proto.crop_border, "frames": proto.frames, "padding": setup.padding,
        "num_frame": setup.num_frame, "scale": setup.scale, "average": average,
        "device": str(setup.device), "precision": precision,
        "engine": None if setup.model is None else type(setup.model).__name__, "degradation": record.get("degradation"),
        "selection": record.get("selection"), "scene_cuts": "file" if scene_cuts not in ("off", "auto")
        else scene_cuts, "model_config": (setup.model.config.to_dict() if setup.model is not None
                         and hasattr(setup.model.config, "to_dict") else None),
    }, clips=report_clips)
    if strip_paths:
        report.paths["strips"] = str(out / "compare")
    if save_frames:
        report.paths["frames"] = str(out / "frames")
    report.write(out)
    if scene_cuts != "off":
        _write_clip_cuts(out, clip_cuts, scene_cuts, scene_threshold, scene_min_len)
    return report


def _setup(record, checkpoint, bicubic, model, preset, padding, device, precision, dcn_backend,
           engine=None) -> _Setup:
    sources = sum(x is not None and x is not False for x in (checkpoint, model)) + bool(bicubic)
    if sources != 1:
        raise ConfigError("give exactly one of a checkpoint, a model or --bicubic")
    if bicubic:
        dev = _device(device)
        ac = _autocast(dev, precision)
        from vsrdata.edvr.config import get_preset

        cfg = get_preset(preset or "edvr-m")
        scale = int(record.get("scale", 4))
        _check_padding(padding, cfg.with_predeblur)
        # No temporal window for bicubic; num_frame only decides which frames count as border,
        # so its Center/Border columns line up with the model's.
        return _Setup(None, cfg.num_frame, scale, 1, "n/a", dev, ac, "bicubic", preset or "-")
    model = load_engine(checkpoint, model, engine=engine, preset=preset, device=device, precision=precision,
                        dcn_backend=dcn_backend)
    dev, ac = model.device, None  # the engine applies its own precision
    num_frame, scale, multiple, predeblur = _model_meta(model)
    if scale != int(record.get("scale", 4)):
        raise ConfigError(f"the model upscales x{scale} but the split was made for x{record.get('scale')} "
                          f"(wrong --preset?)")
    name = Path(checkpoint).name if checkpoint else model.name
    if preset is None:
        try:
            from vsrdata.edvr.checkpoint import preset_name

            preset = preset_name(model.config) or "custom"
        except Exception:  # a stand-in model without a real EDVRConfig
            preset = "custom"
    return _Setup(model, num_frame, scale, multiple, _check_padding(padding, predeblur), dev, ac, name, preset)


def _clip_cuts(mode: str, plan, lr_dir: Path, threshold: float, min_len: int, bicubic: bool) -> dict:
    """{clip: cuts} for --scene-cuts: {} (off), detected on the LR frames (auto), or a JSON file."""
    if mode == "off" or bicubic:  # bicubic has no temporal window
        return {}
    from vsrdata.core import scenes

    if mode == "auto":
        return {name: scenes.detect_cuts((read_image(lr_dir / name / n) for n in names), threshold, min_len)
                for name, _, names, _ in plan}
    import json

    try:
        given = json.loads(Path(mode).read_text(encoding="utf-8"))
        if not isinstance(given, dict):
            raise ValueError("expected an object {clip: [cut, ...]}")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--scene-cuts must be off, auto or a JSON file {{clip: [cuts]}}: {mode} ({exc})") from None
    known = {p[0]: len(p[2]) for p in plan}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise InputError(f"{mode}: clip {unknown[0]!r} is not in the dataset")
    return {k: scenes.check_cuts(v, known[k], source=f"{mode} [{k}]") for k, v in given.items()}


def _write_clip_cuts(out: Path, clip_cuts: dict, mode: str, threshold: float, min_len: int) -> None:
    import json

    record = {"mode": mode if mode in ("auto", "off") else "file", "clips": clip_cuts}
    if mode == "auto":
        record["detector"] = {"name": "scenedetect.ContentDetector", "threshold": threshold,
                              "min_scene_len": min_len}
    elif mode != "off":
        record["source"] = mode
    tmp = out / f".scenes.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out / "scenes.json")


def _restore_clip(s: _Setup, rec: dict, lr_paths: list[Path], centers: list[int], strip_at: int, cuts,
                  want_bicubic: bool) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """Yield (frame index, restored HxWx3 uint8 RGB cut to the scored region, bicubic or None)."""
    if s.model is None:  # bicubic baseline: no window needed
        for t in centers:
            lr = splits.unpad(read_image(lr_paths[t]), rec, "lr")
            up = _bicubic(lr, s.scale)
            yield t, up, up
        return

    def frames():
        for p in lr_paths:
            yield frame_to_tensor(read_image(p)).to(s.device)

    for t, window in SlidingWindow(frames(), s.num_frame, s.padding, length=len(lr_paths), centers=centers,
                                   cuts=cuts):
        out = restore(s.model, torch.stack(window), scale=s.scale, multiple=s.multiple, autocast=s.autocast)
        out_rgb = np.ascontiguousarray(splits.unpad(metrics.tensor_to_uint8(out), rec, "gt"))
        bic = None
        if want_bicubic or t == strip_at:
            bic = _bicubic(splits.unpad(read_image(lr_paths[t]), rec, "lr"), s.scale)
        yield t, out_rgb, bic
