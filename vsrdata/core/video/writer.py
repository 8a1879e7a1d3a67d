"""Writing video files: a streaming encoder that keeps the source's audio.

See `vsrdata.core.video` for the encoding defaults, the audio copy and the timing of
variable-rate sources. The writer encodes into a hidden temporary file next to the destination
and renames it only when `close()` succeeds; `abort()` (or an exception inside ``with``) removes
it, so a reader never sees a half-written video.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from vsrdata.core.video.reader import first_line
from vsrdata.core.video.streams import Passthrough, StreamPlan, plan_streams
from vsrdata.errors import ConfigError, InputError, OutputError

__all__ = ["OUTPUT_EXTENSIONS", "CODECS", "PIX_FMTS", "DEFAULT_CRF", "VideoWriter"]

OUTPUT_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v")
CODECS = ("libx264", "libx265", "libvpx-vp9", "ffv1")
# chroma layouts and bit depths offered for output (8-bit 4:2:0 plays everywhere); the 10-bit ones
# take uint16 frames (libx264, libx265 and ffv1 encode them; VP9 here does not)
PIX_FMTS = ("yuv420p", "yuv444p", "yuv420p10le", "yuv444p10le")
DEFAULT_CRF = {"libx264": 17, "libx265": 18, "libvpx-vp9": 20}  # ffv1 is lossless: no CRF


class VideoWriter:
    """Encode BGR frames into a video file, streaming (one frame held at a time).

    Args:
        path: output file; the container follows the extension (OUTPUT_EXTENSIONS).
        fps: frame rate as a Fraction (or int / str "24000/1001"); float values are turned into
            a Fraction with denominator <= 1001.
        codec: one of CODECS (default libvpx-vp9 for .webm, else libx264).
        crf: constant-rate factor of the codec (default DEFAULT_CRF[codec]); not for ffv1.
        pix_fmt: encoder pixel format (default yuv420p; ffv1: yuv444p); a 10-bit one (PIX_FMTS)
            takes uint16 frames, which 8-bit ones also accept (rounded to 8 bits).
        audio_from: a source video whose audio and subtitle streams are carried over as `streams`
            plans (default: `plan_streams(audio_from, ext)`, decided here, before any frame).
        streams: the `StreamPlan` for `audio_from` when the caller made it already.
        sample_aspect: pixel aspect ratio (SAR) written in the stream (None: square pixels).
        audio_shift: seconds subtracted from the source audio timestamps (the source's first
            video timestamp, so both streams start together).
        time_base: write frames at the times given to `write` in this time base (variable-rate
            sources) instead of at index / fps.

    Use as a context manager: leaving it normally calls `close()` (rename into place), an
    exception calls `abort()` (temporary file removed). Raises ConfigError for bad options and
    OutputError when the output cannot be written.
    """

    def __init__(self, path: str | os.PathLike, fps, *, codec: str | None = None, crf: int | None = None,
                 pix_fmt: str | None = None, audio_from: str | os.PathLike | None = None,
                 audio_shift: float = 0.0, time_base: Fraction | None = None, streams: StreamPlan | None = None,
                 sample_aspect: Fraction | None = None):
        from vsrdata.core.video.pyav import load_av

        av = load_av()

        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in OUTPUT_EXTENSIONS:
            raise ConfigError(f"video output must end in one of {', '.join(OUTPUT_EXTENSIONS)}: {self.path}")
        self.codec = codec or ("libvpx-vp9" if ext == ".webm" else "libx264")
        if self.codec not in CODECS:
            raise ConfigError(f"unknown codec {self.codec!r} (choose from {', '.join(CODECS)})")
        if self.codec == "ffv1" and crf is not None:
            raise ConfigError("ffv1 is lossless and takes no CRF")
        self.crf = None if self.codec == "ffv1" else int(DEFAULT_CRF[self.codec] if crf is None else crf)
        self.pix_fmt = pix_fmt or ("yuv444p" if self.codec == "ffv1" else "yuv420p")
        if self.pix_fmt not in {f.name for f in av.codec.Codec(self.codec, "w").video_formats}:
            raise ConfigError(f"codec {self.codec} cannot encode pix_fmt {self.pix_fmt}")
        self.sample_aspect = Fraction(sample_aspect) if sample_aspect else None
        self._plan = streams if streams is not None or audio_from is None else plan_streams(audio_from, ext)
        self.fps = _fraction(fps)
        self._time_base = time_base
        self._audio_from, self._audio_shift = audio_from, float(audio_shift)
        self._tmp = self.path.with_name(f".{self.path.stem}.{os.getpid()}.tmp{ext}")
        self._out = self._stream = self._audio = None
        self.frames = 0
        self.audio: list[str] = self._plan.notes if self._plan else []  # per carried stream: copied / re-encoded
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._out = av.open(str(self._tmp), mode="w")
            if self.codec not in self._out.supported_codecs:
                raise ConfigError(f"codec {self.codec} cannot be stored in a {ext} file")
        except BaseException as exc:
            self.abort()
            if isinstance(exc, (ConfigError, InputError)):
                raise
            raise OutputError(f"cannot write video {self.path}: {first_line(exc)}") from None

    def _open_stream(self, h: int, w: int) -> None:
        if self.pix_fmt in ("yuv420p", "yuv422p") and (h % 2 or w % 2):
            raise ConfigError(f"{self.pix_fmt} needs even frame sides, got {w}x{h} (use pix_fmt yuv444p)")
        s = self._out.add_stream(self.codec, rate=self.fps)
        s.width, s.height, s.pix_fmt = w, h, self.pix_fmt
        if self.sample_aspect is not None:
            s.codec_context.sample_aspect_ratio = self.sample_aspect
        if self._time_base is not None:
            s.codec_context.time_base = self._time_base
            s.time_base = self._time_base
        opts = {}
        if self.crf is not None:
            opts["crf"] = str(self.crf)
        if self.codec == "libvpx-vp9":
            opts["b"] = "0"  # constant quality mode
        s.options = opts
        self._stream = s
        if self._plan is not None and self._plan.modes:  # after the video, so the video is stream 0
            self._audio = Passthrough(Path(self._audio_from), self._out, self._plan, self._audio_shift)

    def write(self, image: np.ndarray, time: float | None = None) -> None:
        """Encode one HxWx3 uint8 or uint16 BGR frame; `time` (seconds) is used with `time_base` only."""
        from vsrdata.core.video.pyav import load_av

        av = load_av()

        if image.dtype not in (np.uint8, np.uint16) or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 uint8/uint16 BGR frame, got {image.dtype} {image.shape}")
        if self._stream is None:
            try:
                self._open_stream(*image.shape[:2])
            except BaseException:
                self.abort()
                raise
        fmt = "bgr48le" if image.dtype == np.uint16 else "bgr24"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt)
        if self._time_base is not None and time is not None:
            frame.pts = round(Fraction(time).limit_denominator(10**9) / self._time_base)
            t = float(time)
        else:
            frame.pts = self.frames
            t = float(self.frames / self.fps)
        self._out.mux(self._stream.encode(frame))
        self.frames += 1
        if self._audio is not None:
            self._audio.feed_until(self._out, t + 1.0)

    def close(self) -> Path:
        """Flush the encoder and the rest of the audio, then rename into place."""
        if self._out is None:
            return self.path
        try:
            if self._stream is None:
                raise ConfigError(f"no frames to write to {self.path}")
            self._out.mux(self._stream.encode(None))
            if self._audio is not None:
                self._audio.finish(self._out)
                self._audio.close()
                self._audio = None
            self._out.close()
            self._out = None
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Stop and remove the temporary file (nothing is left at `path`)."""
        for obj in (self._audio, self._out):
            if obj is not None:
                try:
                    obj.close()
                except Exception:
                    pass
        self._audio = self._out = None
        if self._tmp.exists():
            self._tmp.unlink()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _fraction(fps) -> Fraction:
    try:
        value = Fraction(fps) if not isinstance(fps, float) else Fraction(fps).limit_denominator(1001)
    except (TypeError, ValueError, ZeroDivisionError):
        raise ConfigError(f"frame rate must be a positive number or fraction, got {fps!r}") from None
    if value <= 0:
        raise ConfigError(f"frame rate must be positive, got {fps!r}")
    return value
