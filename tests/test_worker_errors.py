"""Bad training data fails with one line naming the DB, key and reason (issue 10, item 9).

Whatever `--num-workers` is: a DataLoader worker's InputError comes back through torch as
`InputError("Caught InputError in DataLoader worker process N.\\nOriginal Traceback ...")`, and
the CLI prints only the original message. Corrupt PNG values are caught by a chunk/CRC check
before OpenCV sees them, so libpng prints no "libpng error: ..." line first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest
import torch

from vsrdata.cli import one_line
from vsrdata.core.image_io import decode_image, encode_png, png_problem
from vsrdata.core.resize import imresize
from vsrdata.training.data import ClipDataset, FrameStore
from vsrdata.errors import InputError
from vsrdata.pipelines.to_lmdb import build_lmdb

REDS = Path(__file__).resolve().parents[1] / "fixtures" / "reds" / "train_sharp"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dbs(tmp_path_factory) -> dict[str, Path]:
    """One clip 'a' of five frames: GT 32x32 and LQ 8x8 (MATLAB bicubic), as folders and LMDBs."""
    root = tmp_path_factory.mktemp("worker_errors")
    for k in range(5):
        img = cv2.imread(str(REDS / "001" / f"{k:08d}.png"))[60:92, 140:172]
        for name, im in (("gt", img), ("lq", imresize(img, 0.25))):
            (root / name / "a").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / name / "a" / f"{k:08d}.png"), im)
    for name in ("gt", "lq"):
        build_lmdb(root / name, root / f"{name}.lmdb", workers=1)
    return {"root": root, "gt": root / "gt.lmdb", "lq": root / "lq.lmdb"}


def edited_copy(src: Path, dst: Path, edit) -> Path:
    """A copy of the LMDB folder `src` with `edit(txn)` applied to its values (meta unchanged)."""
    dst.mkdir()
    for name in ("data.mdb", "meta_info.txt"):
        (dst / name).write_bytes((src / name).read_bytes())
    env = lmdb.open(str(dst), lock=False)
    with env.begin(write=True) as txn:
        edit(txn)
    env.close()
    return dst


def flip_middle_byte(txn) -> None:
    for key, value in list(txn.cursor()):
        data = bytearray(value)
        data[len(data) // 2] ^= 0xFF
        txn.put(key, bytes(data))


# ------------------------------------------------------------------------------ PNG check
def test_png_problem_and_no_libpng_noise(capfd):
    png = encode_png(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    bad = bytearray(png)
    bad[len(bad) // 2] ^= 0xFF
    assert png_problem(png) is None and png_problem(png + b"\0" * 7) is None  # padding after IEND
    assert png_problem(png[:-20]) == "truncated PNG (no IEND chunk)"
    assert png_problem(bytes(bad)) == "corrupt PNG (CRC mismatch in chunk IDAT at byte 33)"
    capfd.readouterr()
    assert cv2.imdecode(np.frombuffer(bytes(bad), np.uint8), cv2.IMREAD_UNCHANGED) is None
    assert "libpng error" in capfd.readouterr().err  # what plain OpenCV prints on this input
    for data in (bytes(bad), png[:-20], png[: len(png) // 2]):
        with pytest.raises(InputError, match=r"PNG .*: frame\.png$"):
            decode_image(data, "frame.png")
    assert capfd.readouterr().err == ""


# ------------------------------------------------------------------------------ CLI, one line
@pytest.mark.parametrize("workers", [0, 2])
def test_train_on_a_corrupt_value_prints_one_line(dbs, tmp_path, workers):
    lq = edited_copy(dbs["lq"], tmp_path / "lq.lmdb", flip_middle_byte)
    cmd = [sys.executable, "-m", "vsrdata", "train", "--gt", str(dbs["gt"]), "--lq", str(lq),
           "--preset", "edvr-tiny", "--dataset", "clips", "--gt-size", "32", "--batch-size", "1",
           "--num-workers", str(workers), "--total-iter", "2", "--val-partition", "none",
           "--run-dir", str(tmp_path / "run"), "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: corrupt PNG (CRC mismatch in chunk IDAT at byte 33): "
                               f"{lq}:a/0000000"), lines[0]


# ------------------------------------------------------------------------------ worker errors
def first_error(dataset, workers: int) -> InputError:
    loader = torch.utils.data.DataLoader(dataset, batch_size=1, num_workers=workers)
    with pytest.raises(InputError) as info:
        next(iter(loader))
    return info.value


def clip_dataset(gt, lq) -> ClipDataset:
    return ClipDataset(FrameStore(gt, "training GT"), FrameStore(lq, "training LQ"), num_frame=5,
                       gt_size=32, scale=4)


@pytest.mark.parametrize("workers", [0, 2])
def test_missing_key_and_odd_frame_size_name_db_and_key(dbs, tmp_path, workers):
    # a key the meta info lists but the DB lacks is refused when the store is opened, before any
    # worker starts (the meta info and the keys must agree)
    missing = edited_copy(dbs["lq"], tmp_path / "missing.lmdb", lambda txn: txn.delete(b"a/00000001"))
    with pytest.raises(InputError) as info:
        first_error(clip_dataset(dbs["gt"], missing), workers)
    assert one_line(info.value) == (f"{missing}: 1 key(s) listed in the meta info but not stored (first: "
                                    f"a/00000001); the meta info and the DB disagree: rebuild the DB")

    small = encode_png(np.zeros((9, 8, 3), np.uint8))  # the meta info still says 8x8
    odd = edited_copy(dbs["lq"], tmp_path / "odd.lmdb", lambda txn: txn.put(b"a/00000003", small))
    exc = first_error(clip_dataset(dbs["gt"], odd), workers)
    assert one_line(exc) == f"clip a of training LQ {odd}: frame 00000003 is 8x9, frame 00000000 is 8x8"


def test_lmdb_clip_mixing_sizes_in_its_meta_is_refused_when_indexed(dbs, tmp_path):
    db = edited_copy(dbs["lq"], tmp_path / "meta.lmdb", lambda txn: None)
    meta = (db / "meta_info.txt").read_text().replace("a/00000002.png (8,8,3)", "a/00000002.png (9,8,3)")
    (db / "meta_info.txt").write_text(meta)
    with pytest.raises(InputError) as info:
        FrameStore(db, "training LQ")
    assert str(info.value) == (f"clip a of training LQ {db} mixes frame formats: key a/00000002 is "
                               "(9, 8, 3), its first frame a/00000000 is (8, 8, 3) (meta info)")


def test_one_line_keeps_plain_messages():
    assert one_line(InputError("cannot read x.png: No such file")) == "cannot read x.png: No such file"
    wrapped = InputError("Caught InputError in DataLoader worker process 1.\nOriginal Traceback (most recent "
                         "call last):\n  File \"x.py\", line 1, in f\nvsrdata.errors.InputError: bad key k of db\n")
    assert one_line(wrapped) == "bad key k of db"
