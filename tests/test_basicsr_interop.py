"""BasicSR interop: option files (every key accounted for), the LR schedule to the iteration,
--init's checkpoint key, and BasicSR-style test sets scored in place (issue 11)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vsrdata.cli import main
from vsrdata.training.basicsr_options import read_options
from vsrdata.training.losses import build_loss
from vsrdata.training.schedule import build_scheduler
from vsrdata.training.config import TrainConfig, load_config, read_config_file
from vsrdata.errors import CheckpointError, ConfigError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
OPTS = FIXTURES / "basicsr_options"
TRAIN = {  # file -> preset
    "train_EDVR_M_x4_SR_REDS_woTSA.yml": "edvr-m-wotsa",
    "train_EDVR_M_x4_SR_REDS.yml": "edvr-m",
    "train_EDVR_L_x4_SR_REDS_woTSA.yml": "edvr-l-wotsa",
    "train_EDVR_L_x4_SR_REDS.yml": "edvr-l",
    "train_EDVRM_woTSA_GAN_TODO.yml": "edvr-l-wotsa",  # its network_g is L-sized despite the name
}
TEST = {
    "test_EDVR_M_x4_SR_REDS.yml": ("edvr-m", "reflection_circle"),
    "test_EDVR_L_x4_SR_REDS.yml": ("edvr-l", "reflection_circle"),
    "test_EDVR_L_x4_SR_Vid4.yml": ("edvr-l-vimeo", "reflection_circle"),
    "test_EDVR_L_x4_SR_Vimeo90K.yml": ("edvr-l-vimeo", "reflection_circle"),
    "test_EDVR_L_x4_SRblur_REDS.yml": ("edvr-l-srblur", "replicate"),
    "test_EDVR_L_deblur_REDS.yml": ("edvr-l-deblur", "replicate"),
    "test_EDVR_L_deblurcomp_REDS.yml": ("edvr-l-deblur", "replicate"),
}


def test_every_fixture_is_tested():
    assert {p.name for p in (OPTS / "train").glob("*.yml")} == set(TRAIN)
    assert {p.name for p in (OPTS / "test").glob("*.yml")} == set(TEST)


@pytest.mark.parametrize("name", sorted(TRAIN))
def test_train_option_files_map_every_key(name, tmp_path):
    notes = []
    path = OPTS / "train" / name
    opt = read_config_file(path)
    if "perceptual_opt" in opt["train"]:  # a loss vsrdata cannot add: an error until the user removes it
        with pytest.raises(ConfigError, match=r"train.perceptual_opt \(PerceptualLoss\) cannot be honoured"):
            load_config(path)
        path = _edit(tmp_path, name, lambda o: o["train"].pop("perceptual_opt"))
    cfg = load_config(path, on_note=notes.append)
    assert cfg.preset == TRAIN[name]  # the label follows network_g (an L-woTSA file is not edvr-m)
    assert cfg.model == {k: v for k, v in opt["network_g"].items() if k != "type"}
    assert cfg.ema_decay == 0.0  # no ema_decay key: BasicSR's default, no EMA
    assert cfg.tensorboard is None and cfg.val_pad == "reflection_circle"
    assert cfg.val_gt == "datasets/REDS/train_sharp" and cfg.val_meta_info.endswith("meta_info_REDS4_test_GT.txt")
    assert cfg.use_hflip is True and cfg.batch_size == 4 and cfg.seed == 10
    assert any("global batch 32" in n for n in notes)  # 4 per GPU x num_gpu 8
    sched = opt["train"]["scheduler"]
    if sched["type"] == "CosineAnnealingRestartLR":
        assert cfg.scheduler == "cosine_restart" and cfg.periods == sched["periods"]
        assert cfg.restart_weights == [float(w) for w in sched["restart_weights"]]
    strict = opt["path"].get("strict_load_g", opt["path"].get("strict_load"))
    assert cfg.init_strict is strict
    ignored = [n for n in notes if n.startswith("BasicSR option file: ignored:")]
    if name.startswith("train_EDVR_"):
        assert ignored == []  # every key of the official EDVR files is honoured or irrelevant
    else:
        assert ignored == ["BasicSR option file: ignored: network_d, train.optim_d, "
                           "train.gan_opt, train.net_d_iters, train.net_d_init_iters"]
        assert cfg.scheduler == "multistep" and cfg.milestones == [50000, 100000, 200000, 300000]
        assert cfg.gamma == 0.5 and cfg.loss_weight == pytest.approx(1e-2)


@pytest.mark.parametrize("name", sorted(TEST))
def test_test_option_files(name):
    opts = read_options(read_config_file(OPTS / "test" / name), name)
    assert opts.kind == "test" and opts.ignored == []
    assert opts.fields["preset"] == TEST[name][0]
    assert [t["padding"] for t in opts.test_sets] == [TEST[name][1]]
    assert opts.metrics == {"channel": "rgb", "crop_border": 0}  # these files' val.metrics


def test_test_option_file_is_refused_by_train(tmp_path):
    res = CliRunner().invoke(main, ["train", "--config", str(OPTS / "test" / "test_EDVR_M_x4_SR_REDS.yml")])
    assert res.exit_code == 1
    assert "is a BasicSR test option file" in res.output and "vsrdata evaluate --config" in res.output


def _edit(tmp_path, name, change) -> Path:
    import yaml

    opt = read_config_file(OPTS / "train" / name)
    change(opt)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


@pytest.mark.parametrize("change,message", [
    (lambda o: o["train"]["scheduler"].update(type="StepLR"), "train.scheduler.type 'StepLR'"),
    (lambda o: o["train"]["pixel_opt"].update(type="PerceptualLoss"), "train.pixel_opt.type 'PerceptualLoss'"),
    (lambda o: o["train"]["optim_g"].update(type="SGD"), "train.optim_g.type 'SGD'"),
    (lambda o: o["network_g"].update(type="BasicVSR"), "network_g.type 'BasicVSR'"),
])
def test_keys_that_change_the_result_and_cannot_be_honoured_are_errors(tmp_path, change, message):
    path = _edit(tmp_path, "train_EDVR_M_x4_SR_REDS.yml", change)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(path)


def test_unknown_keys_are_named_and_wandb_warned(tmp_path):
    def change(o):
        o["logger"]["wandb"]["project"] = "mine"
        o["train"]["mystery_opt"] = {"type": "PerceptualLoss"}
        o["datasets"]["train"]["mystery"] = 1
    notes = []
    load_config(_edit(tmp_path, "train_EDVR_M_x4_SR_REDS.yml", change), on_note=notes.append)
    assert "BasicSR option file: ignored: datasets.train.mystery, train.mystery_opt" in notes
    assert any("wandb" in n and "TensorBoard" in n for n in notes)


# -- the learning rate, to the iteration -------------------------------------------------------

def _scheduler(cfg: TrainConfig):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=cfg.lr)
    return opt, build_scheduler(opt, cfg.resolved(with_tsa=True))


@pytest.mark.parametrize("name", ["train_EDVR_M_x4_SR_REDS_woTSA.yml", "train_EDVR_M_x4_SR_REDS.yml",
                                  "train_EDVR_L_x4_SR_REDS_woTSA.yml", "train_EDVR_L_x4_SR_REDS.yml"])
def test_lr_matches_basicsr_for_every_edvr_option_file(name):
    # expected values: fixtures/basicsr_options/make_lr_expected.py (BasicSR's formula, k - 1 steps)
    expected = json.loads((OPTS / "lr_cosine_restart_expected.json").read_text())["lr_by_iteration"][name]
    cfg = load_config(OPTS / "train" / name)
    opt, sched = _scheduler(cfg)
    for k, want in expected.items():  # closed form, rel 1e-12: float64 rounding of the same formula
        assert sched.lr_at(int(k), cfg.lr) == pytest.approx(want, rel=1e-12, abs=1e-18), k
    for k in range(1, 4):  # and what the optimiser really holds at iterations 1..3
        assert opt.param_groups[0]["lr"] == pytest.approx(expected[str(k)], rel=1e-12), k
        opt.step()
        sched.step()


def test_multistep_lr_follows_basicsr_counting_and_warmup():
    cfg = TrainConfig(scheduler="multistep", milestones=[2, 4, 4], gamma=0.5, lr=1.0, total_iter=8)
    opt, sched = _scheduler(cfg)
    got = []
    for _ in range(7):
        got.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # iteration k runs after k-1 steps; a milestone listed twice applies gamma twice
    assert got == [1.0, 1.0, 0.5, 0.5, 0.125, 0.125, 0.125]
    warm = TrainConfig(scheduler="multistep", milestones=[5], gamma=0.5, lr=1.0, warmup_iter=4, total_iter=8)
    _, sched = _scheduler(warm)
    # BasicSR: warm-up base*k/4 for k < 4; MultiStepRestartLR then keeps scaling the last warm-up
    # value (3/4), halved from iteration 6 (5 steps)
    assert [sched.lr_at(k, 1.0) for k in range(1, 8)] == [0.25, 0.5, 0.75, 0.75, 0.75, 0.375, 0.375]


def test_pixel_losses_and_loss_weight():
    x, y = torch.tensor([0.0, 1.0, 0.5]), torch.tensor([1.0, 1.0, 0.0])
    cfg = TrainConfig(loss_type="l1", loss_reduction="mean", loss_weight=0.01)
    assert build_loss(cfg)(x, y).item() == pytest.approx(0.01 * 0.5)
    cfg = TrainConfig(loss_type="mse", loss_reduction="sum", loss_weight=2.0)
    assert build_loss(cfg)(x, y).item() == pytest.approx(2.0 * 1.25)
    cfg = TrainConfig(loss_weight=0.5)
    assert build_loss(cfg)(x, y).item() == pytest.approx(0.5 * 1.5, rel=1e-6)  # Charbonnier 'sum'


def test_ema_is_off_by_default():
    assert TrainConfig().ema_decay == 0.0
    res = CliRunner().invoke(main, ["train", "--help"])
    assert "[0]" in res.output.split("--ema-decay")[1].split("--")[0]


# -- --init: BasicSR's `params` entry unless told otherwise ------------------------------------

def test_init_loads_params_unless_params_ema_is_chosen(tmp_path):
    from vsrdata.edvr.arch import build_edvr
    from vsrdata.edvr.checkpoint import save_atomic
    from vsrdata.edvr.checkpoint.init import init_from_checkpoint

    torch.manual_seed(0)
    a, b = build_edvr("edvr-tiny").state_dict(), build_edvr("edvr-tiny").state_dict()
    save_atomic({"params": a, "params_ema": b}, tmp_path / "net.pth")
    for key, want in ((None, a), ("params_ema", b)):
        model = build_edvr("edvr-tiny")
        report = init_from_checkpoint(model, tmp_path / "net.pth", "edvr-tiny", key)
        assert report["key"] == (key or "params")
        assert torch.equal(model.state_dict()["conv_first.weight"], want["conv_first.weight"])
    from vsrdata.edvr.config import get_preset

    with pytest.raises(CheckpointError, match="strictly"):  # BasicSR strict_load_g: true
        init_from_checkpoint(build_edvr(get_preset("edvr-tiny", with_tsa=False)), tmp_path / "net.pth",
                             "tiny-wotsa", strict=True)


# -- TOML on Python 3.10 ---------------------------------------------------------------------

def test_toml_config_read_with_tomli_when_tomllib_is_missing(tmp_path, monkeypatch):
    pytest.importorskip("tomli")
    monkeypatch.setitem(sys.modules, "tomllib", None)  # what Python 3.10 looks like
    (tmp_path / "c.toml").write_text('lr = 2e-4\nema_decay = 0.999\n')
    cfg = load_config(tmp_path / "c.toml")
    assert (cfg.lr, cfg.ema_decay) == (2e-4, 0.999)


def test_toml_without_tomllib_or_tomli_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tomllib", None)
    monkeypatch.setitem(sys.modules, "tomli", None)
    (tmp_path / "c.toml").write_text("lr = 2e-4\n")
    with pytest.raises(ConfigError, match="needs tomli"):
        load_config(tmp_path / "c.toml")


# -- BasicSR-style test sets scored in place ---------------------------------------------------

def _basicsr_copy(split: Path, dst_gt: Path, dst_lq: Path, rename=lambda i: f"{i:08d}.png") -> list[str]:
    """Write split-test's output back as an unpadded BasicSR-style set (GT root, LQ root)."""
    record = json.loads((split / "split.json").read_text())
    for name, rec in record["clips"].items():
        (gh, gw), (lh, lw) = rec["gt_size"][:2], rec["lr_size"][:2]
        for i, frame in enumerate(sorted(rec["frames"])):
            for src, dst, (h, w) in ((split / "GT", dst_gt, (gh, gw)), (split / record["lr_dir"], dst_lq, (lh, lw))):
                (dst / name).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(dst / name / rename(i)), cv2.imread(str(src / name / frame))[:h, :w])
    return list(record["clips"])


