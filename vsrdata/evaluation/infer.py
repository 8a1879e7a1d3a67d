"""`infer`: super-resolve any folder of frames or video file with EDVR (no ground truth).

Streaming: frames are decoded (or read) one at a time, restored from their window of num_frame
frames and encoded (or written) at once; at most ~2 * num_frame input frames are held
(`windows.SlidingWindow`), whatever the video's length.

Video output (`vsrdata.core.video.VideoWriter`): every decoded frame is kept (output count =
decoded input count), the frame rate is the input's exact Fraction (24000/1001 stays so), and
the audio streams are stream-copied (re-encoded only where the output container refuses the
codec; `InferResult.audio` says which). Variable-rate input: every frame is written at its
source timestamp (the container then declares the average rate). A video whose container
declares more frames than decode (a truncated file) gives a warning with both numbers; one that
decodes no frame at all is an InputError.

What the input carries is kept where the output allows it, and what must change is said
(`InferResult.warnings`), all decided before any frame is restored: audio and subtitle streams
(`core.video.plan_streams`: copied, re-encoded, dropped, or refused when audio cannot go in);
language tags; the pixel aspect ratio (SAR, written as is: both sides scale alike; inverted when
a quarter-turn display rotation is applied); the bit depth (a >8-bit input is decoded as 16-bit
and written as yuv420p10le, yuv444p10le for ffv1, or as 16-bit PNG frames, unless `pix_fmt` or
the codec is 8-bit). Rotation: the reader applies the display matrix to the pixels (upright
output, no matrix).

Scene cuts (`scene_cuts`): 'auto' detects shot boundaries with PySceneDetect's ContentDetector
in a first decoding pass (`vsrdata.core.scenes`), a FILE gives them, 'off' uses none. Windows
never cross a cut: each shot is padded in time as a clip of its own. The cuts used are recorded
in OUTPUT/.scenes.json (frame folder output; a dot-file, so listings show only frames) or next
to a video output as <stem>.scenes.json.
A cut FILE is checked against the frame count (a video's is counted by demuxing) by the same rule
for folders and videos (`scenes.check_cuts`). `progress` reports the detection pass (task
'scene cuts'), then the frames written (task 'infer').

OUTPUT: a video when its extension is one of OUTPUT_EXTENSIONS; a folder of PNG frames when it
has no extension or is an existing folder; any other name is a ConfigError (OUTPUT_RULE).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from vsrdata.core import scenes, splits
from vsrdata.core.image_io import is_image_file, read_image, write_image
from vsrdata.core.layouts import Clip, clip_shape, natural_key, no_frames_error
from vsrdata.core.paths import refuse_inside
from vsrdata.core.video import OUTPUT_EXTENSIONS, VideoReader, VideoWriter
from vsrdata.evaluation.infer_output import OUTPUT_RULE, open_writer, plan_output, to_image
from vsrdata.evaluation.engines import load_engine
from vsrdata.evaluation.inference import frame_to_tensor, model_meta, resolve_padding, restore
from vsrdata.evaluation.two_stage import Stage, check_stages, stage_frames, stage_of
from vsrdata.evaluation.windows import SlidingWindow
from vsrdata.errors import ConfigError, InputError
from vsrdata.progress import Progress, Reporter, check_progress

__all__ = ["InferResult", "infer", "scenes_path"]

Progress = Callable[[int, "int | None"], None]  # (frames just done, total or None)
SCENE_MODES = ("auto", "off")


@dataclass
class InferResult:
    """What `infer` did: `output` (a video file or a PNG folder), `frames` in it (`written` now +
    `skipped`, already there), frame sizes (h, w) in and out, the output `fps`, the scene `cuts`
    used and where they are recorded (`scenes`), per audio/subtitle stream what happened to it,
    `warnings`, the ensemble (`tta`) and the stage-2 checkpoint's file name, and the time taken."""

    output: Path
    frames: int = 0  # frames in the output (written + already present)
    written: int = 0
    skipped: int = 0
    in_size: tuple[int, int] | None = None  # (h, w)
    out_size: tuple[int, int] | None = None
    fps: Fraction | None = None
    seconds: float = 0.0
    to_video: bool = False
    cuts: list[int] = field(default_factory=list)
    scenes: Path | None = None  # the scenes.json written
    audio: list[str] = field(default_factory=list)  # per audio/subtitle stream carried over: copied / re-encoded
    warnings: list[str] = field(default_factory=list)
    tta: str = "none"  # the test-time ensemble used
    stage2: str | None = None  # the stage-2 checkpoint's file name (two-stage), or None


