"""The LMDB folder on disk for `LmdbWriter`: its state, the build marker, opening it for writing,
map sizes (start estimate, growth), trimming `data.mdb` and durable directory updates."""

from __future__ import annotations

import json
import os
from pathlib import Path

import lmdb

from vsrdata.core.image_io import write_bytes_atomic
from vsrdata.core.lmdb.keys import _LMDB_FILES, _MIB, INCOMPLETE_MARKER
from vsrdata.core.lmdb.reader import _ENVS
from vsrdata.core.locks import LOCK_NAME
from vsrdata.errors import OutputError


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


def marker_settings(path: Path) -> dict | None:
    """The settings stored in the incomplete marker of the DB folder `path` (None if unreadable)."""
    try:
        return json.loads((path / INCOMPLETE_MARKER).read_text()).get("settings", {})
    except (OSError, ValueError):
        return None


def write_marker(path: Path, settings: dict) -> None:
    """Write the incomplete marker (with the build's `settings`) into the DB folder `path`."""
    marker = {"format": "vsrdata-lmdb-build/1", "settings": settings}
    write_bytes_atomic(path / INCOMPLETE_MARKER, (json.dumps(marker) + "\n").encode())


def remove_lmdb_files(path: Path) -> None:
    """Remove only the LMDB's own files from the folder `path` (an overwrite)."""
    for name in _LMDB_FILES:
        try:
            (path / name).unlink()
        except FileNotFoundError:
            pass


def make_folder(path: Path) -> None:
    """Create the DB folder (and its parents); an OutputError naming it if that fails."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create LMDB folder {path}: {exc.strerror or exc}") from None


def start_map_size(path: Path, size: int, fixed: bool) -> int:
    """The map size to open `path` with: `size`, or for a growing map at least the existing
    data.mdb + 25% + 16 MiB (a resumed build), rounded up to whole MiB."""
    data = path / "data.mdb"
    if not fixed and data.exists():
        size = max(size, int(data.stat().st_size * 1.25) + 16 * _MIB)
    return round_mib(size)


def grown_map_size(old: int, pending_bytes: int) -> int:
    """The next map size after a full map: double it, or more if `pending_bytes` need it."""
    return round_mib(max(old * 2, old + 2 * pending_bytes + 16 * _MIB))


def estimated_map_size(used: int, first_value_bytes: int, expected_items: int) -> int:
    """A modest measured start: the first PNG's size x the items still to come, +25%."""
    return round_mib(used + int(first_value_bytes * 1.25) * expected_items + 16 * _MIB)


def open_for_write(path: Path, map_size: int, metasync: bool = True, writemap: bool = False):
    """Open (create) the environment for writing in LMDB 0.9's data format, which every reader
    in the field (py-lmdb 1.x under BasicSR / mmagic) understands. py-lmdb >= 3 bundles LMDB
    1.0 too and takes `lib_version`; older releases only have 0.9 and lack the argument."""
    key = (os.path.realpath(path), os.getpid())
    if key in _ENVS:  # a reader of this process still holds the old DB open: drop it
        _ENVS.pop(key)[0].close()
    kwargs = dict(map_size=map_size, subdir=True, meminit=False, max_dbs=0, metasync=metasync, writemap=writemap)
    try:
        return lmdb.open(str(path), lib_version=0, **kwargs)
    except TypeError:  # pragma: no cover - py-lmdb < 3
        return lmdb.open(str(path), **kwargs)


def trim(data: Path, used: int) -> None:
    """Cut data.mdb to its `used` bytes (pages past LMDB's last page hold nothing; a crash that
    loses the cut only leaves the file longer, which LMDB accepts: no fsync needed)."""
    try:
        with open(data, "r+b") as fh:
            if os.fstat(fh.fileno()).st_size > used:
                fh.truncate(used)
    except OSError as exc:
        raise OutputError(f"cannot trim {data}: {exc.strerror or exc}") from None


def round_mib(n: int) -> int:
    """`n` rounded up to whole MiB."""
    return -(-int(n) // _MIB) * _MIB


def fsync_dir(path: Path) -> None:
    """Make renames/removals in the folder `path` durable (a no-op where unsupported)."""
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
