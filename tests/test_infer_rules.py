"""infer's rules for scene cuts and outputs (issue 20, items 19-20): a progress report for the
detection pass, the last shot's minimum length, one cut-file rule for folders and videos, clean-up
on SIGTERM, which OUTPUT names are videos or folders, and `export` writing only `.onnx` files."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from media import make_video, reds_clip
from test_evaluate import LocalModel
from test_infer_video import _tiny_checkpoint
from vsrdata.cli import Terminated, main, sigterm_raises
from vsrdata.core import scenes
from vsrdata.errors import ConfigError, InputError
from vsrdata.evaluation.infer import infer

pytest.importorskip("av")
pytest.importorskip("scenedetect")

CROP = (40, 60, 48, 64)


def test_scene_detection_pass_reports_progress_with_a_total(tmp_path):
    frames = reds_clip("000", CROP) + reds_clip("001", CROP)
    src = make_video(tmp_path / "two.mp4", frames, audio=None)
    calls = []
    infer(src, tmp_path / "sr", model=LocalModel(), device="cpu", scene_min_len=3,
          progress=lambda e: calls.append((e.added, e.total)) if e.task == "scene cuts" else None)
    assert calls[0] == (0, 14) and sum(n for n, _ in calls) == 14 and {t for _, t in calls} == {14}


def test_a_last_shot_shorter_than_min_len_joins_the_one_before():
    a, b = reds_clip("000", CROP), reds_clip("001", CROP)
    assert scenes.detect_cuts(a + b, min_scene_len=5) == [7]  # last shot of 7 >= 5: kept
    assert scenes.detect_cuts(a + b[:3], min_scene_len=5) == []  # last shot of 3 < 5: merged
    assert scenes.detect_cuts(a + b[:3], min_scene_len=3) == [7]


@pytest.mark.parametrize("kind", ["folder", "video"])
def test_cut_file_past_the_end_is_refused_for_folders_and_videos(tmp_path, kind):
    frames = reds_clip("000", CROP)
    if kind == "folder":
        src = tmp_path / "clip"
        src.mkdir()
        for i, f in enumerate(frames):
            cv2.imwrite(str(src / f"{i:08d}.png"), f)
    else:
        src = make_video(tmp_path / "clip.mp4", frames, audio=None)
    cuts = tmp_path / "cuts.txt"
    cuts.write_text("3 9\n")
    with pytest.raises(InputError, match=rf"^{cuts}: cut index 9 outside the sequence of 7 frames$"):
        infer(src, tmp_path / "sr", model=LocalModel(), device="cpu", scene_cuts=str(cuts))
    assert not (tmp_path / "sr").exists()
    cuts.write_text("3 7\n")  # 7 = the length: starts no shot, accepted (the same rule both ways)
    assert infer(src, tmp_path / "sr", model=LocalModel(), device="cpu", scene_cuts=str(cuts)).cuts == [3]


def test_sigterm_removes_the_temporary_video(tmp_path):
    rng = np.random.default_rng(0)
    src = make_video(tmp_path / "long.mp4", [rng.integers(0, 256, (32, 32, 3), np.uint8)] * 80, fps=25,
                     audio=None)
    seen, found = [], []  # SIGTERMs that reached the test's own handler; temporaries present when killed
    previous = signal.signal(signal.SIGTERM, lambda *a: seen.append(a))

    def progress(event):  # after each frame: once the encoder has written the temporary file,
        if not found:        # a real signal to this process
            found.extend(tmp_path.glob(".sr.*.tmp.mp4"))
            if found:
                os.kill(os.getpid(), signal.SIGTERM)

    try:
        with sigterm_raises(), pytest.raises(Terminated):  # what the command group wraps every command in
            infer(src, tmp_path / "sr.mp4", model=LocalModel(), device="cpu", scene_cuts="off", progress=progress)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert found and not seen  # killed while writing, and our handler (not the test's) took the signal
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4"]


@pytest.mark.parametrize("name", ["o.xyz", "o.png", "clip.v2"])
def test_output_that_is_neither_a_video_nor_a_folder_is_refused(tmp_path, name):
    src = tmp_path / "clip"
    src.mkdir()
    for i, f in enumerate(reds_clip("000", CROP)[:3]):
        cv2.imwrite(str(src / f"{i:08d}.png"), f)
    with pytest.raises(ConfigError, match=rf"^output .*{name}: \.\w+ is not a video extension \(a video OUTPUT "
                                          r"ends in \.mp4, .*; a frame-folder OUTPUT has no extension or is an "
                                          r"existing folder\)$"):
        infer(src, tmp_path / name, model=LocalModel(), device="cpu", scene_cuts="off")
    assert not (tmp_path / name).exists()
    (tmp_path / name).mkdir()  # an existing folder is a frame folder whatever its name
    assert infer(src, tmp_path / name, model=LocalModel(), device="cpu", scene_cuts="off").written == 3
    assert infer(src, tmp_path / "plain", model=LocalModel(), device="cpu", scene_cuts="off").written == 3


def test_export_requires_an_onnx_name(tmp_path):
    ckpt = _tiny_checkpoint(tmp_path / "tiny.pth")
    res = CliRunner().invoke(main, ["export", str(ckpt), str(tmp_path / "model.txt")])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [
        f"Error: export output must end in .onnx (what `infer` runs with onnxruntime): {tmp_path / 'model.txt'}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.pth"]
