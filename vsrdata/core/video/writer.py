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

from vsrdata.core.video.reader import first_line, open_input
from vsrdata.errors import ConfigError, InputError, OutputError

__all__ = ["OUTPUT_EXTENSIONS", "CODECS", "PIX_FMTS", "DEFAULT_CRF", "VideoWriter"]

OUTPUT_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v")
CODECS = ("libx264", "libx265", "libvpx-vp9", "ffv1")
PIX_FMTS = ("yuv420p", "yuv444p")  # chroma layouts offered for output (4:2:0 plays everywhere)
DEFAULT_CRF = {"libx264": 17, "libx265": 18, "libvpx-vp9": 20}  # ffv1 is lossless: no CRF


class _AudioCopy:
    """Copies (or re-encodes) the audio streams of a source file into an output container."""

    def __init__(self, src: Path, out, ext: str, shift: float):
        self._in = open_input(src)
        self._map: dict[int, tuple] = {}
        self.modes: list[str] = []
        for s in self._in.streams.audio:
            name = s.codec_context.name
            if name in out.supported_codecs:
                self._map[s.index] = ("copy", out.add_stream_from_template(s), None)
                self.modes.append(f"{name} copied")
            else:
                target = "libopus" if ext == ".webm" else "aac"
                enc = out.add_stream(target, rate=48000 if target == "libopus" else s.codec_context.sample_rate)
                enc.layout = s.codec_context.layout.name if s.codec_context.layout else "stereo"
                self._map[s.index] = ("encode", enc, s.codec_context)
                self.modes.append(f"{name} re-encoded to {target.replace('lib', '')} (not allowed in {ext})")
        self._shift = shift
        self._packets = self._in.demux(*self._in.streams.audio) if self._map else iter(())
        self._pending = None
        self.error: str | None = None

    def _next(self):
        try:
            return next(self._packets)
        except StopIteration:
            return None
        except Exception as exc:  # truncated source: keep the audio that was read
            self.error = first_line(exc)
            return None

    def feed_until(self, out, seconds: float | None) -> None:
        """Mux source audio packets whose time (after the shift) is <= `seconds` (None: all)."""
        while True:
            pkt = self._pending or self._next()
            self._pending = None
            if pkt is None:
                return
            if pkt.dts is None and pkt.size == 0:
                continue  # demuxer's flush packet
            t = float(pkt.pts * pkt.time_base) - self._shift if pkt.pts is not None else None
            if seconds is not None and t is not None and t > seconds:
                self._pending = pkt
                return
            self._mux(out, pkt)

    def _mux(self, out, pkt) -> None:
        mode, ostream, ctx = self._map[pkt.stream.index]
        offset = round(self._shift / pkt.time_base)
        if mode == "copy":
            if pkt.pts is not None:
                pkt.pts -= offset
            if pkt.dts is not None:
                pkt.dts -= offset
            pkt.stream = ostream
            out.mux(pkt)
            return
        try:
            frames = ctx.decode(pkt)
        except Exception as exc:
            self.error = first_line(exc)
            return
        for frame in frames:
            frame.pts = None  # let the encoder number the samples
            out.mux(ostream.encode(frame))

    def finish(self, out) -> None:
        self.feed_until(out, None)
        for mode, ostream, _ in self._map.values():
            if mode == "encode":
                out.mux(ostream.encode(None))

    def close(self) -> None:
        self._in.close()


class VideoWriter:
    """Encode BGR frames into a video file, streaming (one frame held at a time).

    Args:
        path: output file; the container follows the extension (OUTPUT_EXTENSIONS).
        fps: frame rate as a Fraction (or int / str "24000/1001"); float values are turned into
            a Fraction with denominator <= 1001.
        codec: one of CODECS (default libvpx-vp9 for .webm, else libx264).
        crf: constant-rate factor of the codec (default DEFAULT_CRF[codec]); not for ffv1.
        pix_fmt: encoder pixel format (default yuv420p; ffv1: yuv444p).
        audio_from: a source video whose audio streams are copied (see the module docstring).
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
                 audio_shift: float = 0.0, time_base: Fraction | None = None):
        import av

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
        self.fps = _fraction(fps)
        self._time_base = time_base
        self._audio_from, self._audio_shift = audio_from, float(audio_shift)
        self._tmp = self.path.with_name(f".{self.path.stem}.{os.getpid()}.tmp{ext}")
        self._out = self._stream = self._audio = None
        self.frames = 0
        self.audio: list[str] = []  # one line per audio stream: copied / re-encoded
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
        if self._audio_from is not None:  # after the video, so the video is stream 0
            self._audio = _AudioCopy(Path(self._audio_from), self._out, self.path.suffix.lower(),
                                     self._audio_shift)
            self.audio = self._audio.modes

    def write(self, image: np.ndarray, time: float | None = None) -> None:
        """Encode one HxWx3 uint8 BGR frame; `time` (seconds) is used with `time_base` only."""
        import av

        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 uint8 BGR frame, got {image.dtype} {image.shape}")
        if self._stream is None:
            try:
                self._open_stream(*image.shape[:2])
            except BaseException:
                self.abort()
                raise
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
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
