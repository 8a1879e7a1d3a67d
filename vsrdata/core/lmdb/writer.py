"""`LmdbWriter`: a streaming, resumable LMDB writer in the BasicSR format, one builder per DB.

Memory: the writer commits every `commit_images` values or `commit_bytes` bytes, whichever
comes first (the field commits every 5,000 images, and an LMDB write transaction keeps its dirty
pages in RAM until it commits). A `MapFullError` is answered by growing the map and replaying the
uncommitted batch; with a `refetch` callable the writer remembers only each value's source and
re-creates the value from it (rare), so peak memory is about `commit_bytes` (otherwise it keeps
the batch's values too: about twice that), whatever the size of the dataset.

Lock: the DB folder is locked (`core.locks.OutputLock`) from `__enter__` to `close()`; a second
writer of the same DB stops at once, naming the process that holds it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import lmdb

from vsrdata.core.image_io import png_header
from vsrdata.core.lmdb.files import (db_state, estimated_map_size, fsync_dir, grown_map_size, make_folder,
                                     marker_settings, open_for_write, remove_lmdb_files, start_map_size, trim,
                                     write_marker)
from vsrdata.core.lmdb.keys import _META_PARTIAL, _MIB, INCOMPLETE_MARKER, META_TXT, check_key, meta_line
from vsrdata.core.locks import OutputLock
from vsrdata.core.paths import os_problem
from vsrdata.errors import ConfigError, InputError, OutputError


class DuplicateKeyError(InputError):
    """A key put twice into one LMDB."""


class KeyOrderError(InputError):
    """A key put out of order into a writer in `append` mode."""


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
    - `append=True`: keys arrive in strictly increasing byte order and are stored with LMDB's
      MDB_APPEND (no B-tree search, no page split: leaf pages are filled in order). A key not
      greater than the previous one is refused (`DuplicateKeyError` if equal, else `KeyOrderError`).
      A resumed append build continues after `last_key()`. The DB is the same key/value set as
      one written in any order; only `meta_info.txt` keeps an order, so `put(..., shape=None)`
      writes no meta line and `add_meta(key, shape)` writes them in the order the file lists.
    - `writemap=True`: values are copied straight into the file's memory map (LMDB's
      MDB_WRITEMAP) instead of private dirty pages: one copy fewer, and a batch costs page cache,
      not process memory, so large `commit_bytes` are cheap. LMDB sizes the file to the map while
      it is open; `finish()` trims it back to the used pages.

    Call `put(key, png_bytes, shape, source)` for new values and `add_existing(key, shape)` for values a
    previous run committed, in the order `meta_info.txt` should list them.
    """

    def __init__(self, path: str | os.PathLike, *, settings: dict | None = None,
                 compress_level: int = 1, map_size: int | None = None,
                 commit_images: int = 1000, commit_bytes: int = 64 * _MIB,
                 overwrite: bool = False, expected_items: int | None = None,
                 initial_map_size: int = 64 * _MIB, refetch: Callable[[str], bytes] | None = None,
                 metasync: bool = True, append: bool = False, writemap: bool = False):
        if commit_images < 1 or commit_bytes < 1:
            raise ConfigError("commit_images and commit_bytes must be >= 1")
        if map_size is not None and map_size < _MIB:
            raise ConfigError(f"map_size must be at least 1 MiB, got {map_size}", option="map_size")
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
        self.append = append
        self.writemap = writemap
        self._last: bytes | None = None  # append mode: the greatest key put so far
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
            raise OutputError(f"{self.path} is a finished LMDB; overwrite it to rebuild it", option="overwrite")
        if state == "incomplete" and not self.overwrite:
            old = marker_settings(self.path)
            if old != self.settings:
                raise ConfigError(f"{self.path} is an interrupted build started with settings {old}; "
                                  f"this run asks for {self.settings}: re-run with the same options to "
                                  f"resume it, or overwrite it to start again", option="overwrite")
            self.resumed = True
        elif state in ("finished", "incomplete"):  # overwrite: remove only the LMDB's own files
            remove_lmdb_files(self.path)
        make_folder(self.path)
        if not self.resumed:
            write_marker(self.path, self.settings)

    def __enter__(self) -> "LmdbWriter":
        if db_state(self.path) == "other":  # refuse a foreign folder before putting a lock in it
            raise OutputError(f"{self.path} exists and is not an LMDB folder; choose another DB path")
        make_folder(self.path)
        self._lock = OutputLock(self.path, "DB").acquire()  # held until close(): one builder per DB
        try:
            self._prepare_folder()
        except BaseException:
            self.close()
            raise
        size = start_map_size(self.path, self.fixed_map_size or self.initial_map_size, self.fixed_map_size is not None)
        try:
            # meminit=False: LMDB need not zero its page buffers; sync stays on (durable commits).
            self._env = open_for_write(self.path, size, self.metasync, self.writemap)
            self._txn = self._env.begin(write=True)
            self._last = self.last_key()
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
        try:
            self.close()
        except OSError as err:  # e.g. flushing the partial meta info on a full disk
            if exc is None:
                raise OutputError(f"cannot write LMDB {self.path}: {os_problem(err)}") from None
        if isinstance(exc, OSError) and not getattr(exc, "filename", None):  # ENOSPC from a write names no file
            raise OutputError(f"cannot write LMDB {self.path}: {os_problem(exc)}") from None
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
        meta, self._meta = self._meta, None
        try:
            if meta is not None:
                meta.close()
        finally:  # the lock is released even when the last flush fails
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
        head = png_header(value)
        if head is None:
            raise OutputError(f"value of {key!r} in {self.path} is not a PNG this writer made; overwrite "
                              f"the LMDB to rebuild it", option="overwrite")
        h, w, c, dtype = head
        return (h, w, c), 16 if dtype == "uint16" else 8

    def last_key(self) -> bytes | None:
        """The greatest key stored so far (None for an empty DB): where a resumed append build continues."""
        with self._txn.cursor() as cur:
            return bytes(cur.key()) if cur.last() else None

    def entries(self) -> int:
        """The number of keys committed (by earlier runs and this one)."""
        return self._env.stat()["entries"]

    def add_meta(self, key: str, shape: tuple[int, ...]) -> None:
        """Write the meta_info.txt line of `key` (append mode: meta order is not put order)."""
        self._write_meta(key, shape)

    def add_existing(self, key: str, shape: tuple[int, ...]) -> None:
        """Record a key kept from an earlier run (only its meta_info line is written)."""
        self._write_meta(key, shape)
        self.existing += 1

    def put(self, key: str, value: bytes, shape: tuple[int, ...] | None, source: str = "") -> None:
        """Add one value and (unless `shape` is None) its meta line; commits when the batch
        reaches `commit_images` or `commit_bytes`."""
        kb = check_key(key, source)
        if self.refetch is not None and not source:
            raise ValueError("put() needs `source` when the writer has a refetch callable")
        if self.append:
            self._check_order(kb, source or key)
        if not self._estimated:
            self._estimate_map(len(value))
        self._put_one(kb, value, source or key)
        self._batch.append((kb, value if self.refetch is None else source))
        self._batch_bytes += len(value)
        if shape is not None:
            self._write_meta(key, shape)
        self.written += 1
        self.bytes_written += len(value)
        if len(self._batch) >= self.commit_images or self._batch_bytes >= self.commit_bytes:
            self.commit()

    def _check_order(self, kb: bytes, source: str) -> None:
        if self._last is not None and kb <= self._last:
            kind = DuplicateKeyError if kb == self._last else KeyOrderError
            raise kind(f"LMDB key {kb.decode()!r} (from {source}) is not after the previous key "
                       f"{self._last.decode()!r} in {self.path}: an append build takes keys in increasing byte order")
        self._last = kb

    def _put_one(self, kb: bytes, value: bytes, source: str) -> None:
        while True:
            try:
                if not self._txn.put(kb, value, overwrite=False, append=self.append):
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
                self._txn.put(kb, value, overwrite=False, append=self.append)
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
            raise OutputError(f"LMDB map of {self.path} is full at the fixed map_size of {self.fixed_map_size} "
                              f"bytes; re-run with a larger map_size (or none, to grow on demand)", option="map_size")
        old = self._env.info()["map_size"]
        new = grown_map_size(old, self._batch_bytes + extra)
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
        want = estimated_map_size(used, first_value_bytes, self.expected_items)
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
        used = (self._env.info()["last_pgno"] + 1) * self._env.stat()["psize"]
        try:
            self._env.sync(True)
        except lmdb.Error as exc:
            raise self._write_error(exc) from None
        if self.writemap:  # LMDB grew the file to the whole map: give the unused tail back
            self._env.close()
            self._env = None
            trim(self.path / "data.mdb", used)
        meta_path = self.path / META_TXT
        try:
            self._meta.flush()
            os.fsync(self._meta.fileno())
            self._meta.close()
            self._meta = None
            os.replace(self.path / _META_PARTIAL, meta_path)
            (self.path / INCOMPLETE_MARKER).unlink()
            fsync_dir(self.path)
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

