"""`vsrdata lmdb-verify`, aborted and concurrent `to-lmdb` builds, damaged and mismatched databases.

References nobody here wrote: the field's LMDB reading convention (BasicSR `LmdbBackend`:
lmdb.open(readonly, lock=False), txn.get(key), cv2.imdecode) and the key/meta formats of
EDVR_SPEC section 4.4.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import cv2
import lmdb
import pytest
from click.testing import CliRunner

from vsrdata.cli import main
from vsrdata.core.lmdb.keys import INCOMPLETE_MARKER
from vsrdata.core.lmdb.reader import LmdbReader
from vsrdata.pipelines.lmdb_verify import verify_lmdb
from vsrdata.pipelines.to_lmdb import build_lmdb
from test_to_lmdb import REDS, copy_tree, run, tile_frames


# --------------------------------------------------------------------------------- lmdb-verify
def test_lmdb_verify_passes_then_reports_each_kind_of_damage(tmp_path):
    db = tmp_path / "v.lmdb"
    build_lmdb(REDS, db, workers=1)
    result = run("lmdb-verify", db, "-j", "1")
    assert result.exit_code == 0, result.output
    assert "21/21 keys checked (basicsr): OK" in result.output
    meta = db / "meta_info.txt"
    text = meta.read_text()
    meta.write_text(text.replace("000/00000001.png (180,320,3)", "000/00000001.png (181,320,3)")
                    + "003/00000000.png (180,320,3) 1\n")
    env = lmdb.open(str(db))
    with env.begin(write=True) as txn:
        txn.put(b"001/00000004", b"\x89PNG garbage")
    env.close()
    result = run("lmdb-verify", db, "-j", "1")
    assert result.exit_code == 1
    assert "3 problem(s)" in result.output
    assert "000/00000001: decoded shape (180, 320, 3) but the meta info says (181, 320, 3)" in result.output
    assert "'003/00000000' not found" in result.output
    assert "001/00000004" in result.output


def test_lmdb_verify_on_an_original_edvr_db_and_on_a_non_db(tmp_path):
    import pickle

    db = tmp_path / "edvr.lmdb"
    env = lmdb.open(str(db), map_size=1 << 24)
    img = cv2.imread(str(REDS / "000" / "00000000.png"))
    with env.begin(write=True) as txn:
        txn.put(b"000_00000000", img.tobytes())
    env.close()
    with open(db / "meta_info.pkl", "wb") as fh:
        pickle.dump({"name": "x", "resolution": "3_180_320", "keys": ["000_00000000"]}, fh)
    result = run("lmdb-verify", db)
    assert result.exit_code == 0 and "(edvr-old): OK" in result.output
    result = run("lmdb-verify", tmp_path)
    assert result.exit_code == 1 and result.output.startswith("Error: not an LMDB folder")


def test_lmdb_verify_with_worker_processes_finds_a_bad_value(tmp_path):
    src = tile_frames(tmp_path / "src", n_clips=3, per_clip=50)  # 150 keys: verified in chunks by 2 workers
    db = tmp_path / "w.lmdb"
    build_lmdb(src, db, workers=1)
    env = lmdb.open(str(db), map_size=1 << 30)
    with env.begin(write=True) as txn:
        txn.put(b"002/00000049", b"not a png")
    env.close()
    report = verify_lmdb(db, workers=2)
    assert report.checked == 150 and report.key_style == "basicsr"
    assert len(report.problems) == 1 and "002/00000049" in report.problems[0]


def test_reds_x4_subfolder_gotcha_is_warned(tmp_path):
    src = tmp_path / "train_sharp_bicubic"
    shutil.copytree(REDS / "000", src / "X4" / "000")
    result = CliRunner().invoke(main, ["to-lmdb", str(src), str(tmp_path / "lr.lmdb"), "-j", "1", "-q"])
    assert result.exit_code == 0, result.output
    assert "Warning: all clips are under X4/" in result.output
    assert (tmp_path / "lr.lmdb" / "meta_info.txt").read_text().startswith("X4/000/00000000.png")


# ------------------------------------------------------------------------------- abort / locks
_ABORT_LOOP = """
import sys
from vsrdata.errors import InputError
from vsrdata.pipelines.to_lmdb import build_lmdb

def main(src, out, repeats):
    for i in range(repeats):
        try:
            build_lmdb(src, f"{out}/{i}.lmdb", workers=2, commit_images=2)
        except InputError as exc:
            print(i, str(exc).split(":")[0], flush=True)
        else:
            raise SystemExit(f"build {i} did not fail")

