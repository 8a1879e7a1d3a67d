"""vsrdata.core.scenes: PySceneDetect cuts on frames and videos, cut files, scenes.json."""

from __future__ import annotations

import json

import pytest

from media import make_video, reds_clip
from vsrdata.core import scenes, video
from vsrdata.errors import InputError

pytest.importorskip("scenedetect")


def test_two_shot_frames_cut_at_the_first_frame_of_the_second_shot():
    a, b = reds_clip("000"), reds_clip("001")  # two parts of the film: a content jump of ~31 (> 27)
    assert scenes.detect_cuts(a + b, min_scene_len=3) == [7]
    assert scenes.detect_cuts(a + b + a, min_scene_len=3) == [7, 14]
    assert scenes.detect_cuts(a, min_scene_len=1) == []
    assert scenes.detect_cuts(a + b, threshold=40, min_scene_len=3) == []  # the threshold is used
    # PySceneDetect's minimum shot length (15 frames by default) merges a cut 7 frames in
    assert scenes.detect_cuts(a + b) == []


def test_two_shot_video(tmp_path):
    a, b = reds_clip("000", (0, 0, 96, 128)), reds_clip("001", (0, 0, 96, 128))
    src = make_video(tmp_path / "two.mp4", a + b, crf=18)
    cuts = scenes.detect_cuts((f.image for f in video.read_frames(src)), min_scene_len=3)
    assert cuts == [7]


def test_cut_file_and_scenes_json(tmp_path):
    f = tmp_path / "cuts.txt"
    f.write_text("# shots\n120, 7\n\n300 # last\n")
    assert scenes.read_cut_file(f) == [7, 120, 300]
    f.write_text("7 x\n")
    with pytest.raises(InputError, match=r"cuts.txt, line 1: 'x' is not a frame index"):
        scenes.read_cut_file(f)
    f.write_text("-3\n")
    with pytest.raises(InputError, match="cut index -3"):
        scenes.read_cut_file(f)
    with pytest.raises(InputError, match="cannot read cut file"):
        scenes.read_cut_file(tmp_path / "none.txt")

    path = scenes.write_scenes(tmp_path / "out", [7, 10], 14, mode="auto", threshold=27.0, min_scene_len=3)
    rec = json.loads(path.read_text())
    assert rec["cuts"] == [7, 10] and rec["shots"] == [[0, 7], [7, 10], [10, 14]]
    assert rec["detector"]["threshold"] == 27.0 and rec["frames"] == 14
    assert scenes.read_scenes(tmp_path / "out")["cuts"] == [7, 10]
    assert scenes.read_cut_file(path) == [7, 10]  # scenes.json works as a cut file
    assert scenes.check_cuts([0, 5, 5, 14], 14) == [5]
    with pytest.raises(InputError, match="cut index 20 outside the sequence of 14 frames"):
        scenes.check_cuts([20], 14)
