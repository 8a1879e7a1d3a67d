"""`vsrdata extract`: clips never span a cut, hold the decoded pixels, shards, resume, options, errors.

Test videos are generated here with PyAV (H.264 yuv444p CRF 0, tests/media.py): a shot of the
REDS fixture clip 000 followed by a shot of clip 002 (a hard cut), frames played back and forth
so that consecutive frames within a shot are always neighbours. Pixels are compared with what
PyAV decodes from the same file (`core.video.read_frames`), not with the source PNGs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from media import make_audio_only, make_video, reds_clip
from vsrdata.cli import main
from vsrdata.core.resize import imresize
from vsrdata.core.video import read_frames
from vsrdata.errors import ConfigError, InputError, OutputError
from vsrdata.pipelines.extract import JobsFailed, extract, fit_frame
from vsrdata.pipelines.extract_plan import layout_clips

pytest.importorskip("av")
pytest.importorskip("scenedetect")

CROP = (20, 40, 64, 96)  # y, x, h, w of the 180x320 fixture frames


def shot(name: str, n: int, crop=CROP, scale: int = 1) -> list[np.ndarray]:
    """n frames of fixture clip `name`, played 0..6, 5..0, 1..6, ... (neighbours always adjacent)."""
    clip = reds_clip(name, crop=crop)
    order = [i for _ in range(n) for i in list(range(7)) + list(range(5, 0, -1))][:n]
    frames = [clip[i] for i in order]
    if scale > 1:
        frames = [np.ascontiguousarray(np.repeat(np.repeat(f, scale, 0), scale, 1)) for f in frames]
    return frames


def two_shots(path: Path, first: int = 24, second: int = 26, **kw) -> Path:
    """A video with a hard cut at frame `first`: fixture clip 000, then clip 002."""
    return make_video(path, shot("000", first, **kw) + shot("002", second, **kw), fps=25, audio=None)


def run_cli(*args, env=None):
    return CliRunner(env=env).invoke(main, ["extract", *map(str, args)])


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".extract-cache" not in p.parts}


def png_clips(out: Path) -> dict[str, list[np.ndarray]]:
    return {d.name: [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(d.glob("*.png"))]
            for d in sorted(out.iterdir()) if d.is_dir() and not d.name.startswith(".")}


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return two_shots(tmp_path_factory.mktemp("v") / "two_shots.mp4")


@pytest.fixture(scope="module")
def decoded(video) -> list[np.ndarray]:
    return [f.image for f in read_frames(video)]


# -------------------------------------------------------------------------------- the clips
def test_clips_never_span_the_cut_and_hold_the_decoded_pixels(tmp_path, video, decoded):
    out = tmp_path / "out"
    result = run_cli(video, out, "-n", 10, "-j", 1, "-q")
    assert result.exit_code == 0, result.output
    assert "1 scene cut(s), 4 clip(s); 40 frames" in result.output
    manifest = json.loads((out / "extract.json").read_text())
    assert manifest["videos"][0]["cuts"] == [24] and manifest["videos"][0]["frames"] == 50
    ranges = [c["frames"] for c in manifest["clips"]]
    assert ranges == [[0, 10], [10, 20], [24, 34], [34, 44]]  # remainders 20..23, 44..49 dropped
    assert [c["cut_avoided"] for c in manifest["clips"]] == [None, 24, None, None]
    assert [c["shot"] for c in manifest["clips"]] == [[0, 24]] * 2 + [[24, 50]] * 2
    assert manifest["clips"][2]["time"] == pytest.approx([24 / 25, 33 / 25])
    assert all(c["source"] == str(video.resolve()) for c in manifest["clips"])
    clips = png_clips(out)
    assert list(clips) == ["000", "001", "002", "003"]
    for clip in manifest["clips"]:
        start, end = clip["frames"]
        assert len(clips[clip["name"]]) == end - start
        for k, img in enumerate(clips[clip["name"]]):  # PNG is lossless: exactly the decoded frame
            np.testing.assert_array_equal(img, decoded[start + k], err_msg=f"{clip['name']} frame {k}")


def test_without_scene_cuts_a_clip_spans_the_cut(tmp_path, video):
    # the counter-check of the test above: the cut is real, and only detection keeps clips apart
    out = tmp_path / "out"
    assert run_cli(video, out, "-n", 10, "--scene-cuts", "off", "-q").exit_code == 0
    ranges = [c["frames"] for c in json.loads((out / "extract.json").read_text())["clips"]]
    assert ranges == [[0, 10], [10, 20], [20, 30], [30, 40], [40, 50]]


def test_cut_file_is_used(tmp_path, video):
    cuts = tmp_path / "cuts.txt"
    cuts.write_text("# my cuts\n15, 24\n")
    out = tmp_path / "out"
    assert run_cli(video, out, "-n", 8, "--scene-cuts", cuts, "-q").exit_code == 0
    ranges = [c["frames"] for c in json.loads((out / "extract.json").read_text())["clips"]]
    assert ranges == [[0, 8], [15, 23], [24, 32], [32, 40], [40, 48]]


def test_layout_stride_and_keep_short():
    frames = lambda clips: [c["frames"] for c in clips]  # noqa: E731
    assert frames(layout_clips(50, [24], 10, 6)) == [[0, 10], [6, 16], [12, 22], [24, 34], [30, 40], [36, 46]]
    assert frames(layout_clips(50, [24], 10, 6, keep_short=True)) == [
        [0, 10], [6, 16], [12, 22], [18, 24], [24, 34], [30, 40], [36, 46], [42, 50]]
    assert frames(layout_clips(50, [24], 10, 10, keep_short=True)) == [
        [0, 10], [10, 20], [20, 24], [24, 34], [34, 44], [44, 50]]
    assert frames(layout_clips(50, [24], 30, 30)) == []  # no shot holds 30 frames
    assert frames(layout_clips(50, [24], 30, 30, keep_short=True)) == [[0, 24], [24, 50]]
    assert frames(layout_clips(20, [], 10, 15)) == [[0, 10]]  # stride > N leaves gaps
    assert frames(layout_clips(30, [], 10, 10, keep_short=True)) == [[0, 10], [10, 20], [20, 30]]


def test_keep_short_and_overlapping_stride_on_a_video(tmp_path, video, decoded):
    out = tmp_path / "out"
    assert run_cli(video, out, "-n", 10, "--stride", 6, "--keep-short", "-q").exit_code == 0
    manifest = json.loads((out / "extract.json").read_text())
    assert [c["frames"] for c in manifest["clips"]][3] == [18, 24]
    clips = png_clips(out)
    assert [len(v) for v in clips.values()] == [10, 10, 10, 6, 10, 10, 10, 8]
    np.testing.assert_array_equal(clips["003"][5], decoded[23])
    np.testing.assert_array_equal(clips["001"][0], decoded[6])  # frame 6 is in clips 000 and 001


def test_size_is_matlab_resize_to_cover_then_centre_crop(tmp_path, video, decoded):
    out = tmp_path / "out"
    assert run_cli(video, out, "-n", 10, "--size", "48x40", "-q").exit_code == 0
    clips = png_clips(out)
    # 96x64 -> scale max(48/96, 40/64) = 0.625 -> 60x40 (height exact), then columns 6..53
    expected = imresize(decoded[24], output_shape=(40, 60))[:, 6:54]
    assert clips["002"][0].shape == (40, 48, 3)
    np.testing.assert_array_equal(clips["002"][0], expected)
    assert fit_frame(decoded[0], (96, 64)) is decoded[0]  # already that size: unchanged
    tall = fit_frame(decoded[0], (32, 64))  # taller than wide: height 64 kept, centre 32 columns
    np.testing.assert_array_equal(tall, decoded[0][:, 32:64])


def test_skip_static_drops_clips_without_motion(tmp_path):
    still = reds_clip("001", crop=CROP)[0]
    src = make_video(tmp_path / "still.mp4", shot("000", 20) + [still] * 20, fps=25, audio=None)
    out = tmp_path / "out"
    result = run_cli(src, out, "-n", 10, "--skip-static", "--scene-cuts", "off", "-q")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "extract.json").read_text())
    # motion of the moving shot's clips is the fixture's ~1.3-2 levels, the still clips' is ~0
    assert [c["frames"] for c in manifest["clips"]] == [[0, 10], [10, 20]]
    assert all(c["motion"] > 1.0 for c in manifest["clips"])
    assert manifest["videos"][0]["static_dropped"] == 2 and "2 static clip(s) dropped" in result.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["000", "001", "extract.json"]


def test_numbering_widens_past_1000_clips(tmp_path):
    tiny = [np.full((8, 8, 3), i % 256, np.uint8) for i in range(1001)]
    src = make_video(tmp_path / "tiny.mp4", tiny, fps=25, audio=None)
    result = extract([src], tmp_path / "out", frames_per_clip=1, scene_cuts="off", dry_run=True,
                     workers=1, progress=False)
    names = [c["name"] for c in result.clips]
    assert names[:2] == ["0000", "0001"] and names[-1] == "1000" and len(names) == 1001
    assert not (tmp_path / "out").exists()  # dry run: nothing written


# ------------------------------------------------------------------------ shards and resume
@pytest.fixture(scope="module")
def three_videos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    (root / "sub").mkdir()
    two_shots(root / "b.mp4", 16, 14)
    two_shots(root / "sub" / "a.mkv", 18, 10)
    make_video(root / "c.mov", shot("001", 17), fps=25, audio=None)
    return root


def test_folder_input_sorted_numbering_and_shard_union(tmp_path, three_videos):
    full = tmp_path / "full"
    assert run_cli(three_videos, full, "-n", 6, "-j", 2, "-q").exit_code == 0
    sources = [Path(c["source"]).name for c in json.loads((full / "extract.json").read_text())["clips"]]
    assert sources == ["b.mp4"] * 4 + ["c.mov"] * 2 + ["a.mkv"] * 4  # natural order of full paths
    sharded = tmp_path / "sharded"
    r0 = run_cli(three_videos, sharded, "-n", 6, "--shard", "0/2", "-j", 1, "-q")
    assert r0.exit_code == 0, r0.output
    assert sorted(png_clips(sharded)) == ["000", "001", "002", "003", "006", "007", "008", "009"]  # b, a
    slurm = {"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "7"}
    r1 = run_cli(three_videos, sharded, "-n", 6, "--shard", "auto", "-j", 1, "-q", env=slurm)  # = 1/2
    assert r1.exit_code == 0 and "(shard 1/2)" in r1.output, r1.output
    assert files_under(sharded) == files_under(full)


def test_shard_auto_outside_an_array_is_an_error(tmp_path, video):
    result = run_cli(video, tmp_path / "out", "--shard", "auto", env={"SLURM_ARRAY_TASK_ID": None})
    assert result.exit_code == 1 and "needs a Slurm job array" in result.output
    bad = {"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "0"}
    result = run_cli(video, tmp_path / "out", "--shard", "auto", env=bad)
    assert result.exit_code == 1 and "evenly spaced tasks" in result.output
    assert not (tmp_path / "out").exists()


def test_rerun_skips_and_other_settings_are_refused(tmp_path, video):
    out = tmp_path / "out"
    assert run_cli(video, out, "-n", 10, "-q").exit_code == 0
    before = files_under(out)
    again = run_cli(video, out, "-n", 10, "-q")
    assert again.exit_code == 0 and "0 written, 1 skipped" in again.output
    assert files_under(out) == before
    other = run_cli(video, out, "-n", 5, "-q")
    assert other.exit_code == 1
    assert other.output.strip().splitlines()[-1].startswith("Error: ")
    assert "other settings (frames_per_clip, stride)" in other.output
    assert files_under(out) == before


@pytest.mark.slow
def test_kill_9_then_rerun_is_byte_identical(tmp_path):
    src = tmp_path / "videos"
    src.mkdir()
    for k in range(3):  # 3 videos of 40 frames of 256x384: long enough to be killed mid-run
        two_shots(src / f"v{k}.mp4", 20, 20, crop=(0, 0, 128, 192), scale=2)
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "vsrdata", "extract", str(src), str(killed), "-n", "10", "-j", "2", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if killed.exists() and sum(1 for _ in killed.glob("*/[!.]*.png")) >= 10:
            break
        time.sleep(0.005)
    assert proc.poll() is None, f"finished before it could be killed: {proc.stderr.read()!r}"
    os.kill(proc.pid, signal.SIGKILL)  # kill -9 of the command (not of its workers)
    proc.wait()
    time.sleep(0.5)  # workers die with their parent (PR_SET_PDEATHSIG); let them go
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    partial = [p for p in killed.glob("*/*.png") if not p.name.startswith(".")]
    assert 10 <= len(partial) < 120
    for p in partial:  # what the killed run left under a final name is complete
        assert cv2.imread(str(p), cv2.IMREAD_UNCHANGED).shape == (256, 384, 3)
    stale = killed / "005" / ".00000003.png.999999.tmp"  # as a kill mid-write leaves
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"\x89PNG half a file")

    rerun = run_cli(src, killed, "-n", 10, "-j", 2, "-q")
    assert rerun.exit_code == 0, rerun.output
    reference = tmp_path / "reference"
    extract([src], reference, frames_per_clip=10, workers=1, progress=False)
    assert files_under(killed) == files_under(reference)  # no temp left, same bytes


# ------------------------------------------------------------------------------- bad inputs
def test_bad_videos_are_one_line_errors_and_nothing_is_written(tmp_path, video):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01 not a video" * 50)
    make_audio_only(tmp_path / "sound.mka")
    for bad, message in [(garbage, f"Error: cannot open video {garbage}: "),
                         (tmp_path / "sound.mka", f"Error: no video stream in {tmp_path / 'sound.mka'}"),
                         (tmp_path / "missing.mp4", f"Error: video not found: {tmp_path / 'missing.mp4'}")]:
        result = run_cli(video, bad, tmp_path / "out", "-q")
        assert result.exit_code == 1, result.output
        assert result.output.count("\n") == 1 and result.output.startswith(message), result.output
        assert not list((tmp_path / "out").glob("*/*.png"))
    both = run_cli(garbage, tmp_path / "sound.mka", tmp_path / "out", "-q")  # every bad file listed
    assert both.exit_code == 1 and "failed: cannot open video" in both.output
    assert "failed: no video stream" in both.output and "Error: 2 videos failed" in both.output


def test_truncated_video_is_an_error_naming_both_counts_unless_allowed(tmp_path):
    rng = np.random.default_rng(0)  # noise: every frame is large, so the cut loses whole frames
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(12)]
    full = make_video(tmp_path / "full.mp4", frames, fps=25, audio=None, faststart=True, crf=10)
    cut = tmp_path / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])
    n = sum(1 for _ in read_frames(cut))
    assert 0 < n < 12
    result = run_cli(cut, tmp_path / "out", "-n", 2, "--scene-cuts", "off", "-q")
    assert result.exit_code == 1
    assert f"Error: {cut}: decoded {n} of the 12 frames the container declares" in result.output
    assert "--allow-truncated" in result.output and not list((tmp_path / "out").glob("*/*.png"))
    ok = run_cli(cut, tmp_path / "out", "-n", 2, "--scene-cuts", "off", "--allow-truncated", "-q")
    assert ok.exit_code == 0 and f"Warning: {cut}: decoded {n} of the 12" in ok.output
    assert len(list((tmp_path / "out").glob("*/*.png"))) == n // 2 * 2


def test_out_inside_an_input_folder_is_refused(tmp_path, video):
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "v.mp4").write_bytes(video.read_bytes())
    for out in (folder / "clips", folder):
        result = run_cli(folder, out, "-q")
        assert result.exit_code == 1
        where = "is the input folder" if out == folder else "is inside the input folder"
        tail = " itself" if out == folder else ""
        assert result.output == f"Error: output {out} {where} {folder}{tail} (choose an OUT outside it)\n"
    assert sorted(p.name for p in folder.iterdir()) == ["v.mp4"]


def test_library_argument_errors(tmp_path, video):
    with pytest.raises(ConfigError, match="frames_per_clip"):
        extract([video], tmp_path / "o", frames_per_clip=0)
    with pytest.raises(ConfigError, match="one video"):
        cuts = tmp_path / "c.txt"
        cuts.write_text("3")
        (tmp_path / "x.mp4").write_bytes(video.read_bytes())
        extract([video, tmp_path / "x.mp4"], tmp_path / "o", scene_cuts=str(cuts))
    with pytest.raises(InputError, match="no video files found"):
        (tmp_path / "empty").mkdir()
        extract([tmp_path / "empty"], tmp_path / "o")
    with pytest.raises(OutputError, match="not a folder"):
        (tmp_path / "file").write_text("x")
        extract([video], tmp_path / "file")
    assert issubclass(JobsFailed, InputError)


def test_dry_run_writes_nothing_and_help_has_an_example(tmp_path, video):
    result = run_cli(video, tmp_path / "out", "-n", 10, "--dry-run", "-q")
    assert result.exit_code == 0, result.output
    assert "4 clip(s); 40 frames" in result.output and "000: " in result.output
    assert "dry run: frames: 40 to write, 0 to skip" in result.output
    assert not (tmp_path / "out").exists()
    assert "vsrdata extract footage/" in CliRunner().invoke(main, ["extract", "--help"]).output


def test_plan_only_stages_then_write_uses_the_cache(tmp_path, three_videos):
    out = tmp_path / "out"
    for i in range(2):
        result = run_cli(three_videos, out, "-n", 6, "--plan-only", "--shard", f"{i}/2", "-j", 1, "-q")
        assert result.exit_code == 0 and "no frames written" in result.output, result.output
    cache = sorted((out / ".extract-cache").iterdir())
    assert len(cache) == 3 and not (out / "extract.json").exists()
    stamps = [p.stat().st_mtime_ns for p in cache]
    dry = run_cli(three_videos, out, "-n", 6, "--dry-run", "-j", 1, "-q")  # reads the cache, writes nothing
    assert dry.exit_code == 0 and "10 clip(s)" in dry.output and not (out / "extract.json").exists()
    assert run_cli(three_videos, out, "-n", 6, "-j", 1, "-q").exit_code == 0
    assert [p.stat().st_mtime_ns for p in sorted((out / ".extract-cache").iterdir())] == stamps
    assert len(png_clips(out)) == 10


def test_progress_bars_count_frames(tmp_path, video, capsys):
    extract([video], tmp_path / "out", frames_per_clip=10, workers=1, progress=True)
    err = capsys.readouterr().err
    assert "extract: analyse: 100%" in err and "50/50" in err  # decoded frames (declared count)
    assert "40/40" in err  # frames written: 4 clips of 10
