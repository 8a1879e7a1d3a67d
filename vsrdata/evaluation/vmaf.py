"""VMAF (full reference) through ffmpeg's `libvmaf` filter, per frame and per clip.

docs/CONVENTIONS.md#vmaf. The ffmpeg binary is the one the `imageio-ffmpeg` wheel ships
(`imageio_ffmpeg.get_ffmpeg_exe()`, or the file named by IMAGEIO_FFMPEG_EXE). Frames of a clip
(restored = "distorted", GT = "reference", HxWx3 uint8 RGB) are spooled to two raw rgb24 files in a
temporary folder; at the end of the clip ffmpeg converts both to yuv444p (swscale's default
RGB -> YUV: BT.601, limited range; VMAF reads only the luma) and runs libvmaf with the built-in
model `vmaf_v0.6.1` (ffmpeg's default, named explicitly), writing its JSON log; the score of each
frame and the libvmaf version come from that log. The clip is one sequence: VMAF's motion
feature compares each frame with the previous one, so the first frame of a clip has zero motion.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from vsrdata.errors import ConfigError, InputError

__all__ = ["MODEL", "VmafClip", "VmafResult", "ffmpeg_with_libvmaf"]

MODEL = "vmaf_v0.6.1"


@dataclass
class VmafResult:
    per_frame: list[float]
    model: str
    libvmaf_version: str

    @property
    def mean(self) -> float:
        return float(np.mean(self.per_frame)) if self.per_frame else float("nan")


def _ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise ConfigError("VMAF needs ffmpeg from imageio-ffmpeg: pip install imageio-ffmpeg") from None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise ConfigError(f"VMAF needs an ffmpeg binary: {exc}".splitlines()[0]) from None


@lru_cache(maxsize=4)
def _lists_libvmaf(exe: str) -> bool:
    try:
        out = subprocess.run([exe, "-hide_banner", "-filters"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.split()[1:2] == ["libvmaf"] for line in out.splitlines())


def ffmpeg_with_libvmaf() -> str:
    """Path of an ffmpeg that has the libvmaf filter; ConfigError (one line) otherwise."""
    exe = _ffmpeg_exe()
    if not _lists_libvmaf(exe):
        raise ConfigError(f"VMAF needs ffmpeg built with libvmaf; {exe} has no libvmaf filter "
                                     "(ffmpeg -filters); the other metrics still run")
    return exe


class VmafClip:
    """Collect the frames of one clip (`add`), then score them all (`finish`, removes the spool)."""

    def __init__(self, name: str = "clip", threads: int = 0):
        self.name, self.threads = name, threads
        self.exe = ffmpeg_with_libvmaf()
        self.dir = Path(tempfile.mkdtemp(prefix="vsrdata-vmaf-"))
        self.size: tuple[int, int] | None = None
        self.count = 0
        self._files = [open(self.dir / "dist.rgb", "wb"), open(self.dir / "ref.rgb", "wb")]

    def add(self, dist_rgb: np.ndarray, ref_rgb: np.ndarray) -> None:
        """Append one frame pair (HxWx3 uint8 RGB, same size throughout the clip)."""
        for img in (dist_rgb, ref_rgb):
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise InputError(f"VMAF of clip {self.name!r}: expects HxWx3 uint8 RGB frames, got "
                                 f"{img.dtype} {img.shape}")
        size = dist_rgb.shape[:2]
        if ref_rgb.shape[:2] != size or (self.size is not None and size != self.size):
            raise InputError(f"VMAF of clip {self.name!r}: frame sizes differ within the clip")
        self.size = size
        for f, img in zip(self._files, (dist_rgb, ref_rgb)):
            f.write(np.ascontiguousarray(img).tobytes())
        self.count += 1

    def finish(self) -> VmafResult:
        try:
            for f in self._files:
                f.close()
            if not self.count:
                return VmafResult([], MODEL, "")
            return self._run()
        finally:
            self.close()

    def close(self) -> None:
        for f in self._files:
            f.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _run(self) -> VmafResult:
        h, w = self.size
        raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "25", "-i"]
        graph = (f"[0:v]format=yuv444p[d];[1:v]format=yuv444p[r];[d][r]libvmaf=model=version={MODEL}"
                 f":log_fmt=json:log_path=vmaf.json:n_threads={self.threads or os.cpu_count() or 1}")
        cmd = [self.exe, "-hide_banner", "-nostats", "-loglevel", "error", *raw, "dist.rgb", *raw, "ref.rgb",
               "-lavfi", graph, "-f", "null", "-"]
        proc = subprocess.run(cmd, cwd=self.dir, capture_output=True, text=True)
        log = self.dir / "vmaf.json"
        if proc.returncode != 0 or not log.is_file():
            last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise InputError(f"VMAF of clip {self.name!r}: ffmpeg failed: {last}")
        doc = json.loads(log.read_text())
        scores = [float(fr["metrics"]["vmaf"]) for fr in doc.get("frames", [])]
        if len(scores) != self.count:
            raise InputError(f"VMAF of clip {self.name!r}: libvmaf scored {len(scores)} of {self.count} frames")
        return VmafResult(scores, MODEL, str(doc.get("version", "")))
