"""Video files as numpy frames: probe, decode, and a streaming encoder that keeps the audio.

Built on PyAV (`import av`, FFmpeg's libraries), imported when first needed so that importing
this module stays cheap.

Frames are HxWx3 uint8 **BGR** arrays (as cv2 and `image_io` use), decoded with PyAV's
swscale conversion from the stream's pixel format.

Frame rate:
- `VideoInfo.fps` is the stream's average rate as an exact `Fraction` (24000/1001 stays
  24000/1001, never 23.976).
- `VideoInfo.variable_rate` is True when the container's average rate and its base rate (the
  smallest frame step, FFmpeg's ``r_frame_rate``) differ: a declaration of the file, not a
  measurement of every timestamp.
- For a variable-rate input we keep every decoded frame (none dropped, none duplicated) and
  `VideoWriter(..., time_base=...)` writes each one at its source timestamp, so the output has
  the same timing and stays in sync with the copied audio; its declared rate is the average.
  For constant-rate inputs frame i is written at i / fps.

Audio: `VideoWriter(audio_from=SOURCE)` copies every audio stream of SOURCE packet by packet
(no re-encode), interleaved with the video as frames are written, when the output container
accepts the codec (FFmpeg's own table, `supported_codecs`); otherwise that stream is re-encoded
(AAC; Opus for .webm) and `VideoWriter.audio` says so. Audio timestamps are shifted by the same
amount as the video (the source's first video timestamp becomes 0), which keeps them in sync.

Encoding defaults (`DEFAULT_CRF`): libx264 at CRF 17 with yuv420p. x264's documentation calls
CRF ~17-18 "visually lossless or nearly so"; yuv420p (4:2:0 chroma) is what every player and
browser plays, whereas 4:4:4 H.264 does not play in many (QuickTime, browsers, TVs). Pass
``pix_fmt="yuv444p"`` to keep full chroma resolution, or codec "ffv1" (in .mkv/.avi) for
mathematically lossless output. .webm outputs default to libvpx-vp9 (CRF 20, constant quality).

The writer encodes into a hidden temporary file next to the destination and renames it only
when `close()` succeeds; `abort()` (or an exception inside ``with``) removes it, so a reader
never sees a half-written video.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from vsrdata.errors import ConfigError, InputError, OutputError

__all__ = ["VIDEO_EXTENSIONS", "OUTPUT_EXTENSIONS", "CODECS", "DEFAULT_CRF", "AudioInfo", "VideoInfo",
           "Frame", "VideoReader", "VideoWriter", "probe", "read_frames", "is_video_path"]

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".gif", ".mpg", ".mpeg", ".ts", ".flv")
OUTPUT_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v")
CODECS = ("libx264", "libx265", "libvpx-vp9", "ffv1")
DEFAULT_CRF = {"libx264": 17, "libx265": 18, "libvpx-vp9": 20}  # ffv1 is lossless: no CRF


def is_video_path(path: str | os.PathLike) -> bool:
    """True when the file name ends in one of VIDEO_EXTENSIONS (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class AudioInfo:
    index: int  # stream index in the container
    codec: str
    sample_rate: int
    channels: int


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    codec: str
    fps: Fraction | None  # average frame rate, exact
    variable_rate: bool
    declared_frames: int | None  # frame count stored in the container (None: not stated)
    duration: float | None  # seconds
    time_base: Fraction | None
    audio: tuple[AudioInfo, ...]

    @property
    def estimated_frames(self) -> int | None:
        """The declared count, else duration x fps rounded (an estimate, for progress bars)."""
        if self.declared_frames:
            return self.declared_frames
        if self.duration and self.fps:
            return max(1, round(self.duration * float(self.fps)))
        return None


@dataclass(frozen=True)
class Frame:
    index: int  # 0-based decode order (= presentation order)
    time: float | None  # presentation timestamp in seconds, None when the stream has none
    image: np.ndarray  # HxWx3 uint8 BGR


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _open_input(path: Path):
    import av

    if not path.is_file():
        raise InputError(f"video not found: {path}")
    try:
        container = av.open(str(path), mode="r")
    except Exception as exc:  # PyAV raises FFmpegError subclasses, OSError, UnicodeDecodeError...
        raise InputError(f"cannot open video {path}: {_first_line(exc)}") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"no video stream in {path}")
    return container


def _info(path: Path, container) -> VideoInfo:
    vs = container.streams.video[0]
    avg = vs.average_rate or vs.guessed_rate
    base = vs.base_rate
    fps = Fraction(avg) if avg else None
    variable = bool(fps and base and Fraction(base) != fps)
    duration = None
    if vs.duration is not None and vs.time_base is not None:
        duration = float(vs.duration * vs.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000  # AV_TIME_BASE
    audio = tuple(AudioInfo(s.index, s.codec_context.name, int(s.codec_context.sample_rate or 0),
                            int(s.codec_context.channels or 0)) for s in container.streams.audio)
    return VideoInfo(path=path, width=int(vs.codec_context.width), height=int(vs.codec_context.height),
                     codec=vs.codec_context.name, fps=fps, variable_rate=variable,
                     declared_frames=int(vs.frames) if vs.frames else None, duration=duration,
                     time_base=Fraction(vs.time_base) if vs.time_base else None, audio=audio)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read a video's header: size, codec, fps (Fraction), variable rate, declared frame count,
    duration and audio streams. Raises InputError (missing, unreadable, no video stream)."""
    path = Path(path)
    container = _open_input(path)
    try:
        return _info(path, container)
    finally:
        container.close()


class VideoReader:
    """Decode the first video stream of a file, one frame at a time (constant memory).

    Iterate to get `Frame`s. When decoding stops early (a truncated or damaged file), iteration
    ends and `error` holds FFmpeg's message; `truncation_warning()` compares the number of
    decoded frames with the container's declared count. Use as a context manager or `close()`.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._container = _open_input(self.path)
        self.info = _info(self.path, self._container)
        self.decoded = 0
        self.error: str | None = None

    def __iter__(self) -> Iterator[Frame]:
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = self._container.decode(stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                return
            except Exception as exc:  # damaged data part-way: keep what decoded, report it
                if self.decoded == 0:
                    raise InputError(f"cannot decode video {self.path}: {_first_line(exc)}") from None
                self.error = _first_line(exc)
                return
            image = frame.to_ndarray(format="bgr24")
            yield Frame(self.decoded, frame.time, image)
            self.decoded += 1

    def truncation_warning(self) -> str | None:
        """A one-line message when fewer frames decoded than the container declares, else None."""
        declared = self.info.declared_frames
        if declared and self.decoded < declared:
            why = f" ({self.error})" if self.error else ""
            return (f"{self.path}: decoded {self.decoded} of the {declared} frames the container declares; "
                    f"the file is probably truncated{why}")
        if self.error:
            return f"{self.path}: decoding stopped after {self.decoded} frames: {self.error}"
        return None

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_frames(path: str | os.PathLike) -> Iterator[Frame]:
    """Yield the decoded frames of `path` (see VideoReader); the file is closed at the end."""
    with VideoReader(path) as reader:
        yield from reader


class _AudioCopy:
    """Copies (or re-encodes) the audio streams of a source file into an output container."""

    def __init__(self, src: Path, out, ext: str, shift: float):
        self._in = _open_input(src)
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
            self.error = _first_line(exc)
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
            self.error = _first_line(exc)
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
            raise OutputError(f"cannot write video {self.path}: {_first_line(exc)}") from None

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
