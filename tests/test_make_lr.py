"""`vsrdata make-lr` and `vsrdata.pipelines.make_lr`: layouts, pixels, resume, shards, errors.

Pixels are checked against `degrade(read_image(src))` (whose own exactness against MATLAB is
tested with the resize/degrade module); here we check that the pipeline writes exactly that,
for every layout, bit depth and channel count, and that it survives `kill -9`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from vsrdata.cli import main
from vsrdata.core.degrade import degrade
from vsrdata.core.image_io import read_image
from vsrdata.errors import InputError, OutputError, VsrDataError
from vsrdata.pipelines.make_lr import Summary, make_lr, plan_make_lr
from vsrdata.pipelines.runner import run_jobs
from vsrdata.pipelines.summary import SKIPPED, WRITTEN

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
VIMEO = FIXTURES / "vimeo_septuplet"
REDS = FIXTURES / "reds" / "train_sharp"
ODD = FIXTURES / "odd_size"


def run_cli(*args):
    return CliRunner().invoke(main, ["make-lr", *map(str, args)])


def files_under(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file (hidden ones included) under root."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def small_tree(tmp_path: Path, n_clips: int = 2, n_frames: int = 3, size=(64, 48)) -> Path:
    """A REDS-like tree of small real frames (crops of the fixture) for fast error tests."""
    src = tmp_path / "src"
    frames = sorted((REDS / "000").glob("*.png"))
    for c in range(n_clips):
        for f in range(n_frames):
            img = cv2.imread(str(frames[(c * n_frames + f) % len(frames)]), cv2.IMREAD_UNCHANGED)
            out = src / f"{c:03d}" / f"{f:08d}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out), img[: size[1], : size[0]])
    return src


def assert_matches_degrade(src: Path, dst: Path, scale=4, kind="bi", suffix_map=None):
    pairs = plan_make_lr(src, dst)
    for s, d in pairs:
        expected = degrade(read_image(s), scale, kind)
        got = cv2.imread(str(d), cv2.IMREAD_UNCHANGED)
        assert got is not None, d
        assert got.dtype == expected.dtype and got.shape == expected.shape, d
        np.testing.assert_array_equal(got, expected, err_msg=str(d))
    return pairs


# ------------------------------------------------------------------------------ layouts/pixels
def test_vimeo_layout_mirrored_sizes_and_pixels(tmp_path):
    dst = tmp_path / "lr"
    result = run_cli(VIMEO, dst, "--workers", 1, "-q")
    assert result.exit_code == 0, result.output
    assert "frames: 21 written, 0 skipped (already done), 0 failed" in result.output
    written = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*.png"))
    expected = sorted(f"sequences/00001/000{c}/im{i}.png" for c in (1, 2, 3) for i in range(1, 8))
    assert written == expected
    assert not (dst / "sep_trainlist.txt").exists()  # only frames are produced
    img = cv2.imread(str(dst / "sequences/00001/0002/im4.png"), cv2.IMREAD_UNCHANGED)
    assert img.shape == (64, 112, 3) and img.dtype == np.uint8
    assert_matches_degrade(VIMEO, dst)


def test_vimeo_sequences_folder_as_src(tmp_path):
    summary = make_lr(VIMEO / "sequences", tmp_path / "lr", workers=1, progress=False)
    assert summary.written == 21
    assert (tmp_path / "lr/00001/0003/im7.png").is_file()


@pytest.mark.parametrize("kind", ["bi", "bd"])
def test_reds_layout_pool_workers(tmp_path, kind):
    dst = tmp_path / "lr"
    summary = make_lr(REDS, dst, degradation=kind, workers=2, progress=False)
    assert isinstance(summary, Summary)
    assert (summary.total, summary.written, summary.skipped, summary.failed) == (21, 21, 0, 0)
    written = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*"))
    expected = sorted([f"{c:03d}" for c in range(3)] + [".make_lr.json"]
                      + [f"{c:03d}/{f:08d}.png" for c in range(3) for f in range(7)])
    assert written == expected
    assert cv2.imread(str(dst / "001/00000003.png")).shape == (45, 80, 3)
    assert_matches_degrade(REDS, dst, kind=kind)


def test_odd_size_is_mod_cropped_for_bi(tmp_path):
    dst = tmp_path / "lr"
    result = run_cli(ODD, dst, "--scale", 4, "--degradation", "bi", "-j", 1, "-q")
    assert result.exit_code == 0, result.output
    out = cv2.imread(str(dst / "clip/00000000.png"), cv2.IMREAD_UNCHANGED)
    assert out.shape == (37, 67, 3)  # 270x150 -> mod-crop 268x148 -> 67x37
    assert_matches_degrade(ODD, dst)


def test_scale_2_and_bd_on_odd_size(tmp_path):
    make_lr(ODD, tmp_path / "x2", scale=2, workers=1, progress=False)
    assert cv2.imread(str(tmp_path / "x2/clip/00000000.png")).shape == (75, 135, 3)
    assert_matches_degrade(ODD, tmp_path / "x2", scale=2)
    make_lr(ODD, tmp_path / "bd", degradation="bd", workers=1, progress=False)
    assert_matches_degrade(ODD, tmp_path / "bd", kind="bd")


def test_16bit_gray_and_jpeg_inputs(tmp_path):
    src = tmp_path / "src"
    base = cv2.imread(str(REDS / "000/00000000.png"), cv2.IMREAD_UNCHANGED)[:48, :64]
    (src / "c16").mkdir(parents=True)
    (src / "gray").mkdir()
    (src / "gray16").mkdir()
    (src / "jpg").mkdir()
    cv2.imwrite(str(src / "c16/0.png"), base.astype(np.uint16) * 257 + 3)
    gray = cv2.cvtColor(base, cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(src / "gray/0.png"), gray)
    cv2.imwrite(str(src / "gray16/0.png"), gray.astype(np.uint16) * 250)
    cv2.imwrite(str(src / "jpg/0.jpg"), base)
    dst = tmp_path / "lr"
    for kind in ("bi", "bd"):
        make_lr(src, dst / kind, degradation=kind, workers=1, progress=False)
        assert_matches_degrade(src, dst / kind, kind=kind)
        out16 = cv2.imread(str(dst / kind / "c16/0.png"), cv2.IMREAD_UNCHANGED)
        assert out16.dtype == np.uint16 and out16.shape == (12, 16, 3)
        outg = cv2.imread(str(dst / kind / "gray/0.png"), cv2.IMREAD_UNCHANGED)
        assert outg.dtype == np.uint8 and outg.shape == (12, 16)
        outg16 = cv2.imread(str(dst / kind / "gray16/0.png"), cv2.IMREAD_UNCHANGED)
        assert outg16.dtype == np.uint16 and outg16.shape == (12, 16)
        assert (dst / kind / "jpg/0.png").is_file() and not (dst / kind / "jpg/0.jpg").exists()


# ------------------------------------------------------------------------ resume/overwrite/dry
def test_rerun_skips_and_overwrite_rewrites(tmp_path):
    src = small_tree(tmp_path)
    dst = tmp_path / "lr"
    first = make_lr(src, dst, workers=1, progress=False)
    assert (first.written, first.skipped) == (6, 0)
    victim = dst / "001/00000001.png"
    victim.unlink()
    again = run_cli(src, dst, "-j", 1, "-q")
    assert again.exit_code == 0, again.output
    assert "frames: 1 written, 5 skipped (already done), 0 failed" in again.output
    marker = dst / "000/00000000.png"
    marker.write_bytes(b"not really a png")  # --overwrite must replace even existing outputs
    over = make_lr(src, dst, workers=1, overwrite=True, progress=False)
    assert (over.written, over.skipped) == (6, 0)
    assert_matches_degrade(src, dst)


def test_dry_run_writes_nothing(tmp_path):
    dst = tmp_path / "lr"
    result = run_cli(VIMEO, dst, "--dry-run")
    assert result.exit_code == 0, result.output
    assert not dst.exists()
    assert "21 frames, BIx4" in result.output
    assert "dry run: frames: 21 to write, 0 to skip (already exist) of 21" in result.output
    first = f"{VIMEO / 'sequences/00001/0001/im1.png'} -> {dst / 'sequences/00001/0001/im1.png'}"
    assert first in result.output
    assert "... and 16 more" in result.output
    # with some outputs present the dry run counts them as skips, still writing nothing
    make_lr(VIMEO, dst, workers=1, shard=(0, 3), progress=False)
    before = files_under(dst)
    summary = make_lr(VIMEO, dst, dry_run=True, progress=False)
    assert (summary.total, summary.written, summary.skipped, summary.dry_run) == (21, 14, 7, True)
    assert files_under(dst) == before


def test_shards_are_disjoint_and_cover_everything(tmp_path):
    full = [d for _, d in plan_make_lr(VIMEO, tmp_path / "lr")]
    parts = [[d for _, d in plan_make_lr(VIMEO, tmp_path / "lr", shard=(i, 4))] for i in range(4)]
    flat = [d for part in parts for d in part]
    assert sorted(flat) == sorted(full) and len(set(flat)) == len(full)
    assert sorted(len(p) for p in parts) == [5, 5, 5, 6]
    assert parts[1] == full[1::4] and full[5].endswith("sequences/00001/0001/im6.png")  # documented rule: frame k of the sorted list -> shard k mod N
    # running every shard via the CLI into one DST gives the same tree as one full run
    for i in range(3):
        result = run_cli(REDS, tmp_path / "sharded", "--shard", f"{i}/3", "-j", 1, "-q")
        assert result.exit_code == 0, result.output
        assert "frames: 7 written" in result.output
    make_lr(REDS, tmp_path / "whole", workers=1, progress=False)
    assert files_under(tmp_path / "sharded") == files_under(tmp_path / "whole")


@pytest.mark.parametrize("bad", ["3/3", "-1/2", "x", "1/0", "1/2/3"])
def test_bad_shard_is_a_usage_error(tmp_path, bad):
    result = run_cli(REDS, tmp_path / "lr", "--shard", bad)
    assert result.exit_code == 2
    assert "--shard" in result.output and not (tmp_path / "lr").exists()


# ---------------------------------------------------------------------------------- kill -9
def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


@pytest.mark.slow
def test_kill_9_then_rerun_is_byte_identical(tmp_path):
    src = tmp_path / "src"
    frames = sorted(VIMEO.glob("sequences/*/*/*.png"))
    for c in range(8):  # 8 clips x 21 frames of 448x256: long enough to be killed mid-run
        for k, frame in enumerate(frames):
            out = src / f"{c:03d}" / f"{k:08d}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(frame, out)
    total = 8 * len(frames)
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "vsrdata", "make-lr", str(src), str(killed), "-j", "2", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    done = 0
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        done = sum(1 for _ in killed.rglob("[!.]*.png")) if killed.exists() else 0
        if done >= 10:
            break
        time.sleep(0.005)
    assert proc.poll() is None, f"finished before it could be killed: {proc.stderr.read()!r}"
    os.kill(proc.pid, signal.SIGKILL)  # kill -9 of the command (not of its workers)
    proc.wait()
    at_kill = sum(1 for _ in killed.rglob("[!.]*.png"))
    if sys.platform.startswith("linux"):  # the workers die with it (PR_SET_PDEATHSIG)
        deadline = time.monotonic() + 10
        while group_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not group_members(proc.pid), "orphaned workers are still running"
        # orphans would finish their chunk of frames; at most the renames in flight may land
        assert sum(1 for _ in killed.rglob("[!.]*.png")) <= at_kill + 2
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # elsewhere: nothing of it may keep writing
    except ProcessLookupError:
        pass
    partial = [p for p in killed.rglob("*.png") if not p.name.startswith(".")]
    assert 10 <= len(partial) < total
    for p in partial:  # everything the killed run left under a final name is complete
        assert cv2.imread(str(p), cv2.IMREAD_UNCHANGED).shape == (64, 112, 3)
    # a stale temp file such as a kill leaves mid-write (planted, since timing is not ours)
    stale = killed / "007" / ".00000020.png.999999.tmp"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"\x89PNG half a file")
    foreign = killed / "007" / ".notes.txt"  # hidden files that are not our temps stay
    foreign.write_text("keep me")

    rerun = run_cli(src, killed, "-j", 2, "-q")
    assert rerun.exit_code == 0, rerun.output
    n_done = len(partial)
    assert f"frames: {total - n_done} written, {n_done} skipped (already done), 0 failed" in rerun.output

    reference = tmp_path / "reference"
    make_lr(src, reference, workers=1, progress=False)
    foreign.unlink()
    assert files_under(killed) == files_under(reference)  # no temp file left, same bytes


# ------------------------------------------------------------------------------ runner helper
def toy_job(item):
    """Module-level job for runner tests (spawned workers import it by name)."""
    kind, value = item
    if kind == "bad":
        raise InputError(f"bad item {value}")
    if kind == "die":
        os.kill(os.getpid(), signal.SIGKILL)  # a worker killed from outside, e.g. by the OOM killer
    if kind == "bug":
        raise ZeroDivisionError("a bug, not bad input")
    return SKIPPED if kind == "skip" else WRITTEN


@pytest.mark.parametrize("workers", [1, 2])
def test_runner_counts_and_orders_failures(workers):
    items = [("ok", i) for i in range(20)] + [("bad", 7), ("skip", 0), ("bad", 3)] + [("ok", 0)] * 10
    summary = run_jobs(toy_job, items, workers=workers, progress=False, chunksize=2)
    assert (summary.total, summary.written, summary.skipped, summary.failed) == (33, 30, 1, 2)
    assert summary.errors == ["bad item 7", "bad item 3"]  # input order, whatever finished first
    assert summary.line().startswith("frames: 30 written, 1 skipped (already done), 2 failed in ")


def test_runner_worker_death_is_an_error_not_a_hang():
    items = [("ok", i) for i in range(6)] + [("die", 0)] + [("ok", i) for i in range(6)]
    with pytest.raises(VsrDataError, match="worker process died unexpectedly"):
        run_jobs(toy_job, items, workers=2, progress=False, chunksize=1)


@pytest.mark.parametrize("workers", [1, 2])
def test_runner_bugs_propagate(workers):
    with pytest.raises(ZeroDivisionError):
        run_jobs(toy_job, [("ok", 1), ("bug", 0), ("ok", 2)], workers=workers, progress=False)


def test_manifest_records_the_degradation_and_refuses_mixing(tmp_path):
    dst = tmp_path / "lr"
    make_lr(ODD, dst, scale=4, degradation="bd", workers=1, progress=False)
    record = json.loads((dst / ".make_lr.json").read_text())
    assert (record["format"], record["scale"], record["degradation"]) == ("vsrdata-make-lr/1", 4, "bd")
    # A re-run with the same settings resumes; another degradation or scale is refused.
    assert make_lr(ODD, dst, scale=4, degradation="bd", workers=1, progress=False).skipped == 7
    result = CliRunner().invoke(main, ["make-lr", str(ODD), str(dst), "-d", "bi", "-j", "1", "-q"])
    assert result.exit_code == 1
    assert "already holds x4 'bd' frames (.make_lr.json); refusing to mix in x4 'bi'" in result.output
    with pytest.raises(OutputError, match="refusing to mix in x2 'bd'"):
        make_lr(ODD, dst, scale=2, degradation="bd", workers=1, progress=False, dry_run=True)
    # --overwrite replaces the frames and the record.
    make_lr(ODD, dst, scale=4, degradation="bi", workers=1, progress=False, overwrite=True)
    assert json.loads((dst / ".make_lr.json").read_text())["degradation"] == "bi"


def test_manifest_is_hidden_from_basicsr_listing_and_old_name_still_read(tmp_path):
    import glob
    import os

    dst = tmp_path / "lr"
    make_lr(REDS, dst, scale=4, degradation="bd-duf", workers=1, progress=False)
    # BasicSR's VideoTestDataset takes every glob('*') entry of the LQ root for a clip folder.
    assert sorted(os.path.basename(p) for p in glob.glob(str(dst / "*"))) == ["000", "001", "002"]
    # A tree made before the rename: its visible make_lr.json is still checked on resume ...
    (dst / ".make_lr.json").rename(dst / "make_lr.json")
    with pytest.raises(OutputError, match=r"already holds x4 'bd-duf' frames \(make_lr.json\)"):
        make_lr(REDS, dst, scale=4, degradation="bi", workers=1, progress=False)
    # ... and a resume replaces it by the hidden file.
    assert make_lr(REDS, dst, scale=4, degradation="bd-duf", workers=1, progress=False).skipped == 21
    assert not (dst / "make_lr.json").exists()
    assert json.loads((dst / ".make_lr.json").read_text())["degradation"] == "bd-duf"
