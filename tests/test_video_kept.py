"""Video as users have it: rotation, audio the container refuses, nothing decodable, subtitles,
language tags, anamorphic pixels and 10-bit depth (issue 20, items 15-18). References: the ffmpeg
command line (imageio-ffmpeg's binary) builds the inputs and decodes what it displays."""

from __future__ import annotations

import json
from fractions import Fraction

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from media import decode_audio, ffmpeg, ffmpeg_frames, make_video, reds_clip
from test_evaluate import LocalModel
from vsrdata.cli import main
from vsrdata.core import video
from vsrdata.errors import ConfigError, InputError
from vsrdata.evaluation.infer import infer

av = pytest.importorskip("av")
pytest.importorskip("imageio_ffmpeg")


def _still(tmp_path, n=5, audio=None):
    """n copies of one asymmetric 48x64 frame (LocalModel then gives the frame back, x4, +0.01)."""
    frame = reds_clip("000", crop=(40, 60, 48, 64))[0]
    return frame, make_video(tmp_path / "still.mp4", [frame] * n, fps=25, audio=audio)


@pytest.mark.parametrize("flags", [["-display_rotation", "90"], ["-display_rotation", "270"],
                                   ["-display_rotation", "90", "-display_hflip"]])
def test_rotated_video_decodes_as_ffmpeg_displays_it(tmp_path, flags):
    _, src = _still(tmp_path, n=2)
    rot = tmp_path / "rot.mov"
    ffmpeg(*flags, "-i", src, "-c", "copy", rot)
    got = [f.image for f in video.read_frames(rot)]
    want = ffmpeg_frames(rot, 64, 48)  # upright: the sides swap
    assert len(got) == len(want) == 2 and got[0].shape == (64, 48, 3)
    # the same decoded samples through two swscale YCbCr->BGR paths: rounding differs by <= 2 levels
    assert np.abs(got[0].astype(int) - want[0].astype(int)).max() <= 2
    # the other way round (half a turn off, or not mirrored) is far: the check can fail
    assert np.abs(np.rot90(got[0], 2).astype(int) - want[0].astype(int)).mean() > 20
    assert np.abs(got[0][:, ::-1].astype(int) - want[0].astype(int)).mean() > 20


def test_infer_of_a_rotated_video_is_upright_without_a_matrix(tmp_path):
    frame, src = _still(tmp_path)
    rot = tmp_path / "rot.mov"
    ffmpeg("-display_rotation", "90", "-i", src, "-c", "copy", rot)
    upright = ffmpeg_frames(rot, 64, 48)[0]
    res = infer(rot, tmp_path / "sr.mkv", model=LocalModel(), device="cpu", codec="ffv1", scene_cuts="off")
    with av.open(str(res.output)) as c:
        first = next(c.decode(video=0))
        assert first.rotation == 0 and (first.width, first.height) == (192, 256)
        out = first.to_ndarray(format="bgr24")[::4, ::4].astype(int) - 3  # LocalModel adds 0.01 (2.55 levels)
    # 4:4:4 round trips at 8 bits (source H.264 CRF 0 and ffv1 lossless): a few levels
    assert np.abs(out - upright.astype(int)).mean() < 2


def test_flac_into_mov_is_planned_before_any_work_and_reencoded(tmp_path):
    frame = reds_clip("000", crop=(40, 60, 48, 64))[0]
    src = make_video(tmp_path / "a.mkv", [frame] * 5, fps=25, audio="flac", sample_rate=48000)
    with av.open(str(tmp_path / "t.mov"), "w") as probe_out:
        assert "flac" in probe_out.supported_codecs  # FFmpeg's table says yes; the muxer says no
    plan = video.plan_streams(src, ".mov")
    assert plan.modes == {1: ("encode", "aac")} and plan.changes
    assert video.plan_streams(src, ".mkv").modes == {1: ("copy", None)}
    res = infer(src, tmp_path / "sr.mov", model=LocalModel(), device="cpu", scene_cuts="off")
    assert res.audio == ["flac re-encoded to aac (not allowed in .mov)"]
    assert video.probe(res.output).audio[0].codec == "aac"
    samples = decode_audio(res.output)  # the 440 Hz tone survives the re-encode (bin width 48000/n)
    assert abs(np.argmax(np.abs(np.fft.rfft(samples))) * 48000 / len(samples) - 440) < 10


def test_a_video_with_no_decodable_frame_is_a_one_line_error(tmp_path):
    rng = np.random.default_rng(0)  # one noise frame: 55% of the file holds no whole frame
    src = make_video(tmp_path / "one.mkv", [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)], fps=25,
                     crf=10)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size * 55 // 100])
    with pytest.raises(InputError, match=r"^no decodable video frame in .*cut.mkv"):
        list(video.read_frames(cut))
    ckpt = tmp_path / "tiny.pth"
    from test_infer_video import _tiny_checkpoint

    _tiny_checkpoint(ckpt)
    for extra in ([], ["--scene-cuts", "off"]):
        res = CliRunner().invoke(main, ["infer", str(cut), str(tmp_path / "o.mkv"), "-c", str(ckpt), "--device",
                                        "cpu", "-q", *extra])
        assert res.exit_code == 1 and res.output.strip().splitlines() == [
            f"Error: no decodable video frame in {cut} (empty or truncated stream)"]
        assert not (tmp_path / "o.mkv").exists() and not list(tmp_path.glob(".o.*"))


