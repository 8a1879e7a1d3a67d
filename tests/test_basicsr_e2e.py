"""BasicSR option files end to end (issue 11): every EDVR train option file, edited the way a user
edits theirs (data paths pointed at LMDBs, a tiny network, a 2-iteration schedule), trains through
`vsrdata train --config` with its `datasets.val` set; a test option file then scores that run's
checkpoint through `vsrdata evaluate --config`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from vsrdata.cli import main
from vsrdata.pipelines.make_lr import make_lr
from vsrdata.pipelines.to_lmdb import build_lmdb

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
OPTS = FIXTURES / "basicsr_options"
SHARP = FIXTURES / "reds" / "train_sharp"  # clips 000, 001, 002: 7 frames of 320x180 each
TRAIN_FILES = sorted(p.name for p in (OPTS / "train").glob("*.yml"))
WOTSA = {"train_EDVR_M_x4_SR_REDS.yml": "train_EDVR_M_x4_SR_REDS_woTSA.yml",  # BasicSR's woTSA -> TSA
         "train_EDVR_L_x4_SR_REDS.yml": "train_EDVR_L_x4_SR_REDS_woTSA.yml",
         "train_EDVRM_woTSA_GAN_TODO.yml": "train_EDVR_M_x4_SR_REDS_woTSA.yml"}
#: keys of each file that vsrdata names as ignored (what `basicsr_options` maps; see its tests)
IGNORED = {"train_EDVRM_woTSA_GAN_TODO.yml": "network_d, train.optim_d, train.gan_opt, "
                                             "train.net_d_iters, train.net_d_init_iters"}
TINY = {"num_feat": 8, "num_extract_block": 1, "num_reconstruct_block": 1, "deformable_groups": 2}


def _meta_line(clip: str) -> str:
    """BasicSR meta info line `<clip> <frames> (h,w,c)` with the fixture's real count and size."""
    import cv2

    frames = sorted((SHARP / clip).glob("*.png"))
    h, w, c = cv2.imread(str(frames[0]), cv2.IMREAD_UNCHANGED).shape
    return f"{clip} {len(frames)} ({h},{w},{c})"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """REDS as BasicSR lays it out: GT and LQ LMDBs for training, train_sharp +
    train_sharp_bicubic/X4 + meta info files for validation and testing."""
    root = tmp_path_factory.mktemp("REDS")
    lq = root / "train_sharp_bicubic" / "X4"
    make_lr(SHARP, lq, scale=4, workers=1, progress=False)
    build_lmdb(SHARP, root / "train_sharp_with_val.lmdb", workers=1)
    build_lmdb(lq, root / "train_sharp_bicubic_with_val.lmdb", workers=1)
    meta = root / "meta_info"
    meta.mkdir()
    clips = sorted(p.name for p in SHARP.iterdir() if p.is_dir())
    (meta / "meta_info_REDS_GT.txt").write_text("".join(_meta_line(c) + "\n" for c in clips))
    (meta / "meta_info_REDS4_test_GT.txt").write_text(_meta_line("000") + "\n")
    return {"root": root, "lq": root / "train_sharp_bicubic", "meta": meta, "runs": {}}


