"""core/lmdb/ (keys, reader, writer): keys, meta_info format, LmdbWriter (commits, map growth,
refusals) and LmdbReader on DBs built by hand in the formats of BasicSR, mmagic and the original
EDVR code (docs/CONVENTIONS.md)."""

from __future__ import annotations

import multiprocessing
import os
import pickle
from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest

from vsrdata.core.lmdb.keys import INCOMPLETE_MARKER, check_key, make_key, meta_line, parse_meta_txt
from vsrdata.core.lmdb.reader import LmdbReader
from vsrdata.core.lmdb.writer import LmdbWriter
from vsrdata.errors import ConfigError, InputError, OutputError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REDS = FIXTURES / "reds" / "train_sharp"


def _frame(clip="000", idx=0) -> np.ndarray:
    img = cv2.imread(str(REDS / clip / f"{idx:08d}.png"), cv2.IMREAD_UNCHANGED)
    assert img is not None
    return img


def _png1(img) -> bytes:
    # The field's value: cv2.imencode('.png', img, [IMWRITE_PNG_COMPRESSION, 1]).
    return cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes()


def _raw_db(path: Path, items: dict[str, bytes], map_size=64 << 20) -> None:
    env = lmdb.open(str(path), map_size=map_size)
    with env.begin(write=True) as txn:
        for k, v in items.items():
            txn.put(k.encode("ascii"), v)
    env.close()


# ---------------------------------------------------------------------------------- keys / meta
@pytest.mark.parametrize("clip, frame, style, vimeo, expected", [
    ("000", "00000000.png", "basicsr", False, "000/00000000"),
    ("00001/0001", "im4.png", "basicsr", True, "00001/0001/im4"),
    ("000", "00000000.png", "mmagic", False, "000_00000000"),
    ("00001/0001", "im4.png", "mmagic", True, "00001_0001_4"),
    ("00001/0001", "im7.png", "mmagic", True, "00001_0001_7"),
    ("city", "frame_001.png", "mmagic", False, "city_frame_001"),
])
def test_make_key_matches_the_field(clip, frame, style, vimeo, expected):
    assert make_key(clip, frame, style, vimeo=vimeo) == expected


def test_make_key_rejects_unknown_style():
    with pytest.raises(ConfigError, match="key style"):
        make_key("000", "00000000.png", "lmdb")


def test_meta_line_is_basicsr_format():
    # BasicSR lmdb_util: f'{key}.png ({h},{w},{c}) {compress_level}\n'
    assert meta_line("000/00000000", (720, 1280, 3), 1) == "000/00000000.png (720,1280,3) 1\n"
    assert meta_line("a/b", (5, 7), 1) == "a/b.png (5,7,1) 1\n"


@pytest.mark.parametrize("bad", ["clé/0001", "a.b/0001", "a b/0001", "", "x" * 600])
def test_check_key_refuses_keys_the_field_cannot_read(bad):
    with pytest.raises(InputError):
        check_key(bad, "somewhere")


def test_parse_meta_accepts_basicsr_and_mmagic_lines(tmp_path):
    meta = tmp_path / "meta_info.txt"
    meta.write_text("000/00000000.png (720,1280,3) 1\n\n000_00000001.png (720, 1280, 3)\n")
    keys, shapes = parse_meta_txt(meta)
    assert keys == ["000/00000000", "000_00000001"]
    assert shapes["000_00000001"] == (720, 1280, 3)
    meta.write_text("this is not a meta line\n")
    with pytest.raises(InputError, match="meta_info.txt:1"):
        parse_meta_txt(meta)


# ------------------------------------------------------------------------------------- reader
def test_reader_reads_a_handmade_basicsr_db(tmp_path):
    db = tmp_path / "basicsr.lmdb"
    frames = {"000/00000000": _frame("000", 0), "001/00000002": _frame("001", 2)}
    _raw_db(db, {k: _png1(v) for k, v in frames.items()})
    (db / "meta_info.txt").write_text("".join(f"{k}.png (180,320,3) 1\n" for k in frames))
    reader = LmdbReader(db)
    assert reader.key_style == "basicsr"
    assert reader.keys() == list(frames)
    assert len(reader) == 2 and "001/00000002" in reader
    for k, img in frames.items():
        np.testing.assert_array_equal(reader.get(k), img)
        assert reader.shape(k) == (180, 320, 3)
    with pytest.raises(InputError, match="not found"):
        reader.get("002/00000000")
    reader.close()