def scenes_path(output: Path, to_video: bool) -> Path:
    """Where the cuts used are recorded: OUTPUT/.scenes.json (a dot-file, so that a listing of the
    frames does not show it), or <stem>.scenes.json by a video."""
    return output.with_name(f"{output.stem}.{scenes.SCENES_FILE}") if to_video else output / f".{scenes.SCENES_FILE}"


def _folder_frames(path: Path) -> list[Path]:
    names = sorted((e.name for e in os.scandir(path) if e.is_file() and is_image_file(e.name)
                    and not e.name.startswith(".")), key=natural_key)
    if not names:
        raise no_frames_error(path)
    clip_shape(Clip(name="", root=path, frames=tuple(names)))  # the frame contract, before any work
    return [path / n for n in names]


class _Source:
    """The input as a stream of BGR frames: a folder of images or a video (opened on `frames()`)."""

    def __init__(self, path: Path):
        self.path = path
        self.is_video = not path.is_dir()
        self.reader: VideoReader | None = None
        self.deep = False  # decode a >8-bit video as uint16
        if self.is_video:
            with VideoReader(path) as probe:  # fails early: unreadable, no video stream
                self.info = probe.info
            self.paths, self.length = None, None
            self.names = None
        else:
            self.info = None
            self.paths = _folder_frames(path)
            self.length = len(self.paths)
            self.names = [p.stem + ".png" for p in self.paths]

    def frames(self) -> Iterator[tuple[np.ndarray, float | None]]:
        """(frame as `read_image` / the decoder gives it, time in seconds or None), front to back."""
        if not self.is_video:
            for p in self.paths:
                yield read_image(p), None
            return
        self.reader = VideoReader(self.path, deep=self.deep)
        count = 0
        try:
            for f in self.reader:
                count += 1
                yield f.image, f.time
        finally:
            self.reader.close()
        if not count:  # never "0 frame(s) written" and exit 0 with no output
            raise InputError(f"no frames decoded from {self.path}: nothing to super-resolve")


def _cuts(src: _Source, mode: str, threshold: float, min_len: int,
          progress: Progress) -> tuple[list[int], str, int | None]:
    """(cuts, mode recorded, frame count found by the detection or counting pass, or None)."""
    if mode == "off":
        return [], "off", None
    if mode == "auto":
        det = scenes.CutDetector(threshold, min_len)
        with Reporter(progress, "scene cuts", "frame", src.length or src.info.estimated_frames) as bar:
            bar.to(0)
            for img, _ in src.frames():
                det.add(img)
                bar.add(1)
        return det.finish(), "auto", det.frames
    path = Path(mode)
    if not path.is_file():
        raise ConfigError(f"--scene-cuts must be auto, off or a file of cut indices; no file {path}")
    length = src.length
    if length is None:  # a video: count its frames (demux only) so the file is checked as for folders
        with VideoReader(src.path) as reader:
            length = reader.count_frames()
    return scenes.check_cuts(scenes.read_cut_file(path), length, source=str(path)), "file", length


def _check_args(src: Path, dst: Path, tile, tile_overlap, checkpoint, model) -> bool:
    if not src.exists():
        raise InputError(f"input not found: {src}")
    if tile is not None and tile < 1:
        raise ConfigError(f"--tile must be >= 1, got {tile}")
    if tile_overlap < 0:
        raise ConfigError(f"--tile-overlap must be >= 0, got {tile_overlap}")
    if (checkpoint is None) == (model is None):
        raise ConfigError("give exactly one of a checkpoint or a model")
    to_video = dst.suffix.lower() in OUTPUT_EXTENSIONS
    if not to_video and dst.suffix and not dst.is_dir():
        raise ConfigError(f"output {dst}: {dst.suffix} is not a video extension ({OUTPUT_RULE})")
    if to_video and dst.is_dir():
        raise ConfigError(f"output {dst} is a directory but has a video extension")
    refuse_inside(dst, [src], what="output", choose="an OUTPUT")
    if not to_video and dst.exists() and not dst.is_dir():
        raise ConfigError(f"output {dst} exists and is not a directory (use a video extension for video output)")
    return to_video


