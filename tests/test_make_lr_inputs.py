"""`vsrdata make-lr` on bad input: truncated, too small, missing and empty sources, output inside
the source, two sources for one output, bad library arguments, `--help` example."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from vsrdata.cli import main
from vsrdata.core.degrade import degrade
from vsrdata.core.image_io import read_image
from vsrdata.errors import ConfigError, InputError, OutputError
from vsrdata.pipelines.make_lr import JobsFailed, make_lr, plan_make_lr
from test_make_lr import REDS, run_cli, small_tree


# ------------------------------------------------------------------------------- bad inputs
def test_truncated_frame_fails_others_are_written(tmp_path):
    src = small_tree(tmp_path)
    bad = src / "001/00000001.png"
    bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])
    dst = tmp_path / "lr"
    result = run_cli(src, dst, "-j", 2, "-q")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == f"Error: truncated PNG (no IEND chunk): {bad}"
    assert "frames: 5 written, 0 skipped (already done), 1 failed" in result.output
    assert "Traceback" not in result.output
    assert not (dst / "001/00000001.png").exists()
    assert sorted(p.name for p in (dst / "001").iterdir()) == ["00000000.png", "00000002.png"]
    good = [(s, d) for s, d in plan_make_lr(src, dst) if s != str(bad)]
    for s, d in good:
        np.testing.assert_array_equal(cv2.imread(str(d), cv2.IMREAD_UNCHANGED), degrade(read_image(s), 4))


def test_library_raises_jobs_failed_with_summary(tmp_path):
    src = small_tree(tmp_path)
    bad = src / "000/00000001.png"
    bad.write_bytes(bad.read_bytes()[:-20])  # header intact (the plan accepts it), IEND cut off
    with pytest.raises(JobsFailed) as info:
        make_lr(src, tmp_path / "lr", workers=1, progress=False)
    assert isinstance(info.value, InputError)
    assert str(info.value) == f"truncated PNG (no IEND chunk): {bad}"
    assert (info.value.summary.written, info.value.summary.failed) == (5, 1)


def test_too_small_frames(tmp_path):  # RGBA frames: tests/test_input_contract.py (refused when planning)
    src = small_tree(tmp_path, n_clips=3, n_frames=2)  # a clip is uniform: whole clips are bad
    tiny = src / "002/00000001.png"
    for i in range(2):
        img = cv2.imread(str(src / f"000/{i:08d}.png"))
        cv2.imwrite(str(src / f"002/{i:08d}.png"), img[:3, :40])
    dst = tmp_path / "lr"
    result = run_cli(src, dst, "-j", 1, "-q")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1] == f"Error: 2 frames failed; first: frame is 40x3, smaller than the scale 4: {src / '002/00000000.png'}"
    assert f"failed: frame is 40x3, smaller than the scale 4: {tiny}" in lines
    assert "frames: 4 written, 0 skipped (already done), 2 failed" in result.output
    assert not [p for p in dst.rglob(".*") if p.name != ".make_lr.json"]  # no temp files left behind


def test_missing_and_empty_src(tmp_path):
    result = run_cli(tmp_path / "nope", tmp_path / "lr")
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: source folder does not exist: {tmp_path / 'nope'}"
    empty = tmp_path / "empty"
    (empty / "clip").mkdir(parents=True)
    (empty / "clip" / "notes.txt").write_text("no frames here")
    result = run_cli(empty, tmp_path / "lr")
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: no image frames found under {empty}"
    assert not (tmp_path / "lr").exists()
    a_file = empty / "clip" / "notes.txt"
    result = run_cli(a_file, tmp_path / "lr")
    assert result.exit_code == 1 and result.output.strip() == f"Error: source is not a folder: {a_file}"


def test_dst_equal_to_or_inside_src_is_refused(tmp_path):
    src = small_tree(tmp_path)
    result = run_cli(src, src)
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: destination {src} is the source folder {src} itself (choose a DST outside it)"
    inside = src / "000" / "lr"
    result = run_cli(src, inside)
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: destination {inside} is inside the source folder {src} "
                                     "(choose a DST outside it)")
    assert not inside.exists()
    link = tmp_path / "link"
    link.symlink_to(src / "001")  # a symlink that resolves into SRC
    with pytest.raises(OutputError, match="inside the source folder"):
        make_lr(src, link / "lr", workers=1, progress=False)
    link2 = tmp_path / "link2"
    link2.symlink_to(src)  # DST is SRC under another name
    with pytest.raises(OutputError, match="is the source folder .* itself"):
        make_lr(src, link2, workers=1, progress=False)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        make_lr(src, a_file, workers=1, progress=False)
    assert sorted(p.name for p in (src / "001").iterdir()) == [f"{i:08d}.png" for i in range(3)]


def test_src_inside_dst_is_fine_unless_an_output_lands_in_src(tmp_path):
    data = tmp_path / "data"
    src = small_tree(data, n_clips=1, n_frames=2)  # data/src/000/0000000{0,1}.png
    summary = make_lr(src, data, workers=1, progress=False)  # -> data/000/...
    assert summary.written == 2 and (data / "000/00000001.png").is_file()
    (src / "src").mkdir()  # a clip named like SRC itself would be mirrored into SRC
    shutil.copyfile(src / "000/00000000.png", src / "src/00000000.png")
    with pytest.raises(OutputError, match="would be written inside the source folder"):
        make_lr(src, data, workers=1, progress=False)
    assert not (src / "src/.00000000.png").exists() and len(list((src / "src").iterdir())) == 1


def test_two_sources_for_one_output_are_refused(tmp_path):
    src = small_tree(tmp_path)
    cv2.imwrite(str(src / "000/00000000.jpg"), cv2.imread(str(src / "000/00000000.png")))
    with pytest.raises(InputError, match="would both be written to"):
        make_lr(src, tmp_path / "lr", workers=1, progress=False)


def test_bad_library_arguments(tmp_path):
    with pytest.raises(ConfigError, match="unknown degradation 'bx'"):
        make_lr(REDS, tmp_path / "lr", degradation="bx")
    with pytest.raises(ConfigError, match="scale must be a positive integer"):
        make_lr(REDS, tmp_path / "lr", scale=0)
    with pytest.raises(ConfigError, match="shard"):
        make_lr(REDS, tmp_path / "lr", shard=(2, 2))
    assert not (tmp_path / "lr").exists()


def test_help_has_an_example():
    result = CliRunner().invoke(main, ["make-lr", "--help"])
    assert result.exit_code == 0
    assert "vsrdata make-lr" in result.output and "--shard" in result.output
