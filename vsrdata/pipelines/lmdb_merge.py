"""Join the N shard DBs of `to-lmdb --shard I/N` into the DB one unsharded build writes.

Shard I holds frames k of the build plan with k mod N == I, in plan order, and records (I, N),
the plan's frame count, key style and PNG level in `vsrdata_shard.json`. The merged
`meta_info.txt` reads the shards' meta files round-robin (frame k comes from shard k mod N), so
it lists the keys in the order a single build writes. The values are copied byte for byte, so
the merged DB has the same key/value set and meta file as a single build of the same source.

An LMDB's content does not depend on insertion order, so the values are not put in meta
order (random places in the B-tree) but in key order: each shard's cursor yields its keys
sorted, a k-way merge of the N cursors yields all keys sorted, and `LmdbWriter(append=True)`
appends them (no B-tree search or page split), through the memory map (`writemap`) in large
durable commits. A key found in two shards meets itself in the merged stream: an error naming
it and both shards. An interrupted merge resumes after the last committed key.

Before any value is written each shard's meta file is checked against its DB: the same number
of keys and the same key multiset (a sum of 64-bit key hashes, constant memory); on a mismatch
a second pass names the key listed but not stored, listed twice, or stored but not listed.

Streaming, constant memory: meta files are read a line at a time, values straight from the
shards' memory maps; the write batch lives in the output's page cache, not in process memory.
"""

from __future__ import annotations

import heapq
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import lmdb

from vsrdata.core.lmdb.keys import INCOMPLETE_MARKER, META_TXT, SHARD_FILE, iter_meta_txt
from vsrdata.core.lmdb.reader import check_not_truncated
from vsrdata.core.lmdb.writer import LmdbWriter
from vsrdata.core.paths import refuse_inside
from vsrdata.errors import InputError
from vsrdata.progress import Progress, Reporter, check_progress

_MIB = 1 << 20
_HASH_MOD = 1 << 64


@dataclass
class MergeSummary:
    """What `merge_lmdb` did: the merged `db`, from `shards` shard DBs, `keys` in all (`written`
    now, `kept` from an interrupted merge), the value bytes written and the time taken."""

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


class _Shards:
    """The shard DBs opened read-only, one read transaction each, for the whole merge."""

    def __init__(self, shards: list[Path]):
        self.paths = shards
        self.envs, self.txns = [], []
        for db in shards:  # own environments: readahead on, the shards are read front to back
            check_not_truncated(db / "data.mdb")
            try:
                self.envs.append(lmdb.open(str(db), readonly=True, lock=False, readahead=True, subdir=True))
            except lmdb.Error as exc:
                self.close()
                raise InputError(f"cannot open LMDB {db}: {exc}") from None
        self.txns = [env.begin(buffers=True) for env in self.envs]  # values: zero-copy views of the maps

    def refetch(self, source: str) -> bytes:
        """The value behind a writer source 'I:key' (only read again after a map growth)."""
        shard, _, key = source.partition(":")
        return bytes(self.txns[int(shard)].get(key.encode("ascii")))

    def key_hash_sum(self, shard: int) -> tuple[int, int]:
        """(number of keys, sum of their hashes mod 2**64) of one shard DB (keys only)."""
        count = total = 0
        for key in self.txns[shard].cursor().iternext(values=False):
            count += 1
            total += hash(bytes(key))
        return count, total % _HASH_MOD

    def sorted_items(self, after: bytes | None) -> Iterator[tuple[bytes, int, memoryview]]:
        """(key, shard, value) of all shards in increasing key order, keys <= `after` left out.
        Equal keys of two shards come out next to each other (the lower shard first)."""
        return heapq.merge(*(self._items(i, after) for i in range(len(self.txns))))

    def _items(self, shard: int, after: bytes | None) -> Iterator[tuple[bytes, int, memoryview]]:
        cur = self.txns[shard].cursor()
        found = cur.set_range(after) if after is not None else cur.first()
        if found and after is not None and bytes(cur.key()) == after:
            found = cur.next()
        if found:
            for key, value in cur.iternext():
                yield bytes(key), shard, value

    def close(self) -> None:
        for txn in self.txns:
            txn.abort()
        for env in self.envs:
            env.close()
        self.txns, self.envs = [], []


def _write_meta(writer: LmdbWriter, shards: _Shards, frames: int) -> None:
    """Write the merged meta_info.txt lines (single-build order); InputError unless every
    shard's meta file lists exactly the keys its DB stores."""
    sums = [0] * len(shards.paths)
    for shard, key, shape in _round_robin(shards.paths, frames):  # also checks each shard's count
        sums[shard] += hash(key.encode("ascii"))
        writer.add_meta(key, shape)
    for i, db in enumerate(shards.paths):
        if shards.key_hash_sum(i) != (len(range(i, frames, len(shards.paths))), sums[i] % _HASH_MOD):
            _explain_mismatch(db, shards.txns[i])