def infer(input_path: str | os.PathLike, output: str | os.PathLike, *, checkpoint: str | os.PathLike | None = None,
          model: torch.nn.Module | None = None, preset: str | None = None, device: str | None = None,
          padding: str | None = None, tile: int | None = None, tile_overlap: int = 16,
          precision: str = "fp32", fps=None, codec: str | None = None, crf: int | None = None,
          pix_fmt: str | None = None, scene_cuts: str = "auto", scene_threshold: float = scenes.DEFAULT_THRESHOLD,
          scene_min_len: int = scenes.DEFAULT_MIN_SCENE_LEN, overwrite: bool = False,
          dcn_backend: str | None = None, progress: Progress = False,
          engine: str | None = None, tta: str = "none",
          stage2: str | os.PathLike | None = None) -> InferResult:
    """Super-resolve a folder of frames or a video file into PNG frames or a video file.

    INPUT: a directory of frames (natural order) or a video file (PyAV). OUTPUT: a video file when
    its extension is one of `core.video.OUTPUT_EXTENSIONS` (see the module docstring; `codec`,
    `crf`, `pix_fmt` as `VideoWriter`; fps from the input video, else `fps`, else 25), otherwise a
    directory of PNG frames (named like the input frames, or 00000000.png... for a video input);
    frame outputs are resumable (frames present are skipped unless `overwrite`).

    Any frame size works (edge-padded to the model's multiple, cut back); `tile`/`tile_overlap` as
    `inference.restore`. Temporal padding as `evaluate` (default reflection_circle, replicate for
    predeblur models), applied per shot with `scene_cuts` ('auto', 'off' or a cut file). `engine`
    ('torch', 'onnxruntime', or None: onnxruntime for a .onnx checkpoint) and `tta` (test-time
    ensemble: 'none', 'flip4', 'x8'; `vsrdata.evaluation.ensemble`) as in `evaluate`. `stage2`: a
    stage-2 checkpoint refining stage 1's frames in its own windows (`vsrdata.evaluation.two_stage`;
    `padding` and `tta` apply to stage 1, stage 2 uses its default padding).

    `progress`: `vsrdata.progress` (False: silent; True: bars on stderr; or a callback), for the
    scene detection pass (task 'scene cuts') and the frames (task 'infer').

    Raises InputError (missing/unreadable input, no video stream), ConfigError, CheckpointError,
    OutputError. A truncated video gives a warning in `InferResult.warnings`.

    Example::

        from vsrdata import infer
        result = infer("my_clip.mp4", "my_clip_x4.mp4", checkpoint="EDVR_M_x4_SR_REDS_official-32075921.pth")
    """
    check_progress(progress)
    src_path, dst = Path(input_path), Path(output)
    to_video = _check_args(src_path, dst, tile, tile_overlap, checkpoint, model)
    src = _Source(src_path)
    info = src.info
    result = InferResult(output=dst, to_video=to_video)
    out = plan_output(src, dst, to_video, codec, pix_fmt, result.warnings)  # before any work
    cuts, cut_mode, detected_len = _cuts(src, scene_cuts, scene_threshold, scene_min_len, progress)
    result.cuts = cuts
    model = load_engine(checkpoint, model, engine=engine, preset=preset, device=device, precision=precision,
                        dcn_backend=dcn_backend, tta=tta)
    second = _second_stage(model, checkpoint, stage2, device, precision, dcn_backend)
    result.tta, result.stage2 = tta or "none", second.name if second is not None else None
    result.fps = _output_fps(fps, info, to_video, result.warnings)
    frame_name = (lambda t: src.names[t]) if src.names is not None else splits.frame_name
    total = src.length or detected_len or (info.estimated_frames if info else None)
    todo = None
    if not to_video and src.length is not None and not overwrite and dst.is_dir():
        _check_previous_cuts(dst, cuts)
        todo = [t for t in range(src.length) if not (dst / frame_name(t)).is_file()]
        result.skipped = src.length - len(todo)
    bar = Reporter(progress, "infer", "frame", total)
    bar.to(result.skipped)
    tick = (lambda: bar.add(1)) if bar else (lambda: None)
    start = time.perf_counter()
    try:
        if todo is not None and not todo:
            result.frames = src.length
        else:
            skip = None if to_video or overwrite or todo is not None else (lambda t: (dst / frame_name(t)).is_file())
            sink = _Sink(dst, to_video, frame_name, lambda first: open_writer(dst, result, src, codec, crf, out,
                                                                                 fps, first))
            _stream(model, src, sink, result, _Run(resolve_padding(padding, model_meta(model)[3]), tile,
                                                   tile_overlap, todo, cuts, skip, tick, second))
            result.frames = result.written + result.skipped
        result.scenes = _record(dst, to_video, cuts, result.frames, cut_mode, scene_cuts, scene_threshold,
                                scene_min_len)
    finally:
        bar.close()
        result.seconds = time.perf_counter() - start
    return result


def _second_stage(model, checkpoint, stage2, device, precision, dcn_backend):
    """The Stage of a `stage2` checkpoint checked against stage 1 (`two_stage.check_stages`), or None."""
    if stage2 is None:
        return None
    engine2 = load_engine(stage2, device=device, precision=precision, dcn_backend=dcn_backend)
    check_stages(model, engine2, str(checkpoint or model.name), str(stage2))
    return stage_of(engine2, None, Path(stage2).name)


