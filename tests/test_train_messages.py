"""Training tells what it does: held-out clips, schedule and validation plan at start, validation
progress, scores named with channel and protocol, report.html per run, where things are at the end,
resume with other validation settings, config keys named like flags, no test hooks in the config."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from click.testing import CliRunner

from test_train_loop import cfg_for, data, one_thread  # noqa: F401 (pytest fixtures)
from vsrdata.cli import main
from vsrdata.errors import ConfigError
from vsrdata.training import announce
from vsrdata.training.announce import schedule_summary
from vsrdata.training.config import TrainConfig, config_fields, from_dict, load_config
from vsrdata.training.loop import train
from vsrdata.training.logs import format_event
from vsrdata.training.schedule import cosine_restart_factor


def test_reds_start_names_the_clips_left_out_and_the_plan(data, tmp_path, monkeypatch):
    monkeypatch.setattr(announce, "LONG_VALIDATION_SECONDS", 0.0)  # every validation counts as long
    events = []
    result = train(cfg_for(data, tmp_path / "run", dataset="reds", total_iter=2, val_freq=2,
                           val_path=str(data["val"]), val_max_frames=1), on_event=events.append)
    start = next(e for e in events if e["kind"] == "start")
    assert start["held_out"] == {"partition": "REDS4", "clips": ["000"]}  # REDS4 = 000, 011, 015, 020
    frames = sum(len(list((data["gt"] / c).glob("*.png"))) for c in ("001", "002"))
    assert start["samples"] == frames  # clip 000 is not trained on
    line = format_event(start)
    assert "left out of training (--val-partition REDS4): 1 clip(s) 000" in line
    assert "validation: PSNR-RGB (reds4, first 1 frames) on 2 clip(s), 2 frame(s), every 2 iterations (1 time(s)" in line
    # its expected duration, measured on one frame before the first iteration, and the way to shorten it
    assert start["val"]["long"] and start["val"]["seconds"] > 0
    assert re.search(r"; about \d+ s per validation on cpu \(estimated from one timed frame\); "
                     r"--val-max-frames N scores only the first N frames of each clip", line), line
    # the validation reports its progress: the frames of both clips, then the score with its name
    ticks = [e for e in events if e["kind"] == "val_progress"]
    assert ticks[0]["n"] == 0 and ticks[0]["total"] == 2 and sum(e["n"] for e in ticks) == 2
    val = next(e for e in events if e["kind"] == "val")
    assert val["metric"] == "PSNR-RGB (reds4, first 1 frames)"
    page = result.report_html.read_text(encoding="utf-8")
    assert result.report_html == tmp_path / "run" / "report.html"
    assert "Training curves" in page and "validation at iteration 2" in page and "PSNR-RGB (reds4, first 1 frames)" in page
    assert result.train_log.is_file() and result.curve_png.is_file()


def test_short_runs_get_one_cosine_cycle_and_say_so():
    cfg = TrainConfig(total_iter=30).resolved(with_tsa=True)
    assert cfg.periods == [30]
    factors = [cosine_restart_factor(s, cfg.periods, cfg.restart_weights)[0] for s in range(30)]
    assert all(a >= b for a, b in zip(factors, factors[1:]))  # falls once, never restarts
    assert schedule_summary(cfg) == "lr 0.0004, one cosine cycle down to 1e-07 over 30 iterations (no restarts)"
    long = TrainConfig().resolved(with_tsa=True)
    assert schedule_summary(long).endswith("back to the peak at iterations 50000, 150000, 300000, 450000)")
    assert TrainConfig(total_iter=600).resolved(with_tsa=True).periods == [50, 100, 150, 150, 150]


def test_resume_with_other_validation_warns_and_restarts_best(data, tmp_path, monkeypatch):
    monkeypatch.setattr(announce, "LONG_VALIDATION_SECONDS", math.inf)  # no validation counts as long
    run = tmp_path / "run"
    common = dict(val_path=str(data["val"]), val_freq=2, save_freq=2)
    events = []
    first = train(cfg_for(data, run, total_iter=2, val_max_frames=1, **common), on_event=events.append)
    start = next(e for e in events if e["kind"] == "start")
    assert not start["val"]["long"] and "per validation" not in format_event(start)
    assert "--val-max-frames" not in format_event(start)
    assert first.metrics["best_iter"] == 2
    events = []
    result = train(cfg_for(data, run, total_iter=4, val_max_frames=2, resume="auto", **common),
                   on_event=events.append)
    warnings = [e["message"] for e in events if e["kind"] == "info" and "validation changed" in e["message"]]
    assert len(warnings) == 1 and "val_max_frames 1 -> 2" in warnings[0] and "restarts" in warnings[0]
    # the best is among the new scores only: iteration 4, whatever iteration 2 scored before
    assert result.metrics["best_iter"] == 4
    assert torch.load(run / "best.pth", map_location="cpu", weights_only=False)["iter"] == 4
    # unchanged settings: no warning
    events = []
    train(cfg_for(data, run, total_iter=6, val_max_frames=2, resume="auto", **common), on_event=events.append)
    assert not [e for e in events if e["kind"] == "info" and "validation changed" in e["message"]]


def test_config_keys_may_use_the_flag_names_or_get_a_suggestion(tmp_path):
    cfg = from_dict({"gt": "a.lmdb", "lq": "b.lmdb", "val": "reds4", "hflip": False})
    assert (cfg.gt_path, cfg.lq_path, cfg.val_path, cfg.use_hflip) == ("a.lmdb", "b.lmdb", "reds4", False)
    toml = tmp_path / "c.toml"
    toml.write_text('[train]\ngt = "x"\ngt_pth = "y"\n')
    with pytest.raises(ConfigError, match=r"unknown option 'gt_pth' in .*c\.toml \(did you mean 'gt_path'\?\)"):
        load_config(toml)
    with pytest.raises(ConfigError, match=r"did you mean 'val_freq'"):
        from_dict({"val-freqq": 3})


def test_no_test_hooks_in_the_user_facing_config():
    assert not [f for f in config_fields() if "inject" in f or "test" in f]
    res = CliRunner().invoke(main, ["train", "--help"])
    assert res.exit_code == 0 and "inject" not in res.output
    # a run directory's config.json written by an older version still loads
    assert from_dict({"inject_nan_at": [], "total_iter": 5}).total_iter == 5


def test_cli_end_names_where_everything_is(data, tmp_path):
    run = tmp_path / "run"
    res = CliRunner().invoke(main, [
        "train", "--preset", "edvr-tiny", "--dataset", "clips", "--gt", str(data["gt"]), "--lq", str(data["lq"]),
        "--gt-size", "32", "--batch-size", "1", "--num-workers", "0", "--total-iter", "2", "--val", str(data["val"]),
        "--val-freq", "2", "--val-max-frames", "1", "--run-dir", str(run), "-q"])
    assert res.exit_code == 0, res.output
    out = res.output
    for label, path in (("best checkpoint", run / "best.pth"), ("report (open in a browser)", run / "report.html"),
                        ("curves", run / "curves.png"), ("log", run / "train.log")):
        assert f"{label}: {path}" in out and path.exists(), label
    assert ("TensorBoard: " in out) == (run / "tb").is_dir()
    record = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if '"psnr"' in x][0]
    assert record["metric"] == "PSNR-RGB (reds4, first 1 frames)" and math.isfinite(record["psnr"])
