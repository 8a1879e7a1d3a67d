"""Reading, writing and encoding frames: the on-disk contract.

Contract (matches BasicSR / cv2 conventions):
- In memory a frame is a numpy array, HxW (gray) or HxWx3, channel order BGR
  exactly as `cv2.imread(path, cv2.IMREAD_UNCHANGED)` returns it; dtype uint8 or uint16, kept.
- On disk frames are PNG (8 or 16 bit). Every command reads frames by one rule
  (docs/CONVENTIONS.md#frame-contract): a file's bytes must be of the format its name says
  (`content_problem`, by magic bytes), and a frame is grey or colour, 8 or 16 bit, without an
  alpha channel (`check_frame_layout`); the message for each case is made here only.
- Writes go to a temporary name in the same directory and are renamed into place (`os.replace`), so a reader never sees half a file and a killed job
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
# Magic bytes of the formats a frame file may hold, and the extensions that name each one.
_MAGIC = (("PNG", (PNG_SIGNATURE,), (".png",)), ("JPEG", (b"\xff\xd8\xff",), (".jpg", ".jpeg")),
          ("BMP", (b"BM",), (".bmp",)), ("TIFF", (b"II*\x00", b"MM\x00*"), (".tif", ".tiff")))
ALPHA_MESSAGE = "image has an alpha channel (RGBA), which is not supported"
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


def content_problem(name: str, head: bytes | memoryview) -> str | None:
    """Why the first bytes `head` of a frame named `name` do not match its extension, or None.

    The rule of every command: a `.png` holds PNG bytes, a `.jpg`/`.jpeg` JPEG, `.bmp` BMP,
    `.tif`/`.tiff` TIFF (magic bytes). A name without an image extension (an LMDB key) is not
    checked. The message names the file and what it holds."""
    ext = os.path.splitext(str(name))[1].lower()
    head = bytes(head[:8])
    wanted = next((fmt for fmt, _, exts in _MAGIC if ext in exts), None)
    if wanted is None:
        return None
    found = next((fmt for fmt, magics, _ in _MAGIC if any(head.startswith(m) for m in magics)), None)
    if found == wanted:
        return None
    what = f"{found} data" if found else ("no data (empty file)" if not head else "no image data")
    return f"{name} holds {what} but is named {ext} (the content must match the extension)"


def check_frame_layout(shape: tuple[int, ...], name: str) -> None:
    """The frame rule on a decoded shape (h, w[, c]): grey (c = 1) or colour (c = 3); an alpha
    channel (c = 4) or any other layout is an InputError naming `name`."""
    channels = shape[2] if len(shape) == 3 else 1
    if channels == 4:
        raise InputError(f"{ALPHA_MESSAGE}: {name}")
    if len(shape) not in (2, 3) or channels not in (1, 3):
        raise InputError(f"unsupported frame layout {tuple(shape)} (need grey or 3-channel colour): {name}")


def frame_shape(path: str | os.PathLike) -> tuple[int, int, int, str]:
    """(h, w, c, dtype name) of a frame as `read_image` would return it, from the PNG header
    (`png_header`: no decode) when it can say, else by decoding."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(1 << 16)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    problem = content_problem(str(path), data)
    if problem:
        raise InputError(problem)
    head = png_header(data)
    if head is not None:
        return head
    img = read_image(path)
    return img.shape[0], img.shape[1], (img.shape[2] if img.ndim == 3 else 1), str(img.dtype)


def format_shape(shape: tuple[int, int, int, str]) -> str:
    """`frame_shape` as text: '64x48x3 uint8' (height x width x channels)."""
    return f"{shape[0]}x{shape[1]}x{shape[2]} {shape[3]}"


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes (PNG, JPEG, ...) unchanged: BGR(A), uint8/uint16.

    The bytes must match the extension of `name` (`content_problem`); a PNG is then checked by
    `png_problem`; raises InputError naming `name` when the bytes are mislabelled, truncated,
    corrupt or not an image."""
    problem = content_problem(name, data)
    if problem:
        raise InputError(problem)
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


def read_image(path: str | os.PathLike, *, allow_alpha: bool = False) -> np.ndarray:
    """Read one frame unchanged (BGR, uint8 or uint16, HxW or HxWx3).

    Raises InputError naming the file when it is missing, unreadable, mislabelled (JPEG bytes in a
    `.png`: `content_problem`), truncated or corrupt (a PNG is checked by `png_problem` first: some
    decoders return a truncated one half-black), or has an alpha channel (`check_frame_layout`;
    `allow_alpha` lets a BGRA frame through, for callers that are not reading frames).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    img = decode_image(data, str(path))
    if img.dtype not in (np.uint8, np.uint16):
        raise InputError(f"unsupported pixel type {img.dtype} (need 8 or 16 bit): {path}")
    if not (allow_alpha and img.ndim == 3 and img.shape[2] == 4):
        check_frame_layout(img.shape, str(path))
    return img


def encode_png(img: np.ndarray, compress_level: int = 1) -> bytes:
    """PNG bytes exactly as the field stores them: `cv2.imencode('.png', img,
    [IMWRITE_PNG_COMPRESSION, level])` of the BGR(A) array."""
    cv2 = _cv2()
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, int(compress_level)])
    if not ok:  # pragma: no cover - cv2 only fails on unsupported dtypes/shapes
        raise InputError(f"cannot PNG-encode array of shape {img.shape} dtype {img.dtype}")
    return buf.tobytes()


# (colour type, bit depth) -> channels of cv2.imdecode(IMREAD_UNCHANGED) without / with a tRNS
# chunk. Pairs not listed (e.g. 16-bit gray+alpha) are not predicted: `png_header` returns None.
_PNG_CHANNELS = {(0, 1): (1, 1), (0, 2): (1, 1), (0, 4): (1, 1), (0, 8): (1, 1), (0, 16): (1, 1),
                 (2, 8): (3, 4), (2, 16): (3, 4), (3, 8): (3, 4), (4, 8): (4, 4),
                 (6, 8): (4, 4), (6, 16): (4, 4)}


def png_header(data: bytes | memoryview) -> tuple[int, int, int, str] | None:
    """(h, w, channels, dtype) that `decode_image` would return for PNG bytes, without decoding.

    Reads the IHDR chunk and walks the chunk headers up to the first IDAT (a tRNS chunk before it
    adds an alpha channel to RGB and palette images). `data` must reach that IDAT: pass a whole
    value, or the first 64 KiB of a file. dtype is 'uint16' for 16-bit samples, else 'uint8'.
    Returns None when `data` is not a PNG, is cut before the first IDAT, or has a colour type /
    bit depth whose decoded layout is not predicted (the caller then decodes).
    """
    data = bytes(data[:1 << 16])
    if len(data) < 33 or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    channels = _PNG_CHANNELS.get((data[25], data[24]))
    if channels is None:
        return None
    pos, has_trns = 33, False
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            return height, width, channels[has_trns], "uint16" if data[24] == 16 else "uint8"
        has_trns = has_trns or kind == b"tRNS"
        pos += 12 + length
    return None


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


def to_rgb(img: np.ndarray) -> np.ndarray:
    """Any frame `read_image` returns -> HxWx3 RGB, C-contiguous, same dtype (uint8 / uint16).

    HxW gray and HxWx1 are repeated to 3 channels; HxWx3 BGR is reversed; HxWx4 BGRA loses its
    alpha. Raises ValueError for any other shape.
    """
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise ValueError(f"to_rgb expects HxW, HxWx1, HxWx3 or HxWx4, got shape {img.shape}")
    if img.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(img, 3, axis=2))
    return np.ascontiguousarray(img[..., 2::-1])
