"""Training from GT alone with on-the-fly degradation (`train --degradation`, issue 18 section 3):
exact resume, the same run twice / 0 vs 2 loader workers identical, the LQ patch exactly
gt_size / scale for every recipe and, for the BI recipe, equal to MATLAB-exact bicubic of the GT
crop (core.resize is checked against MATLAB vectors), a fixed validation LQ set, option-file keys,
one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from test_train_data import REDS_GT
from vsrdata.cli import main
from vsrdata.core.resize import imresize
from vsrdata.errors import ConfigError, InputError
from vsrdata.training.config import TrainConfig
from vsrdata.training.data import FrameStore
from vsrdata.training.loop import train
from vsrdata.training.onthefly import DegradedClipDataset, resolve_recipe
from vsrdata.training.sampler import SampleKey, TrainSampler


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def val(tmp_path_factory):
    """A GT-only validation set: GT/ with 2 clips of 3 frames, sizes multiples of 4."""
    root = tmp_path_factory.mktemp("otf_val")
    for clip, (h, w) in (("000", (48, 64)), ("002", (44, 60))):
        (root / "GT" / clip).mkdir(parents=True)
        for k in range(3):
            img = cv2.imread(str(REDS_GT / clip / f"{k:08d}.png"))[40:40 + h, 100:100 + w]
            cv2.imwrite(str(root / "GT" / clip / f"{k:08d}.png"), img)
    return root


def cfg_for(run_dir, **kw) -> TrainConfig:
    base = dict(run_dir=str(run_dir), preset="edvr-tiny", dataset="clips", gt_path=str(REDS_GT),
                degradation="realbasicvsr", gt_size=32, batch_size=2, num_workers=0, total_iter=4, periods=[1000],
                lr=1e-3, ema_decay=0.0, save_freq=2, print_freq=1, val_freq=1000, seed=5, random_reverse=True)
    base.update(kw)
    return TrainConfig(**base)


def weights(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    for name, tensor in wa["params"].items():
        assert torch.equal(tensor, wb["params"][name]), name
    sa, sb = wa["optimizer"]["state"], wb["optimizer"]["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)


def test_resume_twice_and_worker_count_are_bit_exact(tmp_path):
    """4 iterations straight (0 workers) == 2 + resume to 4 (the second half with 2 workers) ==
    the same 4 iterations run again with 2 workers: state dicts torch.equal."""
    ckpt = Path("checkpoints") / "iter_00000004.pth"
    train(cfg_for(tmp_path / "straight"))
    train(cfg_for(tmp_path / "split", total_iter=2))
    train(cfg_for(tmp_path / "split", resume="auto", num_workers=2))
    train(cfg_for(tmp_path / "again", num_workers=2))
    assert_same(tmp_path / "straight" / ckpt, tmp_path / "split" / ckpt)
    assert_same(tmp_path / "straight" / ckpt, tmp_path / "again" / ckpt)
    ck = weights(tmp_path / "split" / ckpt)
    assert ck["train_config"]["degradation"] == "realbasicvsr" and ck["train_config"]["lq_path"] == ""
    record = json.loads((tmp_path / "split" / "degradation.json").read_text())
    assert record["recipe"]["name"] == "realbasicvsr" and record["seed"] == 5 and record["recipe"]["scale"] == 4
    # another degradation seed changes the samples, hence the weights
    train(cfg_for(tmp_path / "other", total_iter=2, degradation_seed=6))
    a, b = weights(tmp_path / "other" / "checkpoints" / "iter_00000002.pth"), \
        weights(tmp_path / "split" / "checkpoints" / "iter_00000002.pth")
    assert not torch.equal(a["params"]["conv_first.weight"], b["params"]["conv_first.weight"])
    with pytest.raises(ConfigError, match="another recipe"):
        train(cfg_for(tmp_path / "split", total_iter=6, resume="auto", degradation="realesrgan"))
    with pytest.raises(ConfigError, match="another --degradation-seed"):
        train(cfg_for(tmp_path / "split", total_iter=6, resume="auto", degradation_seed=9))


def test_sampler_tags_name_iteration_and_slot_of_the_global_batch():
    one = iter(TrainSampler(10, 4, seed=3, start_iter=2))
    assert [next(one).tag for _ in range(5)] == ["3/0", "3/1", "3/2", "3/3", "4/0"]
    ranks = [iter(TrainSampler(10, 2, seed=3, rank=r, world_size=2, start_iter=2)) for r in range(2)]
    assert [k.tag for r in ranks for k in (next(r), next(r))] == ["3/0", "3/1", "3/2", "3/3"]
    assert next(iter(TrainSampler(10, 4, seed=3, salt=2))).tag == "1/0/2"


@pytest.mark.parametrize("recipe", ["bi", "bd", "bd-duf", "realesrgan", "realbasicvsr"])
def test_lq_patch_is_exactly_gt_size_over_scale(recipe):
    ds = DegradedClipDataset(FrameStore(REDS_GT), resolve_recipe(recipe, 4), 0, num_frame=3, gt_size=36, scale=4)
    for j in range(3):
        s = ds[SampleKey(j * 5, 100 + j, f"1/{j}")]
        assert tuple(s["lq"].shape) == (3, 3, 9, 9) and tuple(s["gt"].shape) == (3, 36, 36)


def test_bi_recipe_lq_is_matlab_bicubic_of_the_gt_crop():
    """recipe bi: each LQ frame == imresize(GT crop frame, 1/4) (MATLAB-exact), the GT is the
    window's centre, and the crop/flip draws are those of the paired dataset (same rng use)."""
    ds = DegradedClipDataset(FrameStore(REDS_GT), resolve_recipe("bi", 4), 0, num_frame=3, gt_size=32, scale=4,
                             use_hflip=False, use_rot=False)
    s = ds[SampleKey(8, 77, "1/0")]
    clip, centre = ds.keys[8]
    rng = np.random.default_rng(77)
    rng.integers(0, 1)  # the interval draw (interval_list [1])
    frames = [cv2.imread(str(REDS_GT / clip / f"{c:08d}.png")) for c in (centre - 1, centre, centre + 1)]
    top, left = int(rng.integers(0, 180 - 32 + 1)), int(rng.integers(0, 320 - 32 + 1))
    crops = [f[top:top + 32, left:left + 32] for f in frames]
    for t, crop in enumerate(crops):
        want = imresize(crop, 0.25)[:, :, ::-1].astype(np.float32) / 255
        assert np.array_equal(s["lq"][t].permute(1, 2, 0).numpy(), want), t
    assert np.array_equal(s["gt"].permute(1, 2, 0).numpy(), crops[1][:, :, ::-1].astype(np.float32) / 255)


