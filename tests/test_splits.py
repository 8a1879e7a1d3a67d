"""vsrdata.core.splits: the named partitions as data, padding, unpad and the split record."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vsrdata.core import splits
from vsrdata.errors import ConfigError, InputError

REPO = Path(__file__).resolve().parents[1]
PACKAGE_LISTS = REPO / "vsrdata" / "data" / "vimeo90k"
SHARED_LISTS = REPO.parent / "shared" / "refdata" / "vimeo90k"  # absent in a user's clone

VIMEO_FILES = {
    "vimeo-t": "meta_info_Vimeo90K_test_GT_clips.txt",
    "vimeo-t-fast": "test_fast_clips.txt",
    "vimeo-t-medium": "test_medium_clips.txt",
    "vimeo-t-slow": "test_slow_clips.txt",
}


def _read_ids(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


# --- the tables against the lists and the published facts ------------------------------------

@pytest.mark.parametrize("name", sorted(VIMEO_FILES))
def test_vimeo_partitions_match_package_lists(name):
    assert splits.partition_clips(name) == _read_ids(PACKAGE_LISTS / VIMEO_FILES[name])


@pytest.mark.parametrize("name", sorted(VIMEO_FILES))
def test_vimeo_partitions_match_shared_refdata(name):
    ref = SHARED_LISTS / VIMEO_FILES[name]
    if not ref.is_file():
        pytest.skip("../shared/refdata/vimeo90k not present (a user's clone)")
    assert splits.partition_clips(name) == _read_ids(ref)


def test_vimeo_partition_counts_match_basicsr_meta_info():
    # EDVR_SPEC §4.1: 7,824 / 1,225 / 4,977 / 1,613 lines; the motion subsets are disjoint,
    # lie inside the full list and leave 9 clips out.
    full = splits.partition_clips("vimeo-t")
    subsets = [splits.partition_clips(f"vimeo-t-{m}") for m in ("fast", "medium", "slow")]
    assert [len(full)] + [len(s) for s in subsets] == [7824, 1225, 4977, 1613]
    assert len(set(full)) == len(full)
    union = set().union(*subsets)
    assert sum(len(s) for s in subsets) == len(union) == 7815
    assert union <= set(full) and len(set(full) - union) == 9
    assert all(len(c) == 10 and c[5] == "/" for c in full)


def test_reds_partitions():
    # EDVR_SPEC §4.2 (BasicSR meta_info_REDS4_test_GT / REDSofficial4 / REDSval_official).
    assert splits.partition_clips("reds4") == ["000", "011", "015", "020"]
    val = splits.partition_clips("reds-val")
    assert val == [str(240 + i) for i in range(30)]
    assert splits.partition_clips("redsofficial4") == ["240", "241", "246", "257"]
    assert set(splits.partition_clips("redsofficial4")) <= set(val)
    assert not set(splits.partition_clips("reds4")) & set(val)


def test_vid4_table():
    # EDVR_SPEC §4.3: 171 frames; LR = GT / 4, every LR side a multiple of 4.
    assert splits.partition_clips("vid4") == ["calendar", "city", "foliage", "walk"]
    assert sum(c.frames for c in splits.VID4.values()) == 171
    assert splits.VID4["city"].lr_hw == (144, 176)
    assert all(h % 4 == 0 and w % 4 == 0 for h, w in (c.lr_hw for c in splits.VID4.values()))


def test_every_partition_is_listed_and_unknown_is_refused():
    for name in splits.PARTITIONS:
        assert splits.partition_clips(name)
        assert splits.partition_clips(name.upper()) == splits.partition_clips(name)
    with pytest.raises(ConfigError, match="unknown partition 'reds5'"):
        splits.partition_clips("reds5")


def test_names():
    assert splits.clip_folder_name("00001/0266") == "00001_0266"
    assert splits.frame_name(0) == "00000000.png" and splits.frame_name(12) == "00000012.png"
    assert splits.lr_dir_name("bi", 4) == "BIx4" and splits.lr_dir_name("bd", 2) == "BDx2"


# --- padding: against OpenCV's border modes --------------------------------------------------

@pytest.mark.parametrize("mode,border", [
    ("replicate", cv2.BORDER_REPLICATE),
    ("reflect", cv2.BORDER_REFLECT_101),  # mirror without repeating the edge: ... c b | a b c
    ("zero", cv2.BORDER_CONSTANT),
])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_pad_matches_opencv_borders(mode, border, dtype):
    rng = np.random.default_rng(0)
    img = rng.integers(0, np.iinfo(dtype).max, size=(7, 9, 3), dtype=dtype)
    got = splits.pad_bottom_right(img, 3, 2, mode)
    ref = cv2.copyMakeBorder(img, 0, 3, 0, 2, border, value=0)
    assert got.dtype == dtype and got.shape == (10, 11, 3)
    np.testing.assert_array_equal(got, ref)


def test_pad_small_vectors():
    row = np.array([[1, 2, 3]], dtype=np.uint8)
    assert splits.pad_bottom_right(row, 0, 2, "replicate").tolist() == [[1, 2, 3, 3, 3]]
    assert splits.pad_bottom_right(row, 0, 2, "reflect").tolist() == [[1, 2, 3, 2, 1]]
    assert splits.pad_bottom_right(row, 0, 2, "zero").tolist() == [[1, 2, 3, 0, 0]]
    assert splits.pad_bottom_right(row, 0, 0, "reflect") is row
    with pytest.raises(ConfigError, match="pad mode"):
        splits.pad_bottom_right(row, 0, 1, "wrap")


def test_pad_amount():
    assert [splits.pad_amount(n, 4) for n in (37, 38, 39, 40, 45)] == [3, 2, 1, 0, 3]
    assert splits.pad_amount(45, 1) == 0
    with pytest.raises(ConfigError):
        splits.pad_amount(5, 0)


# --- unpad ---------------------------------------------------------------------------------

def _record(gt_hw, lr_hw, lr_pad, scale=4, crop=None):
    return {"source": "c", "gt_size": [*gt_hw, 3], "lr_size": [*lr_hw, 3],
            "lr_pad": list(lr_pad), "gt_pad": [lr_pad[0] * scale, lr_pad[1] * scale],
            "gt_crop": [crop[0] * scale, crop[1] * scale] if crop else None,
            "lr_crop": list(crop) if crop else None}


@pytest.mark.parametrize("mode", splits.SPATIAL_PADDINGS)
@pytest.mark.parametrize("shape", [(37, 67), (37, 67, 3), (37, 67, 3, 2)])
def test_pad_then_unpad_is_exact(mode, shape):
    rng = np.random.default_rng(1)
    lr = rng.integers(0, 65535, size=shape, dtype=np.uint16)
    gt = rng.integers(0, 255, size=(148, 268) + shape[2:], dtype=np.uint8)
    rec = _record((148, 268), (37, 67), (3, 1))
    lr_p = splits.pad_bottom_right(lr, 3, 1, mode)
    gt_p = splits.pad_bottom_right(gt, 12, 4, mode)
    assert lr_p.shape[:2] == (40, 68) and gt_p.shape[:2] == (160, 272)
    back_lr, back_gt = splits.unpad(lr_p, rec, "lr"), splits.unpad(gt_p, rec, "gt")
    assert back_lr.dtype == lr.dtype and back_gt.dtype == gt.dtype
    np.testing.assert_array_equal(back_lr, lr)
    np.testing.assert_array_equal(back_gt, gt)


def test_unpad_checks_size_and_handles_crop():
    rec = _record((148, 268), (37, 67), (3, 1))
    with pytest.raises(InputError, match="160x272"):
        splits.unpad(np.zeros((148, 268, 3)), rec, "gt")
    with pytest.raises(ConfigError):
        splits.unpad(np.zeros((40, 68)), rec, "sr")
    crop = _record((148, 268), (37, 67), (0, 0), crop=(36, 64))
    img = np.arange(144 * 256).reshape(144, 256)
    np.testing.assert_array_equal(splits.unpad(img, crop, "gt"), img)
    with pytest.raises(InputError):
        splits.unpad(np.zeros((148, 268)), crop, "gt")


def test_unpad_works_on_a_torch_tensor_in_hwc():
    torch = pytest.importorskip("torch")
    rec = _record((8, 12), (2, 3), (2, 1))
    sr = torch.arange(3 * 16 * 16, dtype=torch.float32).reshape(3, 16, 16)
    out = splits.unpad(sr.permute(1, 2, 0), rec, "gt")
    assert tuple(out.shape) == (8, 12, 3)
    assert torch.equal(out, sr.permute(1, 2, 0)[:8, :12])


# --- load_split ------------------------------------------------------------------------------

def test_load_split_errors(tmp_path):
    with pytest.raises(InputError, match="no split.json"):
        splits.load_split(tmp_path)
    (tmp_path / "split.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        splits.load_split(tmp_path)
    (tmp_path / "split.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(InputError, match="vsrdata-split-test/1"):
        splits.load_split(tmp_path)
    (tmp_path / "split.json").write_text(json.dumps({"format": splits.SPLIT_FORMAT, "scale": 4}))
    with pytest.raises(InputError, match="gt_dir"):
        splits.load_split(tmp_path)
    good = {"format": splits.SPLIT_FORMAT, "scale": 4, "gt_dir": "GT", "lr_dir": "BIx4", "clips": {}}
    (tmp_path / "split.json").write_text(json.dumps(good))
    assert splits.load_split(tmp_path) == good