if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
"""


@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
def test_aborted_two_worker_builds_end_in_seconds_every_time(tmp_path, damage):
    """Issue: a bad frame aborting a 2-worker build hung ~4% of runs (terminate() while a worker
    held the result pipe). 15 aborts per kind in one process must all end, well inside the limit.
    The damage keeps the PNG header intact, so planning (which reads headers only) passes and the
    failure happens inside a worker: a flipped byte in the pixel data, or a cut file."""
    src = copy_tree(REDS, tmp_path / "src")
    bad = src / "000" / "00000004.png"
    data = bytearray(bad.read_bytes())
    if damage == "corrupt":
        data[len(data) // 2] ^= 0xFF
        bad.write_bytes(bytes(data))
    else:
        bad.write_bytes(bytes(data[:200]))
    script = tmp_path / "abort_loop.py"
    script.write_text(_ABORT_LOOP)
    proc = subprocess.run([sys.executable, str(script), str(src), str(tmp_path), "15"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 15
    expected = "truncated PNG" if damage == "truncated" else "corrupt PNG"
    assert all(expected in line for line in lines), lines[:3]


# ------------------------------------------------------------------------- damaged / mismatched
def test_truncated_data_mdb_is_one_line_not_sigbus(tmp_path):
    """Issue: a truncated data.mdb killed lmdb-verify (and train) with SIGBUS, exit 135."""
    db = tmp_path / "t.lmdb"
    build_lmdb(REDS, db, workers=1)
    data = db / "data.mdb"
    os.truncate(data, data.stat().st_size // 2)
    proc = subprocess.run([sys.executable, "-m", "vsrdata", "lmdb-verify", str(db), "-q", "-j", "1"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: truncated LMDB file") and str(data) in lines[0]
    from vsrdata.training.data import FrameStore
    from vsrdata.errors import InputError

    with pytest.raises(InputError, match="truncated LMDB file"):
        FrameStore(db).get("000", "00000000")


def test_meta_info_and_db_keys_must_agree_both_ways(tmp_path):
    """Issue: lmdb-verify exited 0 when meta_info.txt lacked keys the DB holds, and train then
    dropped that clip silently. Either direction is now an error, with the count and first keys."""
    from vsrdata.training.data import FrameStore
    from vsrdata.errors import InputError

    db = tmp_path / "m.lmdb"
    build_lmdb(REDS, db, workers=1)
    meta = db / "meta_info.txt"
    full = meta.read_text()
    meta.write_text("".join(line for line in full.splitlines(True) if not line.startswith("002/")))
    result = run("lmdb-verify", db, "-q", "-j", "1")
    assert result.exit_code == 1
    assert "7 key(s) stored in the DB are not listed in its meta info (first: 002/00000000, 002/00000001" \
        in result.output
    with pytest.raises(InputError, match=r"7 key\(s\) stored but not listed in the meta info"):
        FrameStore(db)
    meta.write_text(full + "003/00000000.png (180,320,3) 1\n")
    with pytest.raises(InputError, match=r"1 key\(s\) listed in the meta info but not stored \(first: 003/0"):
        FrameStore(db)
    meta.write_text(full)
    assert run("lmdb-verify", db, "-q", "-j", "1").exit_code == 0
    assert len(FrameStore(db).clips) == 3


def test_db_inside_the_source_folder_is_refused(tmp_path):
    """Issue: to-lmdb accepted an output inside its input (make-lr and split-test refuse it)."""
    src = copy_tree(REDS, tmp_path / "src")
    result = run("to-lmdb", src, src / "train.lmdb", "-j", "1", "-q")
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: DB {src / 'train.lmdb'} is inside the source folder {src} " \
                                    f"(choose a DB path outside it)"
    assert not (src / "train.lmdb").exists()
    (tmp_path / "link").symlink_to(src)
    result = run("to-lmdb", tmp_path / "link", src / "sub" / "x.lmdb", "-j", "1", "-q")
    assert result.exit_code == 1 and "is inside the source folder" in result.output


_HOLD_BUILD = """
import sys
from vsrdata.core.lmdb.writer import LmdbWriter
with LmdbWriter(sys.argv[1], settings={"key_style": "basicsr", "vimeo_mode": None}) as writer:
    writer.put("000/00000000", open(sys.argv[2], "rb").read(), (180, 320, 3))
    writer.commit()
    print("building", flush=True)
    sys.stdin.readline()
    writer.finish()
"""


def test_second_builder_of_one_db_stops_at_once_and_never_deletes_the_live_build(tmp_path):
    """Issue: a second to-lmdb on the same DB printed a misleading error or, with --overwrite,
    deleted a live build. Now the DB is locked for the whole build."""
    db = tmp_path / "live.lmdb"
    frame = REDS / "000" / "00000000.png"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_BUILD, str(db), str(frame)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "building"
        for extra in ([], ["--overwrite"]):
            start = time.monotonic()
            result = run("to-lmdb", REDS, db, "-j", "1", "-q", *extra)
            assert time.monotonic() - start < 10
            assert result.exit_code == 1
            assert result.output.strip() == (f"Error: DB {db} is being built by process {holder.pid}; "
                                             f"wait for it to finish (or stop it) and run again")
            assert (db / INCOMPLETE_MARKER).exists() and (db / "data.mdb").exists()
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
    assert LmdbReader(db).keys() == ["000/00000000"]
    result = run("to-lmdb", REDS, db, "-j", "1", "-q", "--overwrite")  # lock released: rebuild works
    assert result.exit_code == 0, result.output
    assert len(LmdbReader(db).keys()) == 21
