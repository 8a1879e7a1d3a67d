"""The one PNG-header parser (`image_io.png_header`) against what cv2 actually decodes."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from vsrdata.core import image_io
from vsrdata.core.image_io import PNG_SIGNATURE, png_header


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(h: int, w: int, colour: int, depth: int, *, trns: bytes | None = None, plte: bool = False) -> bytes:
    """A valid PNG built by hand (no encoder involved), all samples zero."""
    samples = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    row_bytes = (w * samples * depth + 7) // 8
    raw = b"".join(b"\0" + bytes(row_bytes) for _ in range(h))  # filter 0 per row
    out = PNG_SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0))
    if plte:
        out += _chunk(b"PLTE", bytes(range(12)))
    if trns is not None:
        out += _chunk(b"tRNS", trns)
    return out + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


CASES = {
    "gray8": _png(5, 7, 0, 8), "gray1": _png(5, 7, 0, 1), "gray16": _png(5, 7, 0, 16),
    "gray8+tRNS": _png(5, 7, 0, 8, trns=b"\0\1"),
    "rgb8": _png(5, 7, 2, 8), "rgb16": _png(5, 7, 2, 16), "rgb8+tRNS": _png(5, 7, 2, 8, trns=bytes(6)),
    "palette": _png(5, 7, 3, 8, plte=True), "palette+tRNS": _png(5, 7, 3, 8, plte=True, trns=b"\0"),
    "gray-alpha8": _png(5, 7, 4, 8), "rgba8": _png(5, 7, 6, 8), "rgba16": _png(5, 7, 6, 16),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_png_header_predicts_what_cv2_decodes(name):
    data = CASES[name]
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    h, w, c, dtype = png_header(data)
    assert (h, w) == decoded.shape[:2] == (5, 7)
    assert c == (decoded.shape[2] if decoded.ndim == 3 else 1)
    assert dtype == str(decoded.dtype)


def test_png_header_gives_up_rather_than_guessing():
    assert png_header(b"not a png at all, no header here, padded to length") is None
    assert png_header(CASES["rgb8"][:40]) is None  # cut before IDAT: a tRNS could still follow
    assert png_header(_png(5, 7, 4, 16)) is None  # 16-bit gray+alpha: layout not predicted


def test_png_constants_have_one_home():
    import vsrdata.core.lmdb.keys as lmdb_store
    import vsrdata.pipelines.split_write as split_write

    for module in (lmdb_store, split_write):
        assert not hasattr(module, "_PNG_SIGNATURE") and not hasattr(module, "png_header_shape")
    assert image_io.PNG_SIGNATURE == b"\x89PNG\r\n\x1a\n"
