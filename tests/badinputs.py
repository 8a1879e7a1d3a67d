"""Builders of bad inputs shared by the input-contract tests (docs/CONVENTIONS.md#frame-contract).

Each builder writes a small clip tree (REDS-like: ROOT/<clip>/<8 digits>.png) with one defect,
and every command that takes such a tree is run on it by tests/test_input_contract.py, so the
commands cannot drift apart again. Frames are tiny (32x32 GT, 8x8 LQ) to keep the tests fast.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

GT_SIZE, SCALE, FRAMES = 32, 4, 5


def frame(h: int = GT_SIZE, w: int = GT_SIZE, seed: int = 0, channels: int = 3, dtype=np.uint8) -> np.ndarray:
    """A smooth random frame (HxW for channels=1, else HxWxC) of `dtype`."""
    rng = np.random.default_rng(seed)
    top = 65535 if dtype == np.uint16 else 255
    img = cv2.GaussianBlur(rng.uniform(0, top, (h, w, 3)).astype(np.float32), (5, 5), 1.5)
    img = np.clip(img, 0, top).astype(dtype)
    if channels == 1:
        return np.ascontiguousarray(img[..., 0])
    if channels == 4:
        return np.dstack([img, np.full((h, w), top, dtype)])
    return img


def write_clip(folder: Path, n: int = FRAMES, size: int = GT_SIZE, channels: int = 3, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:08d}.png"), frame(size, size, seed + i, channels))
    return folder


def write_tree(root: Path, clips=("000", "001"), size: int = GT_SIZE, channels: int = 3) -> Path:
    for k, name in enumerate(clips):
        write_clip(root / name, size=size, channels=channels, seed=10 * k)
    return root


def _jpeg_named_png(clip: Path, size: int) -> Path:
    bad = clip / "00000001.png"
    ok, buf = cv2.imencode(".jpg", cv2.imread(str(bad)))
    bad.write_bytes(buf.tobytes())
    return bad


def _replace(clip: Path, img: np.ndarray) -> Path:
    bad = clip / "00000001.png"
    cv2.imwrite(str(bad), img)
    return bad


def _all_rgba(clip: Path, size: int) -> Path:
    for p in sorted(clip.glob("*.png")):
        img = cv2.imread(str(p))
        cv2.imwrite(str(p), np.dstack([img, np.full(img.shape[:2], 255, np.uint8)]))
    return clip / "00000000.png"


def _empty_clip(clip: Path, size: int) -> Path:
    empty = clip.parent / "002"
    empty.mkdir()
    return empty


# name -> (defect applied to one clip folder of frames of side `size`: returns the path the message
# must name; the message regex)
DEFECTS = {
    "rgba": (_all_rgba, r"image has an alpha channel \(RGBA\), which is not supported: {path}$"),
    "jpeg-named-png": (_jpeg_named_png, r"{path} holds JPEG data but is named \.png \(the content must "
                                        r"match the extension\)$"),
    "one-16-bit-frame": (lambda c, s: _replace(c, frame(s, s, 1, 3, np.uint16)),
                         r"mixes frame formats: {path} is \d+x\d+x3 uint16, its first frame"),
    "one-grey-frame": (lambda c, s: _replace(c, frame(s, s, 1, 1)),
                       r"mixes frame formats: {path} is \d+x\d+x1 uint8, its first frame"),
    "one-rgba-frame": (lambda c, s: _replace(c, frame(s, s, 1, 4)),
                       r"mixes frame formats: {path} is \d+x\d+x4 uint8, its first frame"),
    "one-frame-of-another-size": (lambda c, s: _replace(c, frame(s + 4, s, 1)),
                                  r"mixes frame formats: {path} is \d+x\d+x3 uint8, its first frame"),
    "empty-clip-folder": (_empty_clip, r"empty folder {path}: a clip folder must hold frames"),
}


def damage(clip: Path, defect: str, size: int) -> Path:
    """Apply DEFECTS[defect] to the clip folder `clip` (frames of side `size`); the path to name."""
    return DEFECTS[defect][0](clip, size)


def message(defect: str, path: Path) -> str:
    """The regex the one-line error must match for `defect` at `path`."""
    import re

    return DEFECTS[defect][1].format(path=re.escape(str(path)))


def zero_frame_video(path: Path) -> Path:
    """A Matroska file with a 64x64 H.264 stream that holds no frame (and 1 s of silent AAC):
    it opens, declares a video stream, and decodes 0 frames."""
    import av

    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.height, vs.width, vs.pix_fmt = 64, 64, "yuv420p"
        aus = out.add_stream("aac", rate=44100)
        aus.layout = "mono"
        af = av.AudioFrame.from_ndarray(np.zeros((1, 44100), np.float32), format="fltp", layout="mono")
        af.sample_rate, af.pts = 44100, 0
        out.mux(aus.encode(af))
        out.mux(aus.encode(None))
    return path
