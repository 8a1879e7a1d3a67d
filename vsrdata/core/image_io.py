"""Reading, writing and encoding frames: the on-disk contract.

Contract (matches BasicSR / cv2 conventions):
- In memory a frame is a numpy array, HxW (gray) or HxWxC with C in {3, 4}, channel order BGR(A)
  exactly as `cv2.imread(path, cv2.IMREAD_UNCHANGED)` returns it; dtype uint8 or uint16, kept.
- On disk frames are PNG (8 or 16 bit). Writes go to a temporary name in the same directory and
  are renamed into place (`os.replace`), so a reader never sees half a file and a killed job
  leaves either the old state or the finished file, never a truncated one.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from pathlib import Path
from typing import Collection

import numpy as np

from vsrdata.errors import InputError, OutputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IEND = b"IEND\xaeB`\x82"
TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.\d+\.tmp$")  # the pattern of `temp_path_for`


def _cv2():
    import cv2  # heavy import kept out of module import time

    global _CV2_QUIET
    if not _CV2_QUIET:  # OpenCV's own WARN lines ("PNG input buffer is incomplete") would precede
        _CV2_QUIET = True  # our one-line error; errors we need are raised as InputError instead
        try:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        except AttributeError:  # pragma: no cover - builds without the logging module
            pass
    return cv2


_CV2_QUIET = False


def is_image_file(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def png_problem(data: bytes | memoryview) -> str | None:
    """Why `data` (a PNG: it starts with the PNG signature) is not intact, or None when it is.

    Walks the chunks (4-byte big-endian length, 4-byte type, data, CRC-32 of type + data): every
    chunk must fit in `data` and match its CRC, and IEND must be reached; bytes after IEND (e.g.
    NUL padding) are ignored. Costs about 2% of a decode (CRC-32 runs at GB/s). Checking first
    keeps libpng from printing its own "libpng error: ..." line to stderr before we fail (it does
    for CRC errors and truncated streams). A damaged zlib stream with valid CRCs is not caught
    here; cv2 then fails (the decode still raises InputError).
    """
    view = memoryview(data)
    pos, size = len(PNG_SIGNATURE), len(view)
    while pos + 12 <= size:
        (length,) = struct.unpack_from(">I", view, pos)
        end = pos + 12 + length
        if end > size:
            break
        (crc,) = struct.unpack_from(">I", view, end - 4)
        kind = bytes(view[pos + 4:pos + 8])
        if zlib.crc32(view[pos + 4:end - 4]) != crc:
            label = kind.decode("ascii") if kind.isalpha() else repr(kind)
            return f"corrupt PNG (CRC mismatch in chunk {label} at byte {pos})"
        if kind == b"IEND":
            return None
        pos = end
    return "truncated PNG (no IEND chunk)"


def frame_shape(path: str | os.PathLike) -> tuple[int, int, int, str]:
    """(h, w, c, dtype name) of a frame as `read_image` would return it, from the PNG header
    when it can say (8/16-bit gray, RGB, RGBA; no decode, 26 bytes read), else by decoding."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(head) == 26 and head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        depth, colour = head[24], head[25]
        channels = {0: 1, 2: 3, 6: 4}.get(colour)  # palette / gray+alpha: cv2 expands, so decode
        if channels is not None and depth in (8, 16):
            return height, width, channels, "uint8" if depth == 8 else "uint16"
    img = read_image(path)
    return img.shape[0], img.shape[1], (img.shape[2] if img.ndim == 3 else 1), str(img.dtype)


def format_shape(shape: tuple[int, int, int, str]) -> str:
    """`frame_shape` as text: '64x48x3 uint8' (height x width x channels)."""
    return f"{shape[0]}x{shape[1]}x{shape[2]} {shape[3]}"


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes (PNG, JPEG, ...) unchanged: BGR(A), uint8/uint16.

    A PNG is first checked by `png_problem`; raises InputError naming `name` when the bytes are
    truncated, corrupt or not an image."""
    if bytes(data[:8]) == PNG_SIGNATURE:
        problem = png_problem(data)
        if problem:
            raise InputError(f"{problem}: {name}")
    cv2 = _cv2()
    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if img is None:
        raise InputError(f"cannot decode image: {name}")
    return img


def read_image(path: str | os.PathLike, *, allow_alpha: bool = True) -> np.ndarray:
    """Read one frame unchanged (BGR(A), uint8 or uint16, HxW or HxWxC).

    Raises InputError naming the file when it is missing, unreadable, truncated or corrupt (a PNG
    is checked by `png_problem` first: some decoders return a truncated one half-black), or has an alpha
    channel while `allow_alpha` is False.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    img = decode_image(data, str(path))
    if img.dtype not in (np.uint8, np.uint16):
        raise InputError(f"unsupported pixel type {img.dtype} (need 8 or 16 bit): {path}")
    if not allow_alpha and img.ndim == 3 and img.shape[2] == 4:
        raise InputError(f"image has an alpha channel (RGBA), which is not supported: {path}")
    return img


def encode_png(img: np.ndarray, compress_level: int = 1) -> bytes:
    """PNG bytes exactly as the field stores them: `cv2.imencode('.png', img,
    [IMWRITE_PNG_COMPRESSION, level])` of the BGR(A) array."""
    cv2 = _cv2()
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, int(compress_level)])
    if not ok:  # pragma: no cover - cv2 only fails on unsupported dtypes/shapes
        raise InputError(f"cannot PNG-encode array of shape {img.shape} dtype {img.dtype}")
    return buf.tobytes()


def temp_path_for(path: str | os.PathLike) -> Path:
    """Temporary sibling name used while writing `path` (hidden, process-unique)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def remove_stale_temps(directory: str | os.PathLike, names: Collection[str] | None = None) -> int:
    """Delete temporary files left in `directory` by a killed writer (see `temp_path_for`);
    with `names`, only those of these final file names. Returns how many were removed."""
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    removed = 0
    for entry in entries:
        match = TEMP_NAME.match(entry.name)
        if match and (names is None or match.group("name") in names):
            try:
                os.unlink(entry.path)
                removed += 1
            except FileNotFoundError:
                pass
    return removed


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` via a temporary sibling + rename; parent dirs are created."""
    path = Path(path)
    tmp = temp_path_for(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_image(path: str | os.PathLike, img: np.ndarray, compress_level: int = 3) -> None:
    """Write a frame as PNG atomically (temporary name, then rename).

    The default level 3 is cv2's own default, so files are byte-identical to `cv2.imwrite`.
    """
    write_bytes_atomic(path, encode_png(img, compress_level))


def bgr_to_rgb(img: np.ndarray) -> np.ndarray:
    """HxWx3 BGR -> RGB (a view); gray images are returned unchanged."""
    return img[..., ::-1] if img.ndim == 3 else img
