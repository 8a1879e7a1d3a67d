"""Reading video files: probe the header, decode frames one at a time (constant memory).

Built on PyAV (`import av`, FFmpeg's libraries), imported when first needed. Frames are HxWx3
uint8 **BGR** arrays (as cv2 and `image_io` use), decoded with PyAV's swscale conversion from the
stream's pixel format. Frame-rate facts (`VideoInfo.fps`, `variable_rate`): see `vsrdata.core.video`.

Orientation: a stream with a display matrix (a phone's "rotate 90" flag, flips) is decoded as it is
displayed, as the ffmpeg command line does by default (autorotate): the matrix is applied to the
pixels (quarter turns and mirrors, exact), so every consumer (infer, extract, scene detection) sees
upright frames and outputs carry no matrix. `VideoReader.orientation` says what was applied.
See docs/CONVENTIONS.md#video-orientation. `VideoInfo.width`/`height` are the stream's stored
(coded) sizes; the frames' sides are swapped after a quarter turn.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from vsrdata.errors import InputError

__all__ = ["VIDEO_EXTENSIONS", "AudioInfo", "SubtitleInfo", "VideoInfo", "Frame", "VideoReader", "probe", "read_frames",
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
    language: str | None = None  # the stream's language tag (ISO 639), None when untagged


@dataclass(frozen=True)
class SubtitleInfo:
    index: int
    codec: str
    language: str | None = None


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
    sample_aspect: Fraction | None = None  # pixel aspect (SAR) of the stored frames; None: square/unknown
    bit_depth: int = 8  # bits per luma sample of the stream's pixel format
    subtitles: tuple[SubtitleInfo, ...] = ()

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
    image: np.ndarray  # HxWx3 BGR, uint8 (uint16 from a deep reader of a >8-bit stream)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def open_input(path: Path):
    from vsrdata.core.video.pyav import load_av

    av = load_av()

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
                            int(s.codec_context.channels or 0), _language(s)) for s in container.streams.audio)
    subs = tuple(SubtitleInfo(s.index, s.codec_context.name if s.codec_context else "?", _language(s))
                 for s in container.streams.subtitles)
    sar = vs.sample_aspect_ratio or vs.codec_context.sample_aspect_ratio
    fmt = vs.codec_context.format
    depth = max((c.bits for c in fmt.components), default=8) if fmt is not None else 8
    return VideoInfo(path=path, width=int(vs.codec_context.width), height=int(vs.codec_context.height),
                     codec=vs.codec_context.name, fps=fps, variable_rate=variable,
                     declared_frames=int(vs.frames) if vs.frames else None, duration=duration,
                     time_base=Fraction(vs.time_base) if vs.time_base else None, audio=audio,
                     sample_aspect=Fraction(sar) if sar and Fraction(sar) != 1 else None, bit_depth=int(depth),
                     subtitles=subs)


def _language(stream) -> str | None:
    lang = stream.metadata.get("language")
    return None if lang in (None, "", "und") else lang


# Display matrices (FFmpeg's row-vector convention, entries' signs of a, b, c, d) of the eight
# quarter-turn/mirror orientations: (counter-clockwise quarter turns k of np.rot90, then mirror).
_ORIENTATIONS = {(1, 0, 0, 1): (0, False), (0, -1, 1, 0): (1, False), (-1, 0, 0, -1): (2, False),
                 (0, 1, -1, 0): (3, False), (-1, 0, 0, 1): (0, True), (0, -1, -1, 0): (1, True),
                 (1, 0, 0, -1): (2, True), (0, 1, 1, 0): (3, True)}


def _orientation(frame, path: Path) -> tuple[int, bool]:
    """(quarter turns, mirror) that the frame's display matrix asks for; (0, False) without one."""
    try:
        data = bytes(frame.side_data["DISPLAYMATRIX"])
    except (KeyError, ValueError):
        return 0, False
    m = np.frombuffer(data[:36], dtype="<i4")
    key = tuple(int(np.sign(v)) for v in m[[0, 1, 3, 4]])
    if key not in _ORIENTATIONS:
        raise InputError(f"{path}: display rotation {frame.rotation} degrees is not a multiple of 90; "
                         f"re-encode it upright first")
    return _ORIENTATIONS[key]


def _orient(image: np.ndarray, turns: int, mirror: bool) -> np.ndarray:
    if turns:
        image = np.rot90(image, turns)
    if mirror:
        image = image[:, ::-1]
    return np.ascontiguousarray(image) if turns or mirror else image


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
    decoded frames with the container's declared count. A file that decodes no frame at all
    raises InputError. Use as a context manager or `close()`.

    `deep=True` decodes a stream of more than 8 bits per sample as uint16 BGR (bgr48, the
    samples scaled to 16 bits by swscale) so its precision is kept; 8-bit streams stay uint8.
    After the first frame, `orientation` is (counter-clockwise quarter turns, mirrored) applied
    from the display matrix (see the module docstring).
    """

    def __init__(self, path: str | os.PathLike, deep: bool = False):
        self.path = Path(path)
        self._container = open_input(self.path)
        self.info = _info(self.path, self._container)
        self.decoded = 0
        self.error: str | None = None
        self.orientation: tuple[int, bool] = (0, False)
        self._format = "bgr48le" if deep and self.info.bit_depth > 8 else "bgr24"

    def __iter__(self) -> Iterator[Frame]:
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = self._container.decode(stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                if self.decoded == 0:
                    raise InputError(f"no decodable video frame in {self.path} (empty or truncated stream)")
                return
            except Exception as exc:  # damaged data part-way: keep what decoded, report it
                if self.decoded == 0:
                    raise InputError(f"cannot decode video {self.path}: {first_line(exc)}") from None
                self.error = first_line(exc)
                return
            if self.decoded == 0:
                self.orientation = _orientation(frame, self.path)
            image = _orient(frame.to_ndarray(format=self._format), *self.orientation)
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

    def count_frames(self) -> int:
        """The number of video packets (one per frame for every codec FFmpeg muxes here) found by
        demuxing without decoding: a frame count in I/O time. Use before iterating."""
        return sum(1 for p in self._container.demux(self._container.streams.video[0]) if p.size)

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
