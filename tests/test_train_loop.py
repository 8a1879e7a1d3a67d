"""The training loop end to end on CPU with the tiny preset: loss goes down, exact resume, DDP
(2 gloo processes under torchrun) == one process with the same global batch, divergence guard,
TSA-only phase, deep-from-shallow initialisation, bad input caught before training, CLI
(resume files and the rest: test_train_resume.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from test_train_data import REDS_GT, fixed_clip, make_lq_tree
from vsrdata.cli import main
from vsrdata.core.resize import imresize
from vsrdata.edvr.arch import build_edvr
from vsrdata.training.optim import split_parameters
from vsrdata.training.step import INJECT_NAN_ENV
from vsrdata.edvr.checkpoint.init import init_deep_from_shallow
from vsrdata.edvr.checkpoint.train_state import list_checkpoints
from vsrdata.training.loop import DivergenceError, train
from vsrdata.training.config import TrainConfig
from vsrdata.errors import CheckpointError, ConfigError, InputError, OutputError


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # the CI box has 2 cores shared by many jobs: one intra-op thread is faster for tiny tensors
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_data")
    lq = make_lq_tree(REDS_GT, root / "lq")
    fixed_gt, fixed_lq = fixed_clip(root / "fixed")  # a fixed batch
    # validation set laid out as a split-test output (GT/ and BIx4/), 2 clips of 3 frames; clip 002
    # is 60x44 (LR 15x11, not a multiple of 4: validation pads it and crops the output back)
    val = root / "val"
    for clip, (h, w) in (("000", (48, 64)), ("002", (44, 60))):
        for k in range(3):
            gt = cv2.imread(str(REDS_GT / clip / f"{k:08d}.png"))[40:40 + h, 100:100 + w]
            for d, img in (("GT", gt), ("BIx4", imresize(gt, 0.25))):
                (val / d / clip).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(val / d / clip / f"{k:08d}.png"), img)
    return {"gt": REDS_GT, "lq": lq, "fixed_gt": fixed_gt, "fixed_lq": fixed_lq, "val": val}


def cfg_for(data, run_dir, **kw) -> TrainConfig:
    base = dict(run_dir=str(run_dir), preset="edvr-tiny", dataset="clips", gt_path=str(data["gt"]),
                lq_path=str(data["lq"]), gt_size=32, batch_size=2, num_workers=0, total_iter=4, periods=[1000],
                lr=1e-3, ema_decay=0.0, save_freq=2, print_freq=1, val_freq=1000, seed=5)
    base.update(kw)
    return TrainConfig(**base)


def weights(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def losses(run_dir) -> list[float]:
    return [r["loss"] for r in map(json.loads, (Path(run_dir) / "log.jsonl").read_text().splitlines()) if "loss" in r]


def test_loss_goes_down_on_a_fixed_batch_and_validation_keeps_best(data, tmp_path):
    cfg = cfg_for(data, tmp_path / "run", gt_path=str(data["fixed_gt"]), lq_path=str(data["fixed_lq"]),
                  use_hflip=False, use_rot=False, total_iter=20, save_freq=10, val_freq=10,
                  val_path=str(data["val"]), val_max_frames=2, ema_decay=0.9)
    result = train(cfg)
    loss = losses(tmp_path / "run")
    assert len(loss) == 20
    # output = bilinear base + residual: the residual's initial noise goes first, then detail
    assert loss[-1] < min(loss[:5]) and np.mean(loss[-5:]) < 0.95 * np.mean(loss[:5]), loss
    assert result.iterations == 20 and result.last_checkpoint.name == "iter_00000020.pth"
    assert result.best_checkpoint == tmp_path / "run" / "best.pth" and result.best_checkpoint.exists()
    assert np.isfinite(result.metrics["psnr"]) and result.metrics["best_psnr"] >= result.metrics["psnr"]
    png = cv2.imread(str(result.curve_png))
    assert png is not None and png.shape[0] > 100
    ck = weights(result.last_checkpoint)
    assert ck["train_config"]["preset"] == "edvr-tiny" and ck["iter"] == 20 and "params_ema" in ck
    assert json.loads((tmp_path / "run" / "config.json").read_text())["total_iter"] == 20


def test_resume_is_exact(data, tmp_path):
    kw = dict(random_reverse=True, interval_list=[1, 2], ema_decay=0.9, total_iter=4)
    train(cfg_for(data, tmp_path / "straight", **kw))
    train(cfg_for(data, tmp_path / "split", **{**kw, "total_iter": 2}))
    # the second half uses a data-loader worker process: samples must not depend on it
    train(cfg_for(data, tmp_path / "split", **{**kw, "resume": "auto", "num_workers": 1}))
    a = weights(tmp_path / "straight" / "checkpoints" / "iter_00000004.pth")
    b = weights(tmp_path / "split" / "checkpoints" / "iter_00000004.pth")
    for key in ("params", "params_ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), (key, name)
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 4
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)


def test_old_style_checkpoint_still_resumes_and_loads(data, tmp_path):
    """vsrdata-train/1 files (model config under 'model_config', TrainConfig under 'config') resume
    exactly like the current format (model config under 'config', as the weights format)."""
    from vsrdata.edvr.checkpoint import read_checkpoint, save_atomic

    kw = dict(total_iter=4)
    train(cfg_for(data, tmp_path / "straight", **kw))
    train(cfg_for(data, tmp_path / "old", **{**kw, "total_iter": 2}))
    path = tmp_path / "old" / "checkpoints" / "iter_00000002.pth"
    new = weights(path)
    assert new["format"] == "vsrdata-train/2" and new["config"]["num_frame"] == 5 and "model_config" not in new
    old = {**new, "format": "vsrdata-train/1", "model_config": new["config"], "config": new.pop("train_config")}
    save_atomic(old, path)
    assert read_checkpoint(path).config.num_frame == 5  # evaluate/infer read the model config too
    train(cfg_for(data, tmp_path / "old", **{**kw, "resume": "auto"}))
    a = weights(tmp_path / "straight" / "checkpoints" / "iter_00000004.pth")
    b = weights(tmp_path / "old" / "checkpoints" / "iter_00000004.pth")
    assert all(torch.equal(t, b["params"][n]) for n, t in a["params"].items())


def test_accumulation_stop_and_resume_equals_uninterrupted(data, tmp_path):
    kw = dict(accum_steps=2, batch_size=1, random_reverse=True, ema_decay=0.9, total_iter=4)
    train(cfg_for(data, tmp_path / "straight", **kw))
    train(cfg_for(data, tmp_path / "split", **{**kw, "total_iter": 2}))
    train(cfg_for(data, tmp_path / "split", **{**kw, "resume": "auto"}))
    a = weights(tmp_path / "straight" / "checkpoints" / "iter_00000004.pth")
    b = weights(tmp_path / "split" / "checkpoints" / "iter_00000004.pth")
    for key in ("params", "params_ema"):
        assert all(torch.equal(t, b[key][n]) for n, t in a[key].items()), key
    assert a["train_config"]["accum_steps"] == 2
    # a different K sees other samples per update: the runs must differ (the option is not ignored)
    train(cfg_for(data, tmp_path / "k1", **{**kw, "accum_steps": 1}))
    c = weights(tmp_path / "k1" / "checkpoints" / "iter_00000004.pth")
    assert not all(torch.equal(t, c["params"][n]) for n, t in a["params"].items())


def test_ddp_two_gloo_processes_equal_one_process_accumulating_two_micro_batches(data, tmp_path):
    """DDP with 2 processes x batch 1 == 1 process x batch 1 x `--accum-steps 2`, bit for bit.

    Both runs compute each sample's gradient g_k alone (batch 1, one thread, same kernels) and
    form g_0/2 + g_1/2: DDP scales each rank's gradient by 1/2 and all-reduces two summands
    (a + b == b + a exactly in float32); accumulation scales each micro-loss by 1/2 (a power of
    two: every backward value scales exactly) and adds the second gradient to the first. The
    same sampler positions feed rank k and micro-batch k. So the weights must be EQUAL.
    A single batch of 2 is not compared: its gradient reduces over the batch in another order
    (float32 rounding ~1e-7 relative), and Adam's first step lr * g / (|g| + eps) turns that into
    a difference of up to 2 * lr per step for gradients near zero (observed 3e-5 at lr 1e-3).
    """
    common = ["--preset", "edvr-tiny", "--dataset", "clips", "--gt", str(data["gt"]), "--lq", str(data["lq"]),
              "--gt-size", "32", "--num-workers", "0", "--total-iter", "4", "--periods", "1000", "--lr", "1e-3",
              "--ema-decay", "0", "--save-freq", "2", "--loss-reduction", "mean", "--seed", "5", "-q",
              "--batch-size", "1",
              # also exercise the DDP wrapper rebuild at the end of the TSA-only phase, and a
              # rollback (checkpoint path broadcast from rank 0) in both runs
              "--tsa-iter", "2",
              # and validation: under DDP each rank scores one of the 2 clips, the scores gathered
              "--val", str(data["val"]), "--val-freq", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", INJECT_NAN_ENV: "3"}
    ddp = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "vsrdata",
           "train", *common, "--run-dir", str(tmp_path / "ddp")]
    one = [sys.executable, "-m", "vsrdata", "train", *common, "--accum-steps", "2", "--run-dir", str(tmp_path / "one")]
    for cmd in (ddp, one):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        assert proc.stdout.count("done: 4 iterations") == 1  # rank 0 alone reports
        assert "1 rollback(s)" in proc.stdout
    a = weights(tmp_path / "ddp" / "checkpoints" / "iter_00000004.pth")
    b = weights(tmp_path / "one" / "checkpoints" / "iter_00000004.pth")
    init = build_edvr("edvr-tiny").state_dict()
    moved = 0
    for name in a["params"]:
        assert torch.equal(a["params"][name], b["params"][name]), (name, (a["params"][name] - b["params"][name]).abs().max())
        moved += int(not torch.equal(a["params"][name], init[name]))
    assert moved > 10  # the runs did train
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)
    val = {run: [(r["iter"], r["psnr"], r["ssim"], r["per_clip"]) for r in map(
        json.loads, (tmp_path / run / "log.jsonl").read_text().splitlines()) if "psnr" in r] for run in ("ddp", "one")}
    assert len(val["ddp"]) >= 2 and all(len(v[3]) == 2 for v in val["ddp"])  # both clips, every validation
    assert val["ddp"] == val["one"]  # equal weights, so equal scores to the last bit


def test_divergence_guard_rolls_back_and_lowers_dcn_lr(data, tmp_path, monkeypatch):
    events = []
    monkeypatch.setenv(INJECT_NAN_ENV, "3")
    result = train(cfg_for(data, tmp_path / "run", total_iter=5), on_event=events.append)
    assert result.iterations == 5 and result.metrics["rollbacks"] == 1
    rb = [e for e in events if e["kind"] == "rollback"]
    assert len(rb) == 1 and rb[0]["iter"] == 3 and rb[0]["to_iter"] == 2 and rb[0]["reason"] == "non-finite loss"
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert any(r.get("event") == "rollback" for r in log)
    ck = weights(result.last_checkpoint)
    groups = {g["name"]: g["lr"] for g in ck["optimizer"]["param_groups"]}
    assert groups["dcn"] == pytest.approx(0.5 * groups["other"])
    assert all(torch.isfinite(t).all() for t in ck["params"].values())
    # diverging again right after a rollback (no step succeeded): go one checkpoint further back
    events = []
    monkeypatch.setenv(INJECT_NAN_ENV, "3,3")
    result = train(cfg_for(data, tmp_path / "run3", total_iter=5), on_event=events.append)
    assert [e["to_iter"] for e in events if e["kind"] == "rollback"] == [2, 0]
    assert result.metrics["rollbacks"] == 2 and result.metrics["dcn_lr_scale"] == 0.25
    # a threshold no forward can meet: every iteration diverges -> clear stop after max_rollbacks
    monkeypatch.delenv(INJECT_NAN_ENV)
    with pytest.raises(DivergenceError, match="after 2 rollback"):
        train(cfg_for(data, tmp_path / "run2", offset_threshold=1e-12, max_rollbacks=2))


def test_tsa_only_phase_freezes_exactly_the_non_fusion_parameters(data, tmp_path):
    train(cfg_for(data, tmp_path / "run", total_iter=4, tsa_iter=3, save_freq=1, keep_checkpoints=10))
    ck = {i: weights(p) for i, p in list_checkpoints(tmp_path / "run")}
    fusion = {n for n, _ in split_parameters(build_edvr("edvr-tiny"))["fusion"]}
    assert fusion and all(n.startswith("fusion.") for n in fusion)
    for name, t0 in ck[0]["params"].items():
        same = torch.equal(t0, ck[2]["params"][name])
        assert same == (name not in fusion), name  # iterations 1, 2: only the fusion module moves
    changed_at_3 = [n for n in ck[2]["params"] if not torch.equal(ck[2]["params"][n], ck[3]["params"][n])]
    assert set(changed_at_3) - fusion  # iteration tsa_iter = 3 trains everything again
    assert "conv_first.weight" in changed_at_3


def test_init_deep_from_shallow_tiles_blocks(tmp_path):
    torch.manual_seed(0)
    shallow = build_edvr("edvr-tiny", with_tsa=False)  # 2 reconstruction blocks
    with torch.no_grad():
        for p in shallow.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "shallow.pth"
    torch.save({"params": shallow.state_dict()}, path)
    deep = build_edvr("edvr-tiny", with_tsa=False, num_reconstruct_block=8)
    report = init_deep_from_shallow(deep, path)
    assert report["map"] == {i: i % 2 for i in range(8)} and not report["missing"]
    src, dst = shallow.state_dict(), deep.state_dict()
    for name, t in dst.items():
        if name.startswith("reconstruction."):
            i, rest = name.split(".", 2)[1:]
            assert torch.equal(t, src[f"reconstruction.{int(i) % 2}.{rest}"]), name
        else:
            assert torch.equal(t, src[name]), name
    with torch.no_grad():
        out = deep(torch.rand(1, 5, 3, 8, 8))
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()
    wide = build_edvr("edvr-tiny", num_feat=32, num_reconstruct_block=8)
    with pytest.raises(CheckpointError, match="channel change"):
        init_deep_from_shallow(wide, path)


def test_bad_input_fails_before_training(data, tmp_path):
    run = tmp_path / "run"
    cases = [
        (dict(gt_size=30), ConfigError, "not divisible by the scale 4"),
        (dict(gt_size=36), ConfigError, "multiple of 4"),
        (dict(gt_size=256), InputError, "larger than the frames"),
        (dict(gt_path=str(tmp_path / "none.lmdb")), InputError, "not found"),
        (dict(preset="edvr-x"), ConfigError, "unknown EDVR preset"),
    ]
    empty = tmp_path / "empty.lmdb"
    empty.mkdir()
    import lmdb

    lmdb.open(str(empty)).close()
    (empty / "meta_info.txt").write_text("")
    cases.append((dict(gt_path=str(empty)), InputError, "no frames"))
    other = build_edvr("edvr-tiny", num_feat=8)
    torch.save({"params": other.state_dict()}, tmp_path / "other.pth")
    # strict (BasicSR strict_load_g: true); non-strict skips tensors of another shape (BasicSR's behaviour)
    cases.append((dict(init=str(tmp_path / "other.pth"), init_strict=True), CheckpointError,
                  "does not match preset edvr-tiny"))
    for kw, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            train(cfg_for(data, run, **kw))
        assert not list_checkpoints(run), kw
    train(cfg_for(data, run, total_iter=2))
    with pytest.raises(OutputError, match="--resume auto"):
        train(cfg_for(data, run, total_iter=2))
    with pytest.raises(CheckpointError, match="does not match preset"):
        train(cfg_for(data, run, total_iter=4, resume="auto", model={"num_reconstruct_block": 3}))


def test_cli_config_file_errors_and_woTSA_to_TSA_init(data, tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--gt", str(data["gt"]), "--lq", str(data["lq"]), "--preset", "edvr-tiny",
                               "--gt-size", "30", "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 1 and res.output.strip().splitlines()[-1].startswith("Error: invalid --gt-size")
    assert "Traceback" not in res.output
    wotsa = build_edvr("edvr-tiny", with_tsa=False)
    torch.save({"params": wotsa.state_dict()}, tmp_path / "wotsa.pth")
    toml = tmp_path / "cfg.toml"
    toml.write_text(f'preset = "edvr-tiny"\ndataset = "clips"\ngt_path = "{data["gt"]}"\nlq_path = "{data["lq"]}"\n'
                    f'gt_size = 32\nbatch_size = 1\nnum_workers = 0\ntotal_iter = 2\nsave_freq = 2\n'
                    f'ema_decay = 0\nrun_dir = "{tmp_path / "run"}"\n')
    res = runner.invoke(main, ["train", "--config", str(toml), "--init", str(tmp_path / "wotsa.pth"), "-q"])
    assert res.exit_code == 0, res.output
    assert "done: 2 iterations" in res.output
    ck = weights(tmp_path / "run" / "checkpoints" / "iter_00000002.pth")
    assert ck["train_config"]["tsa_iter"] == 50_000  # woTSA -> TSA stage: TSA-only phase by default
    assert ck["train_config"]["batch_size"] == 1 and ck["train_config"]["init"] == str(tmp_path / "wotsa.pth")
    assert torch.equal(ck["params"]["conv_first.weight"], wotsa.state_dict()["conv_first.weight"])  # frozen
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    init = next(r for r in log if r.get("event") == "init")
    assert init["unexpected"] == 2 and init["missing"] > 0  # fusion.weight/bias dropped, TSA keeps its init


def test_validation_psnr_matches_scikit_image(data):
    from skimage.metrics import peak_signal_noise_ratio

    from vsrdata.edvr.config import get_preset
    from vsrdata.training.validate import load_val_clips
    from vsrdata.training.validate import validate

    class Bilinear(torch.nn.Module):  # a "model": x4 bilinear of the centre frame
        config = get_preset("edvr-tiny", num_frame=3)

        def forward(self, x):
            return torch.nn.functional.interpolate(x[:, 1], scale_factor=4, mode="bilinear", align_corners=False)

    clips = [c for c in load_val_clips(data["val"]) if c.name == "000"]
    got = validate(Bilinear(), clips, 3, torch.device("cpu"))
    want = []
    for lq_path, gt_path in zip(clips[0].lq_paths, clips[0].gt_paths):
        lq = torch.from_numpy(cv2.imread(str(lq_path))[:, :, ::-1].transpose(2, 0, 1) / 255.0).float()[None]
        sr = torch.nn.functional.interpolate(lq, scale_factor=4, mode="bilinear", align_corners=False)[0]
        sr = (sr.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        want.append(peak_signal_noise_ratio(cv2.imread(str(gt_path))[:, :, ::-1], sr, data_range=255))
    assert got["psnr"] == pytest.approx(np.mean(want), abs=1e-9)
    assert got["per_clip"] == {"000": pytest.approx(np.mean(want), abs=1e-9)}
