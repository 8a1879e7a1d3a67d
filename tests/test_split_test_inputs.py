"""`vsrdata split-test`: every bad-input error of issue 3 (lists, path tricks, sizes, truncated and
alpha frames, option errors) and shards."""

from __future__ import annotations

import os
import shutil

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from vsrdata.cli import main
from vsrdata.core import splits
from vsrdata.errors import ConfigError, InputError, OutputError
from vsrdata.pipelines.split_test import split_test
from test_split_test import ODD, REDS, VIMEO, fails, imread, ok, subsample_tree, tree_bytes


# --- bad input ------------------------------------------------------------------------------

def test_missing_list_entries_one_error_first_ten_and_count(tmp_path):
    listing = tmp_path / "list.txt"
    ids = ["00001/0003"] + [f"00002/{i:04d}" for i in range(1, 13)]
    listing.write_text("\n".join(ids) + "\n")
    line = fails(VIMEO, tmp_path / "out", "--list", listing, match="12 clip(s) of the list not found")
    assert "00002/0010" in line and "00002/0011" not in line and "and 2 more" in line
    assert not (tmp_path / "out").exists()
    line = fails(REDS, tmp_path / "out", "--partition", "reds4", match="3 clip(s) of the list not found")
    assert "011, 015, 020" in line
    line = fails(REDS, tmp_path / "out", "--partition", "redsofficial4", match="4 clip(s) of the list")
    assert "numbered 240-269 once val is merged" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bad", ["../reds/train_sharp/000", "/etc", "00001/../0003", "~/x", "a\\b"])
def test_path_tricks_are_refused(tmp_path, bad):
    listing = tmp_path / "list.txt"
    listing.write_text(f"00001/0003\n{bad}\n")
    fails(VIMEO, tmp_path / "out", "--list", listing, match="refusing unsafe clip id")
    fails(VIMEO, tmp_path / "out", "--clips", bad, match="refusing unsafe clip id")
    assert not (tmp_path / "out").exists()