def test_degraded_lq_depends_only_on_seed_and_tag():
    ds = DegradedClipDataset(FrameStore(REDS_GT), resolve_recipe("realbasicvsr", 4), 3, num_frame=3, gt_size=32,
                             scale=4, use_hflip=False, use_rot=False)
    a, b = ds[SampleKey(4, 9, "7/1")], ds[SampleKey(4, 9, "7/1")]
    c = ds[SampleKey(4, 9, "7/2")]  # same crop, other draws
    assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], c["gt"])
    assert not torch.equal(a["lq"], c["lq"])


def test_validation_lq_is_fixed_across_runs_and_named_in_the_start_line(tmp_path, val):
    starts = []
    for run, seed in (("a", 5), ("b", 6)):
        train(cfg_for(tmp_path / run, total_iter=1, seed=seed, val_path=str(val), val_freq=1, val_max_frames=1),
              on_event=lambda e: starts.append(e) if e["kind"] == "start" else None)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a" / "val_lq").rglob("*.png"))
    assert len(files) == 6
    for rel in files:  # training seeds differ, the validation LQ does not
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    manifest = json.loads((tmp_path / "a" / "val_lq" / ".vsrdata-degrade.json").read_text())
    assert manifest["seed"] == 0 and manifest["recipe"]["name"] == "realbasicvsr" and len(manifest["clips"]) == 2
    from vsrdata.training.logs import format_event

    line = format_event(starts[0])
    assert "on the fly" in line and "validation on a fixed LQ set" in line and "seed 0" in line


