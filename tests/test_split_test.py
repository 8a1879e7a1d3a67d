"""`vsrdata split-test` on the bundled fixtures: layout, names, order, --limit, padding values,
meta files, links, resume after SIGKILL (bad input and shards: test_split_test_inputs.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from vsrdata.cli import main
from vsrdata.core import splits
from vsrdata.pipelines.split_test import split_test

FIX = Path(__file__).resolve().parents[1] / "fixtures"
VIMEO = FIX / "vimeo_septuplet"
REDS = FIX / "reds" / "train_sharp"
ODD = FIX / "odd_size"
BABOON = FIX / "imresize"


@pytest.fixture
def degrade():
    """The LR engine (core/degrade.py); tests that generate LR need it."""
    return pytest.importorskip("vsrdata.core.degrade").degrade


def run(*args):
    result = CliRunner().invoke(main, ["split-test", *map(str, args), "-q", "-j", "1"])
    return result


def ok(*args):
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result


def fails(*args, match: str):
    result = run(*args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and match in lines[0], result.output
    return lines[0]


def imread(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


def subsample_tree(src: Path, dst: Path, scale: int = 4) -> Path:
    """An LR tree with the same clip/frame names (plain subsampling: its values do not matter)."""
    for path in sorted(src.rglob("*.png")):
        out = dst / path.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        img = imread(path)
        h, w = img.shape[0] // scale * scale, img.shape[1] // scale * scale
        cv2.imwrite(str(out), img[:h:scale, :w:scale])
    return dst


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- Vimeo90K -----------------------------------------------------------------------------

def test_vimeo_default_testlist_names_order_and_records(tmp_path, degrade):
    out = tmp_path / "out"
    ok(VIMEO, out)
    gt_clip, lr_clip = out / "GT" / "00001_0003", out / "BIx4" / "00001_0003"
    names = [f"{i:08d}.png" for i in range(7)]
    assert sorted(os.listdir(out / "GT")) == ["00001_0003"]  # sep_testlist.txt only, not the train clips
    assert sorted(os.listdir(gt_clip)) == names and sorted(os.listdir(lr_clip)) == names
    src = VIMEO / "sequences" / "00001" / "0003"
    for i in range(7):
        gt = imread(gt_clip / names[i])
        np.testing.assert_array_equal(gt, imread(src / f"im{i + 1}.png"))  # order kept, 448x256 unpadded
        np.testing.assert_array_equal(imread(lr_clip / names[i]), degrade(gt, 4, "bi"))
    assert (out / "meta_info.txt").read_text() == "00001_0003 7 (256,448,3)\n"
    mapping = (out / "mapping.txt").read_text().splitlines()
    assert mapping[0] == "00001/0003/im1.png 00001_0003/00000000.png"
    assert mapping[6] == "00001/0003/im7.png 00001_0003/00000006.png"
    rec = splits.load_split(out)
    assert (rec["scale"], rec["degradation"], rec["gt_dir"], rec["lr_dir"]) == (4, "bi", "GT", "BIx4")
    assert (rec["multiple"], rec["pad_mode"], rec["crop"]) == (4, "replicate", False)
    clip = rec["clips"]["00001_0003"]
    assert clip["source"] == "00001/0003" and clip["num_frames"] == 7
    assert clip["gt_size"] == [256, 448, 3] and clip["lr_size"] == [64, 112, 3]
    assert clip["lr_pad"] == [0, 0] and clip["gt_pad"] == [0, 0] and clip["gt_crop"] is None
    assert clip["frames"]["00000003.png"] == "im4.png"
    assert rec["selection"]["kind"] == "list" and rec["selection"]["name"] == "sep_testlist.txt"


def test_vimeo_list_limit_and_clips_keep_list_order(tmp_path):
    lr = subsample_tree(VIMEO / "sequences", tmp_path / "lr" / "sequences")
    listing = tmp_path / "list.txt"
    listing.write_text("00001/0002\n\n00001/0001\n00001/0003\n")
    out = tmp_path / "a"
    ok(VIMEO, out, "--list", listing, "--limit", 2, "--lr-root", tmp_path / "lr")
    assert (out / "meta_info.txt").read_text().splitlines() == [
        "00001_0002 7 (256,448,3)", "00001_0001 7 (256,448,3)"]
    assert list(splits.load_split(out)["clips"]) == ["00001_0002", "00001_0001"]
    assert splits.load_split(out)["selection"]["limit"] == 2
    # the given LR frames are used as they are (already x4 multiples: copied byte for byte)
    assert (out / "BIx4" / "00001_0002" / "00000000.png").read_bytes() == \
        (lr / "00001" / "0002" / "im1.png").read_bytes()
    out2 = tmp_path / "b"
    ok(VIMEO, out2, "--clips", "00001/0003,00001/0001", "--lr-root", lr)
    assert sorted(os.listdir(out2 / "GT")) == ["00001_0001", "00001_0003"]
    assert list(splits.load_split(out2)["clips"]) == ["00001_0003", "00001_0001"]


def test_vimeo_training_overlap_warns(tmp_path):
    lr = subsample_tree(VIMEO / "sequences", tmp_path / "lr")
    result = ok(VIMEO, tmp_path / "o", "--list", VIMEO / "sep_trainlist.txt", "--lr-root", lr)
    assert "2 selected clip(s) are in sep_trainlist.txt" in result.output


def test_vimeo_without_testlist_needs_a_list(tmp_path):
    src = tmp_path / "vimeo"
    shutil.copytree(VIMEO / "sequences", src / "sequences")
    fails(src, tmp_path / "o", match="no sep_testlist.txt")
    assert not (tmp_path / "o").exists()


# --- REDS / padding ---------------------------------------------------------------------------

def test_reds_padding_values_and_unpad(tmp_path, degrade):
    # 180x320 GT -> LR 45x80 -> padded to 48x80 (bottom 3), GT padded by 12 rows.
    out = tmp_path / "out"
    ok(REDS, out, "--clips", "001", "--pad", "reflect")
    rec = splits.load_split(out)["clips"]["001"]
    assert rec["lr_pad"] == [3, 0] and rec["gt_pad"] == [12, 0]
    assert rec["gt_size"] == [180, 320, 3] and rec["lr_size"] == [45, 80, 3]
    for i in range(7):
        src = imread(REDS / "001" / f"{i:08d}.png")
        gt = imread(out / "GT" / "001" / f"{i:08d}.png")
        lr = imread(out / "BIx4" / "001" / f"{i:08d}.png")
        assert gt.shape == (192, 320, 3) and lr.shape == (48, 80, 3)
        np.testing.assert_array_equal(splits.unpad(gt, rec, "gt"), src)
        np.testing.assert_array_equal(splits.unpad(lr, rec, "lr"), degrade(src, 4, "bi"))
        # reflect = mirror without repeating the edge row (np.pad 'reflect')
        np.testing.assert_array_equal(gt[180:], src[178:166:-1])
        np.testing.assert_array_equal(lr[45:], lr[43:40:-1])


def test_odd_size_mod_crop_and_replicate_padding(tmp_path, degrade):
    out = tmp_path / "out"
    result = ok(ODD, out)
    assert "not a multiple of the scale 4" in result.output  # the mod-crop is announced
    rec = splits.load_split(out)["clips"]["clip"]
    assert rec["source_size"] == [150, 270, 3]  # the source files
    assert rec["gt_size"] == [148, 268, 3] and rec["lr_size"] == [37, 67, 3]  # mod-cropped GT
    assert rec["lr_pad"] == [3, 1] and rec["gt_pad"] == [12, 4]
    assert (out / "meta_info.txt").read_text() == "clip 7 (148,268,3)\n"
    src = imread(ODD / "clip" / "00000002.png")
    gt = imread(out / "GT" / "clip" / "00000002.png")
    lr = imread(out / "BIx4" / "clip" / "00000002.png")
    assert gt.shape == (160, 272, 3) and lr.shape == (40, 68, 3)
    np.testing.assert_array_equal(splits.unpad(gt, rec, "gt"), src[:148, :268])
    np.testing.assert_array_equal(splits.unpad(lr, rec, "lr"), degrade(src[:148, :268], 4, "bi"))
    np.testing.assert_array_equal(gt[148:, :268], np.broadcast_to(src[147:148, :268], (12, 268, 3)))
    np.testing.assert_array_equal(gt[:, 268:], np.broadcast_to(gt[:, 267:268], (160, 4, 3)))
    np.testing.assert_array_equal(lr[37:, :], np.broadcast_to(lr[36:37], (3, 68, 3)))


def test_zero_padding_and_multiple(tmp_path):
    lr_root = subsample_tree(ODD, tmp_path / "lr")
    out = tmp_path / "out"
    ok(ODD, out, "--pad", "zero", "--multiple", 8, "--lr-root", lr_root)
    rec = splits.load_split(out)["clips"]["clip"]
    assert rec["lr_pad"] == [3, 5] and rec["gt_pad"] == [12, 20]
    gt = imread(out / "GT" / "clip" / "00000000.png")
    lr = imread(out / "BIx4" / "clip" / "00000000.png")
    assert gt.shape == (160, 288, 3) and lr.shape == (40, 72, 3)
    assert not gt[148:].any() and not gt[:, 268:].any() and not lr[37:].any() and not lr[:, 67:].any()
    np.testing.assert_array_equal(splits.unpad(lr, rec, "lr"), imread(lr_root / "clip" / "00000000.png"))


def test_crop_instead_of_padding(tmp_path, degrade):
    out = tmp_path / "out"
    ok(ODD, out, "--crop")
    split = splits.load_split(out)
    rec = split["clips"]["clip"]
    assert split["pad_mode"] is None and split["crop"] is True
    assert rec["gt_crop"] == [144, 256] and rec["lr_crop"] == [36, 64]
    assert rec["lr_pad"] == [0, 0] and rec["gt_size"] == [148, 268, 3]
    src = imread(ODD / "clip" / "00000000.png")
    gt = imread(out / "GT" / "clip" / "00000000.png")
    lr = imread(out / "BIx4" / "clip" / "00000000.png")
    np.testing.assert_array_equal(splits.unpad(gt, rec, "gt"), src[:144, :256])
    np.testing.assert_array_equal(lr, degrade(src[:148, :268], 4, "bi")[:36, :64])


def test_crop_and_pad_exclude_each_other():
    result = run(ODD, "/nonexistent/out", "--crop", "--pad", "zero")
    assert result.exit_code == 2 and "exclude each other" in result.output


def test_lr_matches_matlab_reference_end_to_end(tmp_path, degrade):
    # baboon 480x492 -> MATLAB imresize(I, 1/4) 120x123, padded to 120x124 then cut back.
    src = tmp_path / "src" / "baboon"
    src.mkdir(parents=True)
    shutil.copy(BABOON / "baboon.png", src / "frame1.png")
    out = tmp_path / "out"
    ok(tmp_path / "src", out)
    rec = splits.load_split(out)["clips"]["baboon"]
    assert rec["lr_pad"] == [0, 1] and rec["gt_pad"] == [0, 4]
    lr = imread(out / "BIx4" / "baboon" / "00000000.png")
    np.testing.assert_array_equal(splits.unpad(lr, rec, "lr"), imread(BABOON / "baboon_down_x4_matlab.png"))


def test_uint16_gray_frames_keep_dtype(tmp_path, degrade):
    clip = tmp_path / "src" / "g16"
    clip.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i in range(2):
        cv2.imwrite(str(clip / f"f{i}.png"), rng.integers(0, 65535, (30, 22), dtype=np.uint16))
    out = tmp_path / "out"
    ok(tmp_path / "src", out, "--degradation", "bd")
    rec = splits.load_split(out)["clips"]["g16"]
    assert rec["gt_size"] == [28, 20, 1] and rec["lr_pad"] == [1, 3] and rec["dtype"] == "uint16"
    lr = imread(out / "BDx4" / "g16" / "00000001.png")
    gt = imread(out / "GT" / "g16" / "00000001.png")
    assert lr.dtype == gt.dtype == np.uint16 and lr.shape == (8, 8) and gt.shape == (32, 32)


# --- Vid4-style GT tree ---------------------------------------------------------------------

def _vid4_tree(tmp_path: Path) -> Path:
    src = tmp_path / "Vid4"
    for name, reds in (("calendar", "000"), ("walk", "001")):
        shutil.copytree(REDS / reds, src / "GT" / name)
    subsample_tree(src / "GT", src / "BIx4")
    return src


def test_gt_tree_uses_its_own_lr_and_vid4_sizes_are_checked(tmp_path):
    src = _vid4_tree(tmp_path)
    out = tmp_path / "out"
    result = ok(src, out, "--multiple", 1, "--link")
    split = splits.load_split(out)
    assert split["layout"] == "gt-tree" and split["lr_source"] == "given"
    assert list(split["clips"]) == ["calendar", "walk"]
    assert split["clips"]["walk"]["lr_pad"] == [0, 0]
    assert (out / "BIx4" / "walk" / "00000003.png").read_bytes() == \
        (src / "BIx4" / "walk" / "00000003.png").read_bytes()
    assert "linked" in result.output
    assert os.path.samefile(out / "GT" / "calendar" / "00000000.png", src / "GT" / "calendar" / "00000000.png")
    # the partition names the Vid4 clips; the fixture is not the standard release
    shutil.copytree(src / "GT" / "walk", src / "GT" / "city")
    shutil.copytree(src / "GT" / "walk", src / "GT" / "foliage")
    shutil.copytree(src / "BIx4" / "walk", src / "BIx4" / "city")
    shutil.copytree(src / "BIx4" / "walk", src / "BIx4" / "foliage")
    result = ok(src, tmp_path / "vid4", "--partition", "vid4")
    assert "the standard Vid4 release has 41 of 576x720" in result.output
    # all clips of a tree that is exactly a named split are recorded as that split
    result = ok(src, tmp_path / "all", "--quiet")
    assert "the standard Vid4 release has 41 of 576x720" in result.output
    selection = splits.load_split(tmp_path / "all")["selection"]
    assert (selection["kind"], selection["name"], selection["how"]) == ("partition", "vid4", "all")
    assert splits.load_split(tmp_path / "vid4")["selection"]["name"] == "vid4"


# --- --link -----------------------------------------------------------------------------------

def test_link_hard_links_unchanged_gt_and_falls_back_to_copy(tmp_path, monkeypatch, degrade):
    out = tmp_path / "linked"
    ok(VIMEO, out, "--link")
    gt = out / "GT" / "00001_0003" / "00000000.png"
    src = VIMEO / "sequences" / "00001" / "0003" / "im1.png"
    assert os.path.samefile(gt, src)
    # padded frames are never links
    ok(REDS, tmp_path / "padded", "--link", "--clips", "000")
    assert not os.path.samefile(tmp_path / "padded" / "GT" / "000" / "00000000.png", REDS / "000" / "00000000.png")

    def no_link(a, b):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    out2 = tmp_path / "copied"
    ok(VIMEO, out2, "--link")
    gt2 = out2 / "GT" / "00001_0003" / "00000000.png"
    assert not os.path.samefile(gt2, src) and gt2.read_bytes() == src.read_bytes()
    assert tree_bytes(out2) == tree_bytes(out)


# --- resume, idempotence, foreign OUT -----------------------------------------------------------

_KILLER = """
import os, signal, sys
from vsrdata.cli import main
real_replace, calls = os.replace, [0]
def replace(a, b):
    calls[0] += 1
    if calls[0] == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)   # killed between writing a temp file and renaming it
    return real_replace(a, b)