def test_duplicate_and_empty_lists(tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("00001/0003\n00001/0003\n")
    fails(VIMEO, tmp_path / "out", "--list", listing, match="listed twice")
    listing.write_text("\n\n")
    fails(VIMEO, tmp_path / "out", "--list", listing, match="is empty")
    fails(VIMEO, tmp_path / "out", "--list", listing, "--clips", "00001/0003", match="choose one of")


def test_clip_with_frames_of_different_sizes(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REDS / "002", src / "002")
    img = imread(src / "002" / "00000004.png")
    cv2.imwrite(str(src / "002" / "00000004.png"), img[:176])
    line = fails(src, tmp_path / "out", match=f"GT clip {src / '002'} mixes frame formats")
    assert f"{src / '002' / '00000004.png'} is 176x320x3 uint8, its first frame 00000000.png is 180x320x3 uint8" in line
    assert not (tmp_path / "out").exists()


def test_gt_lr_size_mismatch_and_missing_lr(tmp_path):
    lr2 = subsample_tree(REDS, tmp_path / "lr2", scale=2)
    line = fails(REDS, tmp_path / "out", "--lr-root", lr2, match="clip '000'")
    assert "disagree with scale 4" in line and "expected LR 45x80" in line
    ok(REDS, tmp_path / "x2", "--lr-root", lr2, "--scale", 2)
    assert splits.load_split(tmp_path / "x2")["lr_dir"] == "BIx2"
    lr = subsample_tree(REDS, tmp_path / "lr" / "X4")  # REDS' train_sharp_bicubic/X4 is found
    (tmp_path / "lr" / "X4" / "001" / "00000005.png").unlink()
    fails(REDS, tmp_path / "out", "--lr-root", tmp_path / "lr", match="clip '001': GT and LR frames differ")
    shutil.rmtree(lr / "002")
    fails(REDS, tmp_path / "out", "--lr-root", lr, "--clips", "002", match="LR clip '002' not found")
    assert not (tmp_path / "out").exists()


def test_truncated_frame_is_named(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REDS / "000", src / "000")
    data = (src / "000" / "00000003.png").read_bytes()
    (src / "000" / "00000003.png").write_bytes(data[: len(data) // 2])
    lr = subsample_tree(REDS / "000", tmp_path / "lr" / "000")
    fails(src, tmp_path / "out", "--lr-root", lr.parent, match="00000003.png")
    assert not (tmp_path / "out" / "split.json").exists()


def test_truncated_frame_is_refused_even_when_it_would_only_be_copied(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REDS / "000", src / "000")
    data = (src / "000" / "00000001.png").read_bytes()
    (src / "000" / "00000001.png").write_bytes(data[: len(data) - 100])
    lr = subsample_tree(REDS / "000", tmp_path / "lr" / "000").parent
    for extra in ([], ["--link"]):
        out = tmp_path / f"out{len(extra)}"
        fails(src, out, "--lr-root", lr, "--multiple", 1, *extra, match="truncated PNG")
        assert (out / "GT" / "000" / "00000000.png").is_file()  # the other frames were done
        assert not (out / "GT" / "000" / "00000001.png").exists()


def test_library_errors_are_typed(tmp_path):
    with pytest.raises(ConfigError):
        split_test(ODD, tmp_path / "o", scale=1)
    with pytest.raises(ConfigError):
        split_test(ODD, tmp_path / "o", pad="wrap")
    with pytest.raises(InputError):
        split_test(tmp_path / "missing", tmp_path / "o")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError):
        split_test(ODD, tmp_path / "file")
    assert not (tmp_path / "o").exists()


def test_alpha_frames_and_symlinked_output_folders_are_refused(tmp_path):
    clip = tmp_path / "src" / "rgba"
    clip.mkdir(parents=True)
    cv2.imwrite(str(clip / "a.png"), np.zeros((8, 8, 4), np.uint8))
    fails(tmp_path / "src", tmp_path / "out", match="alpha channel")
    lr = subsample_tree(REDS, tmp_path / "lr")
    out = tmp_path / "out2"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "GT").symlink_to(tmp_path / "elsewhere")
    fails(REDS, out, "--lr-root", lr, "--overwrite", match="symbolic link")
    assert not list((tmp_path / "elsewhere").iterdir())


def test_option_errors_name_the_flag_once_in_the_cli_and_none_in_the_library(tmp_path):
    """Library messages speak of options; the CLI appends the flag (` (--lr-root)`)."""
    line = fails(REDS, tmp_path / "o", "--scale", 1, match="scale 1 needs an LR tree to read")
    assert line.endswith("(--lr-root)") and line.count("--") == 1
    with pytest.raises(ConfigError, match="^workers must be >= 1, got 0$") as info:
        split_test(REDS, tmp_path / "o", workers=0)
    assert info.value.option == "workers"


# --- shards ----------------------------------------------------------------------------------

def test_shards_together_give_the_tree_of_one_run_and_records_come_last(tmp_path):
    """Issue 14 §3: `split-test --shard I/N`. Clip k goes to shard k mod N; the shard that
    finishes last writes split.json/meta_info.txt/mapping.txt, so the union is one run's tree."""
    lr = subsample_tree(REDS, tmp_path / "lr")
    one, sharded = tmp_path / "one", tmp_path / "sharded"
    ok(REDS, one, "--lr-root", lr, "--multiple", 8)
    first = ok(REDS, sharded, "--lr-root", lr, "--multiple", 8, "--shard", "1/2")
    assert sorted(os.listdir(sharded / "GT")) == ["001"]  # clips 000, 001, 002: k mod 2 == 1
    assert not (sharded / "split.json").exists() and "other shards not finished" in first.output
    ok(REDS, sharded, "--lr-root", lr, "--multiple", 8, "--shard", "0/2")
    assert tree_bytes(sharded) == tree_bytes(one)
    again = ok(REDS, sharded, "--lr-root", lr, "--multiple", 8, "--shard", "1/2")  # a re-run resumes
    assert "0 written" in again.output and tree_bytes(sharded) == tree_bytes(one)


def test_shard_auto_under_a_slurm_array_equals_the_explicit_shard(tmp_path):
    lr = subsample_tree(REDS, tmp_path / "lr")
    explicit, auto = tmp_path / "explicit", tmp_path / "auto"
    ok(REDS, explicit, "--lr-root", lr, "--shard", "1/3")
    slurm = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "4"}
    result = CliRunner().invoke(main, ["split-test", str(REDS), str(auto), "--lr-root", str(lr), "-q", "-j", "1",
                                       "--shard", "auto"], env=slurm)
    assert result.exit_code == 0, result.output
    assert tree_bytes(auto) == tree_bytes(explicit) and sorted(os.listdir(auto / "GT")) == ["001"]
    outside = CliRunner().invoke(main, ["split-test", str(REDS), str(tmp_path / "x"), "--shard", "auto"],
                                 env={"SLURM_ARRAY_TASK_ID": None})
    assert outside.exit_code == 1 and "Slurm job array" in outside.output


def test_shard_with_overwrite_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="every shard's frames") as info:
        split_test(REDS, tmp_path / "o", shard=(0, 2), overwrite=True)
    assert info.value.option == "overwrite"
    with pytest.raises(ConfigError, match="shard must be I/N"):
        split_test(REDS, tmp_path / "o", shard=(2, 2))


def test_two_shards_running_at_once_share_one_out(tmp_path):
    """Shards of a Slurm array run side by side: neither refuses the other's OUT, and the
    tree they leave is one run's tree."""
    import subprocess
    import sys

    lr = subsample_tree(REDS, tmp_path / "lr")
    one, shared = tmp_path / "one", tmp_path / "shared"
    ok(REDS, one, "--lr-root", lr)
    procs = [subprocess.Popen([sys.executable, "-m", "vsrdata", "split-test", str(REDS), str(shared),
                               "--lr-root", str(lr), "-q", "-j", "1", "--shard", f"{i}/2"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert tree_bytes(shared) == tree_bytes(one)