def _edit_train(name: str, data: dict, tmp: Path, init: str | None) -> Path:
    """The option file `name` with only what a user edits changed: data paths, network size,
    schedule length and frequencies, patch and batch size (and the init checkpoint path)."""
    opt = yaml.safe_load((OPTS / "train" / name).read_text())
    train, val = opt["datasets"]["train"], opt["datasets"]["val"]
    train.update(dataroot_gt=str(data["root"] / "train_sharp_with_val.lmdb"),
                 dataroot_lq=str(data["root"] / "train_sharp_bicubic_with_val.lmdb"),
                 meta_info_file=str(data["meta"] / "meta_info_REDS_GT.txt"),
                 gt_size=32, batch_size_per_gpu=2, num_worker_per_gpu=0)
    val.update(dataroot_gt=str(SHARP), dataroot_lq=str(data["lq"]),
               meta_info_file=str(data["meta"] / "meta_info_REDS4_test_GT.txt"))
    opt["network_g"].update(TINY)
    sched = opt["train"]["scheduler"]
    if "periods" in sched:
        sched["periods"] = [1] * len(sched["periods"])
    else:
        sched["milestones"] = [1]
    opt["train"]["total_iter"] = 2
    opt["train"].pop("perceptual_opt", None)  # an error (vsrdata adds no VGG loss): the user removes it
    opt["val"]["val_freq"] = 2
    opt["logger"].update(print_freq=1, save_checkpoint_freq=2)
    key = "pretrain_network_g" if "pretrain_network_g" in opt["path"] else "pretrain_model_g"
    opt["path"][key] = init
    path = tmp / name
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def _train(name: str, data: dict, tmp_path_factory) -> dict:
    """Run (once per module) `vsrdata train --config` on the edited file; its CLI result and run dir."""
    if name in data["runs"]:
        return data["runs"][name]
    init = _train(WOTSA[name], data, tmp_path_factory)["checkpoint"] if name in WOTSA else None
    tmp = tmp_path_factory.mktemp(name.split(".")[0])
    path = _edit_train(name, data, tmp, init)
    run_dir = tmp / "run"
    res = CliRunner().invoke(main, ["train", "--config", str(path), "--run-dir", str(run_dir), "--device", "cpu",
                                    "--no-tensorboard"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    ckpts = sorted(run_dir.glob("**/*.pth"))
    data["runs"][name] = {"res": res, "run_dir": run_dir, "checkpoints": ckpts,
                          "checkpoint": str(run_dir / "checkpoints" / "iter_00000002.pth")}
    return data["runs"][name]


@pytest.mark.parametrize("name", TRAIN_FILES)
def test_basicsr_train_option_file_end_to_end(name, data, tmp_path_factory):
    run = _train(name, data, tmp_path_factory)
    out = run["res"].output
    warned = [line for line in out.splitlines() if "ignored:" in line]
    assert warned == ([f"Warning: BasicSR option file: ignored: {IGNORED[name]}"] if name in IGNORED else [])
    assert "batch_size_per_gpu 2 x num_gpu 8 = global batch 16 in BasicSR" in out
    assert out.count("BasicSR option file: no effect here: ") == 1  # dist_params, io_backend, ... named once
    # clips 001 and 002 of meta_info_REDS_GT.txt train (000 is REDS4), 7 keys each
    assert re.search(r"on 14 samples, device cpu, 1 process\(es\), global batch 2\n", out)
    records = [json.loads(line) for line in (run["run_dir"] / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in records if "loss" in r] == [1, 2]
    vals = [r for r in records if "psnr" in r]
    assert [(v["iter"], list(v["per_clip"])) for v in vals] == [(2, ["000"])] and vals[0]["psnr"] > 10
    assert Path(run["checkpoint"]) in run["checkpoints"]
    log = (run["run_dir"] / "train.log").read_text()
    for line in warned + ["batch_size_per_gpu 2 x num_gpu 8 = global batch 16 in BasicSR"]:
        assert line in log  # train.log holds the lines printed, the option file's notes included
    if name in WOTSA:  # path.pretrain_network_g: the woTSA run's checkpoint, strict as the file says
        init = json.loads(re.search(r"iter 0: init (\{.*\})", log).group(1))
        assert init["source"] == _train(WOTSA[name], data, tmp_path_factory)["checkpoint"] and init["loaded"] > 0
        assert (init["missing"] == 0) is (name == "train_EDVRM_woTSA_GAN_TODO.yml")  # TSA layers are new
    assert ("tsa_only" in log) is ("woTSA" not in name)  # tsa_iter 50000: the TSA-only phase


def test_train_meta_info_file_selects_the_training_clips(data, tmp_path):
    """BasicSR's REDSDataset trains on the clips its meta_info_file lists (less the validation
    partition), not on every clip of dataroot_gt."""
    from vsrdata.training.config import load_config
    from vsrdata.training.setup import build_train_dataset
    from vsrdata.errors import InputError

    path = _edit_train("train_EDVR_M_x4_SR_REDS_woTSA.yml", data, tmp_path, None)
    meta = tmp_path / "meta_info_REDS_GT.txt"
    opt = yaml.safe_load(path.read_text())
    opt["datasets"]["train"]["meta_info_file"] = str(meta)
    path.write_text(yaml.safe_dump(opt))
    meta.write_text(_meta_line("000") + "\n" + _meta_line("002") + "\n")
    assert list(build_train_dataset(load_config(path), 5, 4).frames) == ["002"]
    meta.write_text("002 7 (180,320,3)\n003 7 (180,320,3)\n")
    with pytest.raises(InputError, match=r"1 listed clip\(s\) not in .*train_sharp_with_val.lmdb: 003"):
        build_train_dataset(load_config(path), 5, 4)
    opt["datasets"]["train"]["meta_info_file"] = "basicsr/data/meta_info/meta_info_REDS_GT.txt"  # as shipped
    path.write_text(yaml.safe_dump(opt))
    with pytest.raises(InputError, match="not found: basicsr/data/meta_info/meta_info_REDS_GT.txt .*meta_info_file"):
        build_train_dataset(load_config(path), 5, 4)


def _edit_test(name: str, data: dict, tmp: Path, checkpoint: str) -> Path:
    """Test option file `name` pointed at the fixture clips as BasicSR lays out REDS4
    (datasets.test) plus a second set laid out as Vid4 (GT/ + BIx4/, no meta info)."""
    vid4 = tmp / "Vid4"
    for sub, src in (("GT", SHARP), ("BIx4", data["lq"] / "X4")):
        (vid4 / sub).mkdir(parents=True)
        for clip in ("001", "002"):
            (vid4 / sub / clip).symlink_to(src / clip)
    opt = yaml.safe_load((OPTS / "test" / name).read_text())
    opt["datasets"]["test"].update(dataroot_gt=str(SHARP), dataroot_lq=str(data["lq"]),
                                   meta_info_file=str(data["meta"] / "meta_info_REDS4_test_GT.txt"))
    opt["datasets"]["test_2"] = {**opt["datasets"]["test"], "name": "Vid4", "dataroot_gt": str(vid4 / "GT"),
                                 "dataroot_lq": str(vid4 / "BIx4"), "meta_info_file": None}
    opt["network_g"].update(TINY)
    key = "pretrain_network_g" if "pretrain_network_g" in opt["path"] else "pretrain_model_g"
    opt["path"][key] = checkpoint
    path = tmp / name
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


@pytest.mark.parametrize("test_name,train_name", [("test_EDVR_M_x4_SR_REDS.yml", "train_EDVR_M_x4_SR_REDS.yml"),
                                                  ("test_EDVR_L_x4_SR_REDS.yml", "train_EDVR_L_x4_SR_REDS.yml")])
def test_basicsr_test_option_file_scores_every_set(test_name, train_name, data, tmp_path, tmp_path_factory,
                                                   monkeypatch):
    run = _train(train_name, data, tmp_path_factory)
    path = _edit_test(test_name, data, tmp_path, run["checkpoint"])
    monkeypatch.chdir(tmp_path)  # the default report folder is relative
    res = CliRunner().invoke(main, ["evaluate", "--config", str(path), "--device", "cpu", "-q", "--no-strips"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    # each set scored into its own folder (both GT roots' default report folders would differ
    # only by the GT root's name), with the network of the file's network_g (a custom size)
    out = tmp_path / "results" / yaml.safe_load(path.read_text())["name"]
    for key, clips in (("test", ["000"]), ("test_2", ["001", "002"])):
        assert f"{key}: " in res.output
        report = json.loads((out / key / "report.json").read_text())
        assert [c["clip"] for c in report["clips"]] == clips
        assert report["protocol"]["model_config"]["num_feat"] == TINY["num_feat"]
        assert report["protocol"]["channel"] == "rgb" and report["protocol"]["padding"] == "reflection_circle"
