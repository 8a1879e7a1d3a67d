"""Test helpers: fixture clips as frame lists, and videos with a sine audio track made by PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NTSC_FILM = Fraction(24000, 1001)


def reds_clip(name: str, crop: tuple[int, int, int, int] | None = None) -> list[np.ndarray]:
    """The 7 BGR uint8 frames of fixtures/reds/train_sharp/<name>, optionally cropped (y, x, h, w)."""
    frames = []
    for i in range(7):
        img = cv2.imread(str(FIXTURES / "reds" / "train_sharp" / name / f"{i:08d}.png"), cv2.IMREAD_COLOR)
        if crop is not None:
            y, x, h, w = crop
            img = np.ascontiguousarray(img[y:y + h, x:x + w])
        frames.append(img)
    return frames


def make_video(path: Path, frames: list[np.ndarray], fps=NTSC_FILM, *, audio: str | None = "aac",
               sample_rate: int = 44100, tone: float = 440.0, faststart: bool = False,
               crf: int = 0) -> Path:
    """Encode BGR frames (H.264 yuv444p, CRF 0 by default: near-lossless) at `fps` into `path`,
    with a mono sine track of the video's duration in codec `audio` (None: no audio)."""
    import av

    opts = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=opts) as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.height, vs.width = frames[0].shape[:2]
        vs.pix_fmt, vs.options = "yuv444p", {"crf": str(crf)}
        aus = None
        if audio:
            aus = out.add_stream(audio, rate=sample_rate)
            aus.layout = "mono"
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        if aus is not None:
            n = int(round(sample_rate * len(frames) / float(fps)))
            wave = (0.3 * np.sin(2 * np.pi * tone * np.arange(n) / sample_rate)).astype(np.float32)
            af = av.AudioFrame.from_ndarray(wave[None], format="fltp", layout="mono")
            af.sample_rate, af.pts = sample_rate, 0
            out.mux(aus.encode(af))
            out.mux(aus.encode(None))
    return path


def audio_packets(path: Path) -> list[tuple[int | None, bytes]]:
    """(pts, payload) of every audio packet of the first audio stream."""
    import av

    with av.open(str(path)) as c:
        return [(p.pts, bytes(p)) for p in c.demux(c.streams.audio[0]) if p.size]


def decode_audio(path: Path) -> np.ndarray:
    """All samples of the first audio stream, float32, channel 0."""
    import av

    with av.open(str(path)) as c:
        chunks = [f.to_ndarray().reshape(f.to_ndarray().shape[0], -1)[0].astype(np.float32)
                  for f in c.decode(audio=0)]
    return np.concatenate(chunks)


def make_audio_only(path: Path) -> Path:
    """A container with one AAC stream and no video stream (0.1 s of silence)."""
    import av

    with av.open(str(path), "w") as out:
        st = out.add_stream("aac", rate=44100)
        af = av.AudioFrame.from_ndarray(np.zeros((1, 4410), np.float32), format="fltp", layout="mono")
        af.sample_rate, af.pts = 44100, 0
        out.mux(st.encode(af))
        out.mux(st.encode(None))
    return path


def ffmpeg(*args: str) -> None:
    """Run the ffmpeg binary that imageio-ffmpeg ships (a reference nobody here wrote)."""
    import subprocess

    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *map(str, args)],
                   check=True)


def ffmpeg_frames(path: Path, h: int, w: int) -> list[np.ndarray]:
    """Every frame of `path` as ffmpeg's command line decodes it (autorotate on), HxWx3 uint8 BGR."""
    import subprocess

    import imageio_ffmpeg

    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "bgr24", "-"], check=True, capture_output=True).stdout
    return list(np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3))
