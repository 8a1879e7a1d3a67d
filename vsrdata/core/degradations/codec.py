"""Video compression of a whole clip through PyAV (FFmpeg's libraries), in memory.

The clip is encoded as ONE stream (as a real codec sees a video: inter-frame prediction, rate
control over the whole clip) and decoded back, as mmagic's ``RandomVideoCompression`` does (time
base 1 frame per second, so ``bitrate`` is bits per frame; yuv420p; swscale's RGB->YUV). The
stream is kept as an elementary stream in memory (no container: mmagic muxes MP4, which changes
nothing in the pictures). Our choices, for byte-exact replays, all measured here:

* one encoder thread (x264's output depends on its thread count);
* x264 with ``no-mbtree=1``: with x264's default macroblock-tree rate control, identical input
  gave different streams run to run (up to 15 distinct outputs in 20 encodes of one 7-frame clip
  at 18 kbit); with mbtree off, 40 of 40 encodes were identical for every clip we tried;
* frames enter as round-and-clip uint8 (mmagic truncates), through zero-padded frame buffers;
* an odd side is padded by repeating its last row/column (4:2:0 needs even sides) and cropped
  back after decoding.

See ``docs/CONVENTIONS.md#real-world-degradations``.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np

from vsrdata.errors import ConfigError

__all__ = ["CRF_CODECS", "available_codecs", "check_codec", "compress_clip", "decode_stream", "encode_clip"]

CRF_CODECS = ("libx264", "h264")
# Encoders that the MP4 container takes (the in-memory stream is MP4, as mmagic's) and whose output
# we found repeatable run to run; x265 was not (two identical encodes differed), so it is left out.
_CANDIDATES = ("libx264", "h264", "mpeg4", "mpeg2video")
_DECODERS = {"libx264": "h264"}
_X264 = ("libx264", "h264")


@lru_cache(maxsize=1)
def available_codecs() -> tuple[str, ...]:
    """The video encoders among the usual ones that this PyAV build can open."""
    from vsrdata.core.video.pyav import load_av

    av = load_av()

    found = []
    for name in _CANDIDATES:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # noqa: BLE001 - PyAV raises UnknownCodecError / ValueError by version
            continue
        found.append(name)
    return tuple(found)


def check_codec(codec: str, key: str = "codec") -> None:
    """One-line ConfigError naming ``key`` when ``codec`` is not an encoder of this PyAV build."""
    if codec not in available_codecs():
        raise ConfigError(f"{key}: video encoder {codec!r} is not in this PyAV build "
                          f"(available: {', '.join(available_codecs()) or 'none'})")


def _encoder(codec: str, h: int, w: int, bitrate: int | None, crf: int | None):
    from vsrdata.core.video.pyav import load_av

    av = load_av()

    cc = av.CodecContext.create(codec, "w")
    cc.width, cc.height, cc.pix_fmt = w, h, "yuv420p"
    cc.time_base = Fraction(1, 1)
    cc.framerate = Fraction(1, 1)
    cc.thread_count = 1
    options = {"x264-params": "no-mbtree=1"} if codec in _X264 else {}
    if crf is not None:
        if codec not in CRF_CODECS:
            raise ConfigError(f"crf: {codec} has no CRF mode (use bitrate, or one of {', '.join(CRF_CODECS)})")
        options["crf"] = str(int(crf))
    else:
        cc.bit_rate = int(bitrate)
    cc.options = options
    cc.open()
    return cc


def _yuv_frame(img: np.ndarray):
    """BGR uint8 (even sides) -> a yuv420p VideoFrame whose row padding is zeroed.

    The conversion is swscale's (``reformat``). Both the RGB input and the YUV planes are copied
    into frames whose padding bytes (each row's ``line_size`` beyond the width) are zero: with the
    padding left uninitialised we measured different streams for identical frames of some sizes
    (e.g. 212 or 284 wide), run to run."""
    from vsrdata.core.video.pyav import load_av

    av = load_av()

    h, w = img.shape[:2]
    rgb = _filled(av.VideoFrame(w, h, "rgb24"), [img[:, :, ::-1].reshape(h, w * 3)])
    flat = rgb.reformat(format="yuv420p").to_ndarray().ravel()
    n, c = h * w, (h // 2) * (w // 2)
    parts = (flat[:n].reshape(h, w), flat[n:n + c].reshape(h // 2, w // 2), flat[n + c:].reshape(h // 2, w // 2))
    return _filled(av.VideoFrame(w, h, "yuv420p"), parts)


def _filled(frame, parts):
    """Copy each plane's rows into ``frame``, with every padding byte set to zero."""
    for plane, data in zip(frame.planes, parts):
        buf = np.zeros((plane.height, plane.line_size), dtype=np.uint8)
        buf[:, : data.shape[1]] = data
        plane.update(buf)
    return frame


def encode_clip(frames: list[np.ndarray], codec: str, bitrate: int | None = None, crf: int | None = None) -> bytes:
    """Encode uint8 HxWx3 BGR frames (all one size) as one elementary stream (H.264 Annex B,
    MPEG-4 part 2 or MPEG-2 video; no container); returns its bytes."""
    check_codec(codec)
    if (bitrate is None) == (crf is None):
        raise ConfigError("video compression needs exactly one of bitrate and crf")
    h, w = frames[0].shape[:2]
    ph, pw = h + h % 2, w + w % 2
    cc = _encoder(codec, ph, pw, bitrate, crf)
    packets = []
    for index, img in enumerate(frames):
        if img.shape[:2] != (h, w):
            raise ConfigError(f"video compression needs frames of one size, got {img.shape[:2]} and {(h, w)}")
        if (ph, pw) != (h, w):
            img = np.pad(img, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
        frame = _yuv_frame(img)
        frame.pts = index
        packets += [bytes(p) for p in cc.encode(frame)]
    packets += [bytes(p) for p in cc.encode(None)]
    return b"".join(packets)


def decode_stream(data: bytes, codec: str, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Decode an elementary stream of ``codec`` to uint8 BGR frames, cropped to ``size`` = (H, W)."""
    from vsrdata.core.video.pyav import load_av

    av = load_av()

    cc = av.CodecContext.create(_DECODERS.get(codec, codec), "r")
    cc.thread_count = 1
    out = []
    for packet in cc.parse(data) + cc.parse(None) + [None]:
        for frame in cc.decode(packet):
            img = frame.to_ndarray(format="bgr24")
            out.append(img if size is None else img[: size[0], : size[1]])
    return out


def compress_clip(frames: list[np.ndarray], codec: str, bitrate: int | None = None,
                  crf: int | None = None) -> list[np.ndarray]:
    """Encode then decode a clip of uint8 BGR frames; returns as many frames, same size."""
    data = encode_clip(frames, codec, bitrate, crf)
    out = decode_stream(data, codec, frames[0].shape[:2])
    if len(out) != len(frames):
        raise ConfigError(f"video compression with {codec} returned {len(out)} frames for {len(frames)}")
    return out
