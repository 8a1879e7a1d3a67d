"""`LmdbReader`: frames from BasicSR-, mmagic- or original-EDVR-style LMDB folders.

Formats read (docs/CONVENTIONS.md): the BasicSR/mmagic one of `vsrdata.core.lmdb` with either key
style (mmagic's per-frame `meta_info.txt` with `(h, w, c)` spaces too), and the original EDVR
format: values are raw uint8 HWC BGR buffers and `meta_info.pkl` is a pickled dict
`{'name', 'resolution', 'keys'}` with `resolution` either one `'c_h_w'` string or a list of them
(one per key). Before any environment is mapped, `check_not_truncated` compares `data.mdb` with
the last page its meta pages record (a short file would kill the reader with SIGBUS).
"""

from __future__ import annotations

import builtins
import os
import pickle
import struct
from pathlib import Path
from typing import Iterable

import lmdb
import numpy as np

from vsrdata.core.image_io import decode_image
from vsrdata.core.lmdb.keys import INCOMPLETE_MARKER, META_PKL, META_TXT, parse_meta_txt
from vsrdata.errors import InputError


class _MetaPklUnpickler(pickle.Unpickler):
    """Loads only plain containers and strings: a `meta_info.pkl` on a user's disk is data, and
    pickle can otherwise run arbitrary code."""

    _ALLOWED = {"dict", "list", "tuple", "set", "frozenset", "str", "int", "bytes"}

    def find_class(self, module, name):
        if module in ("builtins", "__builtin__") and name in self._ALLOWED:
            return getattr(builtins, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in meta_info.pkl")


def _parse_resolution(value, where: str) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in str(value).split("_"))
    except ValueError:
        raise InputError(f"{where}: resolution {value!r} is not 'c_h_w'") from None
    return h, w, c


