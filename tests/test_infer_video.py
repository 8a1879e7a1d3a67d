"""`infer` on videos (frames, fps, audio kept; truncated and bad files) and scene-aware windows
(`--scene-cuts`) for infer and evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from media import NTSC_FILM, audio_packets, make_audio_only, make_video, reds_clip
from test_evaluate import LocalModel, make_split
from vsrdata.cli import main
from vsrdata.core import video
from vsrdata.evaluation.evaluate import evaluate
from vsrdata.evaluation.infer import infer
from vsrdata.evaluation.windows import SlidingWindow, shot_temporal_indices, temporal_indices

pytest.importorskip("av")
pytest.importorskip("scenedetect")

CROP = (40, 60, 48, 64)  # y, x, h, w: small frames; the 000 -> 001 jump is still a clear cut


def _two_shots():
    return reds_clip("000", CROP), reds_clip("001", CROP)


def _write_folder(path: Path, frames) -> Path:
    path.mkdir(parents=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(path / f"{i:08d}.png"), f)
    return path


def _pngs(folder: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.glob("*.png"))]


# -- windows ------------------------------------------------------------------------------------

def test_shot_indices_treat_each_shot_as_a_clip():
    for mode in ("reflection_circle", "replicate", "reflection", "circle"):
        for t in range(14):
            got = shot_temporal_indices(t, 14, 5, mode, cuts=[7])
            start, end = (0, 7) if t < 7 else (7, 14)
            assert got == [start + i for i in temporal_indices(t - start, end - start, 5, mode)]
            assert all(start <= i < end for i in got)
    assert shot_temporal_indices(6, 14, 5, cuts=[]) == temporal_indices(6, 14, 5)
    assert shot_temporal_indices(6, 14, 5, cuts=[7]) == [4, 5, 6, 3, 2]  # reflection_circle at a shot end


@pytest.mark.parametrize("length", [14, None])
def test_sliding_window_with_cuts_matches_indices(length):
    win = SlidingWindow(range(14), 5, "reflection_circle", length=length, cuts=[7, 9])
    got = list(win)
    assert [w for _, w in got] == [shot_temporal_indices(t, 14, 5, cuts=[7, 9]) for t in range(14)]
    assert win.max_held <= 2 * 5  # as without cuts: bounded by the window


# -- video in, video out ------------------------------------------------------------------------

def test_video_to_video_keeps_frames_fps_audio_and_records_cuts(tmp_path):
    a, b = _two_shots()
    src = make_video(tmp_path / "two.mp4", a + b)  # 24000/1001 fps, AAC sine track
    decoded = len(list(video.read_frames(src)))
    calls = []
    res = infer(src, tmp_path / "out" / "sr.mp4", model=LocalModel(num_frame=5), device="cpu",
                scene_min_len=3, progress=lambda e: calls.append((e.added, e.total)) if e.task == "infer" else None)
    assert calls[0] == (0, 14) and sum(n for n, _ in calls) == 14  # a total from the first report
    info = video.probe(res.output)
    assert res.written == decoded == info.declared_frames == 14
    assert info.fps == NTSC_FILM == res.fps and (info.width, info.height) == (256, 192)
    assert res.audio == ["aac copied"]
    assert audio_packets(res.output) == audio_packets(src)  # stream copy: same bytes, same times
    assert res.cuts == [7]
    rec = json.loads((tmp_path / "out" / "sr.scenes.json").read_text())
    assert rec["cuts"] == [7] and rec["mode"] == "auto" and rec["frames"] == 14
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["sr.mp4", "sr.scenes.json"]


def test_frames_before_a_cut_equal_the_first_shot_alone(tmp_path):
    a, b = _two_shots()
    model = LocalModel(num_frame=5)
    both = _write_folder(tmp_path / "both", a + b)
    infer(both, tmp_path / "sr_auto", model=model, device="cpu", scene_min_len=3)
    infer(_write_folder(tmp_path / "a", a), tmp_path / "sr_a", model=model, device="cpu", scene_cuts="off")
    infer(_write_folder(tmp_path / "b", b), tmp_path / "sr_b", model=model, device="cpu", scene_cuts="off")
    auto = _pngs(tmp_path / "sr_auto")
    alone = _pngs(tmp_path / "sr_a") + _pngs(tmp_path / "sr_b")
    for got, want in zip(auto, alone):
        np.testing.assert_array_equal(got, want)  # bit-equal, both shots
    assert json.loads((tmp_path / "sr_auto" / ".scenes.json").read_text())["cuts"] == [7]

    (tmp_path / "cuts.txt").write_text("7\n")
    infer(both, tmp_path / "sr_file", model=model, device="cpu", scene_cuts=str(tmp_path / "cuts.txt"))
    assert all(np.array_equal(x, y) for x, y in zip(_pngs(tmp_path / "sr_file"), alone))
    # without cuts the windows of frames 5..8 reach into the other shot: the test can fail
    infer(both, tmp_path / "sr_off", model=model, device="cpu", scene_cuts="off")
    off = _pngs(tmp_path / "sr_off")
    assert [i for i in range(14) if not np.array_equal(off[i], alone[i])] == [5, 6, 7, 8]
    # resuming into a folder made with other cuts would mix two results
    with pytest.raises(Exception, match="scene cuts"):
        infer(both, tmp_path / "sr_off", model=model, device="cpu", scene_min_len=3)


def test_truncated_video_warns_with_both_numbers(tmp_path):
    rng = np.random.default_rng(0)  # noise frames: the cut removes whole frames
    frames = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(12)]
    src = make_video(tmp_path / "full.mp4", frames, fps=25, faststart=True, crf=10)
    data = src.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    n = len(list(video.read_frames(cut)))
    assert 0 < n < 12
    ckpt = _tiny_checkpoint(tmp_path / "tiny.pth")
    res = CliRunner().invoke(
        main, ["infer", str(cut), str(tmp_path / "sr.mp4"), "-c", str(ckpt), "--device", "cpu", "-q"])
    assert res.exit_code == 0, res.output
    assert f"Warning: {cut}: decoded {n} of the 12 frames the container declares" in res.stderr
    assert video.probe(tmp_path / "sr.mp4").declared_frames == n


def test_bad_videos_fail_in_one_line_with_no_output(tmp_path):
    ckpt = _tiny_checkpoint(tmp_path / "tiny.pth")
    make_audio_only(tmp_path / "sound.m4a")
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 1000)
    for name, msg in (("sound.m4a", "no video stream in"), ("junk.mp4", "cannot open video")):
        res = CliRunner().invoke(main, ["infer", str(tmp_path / name), str(tmp_path / "o.mp4"), "-c", str(ckpt),
                                        "--device", "cpu", "-q"])
        assert res.exit_code == 1 and "Traceback" not in res.output
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and msg in lines[0] and name in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.mp4", "sound.m4a", "tiny.pth"]


def _tiny_checkpoint(path: Path) -> Path:
    from vsrdata.edvr.arch import build_edvr
    from vsrdata.edvr.checkpoint import save_atomic

    torch.manual_seed(0)
    save_atomic({"params": build_edvr("edvr-tiny").state_dict()}, path)
    return path


# -- evaluate ---------------------------------------------------------------------------------

def test_evaluate_scene_cuts_file_equals_the_shot_alone(tmp_path):
    model = LocalModel(num_frame=5)
    full = make_split(tmp_path / "full", clips=("000",), n=7)
    short = make_split(tmp_path / "short", clips=("000",), n=3)
    cuts = tmp_path / "cuts.json"
    cuts.write_text(json.dumps({"000": [3]}))
    kw = dict(model=model, device="cpu", save_frames=True, strips=False)
    evaluate(full, out_dir=tmp_path / "cut", scene_cuts=str(cuts), **kw)
    evaluate(short, out_dir=tmp_path / "alone", **kw)
    evaluate(full, out_dir=tmp_path / "off", **kw)
    cut, alone, off = (_pngs(tmp_path / d / "frames" / "000") for d in ("cut", "alone", "off"))
    assert all(np.array_equal(x, y) for x, y in zip(cut[:3], alone))
    assert not np.array_equal(off[2], alone[2])
    assert json.loads((tmp_path / "cut" / "scenes.json").read_text())["clips"] == {"000": [3]}
    assert json.loads((tmp_path / "cut" / "report.json").read_text())["protocol"]["scene_cuts"] == "file"
    assert not (tmp_path / "off" / "scenes.json").exists()


def test_variable_rate_video_keeps_every_frame_at_its_timestamp(tmp_path):
    import av
    from fractions import Fraction

    times_ms = [0, 40, 80, 200, 240, 400, 440, 480, 600, 700]  # irregular steps: a variable rate
    frames = reds_clip("000", CROP) + reds_clip("001", CROP)[:3]
    with av.open(str(tmp_path / "vfr.mp4"), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        vs.codec_context.time_base = vs.time_base = Fraction(1, 1000)
        for img, t in zip(frames, times_ms):
            f = av.VideoFrame.from_ndarray(img, format="bgr24")
            f.pts, f.time_base = t, Fraction(1, 1000)
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
    assert video.probe(tmp_path / "vfr.mp4").variable_rate
    res = infer(tmp_path / "vfr.mp4", tmp_path / "sr.mp4", model=LocalModel(), device="cpu", scene_cuts="off")
    assert res.written == 10
    got = [f.time for f in video.read_frames(tmp_path / "sr.mp4")]
    assert got == pytest.approx([t / 1000 for t in times_ms], abs=1e-6)