def _output_fps(fps, info, to_video: bool, warnings: list[str]) -> Fraction | None:
    """The output frame rate: for a video output `fps` (a float is read as a 1001-denominator
    rate), else the input's, else 25; for frames, the input video's rate or None."""
    if not to_video:
        return info.fps if info else None
    rate = Fraction(fps).limit_denominator(1001) if isinstance(fps, float) else (
        Fraction(fps) if fps is not None else (info.fps if info and info.fps else Fraction(25)))
    if fps is not None and info is not None and info.audio and rate != info.fps:
        warnings.append(f"--fps {rate} differs from the input's {info.fps}: the copied audio will not stay in sync")
    return rate


@dataclass
class _Run:
    """How to stream: temporal padding, tiling, the centre frames (None: all), shot cuts, a
    skip test for frames already written (None: none), and the progress tick."""

    padding: str
    tile: int | None
    tile_overlap: int
    centers: list[int] | None
    cuts: list[int]
    skip: Callable[[int], bool] | None
    tick: Callable[[], None]
    stage2: Stage | None = None


class _Sink:
    """Where restored frames go: PNG files in a folder, or a video opened on the first frame."""

    def __init__(self, dst: Path, to_video: bool, frame_name, open_writer) -> None:
        self.dst, self.to_video, self.frame_name, self._open = dst, to_video, frame_name, open_writer
        self.writer: VideoWriter | None = None

    def write(self, t: int, bgr: np.ndarray, t_sec: float | None) -> None:
        if not self.to_video:
            write_image(self.dst / self.frame_name(t), bgr)
            return
        if self.writer is None:
            self.writer = self._open(t_sec)
        self.writer.write(bgr, t_sec)


def _stream(model, src: _Source, sink: _Sink, result: InferResult, run: _Run) -> None:
    """Restore the source frame by frame into `sink`, filling `result` (sizes, counts, warnings,
    audio); a video being written is aborted (removed) on any error."""
    times: dict[int, float | None] = {}

    def frames():
        for i, (img, t) in enumerate(src.frames()):
            if result.in_size is None:
                result.in_size = (int(img.shape[0]), int(img.shape[1]))
            times[i] = t
            yield img

    last, source = stage_of(model, run.padding), frames()
    if run.stage2 is not None:  # stage 1 streams its (8-bit) frames into stage 2's windows
        source = stage_frames(last, source, device=model.device, length=src.length, cuts=run.cuts)
        last = run.stage2
    model, scale, multiple = last.model, last.scale, last.multiple
    tensors = (frame_to_tensor(img, model.device) for img in source)
    try:
        for t, window in SlidingWindow(tensors, last.num_frame, last.padding, length=src.length,
                                       centers=run.centers, cuts=run.cuts):
            t_sec = times.pop(t, None)
            for k in [k for k in times if k < t]:
                del times[k]
            if run.skip is not None and run.skip(t):
                result.skipped += 1  # video input into an existing frame folder: resume too
                run.tick()
                continue
            out = restore(model, torch.stack(window), scale=scale, multiple=multiple, tile=run.tile,
                          tile_overlap=run.tile_overlap)  # the engine applies its own precision
            bgr = np.ascontiguousarray(to_image(out, src.deep)[..., ::-1])
            result.out_size = (int(bgr.shape[0]), int(bgr.shape[1]))
            sink.write(t, bgr, t_sec)
            result.written += 1
            run.tick()
        warning = src.reader.truncation_warning() if src.reader is not None else None
        if warning:
            result.warnings.append(warning)
        if sink.writer is not None:
            sink.writer.close()
            result.audio = sink.writer.audio
            sink.writer = None
    finally:
        if sink.writer is not None:
            sink.writer.abort()


def _record(dst: Path, to_video: bool, cuts, length, cut_mode, scene_cuts, threshold, min_len) -> Path:
    path = scenes_path(dst, to_video)
    return scenes.write_scenes(path.parent, cuts, length, mode=cut_mode,
                               source=scene_cuts if cut_mode == "file" else None,
                               threshold=threshold if cut_mode == "auto" else None,
                               min_scene_len=min_len if cut_mode == "auto" else None,
                               name=path.name)


def _check_previous_cuts(dst: Path, cuts: list[int]) -> None:
    """Resuming into a folder made with other cuts would mix two results: refuse."""
    path = next((p for p in (scenes_path(dst, False), dst / scenes.SCENES_FILE) if p.is_file()), None)
    if path is not None:
        before = scenes.read_scenes(path)["cuts"]
        if before != list(cuts):
            raise ConfigError(f"{dst} was made with scene cuts {before}, now {list(cuts)}; "
                              f"use --overwrite or another output")