def test_bad_degradation_options_fail_in_one_line(tmp_path, val):
    run = tmp_path / "run"
    cases = [
        (dict(lq_path=str(REDS_GT)), ConfigError, "give --lq or --degradation, not both"),
        (dict(degradation="nope"), ConfigError, "neither a built-in recipe"),
        (dict(degradation={"jpeg_range": [0, 50]}), ConfigError, "jpeg_range"),
        (dict(degradation={"base": "realesrgan", "scale": 2}), ConfigError, "degradation sets scale 2 but x4 is asked for"),
        (dict(val_gt=str(REDS_GT.parent.parent / "odd_size")), InputError, "not a multiple of the scale 4"),
    ]
    for kw, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            train(cfg_for(run, **kw))
    res = CliRunner().invoke(main, ["train", "--preset", "edvr-tiny", "--dataset", "clips", "--gt", str(REDS_GT),
                                    "--degradation", "nope", "--run-dir", str(run), "-q"])
    assert res.exit_code == 1 and res.output.strip().splitlines()[-1].startswith("Error: recipe:")
    assert "Traceback" not in res.output


def test_basicsr_option_file_keys(tmp_path):
    from vsrdata.training.config import load_config

    opt = tmp_path / "train.yml"
    opt.write_text(f"name: otf\nmodel_type: EDVRModel\nscale: 4\nnetwork_g: {{type: EDVR}}\n"
                   f"datasets:\n  train:\n    type: REDSDataset\n    dataroot_gt: {REDS_GT}\n"
                   f"    degradation: {{base: realbasicvsr, jpeg_range: [40, 90]}}\n    degradation_seed: 7\n"
                   f"  val:\n    type: VideoTestDataset\n    dataroot_gt: val/GT\n")
    notes = []
    cfg = load_config(opt, on_note=notes.append)
    assert cfg.degradation == {"base": "realbasicvsr", "jpeg_range": [40, 90]} and cfg.degradation_seed == 7
    assert cfg.lq_path == "" and cfg.val_gt == "val/GT" and cfg.val_lq is None
    assert not any("ignored" in n for n in notes), notes
    cfg.validate()
    assert resolve_recipe(cfg.degradation, 4)["options"]["jpeg_range"] == [40, 90]


def test_vimeo_window_is_degraded_from_the_septuplet():
    """Vimeo90K: the LQ frames are im2..im6 (num_frame 5) of the GT septuplet, each MATLAB-bicubic
    of the same crop (recipe bi), and the GT is im4's crop."""
    from test_train_data import VIMEO_GT
    from vsrdata.training.onthefly import DegradedVimeoDataset

    store = FrameStore(VIMEO_GT)
    ds = DegradedVimeoDataset(store, resolve_recipe("bi", 4), 0, num_frame=5, gt_size=32, scale=4,
                              use_hflip=False, use_rot=False)
    s = ds[SampleKey(0, 11, "1/0")]
    clip = ds.keys[0]
    rng = np.random.default_rng(11)
    frames = [store.get(clip, f"im{k}") for k in range(2, 7)]
    h, w = frames[0].shape[:2]
    top, left = int(rng.integers(0, h - 32 + 1)), int(rng.integers(0, w - 32 + 1))
    crops = [f[top:top + 32, left:left + 32] for f in frames]
    for t, crop in enumerate(crops):
        assert np.array_equal(s["lq"][t].permute(1, 2, 0).numpy(), imresize(crop, 0.25)[:, :, ::-1] / np.float32(255))
    assert np.array_equal(s["gt"].permute(1, 2, 0).numpy(), crops[2][:, :, ::-1] / np.float32(255))


