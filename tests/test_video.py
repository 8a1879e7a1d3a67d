"""vsrdata.core.video: probe, decode, encode with audio stream copy, truncated and bad files."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from media import NTSC_FILM, audio_packets, decode_audio, make_audio_only, make_video, reds_clip
from vsrdata.core import video
from vsrdata.errors import ConfigError, InputError

pytest.importorskip("av")


@pytest.fixture
def clip():
    return reds_clip("000", crop=(40, 60, 48, 64))


def test_probe_and_decode_ntsc_rate_with_audio(tmp_path, clip):
    src = make_video(tmp_path / "a.mp4", clip)
    info = video.probe(src)
    assert info.fps == NTSC_FILM and isinstance(info.fps, Fraction)
    assert not info.variable_rate
    assert (info.width, info.height, info.declared_frames) == (64, 48, 7)
    assert info.duration == pytest.approx(7 / float(NTSC_FILM))
    assert [(a.codec, a.sample_rate, a.channels) for a in info.audio] == [("aac", 44100, 1)]
    frames = list(video.read_frames(src))
    assert [f.index for f in frames] == list(range(7))
    assert [f.time for f in frames] == pytest.approx([i * 1001 / 24000 for i in range(7)])
    assert frames[0].image.dtype == np.uint8 and frames[0].image.shape == (48, 64, 3)
    # CRF 0 yuv444p: only the 8-bit YCbCr round trip remains (a few levels), and BGR order kept
    diff = np.abs(frames[3].image.astype(int) - clip[3].astype(int))
    assert diff.mean() < 1.5 and diff.max() <= 8


def test_writer_keeps_frames_fps_and_copies_audio_packets(tmp_path, clip):
    src = make_video(tmp_path / "a.mp4", clip)
    dst = tmp_path / "sub" / "b.mp4"
    with video.VideoReader(src) as reader, video.VideoWriter(dst, reader.info.fps, audio_from=src) as w:
        for f in reader:
            w.write(np.repeat(np.repeat(f.image, 2, 0), 2, 1))
    assert w.audio == ["aac copied"]
    info = video.probe(dst)
    assert (info.fps, info.declared_frames, info.width, info.height) == (NTSC_FILM, 7, 128, 96)
    assert (info.codec, info.audio[0].codec) == ("h264", "aac")
    assert audio_packets(dst) == audio_packets(src)  # stream copy: the same bytes, same timestamps
    assert [p.name for p in dst.parent.iterdir()] == ["b.mp4"]  # no temporary left


def test_audio_that_the_container_refuses_is_reencoded(tmp_path, clip):
    src = make_video(tmp_path / "a.mov", clip, audio="pcm_s16le", sample_rate=48000)
    dst = tmp_path / "b.webm"
    with video.VideoReader(src) as reader, video.VideoWriter(dst, reader.info.fps, audio_from=src) as w:
        for f in reader:
            w.write(f.image)
    assert w.audio == ["pcm_s16le re-encoded to opus (not allowed in .webm)"]
    info = video.probe(dst)
    assert info.codec == "vp9" and info.audio[0].codec == "opus" and info.fps == NTSC_FILM
    assert len(list(video.read_frames(dst))) == 7
    # the tone survives: its dominant frequency is 440 Hz
    samples = decode_audio(dst)
    spectrum = np.abs(np.fft.rfft(samples))
    assert abs(np.argmax(spectrum) * 48000 / len(samples) - 440) < 10


def test_writer_error_leaves_nothing(tmp_path, clip):
    dst = tmp_path / "c.mp4"
    with pytest.raises(RuntimeError):
        with video.VideoWriter(dst, 25) as w:
            w.write(clip[0])
            raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match="even"):
        with video.VideoWriter(dst, 25) as w:
            w.write(clip[0][:47])
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match="codec"):
        video.VideoWriter(dst, 25, codec="mpeg9")
    with pytest.raises(ConfigError, match="frame rate"):
        video.VideoWriter(dst, 0)


def test_truncated_file_decodes_fewer_frames_with_a_warning(tmp_path):
    rng = np.random.default_rng(0)  # noise: every frame is large, so the cut loses whole frames
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(12)]
    src = make_video(tmp_path / "full.mp4", frames, audio=None, faststart=True, crf=10)
    data = src.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    with video.VideoReader(cut) as reader:
        n = sum(1 for _ in reader)
        msg = reader.truncation_warning()
    assert 0 < n < 12
    assert msg == (f"{cut}: decoded {n} of the 12 frames the container declares; the file is probably "
                   f"truncated" + (f" ({reader.error})" if reader.error else ""))
    with video.VideoReader(src) as reader:
        assert sum(1 for _ in reader) == 12 and reader.truncation_warning() is None


def test_bad_files_are_one_line_input_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("not a video")
    with pytest.raises(InputError, match=r"^cannot open video .*notes.txt: .*$"):
        video.probe(tmp_path / "notes.txt")
    with pytest.raises(InputError, match="video not found"):
        video.probe(tmp_path / "missing.mp4")
    make_audio_only(tmp_path / "sound.mka")
    with pytest.raises(InputError, match=r"^no video stream in .*sound.mka$"):
        video.probe(tmp_path / "sound.mka")
