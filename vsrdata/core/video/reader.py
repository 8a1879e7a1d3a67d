"""Reading video files: probe the header, decode frames one at a time (constant memory).

Built on PyAV (`import av`, FFmpeg's libraries), imported when first needed. Frames are HxWx3
uint8 **BGR** arrays (as cv2 and `image_io` use), decoded with PyAV's swscale conversion from the
stream's pixel format. Frame-rate facts (`VideoInfo.fps`, `variable_rate`): see `vsrdata.core.video`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from vsrdata.errors import InputError

__all__ = ["VIDEO_EXTENSIONS", "AudioInfo", "VideoInfo", "Frame", "VideoReader", "probe", "read_frames",
           "is_video_path", "open_input", "first_line"]

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".gif", ".mpg", ".mpeg", ".ts", ".flv")


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


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def open_input(path: Path):
    import av

    if not path.is_file():
        raise InputError(f"video not found: {path}")
    try:
        container = av.open(str(path), mode="r")
    except Exception as exc:  # PyAV raises FFmpegError subclasses, OSError, UnicodeDecodeError...
        raise InputError(f"cannot open video {path}: {first_line(exc)}") from None
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
    container = open_input(path)
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
        self._container = open_input(self.path)
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
                    raise InputError(f"cannot decode video {self.path}: {first_line(exc)}") from None
                self.error = first_line(exc)
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