@pytest.mark.parametrize("seed", [0, 3])
def test_onthefly_pair_equals_degrade_tree_output(tmp_path, seed):
    """The on-the-fly LQ window of a whole clip (crop = the frame, no flips) is, frame for frame and
    bit for bit, what `vsrdata degrade` writes for that clip with the same seed and identity, read
    back as evaluation reads an LQ set (PNG -> RGB tensor); the GT is the window's centre frame.
    So training pairs and an offline-degraded test set share frame order, colour order and rounding."""
    from vsrdata.core.image_io import read_image
    from vsrdata.evaluation.inference import frame_to_tensor
    from vsrdata.pipelines.degrade import degrade_tree

    clip = tmp_path / "gt" / "c7"
    clip.mkdir(parents=True)
    for k in range(5):
        cv2.imwrite(str(clip / f"{k:08d}.png"), cv2.imread(str(REDS_GT / "000" / f"{k:08d}.png"))[60:124, 100:164])
    degrade_tree(tmp_path / "gt", tmp_path / "lq", recipe="realbasicvsr", seed=seed, workers=1, progress=False)
    ds = DegradedClipDataset(FrameStore(tmp_path / "gt"), resolve_recipe("realbasicvsr", 4), seed, num_frame=5,
                             gt_size=64, scale=4, use_hflip=False, use_rot=False)
    s = ds[SampleKey(2, 1, "c7")]  # the tag is the draws' identity: the clip's name, as degrade_tree's
    lq = torch.stack([frame_to_tensor(read_image(tmp_path / "lq" / "c7" / f"{k:08d}.png")) for k in range(5)])
    assert tuple(lq.shape) == (5, 3, 16, 16) and torch.equal(s["lq"], lq)
    assert torch.equal(s["gt"], frame_to_tensor(read_image(clip / "00000002.png")))


def _build_data_rank(rank: int, world: int, store: str, cfg: TrainConfig, out: str) -> None:
    """One DDP rank (gloo, file store) building the on-the-fly data; writes what it raised to out.rank."""
    import datetime

    import torch.distributed as dist

    from vsrdata.training import setup

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=30))
    try:
        cfg, mcfg = setup.resolve_config(cfg)
        setup.build_data(cfg, mcfg, Path(cfg.run_dir), rank, world, resumed=False)
        message = "no error"
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
    Path(f"{out}.{rank}").write_text(message)
    dist.destroy_process_group()


def test_rank0_failing_to_build_the_val_set_stops_every_rank(tmp_path):
    """Rank 0 alone degrades the validation GT; when that fails (a grey clip that a real-world
    recipe refuses) the other rank raises the same error instead of waiting at a barrier (without
    the broadcast it would sit there until gloo's 30 s timeout and report that instead)."""
    import torch.multiprocessing as mp

    grey = tmp_path / "val" / "GT" / "000"
    grey.mkdir(parents=True)
    for k in range(3):
        cv2.imwrite(str(grey / f"{k:08d}.png"), np.full((32, 32), 9, np.uint8))
    cfg = cfg_for(tmp_path / "run", val_gt=str(tmp_path / "val" / "GT"))
    out = str(tmp_path / "said")
    mp.spawn(_build_data_rank, args=(2, str(tmp_path / "store"), cfg, out), nprocs=2, join=True)
    said = [Path(f"{out}.{r}").read_text() for r in (0, 1)]
    refusal = "real-world recipes need 8-bit colour frames"
    assert said[0].startswith("InputError: ") and refusal in said[0], said
    assert said[1] == f"InputError: rank 0 failed, so this rank stops too: {said[0]}", said
