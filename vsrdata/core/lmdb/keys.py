"""LMDB keys, `meta_info.txt` lines and the file names of an LMDB folder (docs/CONVENTIONS.md).

Key styles: basicsr `000/00000000`, `00001/0001/im4`; mmagic `000_00000000`, `00001_0001_4`.
Our own builds are marked incomplete by `INCOMPLETE_MARKER` from the first write until the final
commit and the atomic `meta_info.txt` rename; readers refuse such a folder. A shard build
(`to-lmdb --shard I/N`) records its shard in `SHARD_FILE`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

from vsrdata.errors import ConfigError, InputError

KEY_STYLES = ("basicsr", "mmagic")
META_TXT = "meta_info.txt"
META_PKL = "meta_info.pkl"
INCOMPLETE_MARKER = ".vsrdata-incomplete"
_META_PARTIAL = ".meta_info.txt.partial"
SHARD_FILE = "vsrdata_shard.json"  # in a `to-lmdb --shard I/N` DB: which shard, of how many frames
_LMDB_FILES = ("data.mdb", "lock.mdb", META_TXT, META_PKL, INCOMPLETE_MARKER, _META_PARTIAL, SHARD_FILE)
_MAX_KEY_BYTES = 511  # LMDB's default mdb_env_get_maxkeysize()
_MIB = 1 << 20
# PNG colour type -> channels of cv2.imdecode(IMREAD_UNCHANGED) (gray, BGR, palette->BGR, GA->BGRA, BGRA).
_VIMEO_FRAME = re.compile(r"^im(\d+)$")
_META_LINE = re.compile(r"^(?P<name>\S+)\s+\((?P<shape>\s*\d+\s*(?:,\s*\d+\s*)*)\)(?:\s+(?P<level>\d+))?\s*$")



def make_key(clip: str, frame: str, key_style: str = "basicsr", *, vimeo: bool = False) -> str:
    """LMDB key of `frame` (a file name; the extension is dropped) in `clip` ('/'-separated).

    basicsr: `000/00000000`, `00001/0001/im4`; mmagic: `000_00000000`, and for Vimeo90K
    (`vimeo=True`) `00001_0001_4` (the `im` prefix dropped, as mmagic's converter does).
    """
    stem = frame.rsplit(".", 1)[0] if "." in frame else frame
    if key_style == "basicsr":
        return f"{clip}/{stem}" if clip else stem
    if key_style == "mmagic":
        if vimeo:
            m = _VIMEO_FRAME.match(stem)
            if m:
                stem = m.group(1)
        return "_".join([*clip.split("/"), stem]) if clip else stem
    raise ConfigError(f"unknown key style {key_style!r} (choose from {', '.join(KEY_STYLES)})")


def check_key(key: str, source: str = "") -> bytes:
    """`key` as the ASCII bytes stored in LMDB; refuse keys the field's readers cannot use
    (non-ASCII: they call `key.encode('ascii')`; '.' or whitespace: BasicSR parses
    `meta_info.txt` with `line.split('.')[0]` / `split(' ')`; over LMDB's 511-byte limit)."""
    where = f" (from {source})" if source else ""
    try:
        data = key.encode("ascii")
    except UnicodeEncodeError:
        raise InputError(f"non-ASCII LMDB key {key!r}{where}: the field's readers use "
                         f"key.encode('ascii'); rename the clip/frame") from None
    if not key or "." in key or any(ch.isspace() for ch in key):
        raise InputError(f"LMDB key {key!r}{where} is empty or contains '.' or whitespace, which "
                         f"BasicSR's meta_info.txt parser cannot read back; rename the clip/frame")
    if len(data) > _MAX_KEY_BYTES:
        raise InputError(f"LMDB key longer than {_MAX_KEY_BYTES} bytes{where}: {key[:60]}...")
    return data


def meta_line(key: str, shape: tuple[int, ...], compress_level: int) -> str:
    """One `meta_info.txt` line in BasicSR's format: `000/00000000.png (720,1280,3) 1`.
    A 2-D (gray) shape is written with c=1, as BasicSR does."""
    h, w = shape[0], shape[1]
    c = shape[2] if len(shape) > 2 else 1
    return f"{key}.png ({h},{w},{c}) {compress_level}\n"


def iter_meta_txt(path: str | os.PathLike) -> Iterator[tuple[str, tuple[int, ...], str]]:
    """Stream (key, shape, line) from a BasicSR/mmagic `meta_info.txt`, one line at a time.

    Accepts `key.png (h,w,c) level` (BasicSR, ours) and `key.png (h, w, c)` (mmagic); the
    extension is removed to form the key; `line` is the line as written (with its newline).
    Raises InputError naming the file and line.
    """
    path = Path(path)
    try:
        with open(path, encoding="ascii", newline="") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                m = _META_LINE.match(line.strip())
                if not m:
                    raise InputError(f"{path}:{lineno}: not a meta_info line (expected 'KEY.png (h,w,c) "
                                     f"level'): {line[:80]!r}")
                name = m.group("name")
                key = name.rsplit(".", 1)[0] if name.lower().endswith((".png", ".jpg", ".jpeg")) else name
                yield key, tuple(int(v) for v in m.group("shape").split(",")), line
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def parse_meta_txt(path: str | os.PathLike) -> tuple[list[str], dict[str, tuple[int, ...]]]:
    """Keys (file order) and shapes from a `meta_info.txt` (see `iter_meta_txt`)."""
    keys: list[str] = []
    shapes: dict[str, tuple[int, ...]] = {}
    shape_cache: dict[tuple[int, ...], tuple[int, ...]] = {}
    for key, shape, _ in iter_meta_txt(path):
        if key in shapes:  # one rule for every reader (train, lmdb-verify, evaluate): never skipped
            raise InputError(f"{path}: key {key!r} is listed twice (entries {keys.index(key) + 1} and "
                             f"{len(keys) + 1}); the meta info and the DB disagree: rebuild the DB")
        keys.append(key)
        shapes[key] = shape_cache.setdefault(shape, shape)
    return keys, shapes
