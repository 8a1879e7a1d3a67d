"""`evaluate --metrics` (NIQE, VMAF, tOF) and sets without ground truth, on fixture frames."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from vsrdata.cli import main
from vsrdata.core.resize import imresize
from vsrdata.evaluation.evaluate import evaluate
from vsrdata.evaluation.niqe import calculate_niqe
from vsrdata.evaluation.temporal import TemporalScorer

FIX = Path(__file__).resolve().parents[1] / "fixtures"


def _split(root: Path, n=3, clips=("000",)) -> Path:
    """A split-test-like output: full 320x180 REDS fixture frames as GT, MATLAB-bicubic x1/4 as LR."""
    record = {"format": "vsrdata-split-test/1", "scale": 4, "degradation": "bi", "gt_dir": "GT", "lr_dir": "BIx4",
              "multiple": 4, "pad_mode": None, "crop": False, "layout": "reds",
              "selection": {"kind": "all", "name": None}, "clips": {}}
    for clip in clips:
        names = {}
        for i in range(n):
            gt = cv2.imread(str(FIX / "reds" / "train_sharp" / clip / f"{i:08d}.png"))
            name = f"{i:08d}.png"
            names[name] = name
            for sub, img in (("GT", gt), ("BIx4", imresize(gt, 0.25))):
                (root / sub / clip).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / sub / clip / name), img)
        record["clips"][clip] = {"source": clip, "num_frames": n, "gt_size": [180, 320, 3], "lr_size": [45, 80, 3],
                                 "lr_pad": [0, 0], "gt_pad": [0, 0], "gt_crop": None, "lr_crop": None,
                                 "frames": names}
    (root / "split.json").write_text(json.dumps(record))
    return root


def _bicubic_frames(split: Path, clip="000", n=3):
    return [imresize(np.ascontiguousarray(cv2.imread(str(split / "BIx4" / clip / f"{i:08d}.png"))[..., ::-1]), 4)
            for i in range(n)]


def _gt_frames(split: Path, clip="000", n=3):
    return [np.ascontiguousarray(cv2.imread(str(split / "GT" / clip / f"{i:08d}.png"))[..., ::-1]) for i in range(n)]


def test_niqe_and_tof_in_the_report_equal_direct_computation(tmp_path):
    split = _split(tmp_path / "ds")
    rep = evaluate(split, bicubic=True, out_dir=tmp_path / "o", protocol="reds4", metrics="psnr,ssim,niqe,tof",
                   strips=False)
    frames = rep.clips[0].frames
    ups, gts = _bicubic_frames(split), _gt_frames(split)
    assert [f.extra["niqe"] for f in frames] == [calculate_niqe(u) for u in ups]
    scorer = TemporalScorer()
    assert [f.extra["tof"] for f in frames] == [scorer.feed(u, g)[0] for u, g in zip(ups, gts)]
    assert frames[0].extra["tof"] is None and frames[1].extra["tof"] > 0
    data = json.loads((tmp_path / "o" / "report.json").read_text())
    assert data["clips"][0]["niqe"] == pytest.approx(np.mean([f.extra["niqe"] for f in frames]))
    assert data["clips"][0]["per_frame"][0]["tof"] is None and "niqe" in data["average"]
    assert "NIQE: Y" in rep.protocol_line() and "Farneback(0.5, 3, 15, 3, 5, 1.2, 0)" in rep.protocol_line()
    header = (tmp_path / "o" / "report.csv").read_text().splitlines()[0].split(",")
    assert header[-2:] == ["niqe", "tof"]
    assert "NIQE" in rep.table() and "tOF" in rep.table()


def test_vmaf_column(tmp_path):
    from vsrdata.errors import ConfigError
    from vsrdata.evaluation import vmaf

    try:
        vmaf.ffmpeg_with_libvmaf()
    except ConfigError as exc:
        pytest.skip(str(exc))
    split = _split(tmp_path / "ds")
    rep = evaluate(split, bicubic=True, out_dir=tmp_path / "o", metrics="vmaf", strips=False)
    vals = [f.extra["vmaf"] for f in rep.clips[0].frames]
    assert len(vals) == 3 and all(0 < v < 97 for v in vals)  # bicubic x4 is far from perfect fidelity
    assert "vmaf_v0.6.1" in rep.protocol["metrics"]["vmaf"]


def test_vmaf_missing_is_one_warning_and_the_rest_runs(tmp_path, monkeypatch):
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho ' .. scale V->V Scale'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake))
    split = _split(tmp_path / "ds", n=2)
    res = CliRunner().invoke(main, ["evaluate", "--bicubic", str(split), "--metrics", "psnr,vmaf,niqe",
                                    "--out", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 0, res.output
    warn = [ln for ln in res.output.splitlines() if ln.startswith("Warning:")]
    assert len(warn) == 1 and "libvmaf" in warn[0] and str(fake) in warn[0]
    data = json.loads((tmp_path / "o" / "report.json").read_text())
    assert data["average"]["niqe"] is not None and "vmaf" not in data["average"]


def test_no_gt_scores_niqe_of_output_and_bicubic(tmp_path):
    split = _split(tmp_path / "ds", n=2)
    lq = tmp_path / "lq"
    shutil.copytree(split / "BIx4", lq)
    res = CliRunner().invoke(main, ["evaluate", "--bicubic", "--lq", str(lq), "--out", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 0, res.output
    assert "no ground truth" in res.output and "NIQE" in res.output and "PSNR" not in res.output
    data = json.loads((tmp_path / "o" / "report.json").read_text())
    assert data["protocol"]["reference"] == "none"
    ups = _bicubic_frames(split, n=2)
    assert [f["niqe"] for f in data["clips"][0]["per_frame"]] == [calculate_niqe(u) for u in ups]


def test_split_without_gt_folder_is_no_reference(tmp_path):
    from tests.test_evaluate import LocalModel

    split = _split(tmp_path / "ds", n=2)
    shutil.rmtree(split / "GT")
    rep = evaluate(split, model=LocalModel(), out_dir=tmp_path / "o", device="cpu", strips=False)
    f = rep.clips[0].frames[0]
    ups = _bicubic_frames(split, n=2)
    assert rep.protocol["reference"] == "none" and np.isnan(f.psnr)
    assert f.extra["bicubic_niqe"] == calculate_niqe(ups[0]) and f.extra["niqe"] > 0
    assert [k for k, _ in rep.columns()] == ["niqe", "bicubic_niqe"]


def _one_line_error(res):
    assert res.exit_code != 0
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines[-1].startswith("Error:") and "Traceback" not in res.output
    return lines[-1]


def test_metric_option_errors(tmp_path):
    split = _split(tmp_path / "ds", n=2)
    res = CliRunner().invoke(main, ["evaluate", "--bicubic", str(split), "--metrics", "psnr,fid", "-q"])
    assert "unknown metric 'fid'" in _one_line_error(res)
    res = CliRunner().invoke(main, ["evaluate", "--bicubic", str(split), "--no-gt", "--metrics", "tof", "-q"])
    assert "need a ground truth" in _one_line_error(res)
