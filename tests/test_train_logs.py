"""What a training run writes for people: TensorBoard scalars, RUN/train.log, curves.png drawn by
matplotlib; optional extras (tensorboard, torchvision) missing -> a one-line install hint."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import cv2
import pytest
from click.testing import CliRunner

from test_train_loop import cfg_for, data, one_thread  # noqa: F401 (pytest fixtures)
from vsrdata.cli import main
from vsrdata.training.loop import train
from vsrdata.training.logs import smooth


def _cli_args(data, run_dir, *extra):
    return ["train", "--preset", "edvr-tiny", "--dataset", "clips", "--gt", str(data["fixed_gt"]),
            "--lq", str(data["fixed_lq"]), "--gt-size", "32", "--batch-size", "1", "--num-workers", "0",
            "--total-iter", "1", "--periods", "10", "--ema-decay", "0", "--run-dir", str(run_dir), "-q", *extra]


def _run_without(package: str, args: list[str]) -> subprocess.CompletedProcess:
    """The CLI in a fresh interpreter where `package` cannot be imported (as if not installed)."""
    code = (f"import sys; sys.modules[{package!r}] = None\n"
            "from vsrdata.cli import main\n"
            f"main({args!r})")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_tensorboard_scalars_train_log_and_matplotlib_curves(data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    result = train(cfg_for(data, run, total_iter=4, val_freq=2, val_path=str(data["val"]), val_max_frames=1))
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/loss_per_pixel", "train/lr", "train/offset_mean_max", "val/psnr", "val/ssim"} <= tags
    for tag, key in (("train/loss", "loss"), ("train/lr", "lr"), ("val/psnr", "psnr"), ("val/ssim", "ssim")):
        want = [(r["iter"], r[key]) for r in records if key in r]
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in want], tag
        # TensorBoard stores float32: equal to the logged float64 within float32 rounding (2^-24)
        assert all(g == pytest.approx(w, rel=2 ** -23) for (_, g), (_, w) in zip(got, want)), tag
    assert [s for s, _ in ((e.step, 0) for e in acc.Scalars("val/psnr"))] == [2, 4]

    lines = (run / "train.log").read_text().splitlines()
    assert all(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S", line) for line in lines), lines
    text = "\n".join(lines)
    assert "training edvr-tiny on" in text and "iter 1: loss" in text
    label = "PSNR-RGB (reds4, first 1 frames)"  # every score names its channel and protocol
    assert f"iter 4: val {label}" in text and result.metrics["metric"] == label
    assert "schedule: lr 0.001, one cosine cycle down to 1e-07 over 1000 iterations" in text
    assert "validation: PSNR-RGB (reds4, first 1 frames) on 2 clip(s), 2 frame(s), every 2 iterations" in text
    assert lines[-1].endswith(f"done: 4 iterations, last loss {result.metrics['loss']:.6g}, val {label} "
                              f"{result.metrics['psnr']:.3f} dB (best {result.metrics['best_psnr']:.3f} at "
                              f"{result.metrics['best_iter']})")

    png = (run / "curves.png").read_bytes()
    assert b"Matplotlib" in png[:200]  # the PNG's Software text chunk
    img = cv2.imdecode(__import__("numpy").frombuffer(png, "uint8"), cv2.IMREAD_COLOR)
    assert img.shape == (800, 800, 3) and img.min() < 50  # drawn, not blank


def test_no_tensorboard_option(data, tmp_path):
    res = CliRunner().invoke(main, _cli_args(data, tmp_path / "run", "--no-tensorboard"))
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "run" / "tb").exists() and (tmp_path / "run" / "train.log").is_file()


def test_missing_tensorboard_hint_or_quietly_off(data, tmp_path):
    proc = _run_without("tensorboard", _cli_args(data, tmp_path / "a", "--tensorboard"))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["Error: tensorboard is not installed: pip install "
                                                "'vsrdata[tensorboard]'"], proc.stderr
    proc = _run_without("tensorboard", _cli_args(data, tmp_path / "b"))  # default: on when installed
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "b" / "tb").exists()
    assert "no TensorBoard scalars (tensorboard is not installed" in (tmp_path / "b" / "train.log").read_text()


def test_missing_torchvision_hint(data, tmp_path):
    proc = _run_without("torchvision", _cli_args(data, tmp_path / "run", "--dcn-backend", "torchvision"))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == ("Error: torchvision is not installed: pip install "
                                                    "'vsrdata[torchvision]'"), proc.stderr


def test_smooth_is_a_debiased_moving_average():
    assert smooth([3.0, 3.0, 3.0]) == pytest.approx([3.0, 3.0, 3.0])
    assert smooth([0.0, 1.0], 0.9) == pytest.approx([0.0, 0.1 / 0.19])
    assert smooth([], 0.9) == []


def test_curves_drop_the_abandoned_timeline_of_a_rollback():
    from vsrdata.training.logs import current_timeline

    recs = [{"iter": i, "loss": 1.0} for i in (1, 2, 3)] + [{"iter": 4, "event": "rollback", "to_iter": 2}] \
        + [{"iter": i, "loss": 2.0} for i in (3, 4)]
    kept, rollbacks = current_timeline(recs)
    assert [(r["iter"], r["loss"]) for r in kept] == [(1, 1.0), (2, 1.0), (3, 2.0), (4, 2.0)] and rollbacks == [2]