def _rich_source(tmp_path):
    """10-bit HEVC, SAR 4:3 (anamorphic), AAC audio tagged 'fra', SRT subtitles tagged 'eng'."""
    frame, still = _still(tmp_path, audio="aac")
    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,100\nbonjour\n\n", encoding="utf-8")
    src = tmp_path / "rich.mkv"
    ffmpeg("-i", still, "-i", srt, "-map", "0:v", "-map", "0:a", "-map", "1:s", "-c:v", "libx265", "-x265-params",
           "log-level=error", "-pix_fmt", "yuv420p10le", "-vf", "setsar=4/3", "-c:a", "copy", "-c:s", "srt",
           "-metadata:s:a:0", "language=fra", "-metadata:s:s:0", "language=eng", src)
    return src


def test_subtitles_languages_aspect_and_10_bit_are_kept_in_mkv(tmp_path):
    src = _rich_source(tmp_path)
    info = video.probe(src)
    assert (info.bit_depth, info.sample_aspect, info.audio[0].language) == (10, Fraction(4, 3), "fra")
    assert [(s.codec, s.language) for s in info.subtitles] == [("srt", "eng")]
    res = infer(src, tmp_path / "sr.mkv", model=LocalModel(), device="cpu", scene_cuts="off")
    assert res.warnings == []
    out = video.probe(res.output)
    assert (out.width, out.height, out.sample_aspect, out.bit_depth) == (256, 192, Fraction(4, 3), 10)
    assert out.audio[0].language == "fra" and [(s.codec, s.language) for s in out.subtitles] == [("srt", "eng")]
    with video.VideoReader(res.output, deep=True) as reader:
        img = next(iter(reader)).image
    # 10 bits carried: 8-bit samples scaled to 16 bits are multiples of 257; these are not all
    assert img.dtype == np.uint16 and np.any(img % 257)


def test_what_mp4_cannot_keep_is_said(tmp_path):
    src = _rich_source(tmp_path)
    res = infer(src, tmp_path / "sr.mp4", model=LocalModel(), device="cpu", scene_cuts="off", pix_fmt="yuv420p")
    assert res.warnings == ["subtitle stream 2 (srt [eng]) dropped: a .mp4 file cannot hold it (.mkv can)",
                            "10-bit input written as 8-bit (--pix-fmt yuv420p)"]
    out = video.probe(res.output)
    assert out.bit_depth == 8 and out.subtitles == () and out.audio[0].language == "fra"
    assert out.sample_aspect == Fraction(4, 3)


def test_extract_writes_rotated_videos_upright(tmp_path):
    from vsrdata.pipelines.extract import extract

    _, src = _still(tmp_path, n=4)
    rot = tmp_path / "rot.mov"
    ffmpeg("-display_rotation", "270", "-i", src, "-c", "copy", rot)
    upright = ffmpeg_frames(rot, 64, 48)
    extract([rot], tmp_path / "out", frames_per_clip=4, scene_cuts="off", workers=1, progress=False)
    png = cv2.imread(str(tmp_path / "out" / "000" / "00000000.png"), cv2.IMREAD_COLOR)
    assert png.shape == (64, 48, 3) and np.abs(png.astype(int) - upright[0].astype(int)).max() <= 2  # as above
    record = json.loads((tmp_path / "out" / "extract.json").read_text())["videos"][0]
    assert (record["width"], record["height"], record["bit_depth"]) == (48, 64, 8)


def test_10_bit_video_into_frames_gives_16_bit_png(tmp_path):
    src = _rich_source(tmp_path)
    res = infer(src, tmp_path / "frames", model=LocalModel(), device="cpu", scene_cuts="off")
    png = cv2.imread(str(tmp_path / "frames" / "00000000.png"), cv2.IMREAD_UNCHANGED)
    assert res.written == 5 and png.dtype == np.uint16 and png.shape == (192, 256, 3) and np.any(png % 257)


def test_a_pix_fmt_the_codec_cannot_encode_is_refused_before_any_work(tmp_path):
    _, src = _still(tmp_path)
    with pytest.raises(ConfigError, match=r"^--codec libvpx-vp9 cannot encode --pix-fmt yuv420p10le \(it takes "
                                          r"yuv420p, yuv444p\)$"):
        infer(src, tmp_path / "sr.webm", checkpoint=tmp_path / "no-such.pth", pix_fmt="yuv420p10le")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["still.mp4"]


def test_extract_says_when_10_bit_becomes_8_bit(tmp_path):
    from vsrdata.pipelines.extract import extract

    src = _rich_source(tmp_path)
    res = extract([src], tmp_path / "out", frames_per_clip=2, scene_cuts="off", workers=1, progress=False)
    assert res.warnings == [f"{src.resolve()}: 10-bit video written as 8-bit PNG (REDS' format; the depth is "
                            "recorded in extract.json)"]
    assert cv2.imread(str(tmp_path / "out" / "000" / "00000000.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint8