def test_reader_reads_a_handmade_mmagic_db(tmp_path):
    # mmagic's converter: same PNG-1 values, underscore keys; its meta lines may carry spaces.
    db = tmp_path / "mmagic.lmdb"
    img = _frame("002", 3)
    _raw_db(db, {"00001_0001_4": _png1(img)})
    (db / "meta_info.txt").write_text("00001_0001_4.png (180, 320, 3) 1\n")
    with LmdbReader(db) as reader:
        assert reader.key_style == "mmagic"
        assert reader.keys() == ["00001_0001_4"]
        np.testing.assert_array_equal(reader.get("00001_0001_4"), img)


def test_reader_reads_a_handmade_original_edvr_db(tmp_path):
    # Original EDVR (codes/data_scripts/create_lmdb_mp.py): values are raw uint8 HWC BGR
    # buffers (img.tobytes()), meta_info.pkl = {'name', 'resolution': 'c_h_w', 'keys': [...]}.
    db = tmp_path / "REDS_train.lmdb"
    frames = {f"000_{i:08d}": _frame("000", i) for i in range(3)}
    _raw_db(db, {k: v.tobytes() for k, v in frames.items()})
    with open(db / "meta_info.pkl", "wb") as fh:
        pickle.dump({"name": "REDS_train_sharp_wval", "resolution": "3_180_320", "keys": list(frames)}, fh)
    reader = LmdbReader(db)
    assert reader.key_style == "edvr-old"
    assert reader.keys() == list(frames)
    for k, img in frames.items():
        np.testing.assert_array_equal(reader.get(k), img)
        assert reader.shape(k) == (180, 320, 3)
    reader.close()


def test_reader_edvr_old_vimeo_clip_keys_and_resolution_list(tmp_path):
    # EDVR-old Vimeo90K: meta keys are the *set* of clip keys '00001_0001' while values are
    # stored per frame ('00001_0001_4'); resolution may also be a list, one per key.
    db = tmp_path / "Vimeo90K_train_GT.lmdb"
    a, b = _frame("000", 0), _frame("001", 1)[:64, :112]
    _raw_db(db, {"00001_0001_4": a.tobytes(), "00001_0002_4": np.ascontiguousarray(b).tobytes()})
    with open(db / "meta_info.pkl", "wb") as fh:
        pickle.dump({"name": "Vimeo90K_train_GT", "resolution": ["3_180_320", "3_64_112"],
                     "keys": ["00001_0001", "00001_0002"]}, fh)
    reader = LmdbReader(db)
    assert reader.keys() == ["00001_0001_4", "00001_0002_4"]
    np.testing.assert_array_equal(reader.get("00001_0001_4"), a)
    np.testing.assert_array_equal(reader.get("00001_0002_4"), b)
    assert reader.shape("00001_0002_4") == (64, 112, 3)
    reader.close()


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_reader_refuses_code_in_meta_pkl(tmp_path):
    db = tmp_path / "evil.lmdb"
    _raw_db(db, {"k": b"x"})
    with open(db / "meta_info.pkl", "wb") as fh:
        pickle.dump({"name": "x", "resolution": "3_1_1", "keys": [_Boom()]}, fh)
    with pytest.raises(InputError, match="not allowed"):
        LmdbReader(db)


def test_reader_refuses_incomplete_and_non_lmdb_folders(tmp_path):
    with pytest.raises(InputError, match="no data.mdb"):
        LmdbReader(tmp_path)
    db = tmp_path / "x.lmdb"
    _raw_db(db, {"a/b": _png1(_frame())})
    with pytest.raises(InputError, match="neither meta_info.txt nor meta_info.pkl"):
        LmdbReader(db)
    (db / "meta_info.txt").write_text("a/b.png (180,320,3) 1\n")
    (db / INCOMPLETE_MARKER).write_text("{}")
    with pytest.raises(InputError, match="incomplete"):
        LmdbReader(db)


