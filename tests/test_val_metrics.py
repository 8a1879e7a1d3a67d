"""Training validation logging evaluate's extra metrics (--val-metrics); PSNR stays the criterion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.test_evaluate_metrics import _gt_frames, _split
from vsrdata.edvr.config import get_preset
from vsrdata.errors import ConfigError
from vsrdata.evaluation.niqe import calculate_niqe
from vsrdata.evaluation.temporal import TemporalScorer
from vsrdata.training.config import TrainConfig
from vsrdata.training.logs import format_event
from vsrdata.training.validate import load_val_clips, validate


class Bilinear(torch.nn.Module):  # a "model": x4 bilinear of the centre frame
    config = get_preset("edvr-tiny", num_frame=3)

    def forward(self, x):
        return torch.nn.functional.interpolate(x[:, 1], scale_factor=4, mode="bilinear", align_corners=False)


def _bilinear(lq_path):
    import cv2

    lq = torch.from_numpy(cv2.imread(str(lq_path))[:, :, ::-1].transpose(2, 0, 1) / 255.0).float()[None]
    sr = torch.nn.functional.interpolate(lq, scale_factor=4, mode="bilinear", align_corners=False)[0]
    return (sr.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def test_validate_logs_niqe_and_tof(tmp_path):
    clips = load_val_clips(_split(tmp_path / "val", n=3))
    got = validate(Bilinear(), clips, 3, torch.device("cpu"), metrics="psnr,ssim,niqe,tof")
    outs = [_bilinear(p) for p in clips[0].lq_paths]
    assert got["extra"]["niqe"] == pytest.approx(np.mean([calculate_niqe(o) for o in outs]), abs=1e-12)
    scorer = TemporalScorer()
    tofs = [scorer.feed(o, g)[0] for o, g in zip(outs, _gt_frames(tmp_path / "val"))][1:]
    assert got["extra"]["tof"] == pytest.approx(np.mean(tofs), abs=1e-12)
    line = format_event({"kind": "val", "iter": 5, "psnr": got["psnr"], "ssim": got["ssim"], "best": True,
                         **got["extra"]})
    assert "NIQE" in line and "tOF" in line and line.endswith("(best)")


def test_val_metrics_checked_in_the_config():
    with pytest.raises(ConfigError, match="unknown metric 'fid'"):
        TrainConfig(val_metrics="psnr,fid").validate()
