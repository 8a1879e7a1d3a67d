"""Training recipe pieces: config loading, Charbonnier, cosine restarts, parameter groups, EMA,
training datasets (REDS / Vimeo90K / clips over folders and LMDBs), crops and the sampler.

References used: the formulas and numbers of EDVR_SPEC §3-§5 (BasicSR / EDVR conventions), the
name rule BasicSR uses for `dcn_lr_mul` ("dcn" in the parameter name) and for the TSA-only phase
("fusion" in the name), and exact 4x4 box averages for GT/LQ alignment.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vsrdata.core.layouts import find_clips
from vsrdata.core.resize import imresize
from vsrdata.training.data import ClipDataset, FrameStore, VimeoDataset, augment
from vsrdata.training.sampler import TrainSampler
from vsrdata.training.validate import load_val_clips
from vsrdata.training.ema import ModelEMA
from vsrdata.training.losses import CharbonnierLoss
from vsrdata.training.optim import build_optimizer, split_parameters
from vsrdata.training.schedule import CosineAnnealingRestartLR
from vsrdata.training.config import TrainConfig, from_dict, load_config
from vsrdata.errors import ConfigError, InputError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REDS_GT = FIXTURES / "reds" / "train_sharp"
VIMEO_GT = FIXTURES / "vimeo_septuplet"


# ---------------------------------------------------------------------------------------------
# helpers shared with test_train_loop.py


def fixed_clip(root: Path) -> tuple[Path, Path]:
    """(GT root, LQ root), each holding clip `a`: five 32x32 crops of REDS clip 001 and their
    MATLAB-bicubic x4 LR. With no flips every training sample of it is the same (a fixed batch)."""
    gt, lq = root / "gt" / "a", root / "lq" / "a"
    gt.mkdir(parents=True)
    lq.mkdir(parents=True)
    for k in range(5):
        img = cv2.imread(str(REDS_GT / "001" / f"{k:08d}.png"))[60:92, 140:172]
        cv2.imwrite(str(gt / f"{k:08d}.png"), img)
        cv2.imwrite(str(lq / f"{k:08d}.png"), imresize(img, 0.25))
    return gt.parent, lq.parent


def make_lq_tree(gt_root: Path, out: Path) -> Path:
    """BI x4 LR (core.degrade: mod-crop + MATLAB-exact imresize) of every clip under gt_root."""
    from vsrdata.core.degrade import degrade

    for clip in find_clips(gt_root):
        rel = clip.path.relative_to(gt_root)
        for f in clip.frames:
            img = cv2.imread(str(clip.path / f), cv2.IMREAD_UNCHANGED)
            (out / rel).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out / rel / f), degrade(img, 4, "bi"))
    return out


def make_box_clips(root: Path, n_clips: int = 2, n_frames: int = 7, lq_hw=(12, 16), seed: int = 0) -> tuple[Path, Path]:
    """Synthetic clips whose LQ is the exact 4x4 box average of the GT (GT values are multiples of
    16 inside each 4x4 block so the average is an integer), and frame k of a clip is brighter than
    frame k-1 by 8 grey levels (to check temporal order)."""
    rng = np.random.default_rng(seed)
    gt_root, lq_root = root / "gt", root / "lq"
    h, w = lq_hw
    for c in range(n_clips):
        base = rng.integers(0, 8, size=(h * 4, w * 4, 3)) * 16
        for k in range(n_frames):
            gt = (base + 8 * k).astype(np.uint8)
            lq = gt.reshape(h, 4, w, 4, 3).astype(np.float64).mean(axis=(1, 3))
            assert np.all(lq == np.round(lq))
            for r, img in ((gt_root, gt), (lq_root, lq.astype(np.uint8))):
                (r / f"c{c}").mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(r / f"c{c}" / f"{k:08d}.png"), img)
    return gt_root, lq_root


@pytest.fixture(scope="module")
def reds_lq(tmp_path_factory):
    return make_lq_tree(REDS_GT, tmp_path_factory.mktemp("reds_lq"))


# ---------------------------------------------------------------------------------------------
# config


def test_config_defaults_are_the_official_recipe():
    cfg = TrainConfig()
    assert (cfg.preset, cfg.gt_size, cfg.batch_size, cfg.lr, cfg.betas) == ("edvr-m", 256, 4, 4e-4, [0.9, 0.99])
    assert (cfg.loss_reduction, cfg.loss_eps, cfg.eta_min, cfg.total_iter) == ("sum", 1e-12, 1e-7, 600_000)
    assert (cfg.use_hflip, cfg.use_rot, cfg.random_reverse, cfg.interval_list) == (True, True, False, [1])
    assert cfg.offset_threshold == 100 and cfg.val_partition == "REDS4"
    tsa = cfg.resolved(with_tsa=True)
    assert tsa.periods == [50_000, 100_000, 150_000, 150_000, 150_000] and tsa.restart_weights == [1.0] * 5
    assert tsa.tsa_iter == 0  # from scratch: no TSA-only phase
    assert cfg.resolved(with_tsa=False).periods == [150_000] * 4
    assert TrainConfig(init="x.pth").resolved(with_tsa=True).tsa_iter == 50_000
    short = TrainConfig(total_iter=600).resolved(with_tsa=True)
    assert sum(short.periods) == 600 and short.periods[0] == 50


def test_config_toml_and_errors(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('[train]\npreset = "edvr-tiny"\ngt-size = 32\nperiods = [10, 20]\nlr = 1e-3\n'
                    'model = { num_reconstruct_block = 4 }\n')
    cfg = load_config(toml)
    assert (cfg.preset, cfg.gt_size, cfg.periods, cfg.lr, cfg.model) == ("edvr-tiny", 32, [10, 20], 1e-3,
                                                                          {"num_reconstruct_block": 4})
    bad = tmp_path / "bad.toml"
    bad.write_text("gt_sise = 3\n")
    with pytest.raises(ConfigError, match="unknown option 'gt_sise'"):
        load_config(bad)
    yml = tmp_path / "c.yml"
    yml.write_text("preset: edvr-tiny\n")
    try:
        import yaml  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="PyYAML"):
            load_config(yml)
    else:
        assert load_config(yml).preset == "edvr-tiny"
    with pytest.raises(ConfigError, match="--loss-reduction"):
        from_dict({"loss_reduction": "avg", "gt_path": "a", "lq_path": "b"}).validate()
    with pytest.raises(ConfigError, match="--restart-weights"):
        from_dict({"periods": [5, 5], "restart_weights": [1], "gt_path": "a", "lq_path": "b"}).validate()


# ---------------------------------------------------------------------------------------------
# loss, schedule, groups, EMA


def test_charbonnier_matches_its_formula():
    x, y = torch.tensor([[0.0, 0.5], [1.0, 0.25]]), torch.tensor([[0.5, 0.5], [0.0, 1.0]])
    d = np.array([0.5, 0.0, 1.0, 0.75])
    assert CharbonnierLoss()(x, y).item() == pytest.approx(np.sqrt(d ** 2 + 1e-12).sum(), rel=1e-6)
    assert CharbonnierLoss(eps=1e-6, reduction="mean")(x, y).item() == pytest.approx(np.sqrt(d ** 2 + 1e-6).mean(),
                                                                                     rel=1e-6)
    assert CharbonnierLoss(eps=1e-6)(x, x).item() == pytest.approx(4e-3, rel=1e-6)  # sqrt(eps) per element
    with pytest.raises(ConfigError):
        CharbonnierLoss(reduction="avg")


def _lrs(periods, weights, steps, warmup=0, base=4e-4, eta_min=1e-7):
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=base)
    sched = CosineAnnealingRestartLR(opt, periods, weights, eta_min, warmup)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_cosine_restart_schedule_follows_the_spec_formula():
    base, eta = 4e-4, 1e-7
    lrs = _lrs([10, 20], [1, 0.5], 30)
    for t in range(1, 31):  # iteration t (1-based) runs after s = t - 1 steps (BasicSR's count);
        s = t - 1  # cycle i is the first with s <= cumsum(periods)[i]
        start, period, w = (0, 10, 1.0) if s <= 10 else (10, 20, 0.5)
        want = eta + w * 0.5 * (base - eta) * (1 + math.cos(math.pi * (s - start) / period))
        assert lrs[t - 1] == pytest.approx(want, rel=1e-12), t
    assert lrs[0] == base  # the first iteration runs at the peak
    assert lrs[10] == pytest.approx(eta)  # the end of a cycle is eta_min
    assert lrs[11] > 0.49 * base  # restart at weight 0.5
    warm = _lrs([100], [1], 6, warmup=4)
    assert warm[:3] == pytest.approx([base / 4, base / 2, 3 * base / 4])  # BasicSR: base * t / warmup_iter


def test_parameter_groups_are_explicit_and_match_basicsr_name_rules():
    from vsrdata.edvr.arch import build_edvr

    model = build_edvr("edvr-tiny")
    groups = split_parameters(model)
    names = {g: {n for n, _ in ps} for g, ps in groups.items()}
    every = {n for n, _ in model.named_parameters()}
    assert names["dcn"] == {n for n in every if "dcn" in n}  # BasicSR dcn_lr_mul rule
    assert names["fusion"] == {n for n in every if n.startswith("fusion.")}
    assert names["other"] == every - names["dcn"] - names["fusion"]
    assert any("offset_conv" in n for n in names["other"])  # offset convs are not DCN params
    opt, index = build_optimizer(model, 4e-4, dcn_lr_mul=0.25)
    assert opt.param_groups[index["dcn"]]["lr"] == pytest.approx(1e-4)
    assert opt.param_groups[index["other"]]["lr"] == pytest.approx(4e-4)
    assert opt.defaults["betas"] == (0.9, 0.99)


def test_ema_update():
    model = torch.nn.Linear(2, 1)
    ema = ModelEMA(model, 0.9)
    w0 = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    assert torch.allclose(ema.state_dict()["weight"], w0 + 0.1)


# ---------------------------------------------------------------------------------------------
# datasets


def test_crops_are_aligned_and_frames_in_order(tmp_path):
    gt_root, lq_root = make_box_clips(tmp_path)
    for reverse in (False, True):
        ds = ClipDataset(FrameStore(gt_root), FrameStore(lq_root), num_frame=5, gt_size=32, interval_list=[1, 2],
                         random_reverse=reverse)
        assert len(ds) == 14
        steps = set()
        for i in range(40):
            s = ds[(i % len(ds), 1000 + i)]
            lq, gt = s["lq"], s["gt"]
            assert lq.shape == (5, 3, 8, 8) and gt.shape == (3, 32, 32)
            box = torch.nn.functional.avg_pool2d(gt[None], 4)[0]
            assert torch.allclose(box, lq[2], atol=1e-5)  # GT is the centre frame, same crop/flip
            means = lq.mean(dim=(1, 2, 3)) * 255
            d = (means[1:] - means[:-1]).round()
            assert len(set(d.tolist())) == 1 and abs(d[0]) in (8, 16)  # consecutive, interval 1 or 2
            steps.add(float(d[0]))
        assert (min(steps) < 0) == reverse
    s1, s2 = ds[(3, 77)], ds[(3, 77)]
    assert torch.equal(s1["lq"], s2["lq"]) and torch.equal(s1["gt"], s2["gt"])


def test_augment_is_hflip_vflip_transpose():
    img = np.arange(12).reshape(3, 4, 1)
    seen = set()
    for seed in range(40):
        out = augment([img], np.random.default_rng(seed))[0]
        seen.add(out.tobytes())
        assert sorted(out.ravel()) == list(range(12))
    assert len(seen) == 8  # the dihedral group of the rectangle/square via flips and transpose


def test_reds_dataset_excludes_val_clips_and_reads_lmdb_like_folders(tmp_path, reds_lq):
    gt, lq = FrameStore(REDS_GT), FrameStore(reds_lq)
    ds = ClipDataset(gt, lq, num_frame=5, gt_size=64, exclude_clips=("000", "011", "015", "020"))
    assert {c for c, _ in ds.keys} == {"001", "002"} and len(ds) == 14
    from vsrdata.pipelines.to_lmdb import build_lmdb

    build_lmdb(REDS_GT, tmp_path / "gt.lmdb", key_style="mmagic", workers=1)
    build_lmdb(reds_lq, tmp_path / "lq.lmdb", key_style="basicsr", workers=1)
    ds_db = ClipDataset(FrameStore(tmp_path / "gt.lmdb"), FrameStore(tmp_path / "lq.lmdb"), num_frame=5,
                        gt_size=64, exclude_clips=("000",))
    assert ds_db.keys == ds.keys
    for item in [(0, 5), (7, 9), (13, 11)]:
        a, b = ds[item], ds_db[item]
        assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"])


def test_vimeo_frame_index_rule(tmp_path):
    lq = make_lq_tree(VIMEO_GT / "sequences", tmp_path / "lq" / "sequences")
    for n, want in ((7, [1, 2, 3, 4, 5, 6, 7]), (5, [2, 3, 4, 5, 6]), (3, [3, 4, 5]), (1, [4])):
        ds = VimeoDataset(FrameStore(VIMEO_GT), FrameStore(lq.parent), num_frame=n, gt_size=64,
                          clip_ids=["00001/0001", "00001/0002"])
        assert ds.gt_frame["00001_0001"] == "im4"
        assert ds.lq_frames["00001_0002"] == [f"im{i}" for i in want]
        s = ds[(1, 3)]
        assert s["lq"].shape == (n, 3, 16, 16) and s["gt"].shape == (3, 64, 64)
    with pytest.raises(InputError, match="0009"):
        VimeoDataset(FrameStore(VIMEO_GT), FrameStore(lq.parent), num_frame=7, gt_size=64, clip_ids=["00001/0009"])


def test_dataset_input_errors(tmp_path, reds_lq):
    gt, lq = FrameStore(REDS_GT), FrameStore(reds_lq)
    with pytest.raises(InputError, match="larger than the frames"):
        ClipDataset(gt, lq, gt_size=256)
    with pytest.raises(InputError, match="not divisible"):
        ClipDataset(gt, lq, gt_size=30)
    with pytest.raises(InputError, match="fewer than"):
        ClipDataset(gt, lq, num_frame=9, gt_size=32)
    with pytest.raises(InputError, match="not found"):
        FrameStore(tmp_path / "missing.lmdb")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no frames"):
        FrameStore(tmp_path / "empty")
    wrong = tmp_path / "wrong"
    shutil.copytree(reds_lq, wrong)
    for p in (wrong / "000").iterdir():
        cv2.imwrite(str(p), cv2.imread(str(p))[:40])
    with pytest.raises(InputError, match="not 4x"):
        ClipDataset(gt, FrameStore(wrong), gt_size=32)


def test_sampler_ranks_partition_the_single_process_batches():
    single = TrainSampler(10, 4, seed=3)
    it = iter(single)
    batches = [[next(it) for _ in range(4)] for _ in range(6)]  # crosses epoch boundaries
    ranks = [iter(TrainSampler(10, 2, seed=3, rank=r, world_size=2)) for r in range(2)]
    for b in batches:
        assert [next(ranks[0]) for _ in range(2)] + [next(ranks[1]) for _ in range(2)] == b
    resumed = iter(TrainSampler(10, 4, seed=3, start_iter=4))
    assert [next(resumed) for _ in range(4)] == batches[4]
    first_epoch = [i for b in batches for i, *_ in b][:10]
    assert sorted(first_epoch) == list(range(10))  # each epoch is a permutation
    assert iter(TrainSampler(10, 4, seed=3, salt=1)).__next__() != batches[0][0]


def test_val_loader_reads_split_record(tmp_path):
    import json

    for d in ("GT/a", "BIx4/a"):
        (tmp_path / d).mkdir(parents=True)
    for k in range(3):
        cv2.imwrite(str(tmp_path / "GT/a" / f"{k:08d}.png"), np.zeros((32, 48, 3), np.uint8))
        cv2.imwrite(str(tmp_path / "BIx4/a" / f"{k:08d}.png"), np.zeros((8, 12, 3), np.uint8))
    clips = load_val_clips(tmp_path)  # no split.json: GT/ and BIx4/ read in place, nothing padded
    assert clips[0].name == "a" and len(clips[0].lq_paths) == 3
    assert clips[0].rec["gt_size"] == [32, 48] and clips[0].rec["gt_pad"] == [0, 0]
    frames = {f"{k:08d}.png": f"{k:08d}.png" for k in range(3)}
    (tmp_path / "split.json").write_text(json.dumps({  # read by core.splits.load_split
        "format": "vsrdata-split-test/1", "scale": 4, "gt_dir": "GT", "lr_dir": "BIx4",
        "clips": {"a": {"gt_size": [30, 45, 3], "gt_pad": [2, 3], "lr_size": [8, 12, 3], "lr_pad": [0, 0],
                        "frames": frames}}}))
    assert load_val_clips(tmp_path)[0].rec["gt_size"] == [30, 45, 3]  # the region scored
    (tmp_path / "split.json").write_text("{}")
    with pytest.raises(InputError, match="split.json"):
        load_val_clips(tmp_path)
    (tmp_path / "split.json").unlink()
    with pytest.raises(InputError, match="GT/ and BIx4/"):
        load_val_clips(tmp_path / "GT")


def test_basicsr_options_are_mapped(tmp_path):
    # the schema of BasicSR options/train/EDVR/train_EDVR_M_x4_SR_REDS.yml (run 102, EDVR_SPEC §3),
    # written as TOML because PyYAML is optional
    (tmp_path / "edvr_m.toml").write_text("""