def _rows(report):
    return [(c.name, [(f.index, f.psnr, f.ssim, f.psnr_rgb, f.psnr_y) for f in c.frames]) for c in report.clips]


@pytest.mark.parametrize("fixture", ["odd_size", "reds/train_sharp"])
def test_gt_lq_roots_score_exactly_like_the_split_test_output(tmp_path, fixture):
    from vsrdata.edvr.arch import build_edvr
    from vsrdata.edvr.checkpoint import save_atomic
    from vsrdata.evaluation.evaluate import evaluate
    from vsrdata.pipelines.split_test import split_test

    split_test(FIXTURES / fixture, tmp_path / "split", workers=1, progress=False, limit=2)
    torch.manual_seed(0)
    save_atomic({"params": build_edvr("edvr-tiny").state_dict()}, tmp_path / "tiny.pth")
    # frames named 1.png .. 7.png and the LQ under X4/ as BasicSR's REDS regroup writes it
    clips = _basicsr_copy(tmp_path / "split", tmp_path / "train_sharp", tmp_path / "bic" / "X4",
                          rename=lambda i: f"{i + 1}.png")
    (tmp_path / "meta.txt").write_text("".join(f"{c} 7 (1,1,3)\n" for c in clips))
    kw = dict(device="cpu", strips=False, frames=None, protocol="generic")
    ref = evaluate(tmp_path / "split", tmp_path / "tiny.pth", out_dir=tmp_path / "r1", **kw)
    got = evaluate(None, tmp_path / "tiny.pth", out_dir=tmp_path / "r2", gt=tmp_path / "train_sharp",
                   lq=tmp_path / "bic", meta_info=tmp_path / "meta.txt", **kw)
    assert _rows(got) == _rows(ref)  # identical numbers, clip by clip and frame by frame
    assert got.protocol["weights_key"] == "params"
    if fixture == "odd_size":
        rec = json.loads((tmp_path / "split" / "split.json").read_text())["clips"]["clip"]
        assert rec["lr_pad"] != [0, 0]  # split-test padded on disk; the roots were padded in memory


