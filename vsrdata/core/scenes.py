"""Shot boundaries (scene cuts) of a frame sequence, and the `scenes.json` record.

A *cut* is the index of the first frame of a new shot: cuts [7] on a 14-frame sequence mean
shots [0, 7) and [7, 14). Frame 0 is never a cut.

Detection uses PySceneDetect's ContentDetector (`scenedetect.detectors.ContentDetector`, fed
frame by frame through `process_frame`), so frame folders and decoded videos go through the same
code: the mean change of hue, saturation and luma between consecutive BGR frames (0-255 scale)
is compared with `threshold` (default 27, PySceneDetect's), and cuts closer than
`min_scene_len` frames to the previous one are merged (PySceneDetect's flash filter, MERGE
mode; default 15 frames, PySceneDetect's); a last shot shorter than that joins the one before. scenedetect is imported when first needed.

A user cut FILE holds frame indices separated by whitespace or commas; `#` starts a comment.
`check_cuts(cuts, length)` is the one rule for every sequence, folder or video (a video's length
is its frame count, counted before use): an index below 0 or past the last frame is refused.
A `scenes.json` written by `write_scenes` is accepted as a cut file too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from vsrdata.core.image_io import to_rgb
from vsrdata.errors import ConfigError, InputError

__all__ = ["DEFAULT_THRESHOLD", "DEFAULT_MIN_SCENE_LEN", "SCENES_FILE", "CutDetector", "detect_cuts",
           "read_cut_file", "check_cuts", "shots", "write_scenes", "read_scenes"]

DEFAULT_THRESHOLD = 27.0
DEFAULT_MIN_SCENE_LEN = 15
SCENES_FILE = "scenes.json"
_RATE = 25.0  # frame numbers -> times for PySceneDetect; all lengths here are in frames


class CutDetector:
    """Streaming shot-boundary detector: `add(frame)` for each frame in order, then `finish()`.

    Args:
        threshold: ContentDetector threshold (> 0); lower finds more cuts.
        min_scene_len: minimum shot length in frames (>= 1).
    Frames: HxWx3 uint8 BGR (HxW gray and 16-bit frames are converted).
    """

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, min_scene_len: int = DEFAULT_MIN_SCENE_LEN):
        from scenedetect import FrameTimecode
        from scenedetect.detectors import ContentDetector

        if not threshold > 0:
            raise ConfigError(f"scene-cut threshold must be > 0, got {threshold}")
        if int(min_scene_len) < 1:
            raise ConfigError(f"minimum scene length must be >= 1 frame, got {min_scene_len}")
        self.threshold, self.min_scene_len = float(threshold), int(min_scene_len)
        self._detector = ContentDetector(threshold=self.threshold, min_scene_len=self.min_scene_len)
        self._timecode = FrameTimecode
        self._cuts: set[int] = set()
        self.frames = 0

    def add(self, frame: np.ndarray) -> None:
        img = _to_bgr8(frame)
        # The frame rate only converts frame numbers to times; lengths here are in frames.
        tc = self._timecode(self.frames, fps=_RATE)
        for cut in self._detector.process_frame(tc, img):
            self._cuts.add(int(cut.frame_num))
        self.frames += 1

    def finish(self) -> list[int]:
        """The sorted cut indices (first frames of new shots, never 0). A last shot shorter than
        `min_scene_len` is merged into the one before (its cut dropped), as every other shot
        that short is: PySceneDetect only measures a shot from its start, not to the end."""
        if self.frames:
            for cut in self._detector.post_process(self._timecode(self.frames - 1, fps=_RATE)):
                self._cuts.add(int(cut.frame_num))
        cuts = sorted(c for c in self._cuts if 0 < c < self.frames)
        if cuts and self.frames - cuts[-1] < self.min_scene_len:
            cuts.pop()
        return cuts


def _to_bgr8(frame: np.ndarray) -> np.ndarray:
    """Any decoded frame -> HxWx3 uint8 BGR, what the detector reads (16-bit: the high byte)."""
    if frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    return np.ascontiguousarray(to_rgb(frame)[..., ::-1])


def detect_cuts(frames: Iterable[np.ndarray], threshold: float = DEFAULT_THRESHOLD,
                min_scene_len: int = DEFAULT_MIN_SCENE_LEN) -> list[int]:
    """Cut indices of a sequence of HxWx3 BGR frames (see CutDetector). Holds one frame at a time."""
    det = CutDetector(threshold, min_scene_len)
    for frame in frames:
        det.add(frame)
    return det.finish()


def check_cuts(cuts: Iterable[int], length: int | None = None, source: str = "cuts") -> list[int]:
    """Sorted unique cuts; raises InputError for negative ones or ones past `length` (0 and
    `length` itself are dropped: they start no new shot)."""
    out = sorted(set(int(c) for c in cuts))
    bad = [c for c in out if c < 0 or (length is not None and c > length)]
    if bad:
        where = f" of {length} frames" if length is not None else ""
        raise InputError(f"{source}: cut index {bad[0]} outside the sequence{where}")
    return [c for c in out if c > 0 and (length is None or c < length)]


def read_cut_file(path: str | os.PathLike) -> list[int]:
    """Cut indices from a text file (whitespace/comma separated, `#` comments) or a scenes.json."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read cut file {path}: {exc.strerror if isinstance(exc, OSError) else exc}") from None
    if text.lstrip().startswith("{"):
        return read_scenes(path)["cuts"]
    cuts = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for tok in line.split("#", 1)[0].replace(",", " ").split():
            try:
                cuts.append(int(tok))
            except ValueError:
                raise InputError(f"{path}, line {lineno}: {tok!r} is not a frame index") from None
    return check_cuts(cuts, source=str(path))


def shots(cuts: Sequence[int], length: int) -> list[tuple[int, int]]:
    """[(start, end_exclusive), ...] of the shots that `cuts` make of `length` frames."""
    bounds = [0] + [c for c in cuts if 0 < c < length] + [length]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def write_scenes(out_dir: str | os.PathLike, cuts: Sequence[int], length: int, *, mode: str,
                 source: str | None = None, threshold: float | None = None,
                 min_scene_len: int | None = None, name: str = SCENES_FILE) -> Path:
    """Write OUT_DIR/`name` (scenes.json; atomically): the cuts used, the shots, how they were found.

    `mode` is 'auto' (detected; `threshold`/`min_scene_len` recorded), 'file' (`source` is the
    user's file) or 'off'."""
    record = {"mode": mode, "frames": int(length), "cuts": [int(c) for c in cuts],
              "shots": [list(s) for s in shots(cuts, length)]}
    if source is not None:
        record["source"] = str(source)
    if mode == "auto":
        import scenedetect

        record["detector"] = {"name": "scenedetect.ContentDetector", "version": scenedetect.__version__,
                              "threshold": threshold, "min_scene_len": min_scene_len}
    out = Path(out_dir) / name
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return out


def read_scenes(path: str | os.PathLike) -> dict:
    """Read a scenes.json (a folder holding one, as .scenes.json or scenes.json, or the file);
    InputError when malformed."""
    path = Path(path)
    if path.is_dir():
        path = path / f".{SCENES_FILE}" if (path / f".{SCENES_FILE}").is_file() else path / SCENES_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        cuts = check_cuts(record["cuts"], record.get("frames"), source=str(path))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"not a valid {SCENES_FILE}: {path} ({exc})") from None
    record["cuts"] = cuts
    return record