class LmdbReader:
    """Read frames from a BasicSR-, mmagic- or original-EDVR-style LMDB folder.

    The LMDB environment is opened lazily in each process (readonly, lock=False,
    readahead=False, as BasicSR's `LmdbBackend` does), so a reader may be created in the parent
    and used in DataLoader workers (forked or spawned: the open handle is not pickled).

    `get(key)` returns the frame exactly as `cv2.imdecode(buf, IMREAD_UNCHANGED)` does for PNG
    values (BGR(A), uint8 or uint16, HxW for gray), and an HxWxC uint8 BGR array for the raw
    buffers of original-EDVR DBs. `keys()` lists keys in meta-info order; `shape(key)` is the
    (h, w, c) recorded there. `key_style` is 'basicsr', 'mmagic' or 'edvr-old'.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._env = None
        self._pid = None
        if not (self.path / "data.mdb").is_file():
            raise InputError(f"not an LMDB folder (no data.mdb): {self.path}")
        if (self.path / INCOMPLETE_MARKER).exists():
            raise InputError(f"incomplete LMDB (interrupted `vsrdata to-lmdb` build): {self.path}; "
                             f"re-run the build to finish it")
        self.raw = False
        self._resolution: tuple[int, int, int] | None = None
        if (self.path / META_TXT).is_file():
            self._keys, self._shapes = parse_meta_txt(self.path / META_TXT)
            slash = any("/" in k for k in self._keys[:1000])
            self.key_style = "basicsr" if slash or not self._keys else "mmagic"
        elif (self.path / META_PKL).is_file():
            self._load_pkl(self.path / META_PKL)
            self.key_style = "edvr-old"
            self.raw = True
        else:
            raise InputError(f"LMDB folder has neither {META_TXT} nor {META_PKL}: {self.path}")

    # -- original EDVR (`codes/data_scripts/create_lmdb_mp.py`): raw buffers + meta_info.pkl
    def _load_pkl(self, pkl: Path) -> None:
        try:
            with open(pkl, "rb") as fh:
                meta = _MetaPklUnpickler(fh).load()
        except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise InputError(f"cannot read {pkl}: {exc}") from None
        if not isinstance(meta, dict) or "keys" not in meta or "resolution" not in meta:
            raise InputError(f"{pkl}: expected a dict with 'keys' and 'resolution'")
        keys = meta["keys"]
        if isinstance(keys, (set, frozenset)):  # EDVR-old Vimeo90K stores an unordered set
            from vsrdata.core.layouts import natural_key

            keys = sorted(keys, key=natural_key)
        keys = [k.decode("ascii") if isinstance(k, bytes) else str(k) for k in keys]
        res = meta["resolution"]
        if isinstance(res, (list, tuple)):
            if len(res) != len(keys):
                raise InputError(f"{pkl}: {len(res)} resolutions for {len(keys)} keys")
            cache: dict = {}
            shapes = {k: cache.setdefault(r, _parse_resolution(r, str(pkl))) for k, r in zip(keys, res)}
        else:
            one = _parse_resolution(res, str(pkl))
            shapes = dict.fromkeys(keys, one)
        # EDVR-old Vimeo90K lists clip keys ('00001_0001') while the values are stored per
        # frame ('00001_0001_4'): then list the frame keys found in the DB instead.
        env = self._open()
        with env.begin() as txn:
            if keys and txn.get(keys[0].encode("ascii")) is None:
                from vsrdata.core.layouts import natural_key

                clip_shape = shapes[keys[0]]
                with txn.cursor() as cur:
                    db_keys = [k.decode("ascii") for k in cur.iternext(keys=True, values=False)]
                keys = sorted(db_keys, key=natural_key)
                shapes = dict.fromkeys(keys, clip_shape) if not isinstance(res, (list, tuple)) else {
                    k: shapes.get(k.rsplit("_", 1)[0], clip_shape) for k in keys}
        self._keys, self._shapes = keys, shapes

    def _open(self):
        pid = os.getpid()
        if self._env is None or self._pid != pid:
            self._env = _shared_env(self.path)
            self._pid = pid
        return self._env

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_env"] = None
        state["_pid"] = None
        return state

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: str) -> bool:
        return key in self._shapes

    def keys(self) -> list[str]:
        """All keys in meta-info order (a copy)."""
        return list(self._keys)

    def shape(self, key: str) -> tuple[int, ...]:
        """(h, w, c) as recorded in the meta info (c=1 for gray frames)."""
        try:
            return self._shapes[key]
        except KeyError:
            raise InputError(f"key {key!r} is not in the meta info of {self.path}") from None

    def get_bytes(self, key: str) -> bytes:
        """The stored value of `key` (PNG bytes, or the raw pixel buffer for edvr-old)."""
        env = self._open()
        try:
            with env.begin(write=False) as txn:
                value = txn.get(key.encode("ascii"))
        except lmdb.Error as exc:  # MDB_CORRUPTED on a damaged page: one line naming DB and key
            raise self.damaged(exc, key) from None
        if value is None:
            raise InputError(f"key {key!r} not found in LMDB {self.path}")
        return value

    def get(self, key: str) -> np.ndarray:
        """The frame stored under `key` (see the class docstring for dtype and layout)."""
        value = self.get_bytes(key)
        if self.raw:
            h, w, c = self.shape(key)
            if len(value) != h * w * c:
                raise InputError(f"value of {key!r} in {self.path} has {len(value)} bytes, "
                                 f"expected {h}*{w}*{c} for its resolution")
            return np.frombuffer(value, dtype=np.uint8).reshape(h, w, c).copy()
        return decode_image(value, f"{self.path}:{key}")

    def iter_stored_keys(self) -> Iterable[str]:
        """Every key stored in the DB, in LMDB's byte order (not meta order)."""
        try:
            with self._open().begin() as txn, txn.cursor() as cur:
                for k in cur.iternext(keys=True, values=False):
                    yield k.decode("ascii", "replace")
        except lmdb.Error as exc:
            raise self.damaged(exc) from None

    def damaged(self, exc: Exception, key: str | None = None) -> InputError:
        """The one-line error for an lmdb.Error met while reading (a damaged B-tree page)."""
        where = f" (reading key {key!r})" if key else ""
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        return InputError(f"LMDB {self.path} is damaged{where}: {reason}; rebuild it or restore a copy")

    def unlisted_keys(self) -> list[str]:
        """Keys stored in the DB but absent from the meta info (LMDB byte order)."""
        return [k for k in self.iter_stored_keys() if k not in self._shapes]

    def check_keys(self) -> None:
        """Raise InputError unless the meta info lists exactly the keys stored in the DB (a
        reader that trusts the meta info would otherwise drop or miss frames silently)."""
        stored = set(self.iter_stored_keys())
        missing = [k for k in self._keys if k not in stored]
        unlisted = sorted(k for k in stored if k not in self._shapes)
        for count, what, first in ((len(missing), "listed in the meta info but not stored", missing),
                                   (len(unlisted), "stored but not listed in the meta info", unlisted)):
            if count:
                raise InputError(f"{self.path}: {count} key(s) {what} (first: {', '.join(first[:5])}); "
                                 f"the meta info and the DB disagree: rebuild the DB")

    def close(self) -> None:
        if self._env is not None and self._pid == os.getpid():
            _release_env(self.path)
        self._env = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# One environment per (folder, process): py-lmdb refuses to open the same environment twice in
