"""extract that would produce 0 clips says why and what to change, exits non-zero, writes no frames."""

from __future__ import annotations

import pytest

from test_extract import run_cli, two_shots

pytest.importorskip("av")
pytest.importorskip("scenedetect")


def test_zero_clips_is_an_error_that_says_why(tmp_path):
    video = two_shots(tmp_path / "v.mp4")  # shots of 24 and 26 frames, a hard cut between
    out = tmp_path / "out"
    res = run_cli(video, out, "-n", 30, "-q")
    assert res.exit_code == 1
    line = res.output.strip().splitlines()[-1]
    assert line.startswith("Error: 0 clips: 1 video(s) with 50 frame(s) and 1 scene cut(s) have no shot of 30 frames")
    assert "the longest shot has 26" in line and "--frames-per-clip 26" in line and "--keep-short" in line
    assert "--scene-cuts off" in line
    assert not out.exists() or not [p for p in out.iterdir() if not p.name.startswith(".")]
    # the suggestion works
    res = run_cli(video, out, "-n", 26, "-q")
    assert res.exit_code == 0, res.output
    assert "1 clip(s); 26 frames" in res.output
