"""`verify_lmdb`: check an LMDB folder (ours, BasicSR's, mmagic's or original EDVR's).

Every meta-info key must be stored, decode and have its recorded shape, and every stored key
must be listed in the meta info (a trainer reading the meta info would silently never see an
unlisted one). Keys are checked in chunks of 64 in the runner's pool (`runner.map_ordered`).
"""

from __future__ import annotations

import os
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from vsrdata.core.lmdb.reader import LmdbReader
from vsrdata.errors import VsrDataError
from vsrdata.pipelines.runner import available_cores, map_ordered
from vsrdata.progress import Progress, Reporter, check_progress


@dataclass
class VerifyReport:
    """Outcome of `verify_lmdb`: `problems` holds one line per bad key (empty = all good)."""

    db: Path
    key_style: str
    keys: int = 0
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    extra_keys: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        status = "OK" if self.ok else f"{len(self.problems)} problem(s)"
        extra = f", {self.extra_keys} keys in the DB not listed in the meta info" if self.extra_keys else ""
        return (f"{self.db}: {self.checked}/{self.keys} keys checked ({self.key_style}): {status}{extra} "
                f"in {self.seconds:.1f} s")


_READERS: dict = {}  # one reader per DB in each worker process


def _verify_one(reader, key: str) -> str | None:
    """None if `key` is present, decodes and matches its recorded shape, else a message."""
    expected = reader.shape(key)
    try:
        img = reader.get(key)
    except VsrDataError as exc:
        return str(exc)
    got = img.shape if img.ndim == 3 else (*img.shape, 1)
    if tuple(got) != tuple(expected):
        return f"{key}: decoded shape {tuple(got)} but the meta info says {tuple(expected)}"
    return None


def _verify_chunk(item: tuple[str, list[str]]) -> list[str]:
    """Pool job: the problems of one (db, keys) chunk."""
    db, keys = item
    reader = _READERS.get(db) or _READERS.setdefault(db, LmdbReader(db))
    return [m for m in (_verify_one(reader, k) for k in keys) if m]


def verify_lmdb(db: str | os.PathLike, *, workers: int | None = None,
                progress: Progress = False) -> VerifyReport:
    """Check that DB's meta info and stored keys agree and that every key decodes to its recorded
    shape. Keys stored but not listed in the meta info are one problem (a trainer reading the
    meta info would silently never see them).

    Works on our DBs and on BasicSR / mmagic / original-EDVR ones. Raises InputError if DB
    cannot be opened at all (not an LMDB folder, incomplete build, no meta info, truncated).
    `progress` counts keys (task 'lmdb-verify'): `vsrdata.progress`.

    Example::

        from vsrdata import verify_lmdb
        report = verify_lmdb("REDS/train_sharp_with_val.lmdb")
        print(report.line())
    """
    start = time.perf_counter()
    check_progress(progress)
    reader = LmdbReader(db)
    keys = reader.keys()
    report = VerifyReport(db=Path(db), key_style=reader.key_style, keys=len(keys))
    workers = max(1, min(workers or available_cores(), max(1, len(keys) // 64)))
    chunk = 64
    chunks = ((str(db), keys[i:i + chunk]) for i in range(0, len(keys), chunk))
    _READERS[str(db)] = reader
    try:
        with closing(map_ordered(_verify_chunk, chunks, workers=workers)) as results, \
                Reporter(progress, "lmdb-verify", "key", len(keys)) as bar:
            for (_, part), problems in results:
                report.checked += len(part)
                report.problems.extend(problems)
                bar.to(report.checked)
        unlisted = reader.unlisted_keys()
    finally:
        _READERS.pop(str(db), None)
        reader.close()
    report.extra_keys = len(unlisted)
    if unlisted:
        report.problems.append(f"{len(unlisted)} key(s) stored in the DB are not listed in its meta info "
                               f"(first: {', '.join(unlisted[:5])})")
    report.seconds = time.perf_counter() - start
    return report
