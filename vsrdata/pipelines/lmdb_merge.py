"""Join the N shard DBs of `to-lmdb --shard I/N` into the DB one unsharded build writes.

Shard I holds frames k of the build plan with k mod N == I, in plan order, and records (I, N),
the plan's frame count, key style and PNG level in `vsrdata_shard.json`. The merge therefore
reads the shards round-robin (frame k comes from shard k mod N): the merged `meta_info.txt`
lists the keys in the order a single build writes, and since values are copied byte for byte
the merged DB has the same key/value set and meta file as a single build of the same source.

Streaming, constant memory: the meta files are read a line at a time, each value is read from
its shard's memory map and put through `LmdbWriter` (batched commits, map grown on demand,
resumable after a kill, one writer per DB). A key found in two shards is an error naming it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import lmdb

from vsrdata.core.lmdb.keys import INCOMPLETE_MARKER, META_TXT, SHARD_FILE, iter_meta_txt
from vsrdata.core.lmdb.reader import check_not_truncated
from vsrdata.core.lmdb.writer import DuplicateKeyError, LmdbWriter
from vsrdata.errors import InputError, OutputError

_MIB = 1 << 20


@dataclass
class MergeSummary:
    db: Path
    shards: int
    keys: int = 0
    written: int = 0
    kept: int = 0
    bytes_written: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.bytes_written / _MIB / self.seconds if self.seconds > 0 else 0.0
        kept = f", {self.kept} kept from the interrupted run" if self.kept else ""
        return (f"{self.db}: {self.keys} keys from {self.shards} shards, {self.written} written{kept}, "
                f"{self.bytes_written / _MIB:.1f} MiB in {self.seconds:.1f} s ({rate:.1f} MiB/s)")


def read_shard_record(db: Path) -> dict:
    """The `vsrdata_shard.json` of a finished shard DB (InputError naming the folder otherwise)."""
    if (db / INCOMPLETE_MARKER).exists():
        raise InputError(f"shard {db} is an unfinished build; re-run its shard build to finish it")
    if not (db / "data.mdb").is_file() or not (db / META_TXT).is_file():
        raise InputError(f"not a finished LMDB folder (no data.mdb / {META_TXT}): {db}")
    try:
        record = json.loads((db / SHARD_FILE).read_text())
        record["shard"] = tuple(int(v) for v in record["shard"])
        int(record["frames"]), record["key_style"], int(record["compress_level"])
    except FileNotFoundError:
        raise InputError(f"{db} is not a shard DB (no {SHARD_FILE}; build it as shard I of N)") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"unreadable {db / SHARD_FILE}") from None
    return record


def _check_shards(shards: list[Path]) -> tuple[list[Path], dict]:
    """The shard DBs in shard order and their common record; InputError if they do not make
    one whole build (different N/source size/settings, a shard missing or given twice)."""
    records = [read_shard_record(db) for db in shards]
    first = records[0]
    count = first["shard"][1]
    common = ("frames", "key_style", "compress_level")
    for db, rec in zip(shards, records):
        if rec["shard"][1] != count or any(rec[k] != first[k] for k in common):
            raise InputError(f"{db} is shard {rec['shard'][0]}/{rec['shard'][1]} of a build of {rec['frames']} "
                             f"frames ({rec['key_style']}, level {rec['compress_level']}) but {shards[0]} is "
                             f"shard {first['shard'][0]}/{count} of {first['frames']} ({first['key_style']}, "
                             f"level {first['compress_level']}): not shards of one build")
    by_index: dict[int, Path] = {}
    for db, rec in zip(shards, records):
        if rec["shard"][0] in by_index:
            raise InputError(f"{by_index[rec['shard'][0]]} and {db} are both shard {rec['shard'][0]}/{count}")
        by_index[rec["shard"][0]] = db
    missing = [f"{i}/{count}" for i in range(count) if i not in by_index]
    if missing:
        raise InputError(f"shard(s) {', '.join(missing)} missing: pass all {count} shard DBs")
    return [by_index[i] for i in range(count)], first


def _round_robin(shards: list[Path], frames: int) -> Iterator[tuple[int, str, tuple[int, ...]]]:
    """(shard number, key, shape) of frame k = 0..frames-1 of the build plan, from the shards'
    meta files read in step; InputError if a shard holds more or fewer frames than its share."""
    metas = [iter_meta_txt(db / META_TXT) for db in shards]
    n = len(shards)
    for k in range(frames):
        entry = next(metas[k % n], None)
        if entry is None:
            raise InputError(f"{shards[k % n] / META_TXT} ends early: shard {k % n}/{n} of {frames} "
                             f"frames should list {len(range(k % n, frames, n))}")
        yield k % n, entry[0], entry[1]
    for i, meta in enumerate(metas):
        if next(meta, None) is not None:
            raise InputError(f"{shards[i] / META_TXT} lists more than its {len(range(i, frames, n))} frames")


class _ShardValues:
    """Values of the shard DBs by (shard, key), read from their memory maps (read-only)."""

    def __init__(self, shards: list[Path]):
        self.shards = shards
        self.envs, self.txns = [], []
        for db in shards:  # own environments: readahead on, the shards are read front to back
            check_not_truncated(db / "data.mdb")
            try:
                self.envs.append(lmdb.open(str(db), readonly=True, lock=False, readahead=True, subdir=True))
            except lmdb.Error as exc:
                self.close()
                raise InputError(f"cannot open LMDB {db}: {exc}") from None
        self.txns = [env.begin(buffers=True) for env in self.envs]

    def get(self, shard: int, key: str) -> bytes:
        value = self.txns[shard].get(key.encode("ascii"))
        if value is None:
            raise InputError(f"key {key!r} is listed in {self.shards[shard] / META_TXT} but not stored in the DB")
        return value

    def refetch(self, source: str) -> bytes:
        shard, _, key = source.partition(":")
        return self.get(int(shard), key)

    def close(self) -> None:
        for txn in self.txns:
            txn.abort()
        for env in self.envs:
            env.close()
        self.txns, self.envs = [], []


def _put(writer: LmdbWriter, values: _ShardValues, shards: list[Path], shard: int, key: str,
         shape: tuple[int, ...]) -> None:
    try:
        writer.put(key, values.get(shard, key), shape, f"{shard}:{key}")
    except DuplicateKeyError:
        raise InputError(f"key {key!r} of {shards[shard]} is also in an earlier shard: duplicate "
                         f"keys, the shards are not of one build") from None


def merge_lmdb(out: str | os.PathLike, shards: list[str | os.PathLike], *, overwrite: bool = False,
               commit_images: int = 1000, commit_bytes: int = 64 * _MIB,
               progress: Callable[[int, int], None] | None = None) -> MergeSummary:
    """Merge the shard DBs of one `to-lmdb --shard I/N` build into OUT (module docstring).

    Raises InputError (shards that do not make one build, a duplicate key, a damaged shard),
    OutputError (OUT unusable, is one of the shards, being built), ConfigError (bad options).
    """
    start = time.perf_counter()
    out = Path(out)
    paths = [Path(s) for s in shards]
    if not paths:
        raise InputError("no shard DBs given")
    for db in paths:
        if out.resolve() == db.resolve():
            raise OutputError(f"OUT {out} is one of the shards; choose another path")
    ordered, record = _check_shards(paths)
    summary = MergeSummary(db=out, shards=len(ordered), keys=record["frames"])
    settings = {"key_style": record["key_style"], "merged_shards": len(ordered)}
    values = _ShardValues(ordered)
    initial = sum((db / "data.mdb").stat().st_size for db in ordered) + 16 * _MIB
    try:
        with LmdbWriter(out, settings=settings, compress_level=record["compress_level"],
                        commit_images=commit_images, commit_bytes=commit_bytes, overwrite=overwrite,
                        initial_map_size=initial, refetch=values.refetch, metasync=False) as writer:
            resuming = writer.resumed  # an interrupted merge committed a prefix of the plan
            for done, (shard, key, shape) in enumerate(_round_robin(ordered, record["frames"]), 1):
                resuming = resuming and writer.stored_shape_and_depth(key) is not None
                if resuming:
                    writer.add_existing(key, shape)
                else:
                    _put(writer, values, ordered, shard, key, shape)
                if progress is not None:
                    progress(done, record["frames"])
            writer.finish()
            summary.written, summary.kept = writer.written, writer.existing
            summary.bytes_written = writer.bytes_written
    finally:
        values.close()
    summary.seconds = time.perf_counter() - start
    return summary