name = "102_EDVR_M_x4_SR_REDS_600k_B4G8_valREDS4_101pretrain_wandb"
manual_seed = 10
[datasets.train]
type = "REDSDataset"
dataroot_gt = "datasets/REDS/train_sharp_with_val.lmdb"
dataroot_lq = "datasets/REDS/train_sharp_bicubic_with_val.lmdb"
val_partition = "REDS4"
num_frame = 5
gt_size = 256
interval_list = [1]
random_reverse = false
use_hflip = true
use_rot = true
num_worker_per_gpu = 3
batch_size_per_gpu = 4
[network_g]
type = "EDVR"
num_in_ch = 3
num_out_ch = 3
num_feat = 64
num_frame = 5
deformable_groups = 8
num_extract_block = 5
num_reconstruct_block = 10
with_tsa = true
[path]
pretrain_network_g = "experiments/101/models/net_g_600000.pth"
strict_load_g = false
[train]
ema_decay = 0.999
total_iter = 600000
warmup_iter = -1
tsa_iter = 50000
dcn_lr_mul = 1
[train.optim_g]
type = "Adam"
lr = 4e-4
weight_decay = 0
betas = [0.9, 0.99]
[train.scheduler]
type = "CosineAnnealingRestartLR"
periods = [50000, 100000, 150000, 150000, 150000]
restart_weights = [1, 1, 1, 1, 1]
eta_min = 1e-7
[train.pixel_opt]
type = "CharbonnierLoss"
loss_weight = 1.0
reduction = "sum"
[val]
val_freq = 5e3
[logger]
print_freq = 100
save_checkpoint_freq = 5e3
""")
    cfg = load_config(tmp_path / "edvr_m.toml")
    assert cfg.preset == "edvr-m" and cfg.dataset == "reds" and cfg.val_partition == "REDS4"
    assert (cfg.gt_path, cfg.lq_path) == ("datasets/REDS/train_sharp_with_val.lmdb",
                                          "datasets/REDS/train_sharp_bicubic_with_val.lmdb")
    assert (cfg.batch_size, cfg.num_workers, cfg.gt_size, cfg.seed) == (4, 3, 256, 10)
    assert (cfg.tsa_iter, cfg.warmup_iter, cfg.total_iter) == (50000, 0, 600000)
    assert (cfg.val_freq, cfg.save_freq) == (5000, 5000)
    assert cfg.init == "experiments/101/models/net_g_600000.pth" and cfg.loss_reduction == "sum"
    assert cfg.periods == [50000, 100000, 150000, 150000, 150000] and cfg.eta_min == 1e-7
    assert cfg.run_dir.endswith("102_EDVR_M_x4_SR_REDS_600k_B4G8_valREDS4_101pretrain_wandb")
    defaults = TrainConfig(gt_path=cfg.gt_path, lq_path=cfg.lq_path, init=cfg.init, run_dir=cfg.run_dir,
                           model=cfg.model, tsa_iter=50000, periods=cfg.periods, restart_weights=cfg.restart_weights,
                           ema_decay=0.999)  # the file sets it; our default is 0 (no EMA)
    assert cfg.to_dict() == {**defaults.to_dict(), "num_frame": 5}  # our defaults are this recipe