def _get_in_child(reader, key):
    return reader.get(key)


def test_reader_opens_lazily_per_process(tmp_path):
    db = tmp_path / "lazy.lmdb"
    img = _frame("001", 4)
    _raw_db(db, {"001/00000004": _png1(img)})
    (db / "meta_info.txt").write_text("001/00000004.png (180,320,3) 1\n")
    reader = LmdbReader(db)
    np.testing.assert_array_equal(reader.get("001/00000004"), img)  # opened in the parent
    clone = pickle.loads(pickle.dumps(reader))  # what a spawned DataLoader worker receives
    assert clone._env is None
    np.testing.assert_array_equal(clone.get("001/00000004"), img)
    # A forked worker must not reuse the parent's handle: it opens its own.
    with multiprocessing.get_context("fork").Pool(1) as pool:
        got = pool.apply(_get_in_child, (reader, "001/00000004"))
    np.testing.assert_array_equal(got, img)
    reader.close()
    clone.close()


# ------------------------------------------------------------------------------------- writer
def _values(n, seed=0):
    rng = np.random.default_rng(seed)
    # Noise compresses badly, so each PNG is ~ its raw size (64*64*3 = 12 KiB).
    return [(f"c/{i:08d}", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for i in range(n)]


def test_writer_grows_the_map_on_demand(tmp_path):
    items = _values(200)  # ~2.4 MB of values into a 1 MiB starting map
    with LmdbWriter(tmp_path / "g.lmdb", initial_map_size=1 << 20, commit_images=50) as w:
        for k, img in items:
            w.put(k, _png1(img), img.shape)
        w.finish()
    assert w.map_growths >= 1
    assert w.commits == 4
    reader = LmdbReader(tmp_path / "g.lmdb")
    assert reader.keys() == [k for k, _ in items]
    for k, img in items:
        np.testing.assert_array_equal(reader.get(k), img)
    reader.close()


def test_writer_with_refetch_replays_from_sources_not_from_ram(tmp_path):
    items = dict(_values(120, seed=1))
    calls = []

    def refetch(source):
        calls.append(source)
        return _png1(items[source])

    with LmdbWriter(tmp_path / "s.lmdb", initial_map_size=1 << 20, commit_images=40, refetch=refetch) as w:
        for k, img in items.items():
            w.put(k, _png1(img), img.shape, source=k)
        assert all(isinstance(v, str) for _, v in w._batch)  # only sources are kept
        w.finish()
    assert w.map_growths >= 1 and calls  # the batch in flight at the growth was re-created
    with LmdbReader(tmp_path / "s.lmdb") as reader:
        assert reader.keys() == list(items)
        for k, img in items.items():
            np.testing.assert_array_equal(reader.get(k), img)


def test_writer_fixed_map_size_full_is_a_clear_error(tmp_path):
    items = _values(200)
    with pytest.raises(OutputError, match="larger map_size") as info:
        with LmdbWriter(tmp_path / "f.lmdb", map_size=1 << 20, commit_images=10) as w:
            for k, img in items:
                w.put(k, _png1(img), img.shape)
            w.finish()
    assert info.value.option == "map_size"  # the CLI names its flag
    # What was committed before the map filled is a valid LMDB, marked incomplete.
    assert (tmp_path / "f.lmdb" / INCOMPLETE_MARKER).exists()
    env = lmdb.open(str(tmp_path / "f.lmdb"), readonly=True, lock=False)
    n = env.stat()["entries"]
    with env.begin() as txn:
        for k, img in items[:n]:
            assert txn.get(k.encode()) == _png1(img)
    env.close()
    assert 0 < n < len(items)


def test_writer_commits_by_bytes_as_well_as_by_count(tmp_path):
    items = _values(30)
    size = len(_png1(items[0][1]))
    with LmdbWriter(tmp_path / "b.lmdb", commit_images=1000, commit_bytes=5 * size) as w:
        for k, img in items:
            w.put(k, _png1(img), img.shape)
        w.finish()
    assert 5 <= w.commits <= 7  # ~30 / 5 batches (PNG sizes differ slightly)


def test_writer_refuses_duplicates_finished_dbs_and_foreign_folders(tmp_path):
    img = _frame()
    with pytest.raises(InputError, match="duplicate"):
        with LmdbWriter(tmp_path / "d.lmdb") as w:
            w.put("a/b", _png1(img), img.shape)
            w.put("a/b", _png1(img), img.shape)
    done = tmp_path / "done.lmdb"
    with LmdbWriter(done) as w:
        w.put("a/b", _png1(img), img.shape)
        w.finish()
    with pytest.raises(OutputError, match="finished LMDB; overwrite it"):
        LmdbWriter(done).__enter__()
    with LmdbWriter(done, overwrite=True) as w:  # rebuilds from scratch
        w.put("x/y", _png1(img), img.shape)
        w.finish()
    assert LmdbReader(done).keys() == ["x/y"]
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(OutputError, match="not an LMDB folder"):
        LmdbWriter(other, overwrite=True).__enter__()
    assert (other / "holiday.jpg").read_bytes() == b"precious"


def test_writer_resume_requires_the_same_settings(tmp_path):
    img = _frame()
    db = tmp_path / "r.lmdb"
    with pytest.raises(RuntimeError):
        with LmdbWriter(db, settings={"key_style": "basicsr"}) as w:
            w.put("a/b", _png1(img), img.shape)
            raise RuntimeError("killed")
    with pytest.raises(ConfigError, match="same options"):
        LmdbWriter(db, settings={"key_style": "mmagic"}).__enter__()
    with LmdbWriter(db, settings={"key_style": "basicsr"}) as w:
        assert w.resumed
        stored = w.stored_shape_and_depth("a/b")
        assert stored == ((180, 320, 3), 8)
        w.add_existing("a/b", stored[0])
        w.put("a/c", _png1(img), img.shape)
        w.finish()
    assert (db / "meta_info.txt").read_text() == "a/b.png (180,320,3) 1\na/c.png (180,320,3) 1\n"
    assert not (db / INCOMPLETE_MARKER).exists()


def test_writer_append_mode_refuses_keys_out_of_order(tmp_path):
    from vsrdata.core.lmdb.writer import DuplicateKeyError, KeyOrderError

    png = _png1(_frame())
    with LmdbWriter(tmp_path / "a.lmdb", append=True) as w:
        w.put("b/1", png, None)
        with pytest.raises(DuplicateKeyError, match="'b/1' .* is not after the previous key 'b/1'"):
            w.put("b/1", png, None)
        with pytest.raises(KeyOrderError, match="'a/9' .* is not after the previous key 'b/1'.* increasing byte order"):
            w.put("a/9", png, None)
        w.put("b/2", png, None)


def test_writer_append_writemap_resumes_after_last_key_and_trims_the_file(tmp_path):
    """Sorted keys appended through the write map, meta lines in another order; a run stopped
    after 70 keys resumes after last_key() and the DB equals one built by plain puts."""
    items = _values(150, seed=2)
    meta_order = list(reversed(items))
    db = tmp_path / "w.lmdb"
    with pytest.raises(KeyboardInterrupt):
        with LmdbWriter(db, append=True, writemap=True, initial_map_size=1 << 20, commit_images=30) as first:
            for k, img in items[:70]:
                first.put(k, _png1(img), None)
            assert first.map_growths >= 1  # 70 values of ~12 KiB outgrow the 1 MiB map
            raise KeyboardInterrupt  # the writer commits what was put, leaves the DB resumable
    with LmdbWriter(db, append=True, writemap=True, initial_map_size=1 << 20, commit_images=30) as w:
        assert w.resumed and w.entries() == 70 and w.last_key() == items[69][0].encode()
        for k, img in meta_order:
            w.add_meta(k, img.shape)
        for k, img in items[70:]:
            w.put(k, _png1(img), None)
        w.finish()
    env = lmdb.open(str(db), readonly=True, lock=False)
    used = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    with env.begin() as txn:
        assert dict(txn.cursor()) == {k.encode(): _png1(img) for k, img in items}
    env.close()
    assert (db / "data.mdb").stat().st_size == used < w.map_size  # the sparse tail is cut off
    with LmdbReader(db) as reader:
        assert reader.keys() == [k for k, _ in meta_order]
