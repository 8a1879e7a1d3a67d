"""`infer`: folders and videos in and out, odd sizes, tiling, resume, CLI errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from media import make_video
from vsrdata.cli import main
from vsrdata.core.video import read_frames
from vsrdata.edvr.config import get_preset
from vsrdata.evaluation.inference import restore
from vsrdata.evaluation.infer import infer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


class ConvModel(torch.nn.Module):
    """EDVR stand-in with a 1-pixel receptive field (3x3 conv on the centre frame, pixel shuffle x4,
    plus the window mean): tiled with an overlap >= 1 px it must equal the untiled result."""

    def __init__(self, num_frame=3, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.config = get_preset("edvr-tiny", num_frame=num_frame)
        self.conv = torch.nn.Conv2d(3, 48, 3, 1, 1)
        self.shuffle = torch.nn.PixelShuffle(4)

    def forward(self, x):
        b, t, c, h, w = x.shape
        assert h % 4 == 0 and w % 4 == 0, "EDVR needs multiples of 4"
        centre = x[:, t // 2]
        up = self.shuffle(self.conv(centre)) * 0.1
        return up + x.mean(1).repeat_interleave(4, -2).repeat_interleave(4, -1)


def _odd_frames(dst: Path, n=5, h=22, w=30) -> list[np.ndarray]:
    dst.mkdir(parents=True)
    frames = []
    for i in range(n):
        bgr = cv2.imread(str(FIXTURES / "odd_size" / "clip" / f"{i:08d}.png"), cv2.IMREAD_UNCHANGED)
        crop = np.ascontiguousarray(bgr[50:50 + h, 100:100 + w])
        cv2.imwrite(str(dst / f"frame_{i + 1}.png"), crop)  # natural order: frame_2 before frame_10
        frames.append(crop)
    return frames


def test_folder_in_odd_size_out_frames(tmp_path):
    frames = _odd_frames(tmp_path / "in")
    model = ConvModel()
    res = infer(tmp_path / "in", tmp_path / "out", model=model, device="cpu")
    assert res.written == 5 and res.skipped == 0
    outs = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in outs] == [f"frame_{i}.png" for i in range(1, 6)] + ["scenes.json"]
    img = cv2.imread(str(tmp_path / "out" / "frame_1.png"))
    assert img.shape == (88, 120, 3)
    # frame 0 = the model on its reflection_circle window [2, 0, 1] of the replicate-padded input
    win = [frames[i][..., ::-1] / 255.0 for i in (2, 0, 1)]
    x = torch.from_numpy(np.stack(win)).permute(0, 3, 1, 2).float()
    ref = restore(model, x, scale=4, multiple=4)
    expected = (ref.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()[..., ::-1]
    np.testing.assert_array_equal(img, expected)


def test_tiled_equals_untiled_for_a_local_model():
    model = ConvModel()
    x = torch.rand(3, 3, 40, 36)
    full = restore(model, x, scale=4, multiple=4)
    tiled = restore(model, x, scale=4, multiple=4, tile=12, tile_overlap=4)
    torch.testing.assert_close(tiled, full, rtol=1e-5, atol=1e-5)
    # without overlap the tile seams are wrong: the test above can fail
    seams = restore(model, x, scale=4, multiple=4, tile=12, tile_overlap=0)
    assert (seams - full).abs().max() > 1e-3


def test_tiled_edvr_tiny_equals_untiled_when_the_overlap_covers_the_frame():
    from vsrdata.edvr.arch import build_edvr

    torch.manual_seed(0)
    model = build_edvr("edvr-tiny").eval()
    x = torch.rand(5, 3, 8, 16)
    full = restore(model, x, scale=4, multiple=4)
    tiled = restore(model, x, scale=4, multiple=4, tile=8, tile_overlap=8)  # overlap covers the frame
    torch.testing.assert_close(tiled, full, rtol=1e-4, atol=1e-4)


def test_resume_skips_existing_frames(tmp_path):
    _odd_frames(tmp_path / "in", n=4)
    model = ConvModel()
    infer(tmp_path / "in", tmp_path / "out", model=model, device="cpu")
    kept = tmp_path / "out" / "frame_1.png"
    before = kept.stat().st_mtime_ns
    (tmp_path / "out" / "frame_3.png").unlink()
    res = infer(tmp_path / "in", tmp_path / "out", model=model, device="cpu")
    assert (res.written, res.skipped) == (1, 3)
    assert kept.stat().st_mtime_ns == before
    assert (tmp_path / "out" / "frame_3.png").is_file()
    res = infer(tmp_path / "in", tmp_path / "out", model=model, device="cpu", overwrite=True)
    assert (res.written, res.skipped) == (4, 0)


def test_video_in_frames_out_and_resume(tmp_path):
    frames = _odd_frames(tmp_path / "in", n=6, h=24, w=32)
    video = make_video(tmp_path / "clip.mp4", frames, fps=10, audio=None)
    res = infer(video, tmp_path / "frames_out", model=ConvModel(), device="cpu")
    assert res.written == 6  # exactly the input frame count
    names = sorted(p.name for p in (tmp_path / "frames_out").glob("*.png"))
    assert names == [f"{i:08d}.png" for i in range(6)]
    assert cv2.imread(str(tmp_path / "frames_out" / "00000000.png")).shape == (96, 128, 3)
    (tmp_path / "frames_out" / "00000004.png").unlink()
    res = infer(video, tmp_path / "frames_out", model=ConvModel(), device="cpu")
    assert (res.written, res.skipped) == (1, 5)

    res = infer(tmp_path / "in", tmp_path / "sr.mp4", model=ConvModel(), device="cpu", fps=12)
    assert res.to_video and res.fps == 12 and res.audio == []
    got = list(read_frames(tmp_path / "sr.mp4"))
    assert len(got) == 6 and got[0].image.shape == (96, 128, 3)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_cli_missing_checkpoint_and_bad_input(tmp_path):
    _odd_frames(tmp_path / "in", n=2)
    res = CliRunner().invoke(main, ["infer", str(tmp_path / "in"), str(tmp_path / "out"), "-c",
                                    str(tmp_path / "none.pth"), "-q"])
    assert res.exit_code == 1 and res.output.strip().splitlines()[-1].startswith("Error:")
    assert "none.pth" in res.output and "Traceback" not in res.output
    (tmp_path / "empty").mkdir()
    (tmp_path / "w.pth").write_bytes(b"x")
    res = CliRunner().invoke(main, ["infer", str(tmp_path / "empty"), str(tmp_path / "out"), "-c",
                                    str(tmp_path / "w.pth"), "-q"])
    assert res.exit_code == 1 and f"empty folder {tmp_path / 'empty'}" in res.output
    assert not (tmp_path / "out").exists()
    (tmp_path / "notes.txt").write_text("not a video")
    res = CliRunner().invoke(main, ["infer", str(tmp_path / "notes.txt"), str(tmp_path / "out"), "-c",
                                    str(tmp_path / "w.pth"), "-q"])
    assert res.exit_code == 1 and "cannot open video" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["infer", str(tmp_path / "in"), str(tmp_path / "in"), "-c",
                                    str(tmp_path / "w.pth"), "-q"])
    assert res.exit_code == 1 and "input folder" in res.output


def test_cli_end_to_end_with_tiny_checkpoint(tmp_path):
    ckpt = pytest.importorskip("vsrdata.edvr.checkpoint")
    from vsrdata.edvr.arch import build_edvr

    _odd_frames(tmp_path / "in", n=2, h=6, w=10)
    torch.manual_seed(0)
    ckpt.save_atomic({"params": build_edvr("edvr-tiny").state_dict()}, tmp_path / "tiny.pth")
    res = CliRunner().invoke(main, ["infer", str(tmp_path / "in"), str(tmp_path / "out"), "-c",
                                    str(tmp_path / "tiny.pth"), "--preset", "edvr-tiny", "--device", "cpu",
                                    "-q"])
    assert res.exit_code == 0, res.output
    assert "2 frame(s) written" in res.output
    assert cv2.imread(str(tmp_path / "out" / "frame_2.png")).shape == (24, 40, 3)
