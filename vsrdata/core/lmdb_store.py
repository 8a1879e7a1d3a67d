"""LMDB image stores: a streaming, resumable writer and a reader for the field's three formats.

Format written (BasicSR `basicsr/utils/lmdb_util.py` convention, also read by mmagic):

- a folder `NAME.lmdb/` holding `data.mdb`, `lock.mdb` and `meta_info.txt`;
- value = PNG bytes of the BGR(A) frame as `cv2.imencode('.png', img, [PNG_COMPRESSION, level])`
  writes them (level 1 by default), i.e. `image_io.encode_png`;
- key = ASCII of the frame's path relative to the root without extension (`000/00000000`,
  `00001/0001/im4`), or the mmagic underscore form (`000_00000000`, `00001_0001_4`);
- `meta_info.txt`: one line per value, in write order: `<key>.png (h,w,c) <level>`.

Formats read by `LmdbReader` (EDVR_SPEC section 4.4): the above with either key style (mmagic's
per-frame `meta_info.txt` with `(h, w, c)` spaces too), and the original EDVR format: values are
raw uint8 HWC BGR buffers and `meta_info.pkl` is a pickled dict `{'name', 'resolution', 'keys'}`
with `resolution` either one `'c_h_w'` string or a list of them (one per key).

Our own builds are marked incomplete by a `.vsrdata-incomplete` file from the first write until
the final commit and the atomic `meta_info.txt` rename; readers refuse such a folder.

Memory: `LmdbWriter` commits every `commit_images` values or `commit_bytes` bytes, whichever
comes first (the field commits every 5,000 images, and an LMDB write transaction keeps its dirty
pages in RAM until it commits). A `MapFullError` is answered by growing the map and replaying the
uncommitted batch; with a `refetch` callable the writer remembers only each value's source and
re-creates the value from it (rare), so peak memory is about `commit_bytes` (otherwise it keeps
the batch's values too: about twice that), whatever the size of the dataset.
"""

from __future__ import annotations

import builtins
import json
import os
import pickle
import re
import struct
from pathlib import Path
from typing import Callable, Iterable, Iterator

import lmdb
import numpy as np

from vsrdata.core.image_io import decode_image, write_bytes_atomic
from vsrdata.core.locks import LOCK_NAME, OutputLock
from vsrdata.errors import ConfigError, InputError, OutputError

KEY_STYLES = ("basicsr", "mmagic")
META_TXT = "meta_info.txt"
META_PKL = "meta_info.pkl"
INCOMPLETE_MARKER = ".vsrdata-incomplete"
_META_PARTIAL = ".meta_info.txt.partial"
SHARD_FILE = "vsrdata_shard.json"  # in a `to-lmdb --shard I/N` DB: which shard, of how many frames
_LMDB_FILES = ("data.mdb", "lock.mdb", META_TXT, META_PKL, INCOMPLETE_MARKER, _META_PARTIAL, SHARD_FILE)
_MAX_KEY_BYTES = 511  # LMDB's default mdb_env_get_maxkeysize()
_MIB = 1 << 20
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type -> channels of cv2.imdecode(IMREAD_UNCHANGED) (gray, BGR, palette->BGR, GA->BGRA, BGRA).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 4, 6: 4}
_VIMEO_FRAME = re.compile(r"^im(\d+)$")
_META_LINE = re.compile(r"^(?P<name>\S+)\s+\((?P<shape>\s*\d+\s*(?:,\s*\d+\s*)*)\)(?:\s+(?P<level>\d+))?\s*$")


class DuplicateKeyError(InputError):
    """A key put twice into one LMDB."""


# ----------------------------------------------------------------------------------- keys / meta
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


def png_header_shape(data: bytes | memoryview) -> tuple[tuple[int, int, int], int] | None:
    """((h, w, c), bit_depth) read from a PNG's IHDR chunk without decoding, or None if `data`
    is not a PNG. `c` is the channel count cv2.imdecode(IMREAD_UNCHANGED) returns."""
    head = bytes(data[:26])
    if len(head) < 26 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    depth, colour = head[24], head[25]
    return (height, width, _PNG_CHANNELS.get(colour, 3)), depth


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
        keys.append(key)
        shapes[key] = shape_cache.setdefault(shape, shape)
    return keys, shapes


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


# ------------------------------------------------------------------------------------- reader
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
        with env.begin(write=False) as txn:
            value = txn.get(key.encode("ascii"))
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
        with self._open().begin() as txn, txn.cursor() as cur:
            for k in cur.iternext(keys=True, values=False):
                yield k.decode("ascii", "replace")

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


