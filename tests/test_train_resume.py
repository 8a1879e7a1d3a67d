"""Training runs on CPU with the tiny preset, continued: Vimeo90K with deep-from-shallow init,
`--resume auto` and resume files, stale checkpoint temps, a failure on the first batch, loss and
scheduler options from the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from test_train_data import make_lq_tree
from vsrdata.cli import main
from vsrdata.edvr.arch import build_edvr
from vsrdata.edvr.checkpoint.train_state import list_checkpoints
from vsrdata.training.loop import train
from vsrdata.training.config import TrainConfig
from vsrdata.errors import InputError
from test_train_loop import cfg_for, weights
from test_train_loop import data, one_thread  # noqa: F401  (fixtures: the tiny data set, one torch thread)


def test_vimeo_training_with_deep_from_shallow_init(tmp_path):
    from test_train_data import VIMEO_GT

    lq = make_lq_tree(VIMEO_GT / "sequences", tmp_path / "lq" / "sequences").parent
    shallow = build_edvr("edvr-tiny", num_frame=7)
    torch.save({"params": shallow.state_dict()}, tmp_path / "shallow.pth")
    cfg = TrainConfig(run_dir=str(tmp_path / "run"), preset="edvr-tiny", num_frame=7,
                      model={"num_reconstruct_block": 4},
                      dataset="vimeo", gt_path=str(VIMEO_GT), lq_path=str(lq),
                      train_list=str(VIMEO_GT / "sep_trainlist.txt"), gt_size=64, batch_size=1, num_workers=0,
                      total_iter=1, ema_decay=0, init_deep_from_shallow=str(tmp_path / "shallow.pth"))
    result = train(cfg)
    ck = weights(result.last_checkpoint)
    assert ck["config"]["num_frame"] == 7 and ck["config"]["num_reconstruct_block"] == 4
    init = weights(tmp_path / "run" / "checkpoints" / "iter_00000000.pth")["params"]
    src = shallow.state_dict()
    assert torch.equal(init["reconstruction.3.conv2.weight"], src["reconstruction.1.conv2.weight"])
    assert all(torch.isfinite(t).all() for t in ck["params"].values())


class NotData:  # pickled as a GLOBAL reference to this class: weights_only refuses it
    pass


def test_resume_auto_names_skipped_checkpoints_and_never_restarts_silently(data, tmp_path):
    run = tmp_path / "run"
    train(cfg_for(data, run, total_iter=4))
    ckpts = dict(list_checkpoints(run))
    ckpts[4].write_bytes(ckpts[4].read_bytes()[:1000])  # truncated newest
    events = []
    result = train(cfg_for(data, run, total_iter=6, resume="auto"), on_event=events.append)
    info = [e["message"] for e in events if e["kind"] == "info"]
    assert any(m.startswith("skipped checkpoint iter_00000004.pth: cannot read checkpoint") for m in info), info
    assert any("resumed from" in m and "iter_00000002.pth at iteration 2" in m for m in info), info
    assert result.iterations == 6
    # every checkpoint unreadable: an error naming each, not a silent restart at iteration 0
    for _, path in list_checkpoints(run):
        path.write_bytes(b"garbage")
    res = CliRunner().invoke(main, ["train", "--preset", "edvr-tiny", "--dataset", "clips", "--gt", str(data["gt"]),
                                    "--lq", str(data["lq"]), "--gt-size", "32", "--num-workers", "0",
                                    "--total-iter", "8", "--run-dir", str(run), "--resume", "auto", "-q"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    line = res.output.strip().splitlines()[-1]
    assert line.startswith("Error: --resume auto: none of the 3 checkpoint(s)") and "move them away" in line, line
    assert all(p.name in line for _, p in list_checkpoints(run))


def test_resume_file_with_code_is_refused_in_one_line(data, tmp_path):
    bad = tmp_path / "code.pth"
    torch.save({"format": "vsrdata-train/1", "x": NotData()}, bad)
    res = CliRunner().invoke(main, ["train", "--preset", "edvr-tiny", "--dataset", "clips", "--gt", str(data["gt"]),
                                    "--lq", str(data["lq"]), "--gt-size", "32", "--num-workers", "0",
                                    "--total-iter", "2", "--run-dir", str(tmp_path / "run"), "--resume", str(bad), "-q"])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: refusing to load {bad}"), res.output
    assert "weights_only=False" not in res.output and "trust" not in res.output


def test_stale_checkpoint_temps_of_dead_processes_are_removed_at_start(data, tmp_path):
    run = tmp_path / "run"
    train(cfg_for(data, run, total_iter=2))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # what a kill -9 during torch.save leaves (checkpoint.save_atomic's temporary sibling)
        stale = [run / "checkpoints" / f".iter_00000004.pth.{dead}.tmp", run / f".best.pth.{dead}.tmp"]
        busy = run / "checkpoints" / f".iter_00000006.pth.{live.pid}.tmp"
        for p in (*stale, busy):
            p.write_bytes(b"PK\x03\x04 half a zip")
        events = []
        train(cfg_for(data, run, total_iter=4, resume="auto"), on_event=events.append)
        assert not any(p.exists() for p in stale) and busy.exists()
        assert sum("removed 1 stale temporary file(s)" in e.get("message", "") for e in events) == 2
    finally:
        live.kill()
        live.wait()


def test_failure_on_the_first_batch_leaves_no_checkpoint(data, tmp_path):
    import shutil

    lq = tmp_path / "lq"
    shutil.copytree(data["fixed_lq"], lq)
    frame = lq / "a" / "00000002.png"
    good = frame.read_bytes()
    frame.write_bytes(good[: len(good) // 2])  # truncated PNG: found only when the sample is read
    run = tmp_path / "run"
    cfg = dict(gt_path=str(data["fixed_gt"]), lq_path=str(lq), total_iter=2)
    with pytest.raises(InputError, match="00000002.png"):
        train(cfg_for(data, run, **cfg))
    assert not list_checkpoints(run) and not list((run / "checkpoints").glob(".*.tmp"))
    frame.write_bytes(good)  # the user fixes the data and runs the same command again
    assert train(cfg_for(data, run, **cfg)).iterations == 2
    assert [i for i, _ in list_checkpoints(run)] == [2, 0]


def test_cli_loss_and_scheduler_options_reach_the_run(data, tmp_path):
    """--loss-type/--loss-weight/--scheduler/--milestones/--gamma set the TrainConfig fields: the
    logged lr halves at the milestone and an L1 loss x2 is logged (not Charbonnier's sum)."""
    run = tmp_path / "run"
    res = CliRunner().invoke(main, ["train", "--preset", "edvr-tiny", "--dataset", "clips", "--gt", str(data["gt"]),
                                    "--lq", str(data["lq"]), "--gt-size", "32", "--num-workers", "0",
                                    "--batch-size", "1", "--total-iter", "3", "--print-freq", "1", "--lr", "1e-3",
                                    "--loss-type", "l1", "--loss-weight", "2", "--loss-reduction", "mean",
                                    "--scheduler", "multistep", "--milestones", "2", "--gamma", "0.5",
                                    "--run-dir", str(run), "-q"])
    assert res.exit_code == 0, res.output
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["loss_type"], cfg["loss_weight"], cfg["scheduler"], cfg["milestones"], cfg["gamma"]) == \
        ("l1", 2.0, "multistep", [2], 0.5)
    records = [r for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "lr" in r]
    # iteration k runs after k - 1 scheduler steps: the milestone at step 2 lowers iteration 3's lr
    assert [r["lr"] for r in records] == pytest.approx([1e-3, 1e-3, 5e-4], rel=1e-12)
    assert all(0 < r["loss"] < 2 for r in records)  # 2 x mean |error| of [0, 1] images
    bad = CliRunner().invoke(main, ["train", "--milestones", "1,x"])
    assert bad.exit_code == 2 and "--milestones" in bad.output