os.replace = replace
main(["split-test", *sys.argv[2:]])
"""


def test_resume_after_sigkill_is_byte_identical(tmp_path, degrade):
    args = [str(ODD), "--pad", "reflect", "-q", "-j", "1"]
    killed = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", _KILLER, "7", args[0], str(killed), *args[1:]],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # a partial output: the marker, some frames, a temporary file, no split.json
    assert (killed / splits.MARKER_FILE).is_file() and not (killed / "split.json").exists()
    temps = [p for p in killed.rglob(".*.tmp")]
    assert len(temps) == 1
    assert 0 < len(list((killed / "GT" / "clip").glob("*.png"))) < 7

    # a foreign tool would be refused; split-test resumes its own partial output
    resumed = split_test(ODD, killed, pad="reflect", workers=1, progress=False)
    assert resumed.summary.skipped >= 2 and resumed.summary.written >= 1
    assert not list(killed.rglob("*.tmp"))
    fresh = tmp_path / "fresh"
    ok(*args[:1], fresh, *args[1:])
    assert tree_bytes(killed) == tree_bytes(fresh)
    # and a re-run of a finished output changes nothing
    before = tree_bytes(fresh)
    again = split_test(ODD, fresh, pad="reflect", workers=1, progress=False)
    assert (again.summary.written, again.summary.skipped) == (0, 7)
    assert tree_bytes(fresh) == before


def test_workers_give_the_same_bytes(tmp_path):
    lr = subsample_tree(REDS, tmp_path / "lr")
    one, two = tmp_path / "one", tmp_path / "two"
    ok(REDS, one, "--lr-root", lr)
    result = CliRunner().invoke(main, ["split-test", str(REDS), str(two), "--lr-root", str(lr), "-q", "-j", "2"])
    assert result.exit_code == 0, result.output
    assert tree_bytes(one) == tree_bytes(two)


def test_foreign_or_different_out_is_refused(tmp_path):
    lr = subsample_tree(REDS, tmp_path / "lr")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    line = fails(REDS, out, "--lr-root", lr, match="not made by split-test")
    assert line.endswith("(--overwrite)") and "use --overwrite" not in line  # the CLI adds its flag
    fails(REDS, out, "--lr-root", lr, "--dry-run", match="not made by split-test")
    assert sorted(os.listdir(out)) == ["notes.txt"]
    ok(REDS, out, "--lr-root", lr, "--overwrite")
    assert (out / "notes.txt").read_text() == "mine" and (out / "split.json").is_file()
    # same options: fine (resume); other options: refused, then redone with --overwrite
    ok(REDS, out, "--lr-root", lr)
    fails(REDS, out, "--lr-root", lr, "--pad", "zero", match="different pad_mode")
    fails(REDS, out, "--lr-root", lr, "--limit", "1", match="different clip selection (")
    ok(REDS, out, "--lr-root", lr, "--limit", "1", "--overwrite")
    assert sorted(os.listdir(out / "GT")) == ["000"]
    assert (out / "meta_info.txt").read_text() == "000 7 (180,320,3)\n"


def test_out_overlapping_the_source_is_refused(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REDS / "000", src / "000")
    fails(src, src / "out", match="overlaps the source")
    fails(src, src, "--overwrite", match="overlaps the source")
    fails(src / "000", src, match="overlaps the source")


def test_dry_run_writes_nothing(tmp_path):
    result = ok(ODD, tmp_path / "out", "--dry-run")
    assert "1 clips, 7 frames" in result.output and "dry run" in result.output
    assert not (tmp_path / "out").exists()