# ------------------------------------------------------------------------------------- writer
def db_state(path: str | os.PathLike) -> str:
    """'missing', 'empty' (an empty folder), 'incomplete' (our interrupted build), 'finished'
    (an LMDB folder without our marker) or 'other' (a file, or a folder with other content)."""
    path = Path(path)
    if not path.exists():
        return "missing"
    if not path.is_dir():
        return "other"
    names = {p.name for p in path.iterdir()} - {LOCK_NAME}
    if not names:
        return "empty"
    if INCOMPLETE_MARKER in names:
        return "incomplete"
    if "data.mdb" in names and names <= set(_LMDB_FILES):
        return "finished"
    return "other"


class LmdbWriter:
    """Write one LMDB folder in BasicSR's format, streaming, with batched commits, on-demand map
    growth and resume (use as a context manager, then call `finish()`).

    - `settings`: options that decide the values/keys (e.g. key style, compress level); they
      are stored in the incomplete marker and a resumed build must use the same ones.
    - `map_size`: a fixed map size in bytes (then a full map is an error); None = start from
      `initial_map_size` (or an estimate from the first value and `expected_items`) and grow
      on demand (abort, enlarge, replay the uncommitted batch).
    - resume: an incomplete DB (our marker present) is continued: `stored_shape_and_depth(key)` tells
      which keys are already committed; a finished DB is refused unless `overwrite`.

    - `refetch(source) -> bytes`: re-creates the value `put(..., source=...)` was given (e.g.
      re-read and re-encode the frame), so the batch need not be kept in RAM for a replay.
    - `metasync=False`: one flush per commit instead of two (LMDB's MDB_NOMETASYNC: the data
      pages are flushed, the meta page is left to the OS). Integrity is kept; only an operating
      system crash (not a kill) can undo the last commit, which a re-run then redoes.

    Call `put(key, png_bytes, shape, source)` for new values and `add_existing(key, shape)` for values a
    previous run committed, in the order `meta_info.txt` should list them.
    """

    def __init__(self, path: str | os.PathLike, *, settings: dict | None = None,
                 compress_level: int = 1, map_size: int | None = None,
                 commit_images: int = 1000, commit_bytes: int = 64 * _MIB,
                 overwrite: bool = False, expected_items: int | None = None,
                 initial_map_size: int = 64 * _MIB, refetch: Callable[[str], bytes] | None = None,
                 metasync: bool = True):
        if commit_images < 1 or commit_bytes < 1:
            raise ConfigError("commit_images and commit_bytes must be >= 1")
        if map_size is not None and map_size < _MIB:
            raise ConfigError(f"--map-size must be at least 1 MiB, got {map_size}")
        self.path = Path(path)
        self.settings = dict(settings or {})
        self.settings["compress_level"] = int(compress_level)
        self.compress_level = int(compress_level)
        self.fixed_map_size = map_size
        self.commit_images = commit_images
        self.commit_bytes = commit_bytes
        self.overwrite = overwrite
        self.expected_items = expected_items
        self.initial_map_size = initial_map_size
        self.refetch = refetch
        self.metasync = metasync
        self.resumed = False
        self.written = 0          # values put by this run
        self.existing = 0         # values committed by an earlier run and kept
        self.committed = 0        # values committed by this run
        self.bytes_written = 0
        self.commits = 0
        self.map_growths = 0
        self._env = None
        self._txn = None
        self._batch: list[tuple[bytes, bytes | str]] = []  # (key, value or its source)
        self._batch_bytes = 0
        self._meta = None
        self._lock: OutputLock | None = None
        self._estimated = map_size is not None

    # -- setup
    def _prepare_folder(self) -> None:
        state = db_state(self.path)
        if state == "other":
            raise OutputError(f"{self.path} exists and is not an LMDB folder; choose another DB path")
        if state == "finished" and not self.overwrite:
            raise OutputError(f"{self.path} is a finished LMDB; pass --overwrite to rebuild it")
        if state == "incomplete" and not self.overwrite:
            marker = self.path / INCOMPLETE_MARKER
            try:
                old = json.loads(marker.read_text()).get("settings", {})
            except (OSError, ValueError):
                old = None
            if old != self.settings:
                raise ConfigError(f"{self.path} is an interrupted build started with settings {old}; "
                                  f"this run asks for {self.settings}: re-run with the same options to "
                                  f"resume it, or pass --overwrite to start again")
            self.resumed = True
        elif state in ("finished", "incomplete"):  # overwrite: remove only the LMDB's own files
            for name in _LMDB_FILES:
                try:
                    (self.path / name).unlink()
                except FileNotFoundError:
                    pass
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create LMDB folder {self.path}: {exc.strerror or exc}") from None
        if not self.resumed:
            marker = {"format": "vsrdata-lmdb-build/1", "settings": self.settings}
            write_bytes_atomic(self.path / INCOMPLETE_MARKER, (json.dumps(marker) + "\n").encode())

    def __enter__(self) -> "LmdbWriter":
        if db_state(self.path) == "other":  # refuse a foreign folder before putting a lock in it
            raise OutputError(f"{self.path} exists and is not an LMDB folder; choose another DB path")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create LMDB folder {self.path}: {exc.strerror or exc}") from None
        self._lock = OutputLock(self.path, "DB").acquire()  # held until close(): one builder per DB
        try:
            self._prepare_folder()
        except BaseException:
            self.close()
            raise
        size = self.fixed_map_size or self.initial_map_size
        data = self.path / "data.mdb"
        if self.fixed_map_size is None and data.exists():
            size = max(size, int(data.stat().st_size * 1.25) + 16 * _MIB)
        try:
            # meminit=False: LMDB need not zero its page buffers; sync stays on (durable commits).
            self._env = _open_for_write(self.path, _round_mib(size), self.metasync)
            self._txn = self._env.begin(write=True)
            self._meta = open(self.path / _META_PARTIAL, "w", encoding="ascii")
        except lmdb.Error as exc:
            self.close()
            raise OutputError(f"cannot open LMDB {self.path}: {exc}") from None
        except OSError as exc:
            self.close()
            raise OutputError(f"cannot write {self.path / _META_PARTIAL}: {exc.strerror or exc}") from None
        return self

    def __exit__(self, exc_type, exc, tb):
        # On any error keep what was put so far (it is valid and ordered): commit it, leave the
        # incomplete marker, so that a re-run resumes after the last good value.
        if exc_type is not None and self._txn is not None:
            try:
                self.commit()
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
        self.close()
        return False

    def close(self) -> None:
        """Release everything, the DB's lock last (its file is removed: none is left behind
        except by a killed process, harmlessly, since the lock itself dies with the process)."""
        if self._txn is not None:
            try:
                self._txn.abort()
            except lmdb.Error:
                pass
            self._txn = None
        if self._env is not None:
            self._env.close()
            self._env = None
        if self._meta is not None:
            self._meta.close()
            self._meta = None
        if self._lock is not None:
            self._lock.release(remove=True)
            self._lock = None

    # -- writing
    def stored_shape_and_depth(self, key: str) -> tuple[tuple[int, int, int], int] | None:
        """((h, w, c), bit depth) of `key` if an earlier run of this build committed it, else None."""
        if not self.resumed:
            return None
        value = self._txn.get(key.encode("ascii"))
        if value is None:
            return None
        head = png_header_shape(value)
        if head is None:
            raise OutputError(f"value of {key!r} in {self.path} is not a PNG; rebuild with --overwrite")
        return head

    def add_existing(self, key: str, shape: tuple[int, ...]) -> None:
        """Record a key kept from an earlier run (only its meta_info line is written)."""
        self._write_meta(key, shape)
        self.existing += 1

    def put(self, key: str, value: bytes, shape: tuple[int, ...], source: str = "") -> None:
        """Add one value; commits when the batch reaches `commit_images` or `commit_bytes`."""
        kb = check_key(key, source)
        if self.refetch is not None and not source:
            raise ValueError("put() needs `source` when the writer has a refetch callable")
        if not self._estimated:
            self._estimate_map(len(value))
        self._put_one(kb, value, source or key)
        self._batch.append((kb, value if self.refetch is None else source))
        self._batch_bytes += len(value)
        self._write_meta(key, shape)
        self.written += 1
        self.bytes_written += len(value)
        if len(self._batch) >= self.commit_images or self._batch_bytes >= self.commit_bytes:
            self.commit()

    def _put_one(self, kb: bytes, value: bytes, source: str) -> None:
        while True:
            try:
                if not self._txn.put(kb, value, overwrite=False):
                    raise DuplicateKeyError(f"duplicate LMDB key {kb.decode()!r} (from {source}): two frames "
                                     f"map to the same key")
                return
            except lmdb.MapFullError:
                self._grow(len(value))
                self._replay()
            except lmdb.Error as exc:
                raise self._write_error(exc) from None

    def _replay(self) -> None:
        """Re-put the uncommitted batch into a fresh transaction (after a map growth)."""
        for kb, item in self._batch:
            value = item if self.refetch is None else self.refetch(item)
            try:
                self._txn.put(kb, value, overwrite=False)
            except lmdb.MapFullError:
                self._grow(self._batch_bytes)
                return self._replay()
            except lmdb.Error as exc:
                raise self._write_error(exc) from None

    def _grow(self, extra: int) -> None:
        if self._txn is not None:
            self._txn.abort()
            self._txn = None
        if self.fixed_map_size is not None:
            raise OutputError(f"LMDB map of {self.path} is full at --map-size {self.fixed_map_size} "
                              f"bytes; re-run with a larger --map-size (or without it, to grow on demand)")
        old = self._env.info()["map_size"]
        new = _round_mib(max(old * 2, old + 2 * (self._batch_bytes + extra) + 16 * _MIB))
        self._env.set_mapsize(new)
        self.map_growths += 1
        self._txn = self._env.begin(write=True)

    def _estimate_map(self, first_value_bytes: int) -> None:
        """A modest measured start: the first PNG's size x the items still to come, +25%."""
        self._estimated = True
        if not self.expected_items:
            return
        info = self._env.info()
        used = (info["last_pgno"] + 1) * self._env.stat()["psize"]
        want = _round_mib(used + int(first_value_bytes * 1.25) * self.expected_items + 16 * _MIB)
        if want > info["map_size"] and not self._batch:
            self._txn.abort()
            self._env.set_mapsize(want)
            self._txn = self._env.begin(write=True)

    def commit(self) -> None:
        """Commit the current batch (a durable point a re-run resumes from)."""
        if self._txn is None:
            return
        if not self._batch:
            return
        while True:
            try:
                self._txn.commit()
                break
            except lmdb.MapFullError:  # the freelist can need pages at commit time
                self._txn = None  # LMDB frees a transaction whose commit failed
                self._grow(0)
                self._replay()
            except lmdb.Error as exc:
                self._txn = None
                raise self._write_error(exc) from None
        self.committed += len(self._batch)
        self.commits += 1
        self._batch.clear()
        self._batch_bytes = 0
        self._txn = self._env.begin(write=True)

    def _write_error(self, exc: Exception) -> OutputError:
        kept = self.existing + self.committed
        hint = ""
        if "Input/output error" in str(exc) or "No space" in str(exc):  # LMDB's short write = EIO
            try:
                import shutil

                hint = f" (disk full? {shutil.disk_usage(self.path).free / _MIB:.0f} MiB free)"
            except OSError:  # pragma: no cover
                hint = " (disk full?)"
        return OutputError(f"cannot write LMDB {self.path}: {exc}{hint}; the {kept} values committed "
                           f"before stay valid: free space / fix the cause and re-run to resume")

    def _write_meta(self, key: str, shape: tuple[int, ...]) -> None:
        try:
            self._meta.write(meta_line(key, shape, self.compress_level))
        except OSError as exc:
            raise OutputError(f"cannot write {self.path / _META_PARTIAL}: {exc.strerror or exc}") from None

    def finish(self) -> Path:
        """Final commit, then `meta_info.txt` (fsync + rename), then remove the incomplete marker.
        Returns the path of meta_info.txt."""
        self.commit()
        self._txn.abort()
        self._txn = None
        self._final_map_size = self._env.info()["map_size"]
        try:
            self._env.sync(True)
        except lmdb.Error as exc:
            raise self._write_error(exc) from None
        meta_path = self.path / META_TXT
        try:
            self._meta.flush()
            os.fsync(self._meta.fileno())
            self._meta.close()
            self._meta = None
            os.replace(self.path / _META_PARTIAL, meta_path)
            (self.path / INCOMPLETE_MARKER).unlink()
            _fsync_dir(self.path)
        except OSError as exc:
            raise OutputError(f"cannot write {meta_path}: {exc.strerror or exc}") from None
        self.close()
        return meta_path

    @property
    def map_size(self) -> int | None:
        """The current map size in bytes (after `finish()`: the final one)."""
        if self._env is not None:
            return self._env.info()["map_size"]
        return getattr(self, "_final_map_size", None)


def _open_for_write(path: Path, map_size: int, metasync: bool = True):
    """Open (create) the environment for writing in LMDB 0.9's data format, which every reader
    in the field (py-lmdb 1.x under BasicSR / mmagic) understands. py-lmdb >= 3 bundles LMDB
    1.0 too and takes `lib_version`; older releases only have 0.9 and lack the argument."""
    key = (os.path.realpath(path), os.getpid())
    if key in _ENVS:  # a reader of this process still holds the old DB open: drop it
        _ENVS.pop(key)[0].close()
    kwargs = dict(map_size=map_size, subdir=True, meminit=False, max_dbs=0, metasync=metasync)
    try:
        return lmdb.open(str(path), lib_version=0, **kwargs)
    except TypeError:  # pragma: no cover - py-lmdb < 3
        return lmdb.open(str(path), **kwargs)


def _round_mib(n: int) -> int:
    return -(-int(n) // _MIB) * _MIB


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - not supported on this platform
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


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