# one process, and several readers (e.g. a dataset and a verifier) may share a folder.
_ENVS: dict[tuple[str, int], list] = {}


def _shared_env(path: Path):
    pid = os.getpid()
    # After a fork (DataLoader workers) the parent's handles are useless here, and py-lmdb >= 3
    # refuses to reopen their files until they are closed in this process: close them first.
    for stale in [k for k in _ENVS if k[1] != pid]:
        try:
            _ENVS.pop(stale)[0].close()
        except lmdb.Error:  # pragma: no cover
            pass
    key = (os.path.realpath(path), pid)
    entry = _ENVS.get(key)
    if entry is None:
        check_not_truncated(path / "data.mdb")
        try:
            env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, subdir=True)
        except lmdb.Error as exc:
            raise InputError(f"cannot open LMDB {path}: {exc}") from None
        entry = _ENVS[key] = [env, 0]
    entry[1] += 1
    return entry[0]


# LMDB 0.9 data format (lmdb.h / mdb.c, 64-bit builds): pages 0 and 1 are meta pages; after a
# 16-byte page header a meta holds magic (u32), version (u32), address (8), map size (8), the
# free DB record (48 bytes; its first u32 is the page size) and the main DB record (48 bytes),
# then the last used page number (u64) and the transaction id (u64). The meta with the larger
# transaction id is the current one.
_META = struct.Struct("<II8xQI44x48xQQ")
_META_OFFSET = 16
_MDB_MAGIC = 0xBEEFC0DE


def check_not_truncated(data: Path) -> None:
    """Raise InputError if `data` (a data.mdb) is shorter than the last page its meta pages
    record. Reading such a file through the memory map would kill the process with SIGBUS at the
    first page past the end. Files in another format (other magic) are left to LMDB itself."""
    try:
        with open(data, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            first = _read_meta(fh, 0)
            if first is None:
                if size < _META_OFFSET + _META.size:
                    raise InputError(f"truncated LMDB file ({size} bytes, no meta page): {data}")
                return
            second = _read_meta(fh, first[0])
    except OSError as exc:
        raise InputError(f"cannot read {data}: {exc.strerror or exc}") from None
    psize, last_pg, _ = max((m for m in (first, second) if m is not None), key=lambda m: m[2])
    need = (last_pg + 1) * psize
    if size < need:
        raise InputError(f"truncated LMDB file: {data} has {size} bytes but its last page ends at "
                         f"byte {need} (copy interrupted or disk full?); rebuild or re-copy it")


def _read_meta(fh, offset: int) -> tuple[int, int, int] | None:
    """(page size, last page number, txn id) of the meta page at `offset`, or None."""
    fh.seek(offset + _META_OFFSET)
    raw = fh.read(_META.size)
    if len(raw) < _META.size:
        return None
    magic, _version, _mapsize, psize, last_pg, txnid = _META.unpack(raw)
    if magic != _MDB_MAGIC or psize < 512 or psize & (psize - 1):
        return None
    return psize, last_pg, txnid


def _release_env(path: Path) -> None:
    key = (os.path.realpath(path), os.getpid())
    entry = _ENVS.get(key)
    if entry is not None:
        entry[1] -= 1
        if entry[1] <= 0:
            del _ENVS[key]
            entry[0].close()