def _explain_mismatch(db: Path, txn) -> None:
    """Name the key that differs between `db`'s meta file and its DB (error path: a set of keys)."""
    listed: set[bytes] = set()
    for key, _shape, _line in iter_meta_txt(db / META_TXT):
        kb = key.encode("ascii")
        if kb in listed:
            raise InputError(f"key {key!r} is listed twice in {db / META_TXT}")
        if txn.get(kb) is None:
            raise InputError(f"key {key!r} is listed in {db / META_TXT} but not stored in the DB")
        listed.add(kb)
    for kb in txn.cursor().iternext(values=False):
        if bytes(kb) not in listed:
            raise InputError(f"key {bytes(kb).decode('ascii', 'replace')!r} is stored in {db} but not listed in "
                             f"{db / META_TXT}")
    raise InputError(f"{db / META_TXT} does not list the keys stored in {db}")  # pragma: no cover - hash collision


def _append_sorted(writer: LmdbWriter, shards: _Shards, items: Iterable[tuple[bytes, int, memoryview]],
                   tick: Callable[[], None]) -> None:
    """Append the merged (key, shard, value) stream; InputError on a key held by two shards."""
    prev_key, prev_shard = None, -1
    for key, shard, value in items:
        if key == prev_key:
            raise InputError(f"key {key.decode('ascii', 'replace')!r} is in both {shards.paths[prev_shard]} and "
                             f"{shards.paths[shard]}: duplicate keys, the shards are not of one build")
        skey = key.decode("ascii", "replace")
        writer.put(skey, value, None, f"{shard}:{skey}")
        prev_key, prev_shard = key, shard
        tick()


def merge_lmdb(out: str | os.PathLike, shards: list[str | os.PathLike], *, overwrite: bool = False,
               commit_images: int = 1_000_000, commit_bytes: int = 512 * _MIB,
               progress: Progress = False) -> MergeSummary:
    """Merge the shard DBs of one `to-lmdb --shard I/N` build into OUT (module docstring).

    Commits every `commit_bytes` of values (or `commit_images` values): with the write map the
    batch is page cache, not process memory, and each commit is one flush to disk.
    Raises InputError (shards that do not make one build, a duplicate key, a damaged shard),
    OutputError (OUT unusable, is one of the shards, being built), ConfigError (bad options).
    `progress` counts keys (task 'lmdb-merge'): `vsrdata.progress`.

    Example::

        from vsrdata import lmdb_merge   # this function, at the package root
        lmdb_merge("train_sharp.lmdb", ["train_sharp.shard0of2.lmdb", "train_sharp.shard1of2.lmdb"])
    """
    start = time.perf_counter()
    check_progress(progress)
    out = Path(out)
    paths = [Path(s) for s in shards]
    if not paths:
        raise InputError("no shard DBs given")
    refuse_inside(out, paths, what="OUT", choose="a path", source="shard DB")
    ordered, record = _check_shards(paths)
    frames = record["frames"]
    summary = MergeSummary(db=out, shards=len(ordered), keys=frames)
    settings = {"key_style": record["key_style"], "merged_shards": len(ordered)}
    opened, bar = _Shards(ordered), Reporter(progress, "lmdb-merge", "key", frames)
    initial = sum((db / "data.mdb").stat().st_size for db in ordered) + 16 * _MIB
    try:
        with LmdbWriter(out, settings=settings, compress_level=record["compress_level"],
                        commit_images=commit_images, commit_bytes=commit_bytes, overwrite=overwrite,
                        initial_map_size=initial, refetch=opened.refetch, metasync=False,
                        append=True, writemap=True) as writer:
            _write_meta(writer, opened, frames)
            summary.kept = done = writer.entries()  # an interrupted merge committed the keys <= last_key()

            def tick() -> None:
                nonlocal done
                done += 1
                bar.to(done)

            _append_sorted(writer, opened, opened.sorted_items(writer.last_key()), tick)
            writer.commit()
            if writer.entries() != frames:
                raise InputError(f"{out} holds {writer.entries()} keys after the merge but the shards list "
                                 f"{frames}: a key is in two shards, or {out} was resumed from other shards "
                                 f"(overwrite it)")
            writer.finish()
            summary.written = writer.written
            summary.bytes_written = writer.bytes_written
    finally:
        bar.close()
        opened.close()
    summary.seconds = time.perf_counter() - start
    return summary