def test_natural_frame_order_and_cli(tmp_path):
    from vsrdata.evaluation.basicsr_testset import testset_clips

    for root in ("GT", "BIx4"):
        for i in (1, 2, 10):
            (tmp_path / root / "calendar").mkdir(parents=True, exist_ok=True)
            size = (16, 16) if root == "GT" else (4, 4)
            cv2.imwrite(str(tmp_path / root / "calendar" / f"im{i}.png"), np.full((*size, 3), i * 20, np.uint8))
    _, _, clips = testset_clips(tmp_path / "GT", tmp_path / "BIx4")
    assert clips == [("calendar", ["im1.png", "im2.png", "im10.png"])]
    res = CliRunner().invoke(main, ["evaluate", "--bicubic", "--gt", str(tmp_path / "GT"), "--lq",
                                    str(tmp_path / "BIx4"), "--out", str(tmp_path / "o"), "-q", "--no-strips"])
    assert res.exit_code == 0, res.output
    assert "calendar" in res.output


def test_evaluate_config_scores_the_test_sets_of_a_test_option_file(tmp_path):
    import yaml

    from vsrdata.edvr.arch import build_edvr
    from vsrdata.edvr.checkpoint import save_atomic
    from vsrdata.pipelines.split_test import split_test

    split_test(FIXTURES / "reds" / "train_sharp", tmp_path / "split", workers=1, progress=False, limit=1)
    clips = _basicsr_copy(tmp_path / "split", tmp_path / "gt", tmp_path / "lq")
    opt = read_config_file(OPTS / "test" / "test_EDVR_M_x4_SR_REDS.yml")
    opt["datasets"]["test"].update(dataroot_gt=str(tmp_path / "gt"), dataroot_lq=str(tmp_path / "lq"),
                                   meta_info_file=None)
    opt["network_g"].update(num_feat=16, deformable_groups=4, num_extract_block=1, num_reconstruct_block=2)
    opt["val"]["metrics"]["psnr"]["test_y_channel"] = True
    torch.manual_seed(0)
    save_atomic({"params_ema": build_edvr("edvr-tiny").state_dict()}, tmp_path / "w.pth")
    opt["path"] = {"pretrain_network_g": str(tmp_path / "w.pth"), "strict_load_g": True}
    (tmp_path / "t.yml").write_text(yaml.safe_dump(opt))
    res = CliRunner().invoke(main, ["evaluate", "--config", str(tmp_path / "t.yml"), "--device", "cpu",
                                    "--out", str(tmp_path / "o"), "-q", "--no-strips"])
    assert res.exit_code == 0, res.output
    assert "[params_ema]" in res.output and clips[0] in res.output
    report = json.loads((tmp_path / "o" / "test" / "report.json").read_text())
    assert report["protocol"]["channel"] == "y"  # val.metrics test_y_channel: true
    res = CliRunner().invoke(main, ["evaluate", "--config", str(OPTS / "train" / "train_EDVR_M_x4_SR_REDS.yml")])
    assert res.exit_code == 1 and "training option file" in res.output


def test_datasets_val_becomes_the_validation_set(tmp_path):
    from vsrdata.evaluation.basicsr_testset import val_clips_from_roots
    from vsrdata.pipelines.split_test import split_test

    split_test(FIXTURES / "reds" / "train_sharp", tmp_path / "split", workers=1, progress=False, limit=2)
    clips = _basicsr_copy(tmp_path / "split", tmp_path / "gt", tmp_path / "lq")
    (tmp_path / "meta.txt").write_text(f"{clips[1]} 7 (180,320,3)\n")
    val = val_clips_from_roots(tmp_path / "gt", tmp_path / "lq", tmp_path / "meta.txt")
    assert [v.name for v in val] == [clips[1]] and len(val[0].lq_paths) == len(val[0].gt_paths) == 7
