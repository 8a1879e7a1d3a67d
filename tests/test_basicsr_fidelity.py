"""BasicSR's meaning for the option-file keys of issue 20 (part A), each against what BasicSR 1.4.2
does (`basicsr/models/sr_model.py`, `edvr_model.py`, `video_base_model.py`, `base_model.py`,
`data/video_test_dataset.py`; docs/CONVENTIONS.md#basicsr-option-files)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from test_basicsr_interop import _basicsr_copy
from test_train_data import fixed_clip
from vsrdata.cli import main
from vsrdata.edvr.arch import build_edvr
from vsrdata.edvr.checkpoint import save_atomic
from vsrdata.edvr.config import get_preset
from vsrdata.errors import CheckpointError, ConfigError
from vsrdata.training.config import load_config, read_config_file

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
OPTS = FIXTURES / "basicsr_options"
SHARP = FIXTURES / "reds" / "train_sharp"
TINY = {"num_feat": 16, "deformable_groups": 4, "num_extract_block": 1, "num_reconstruct_block": 2}  # edvr-tiny


def _edit(src: Path, dst: Path, change) -> Path:
    opt = read_config_file(src)
    change(opt)
    dst.write_text(yaml.safe_dump(opt, sort_keys=False))
    return dst


def _two_entries(path: Path, **cfg) -> tuple[dict, dict]:
    """A BasicSR training output with different `params` and `params_ema` (seeded, tiny)."""
    torch.manual_seed(0)
    a = build_edvr(get_preset("edvr-tiny", **cfg)).state_dict()
    b = build_edvr(get_preset("edvr-tiny", **cfg)).state_dict()
    save_atomic({"params": a, "params_ema": b}, path)
    return a, b


@pytest.fixture(scope="module")
def reds(tmp_path_factory) -> dict:
    """One REDS clip (7 frames) as BasicSR lays it out (GT root, LQ root), and a two-entry checkpoint."""
    from vsrdata.pipelines.split_test import split_test

    root = tmp_path_factory.mktemp("reds")
    split_test(SHARP, root / "split", workers=1, progress=False, limit=1)
    clips = _basicsr_copy(root / "split", root / "gt", root / "lq")
    _two_entries(root / "net.pth")
    return {"gt": root / "gt", "lq": root / "lq", "clip": clips[0], "ckpt": root / "net.pth"}


def _test_file(reds: dict, tmp: Path, change=lambda o: None) -> Path:
    def edit(o):
        o["datasets"]["test"].update(dataroot_gt=str(reds["gt"]), dataroot_lq=str(reds["lq"]), meta_info_file=None)
        o["network_g"].update(TINY)
        o["path"] = {"pretrain_network_g": str(reds["ckpt"]), "strict_load_g": True}
        change(o)
    return _edit(OPTS / "test" / "test_EDVR_M_x4_SR_REDS.yml", tmp / "t.yml", edit)


def _evaluate(path: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, ["evaluate", "--config", str(path), "--device", "cpu", "--out", str(out),
                                     "-q", "--no-strips", *extra])


# 1 -------------------------------------------------------------------------------------------
def test_evaluate_config_loads_param_key_g_default_params(reds, tmp_path):
    """BasicSR's test builds net_g from `path.param_key_g`, default 'params' (sr_model.py)."""
    runs = {}
    for key in (None, "params_ema", "params"):
        change = (lambda o: None) if key is None else (lambda o, k=key: o["path"].update(param_key_g=k))
        res = _evaluate(_test_file(reds, tmp_path, change), tmp_path / str(key))
        assert res.exit_code == 0, res.output
        report = json.loads((tmp_path / str(key) / "test" / "report.json").read_text())
        runs[key] = (report["protocol"]["weights_key"], report["clips"][0]["psnr"])
    assert runs[None][0] == "params" and runs["params_ema"][0] == "params_ema"
    assert runs[None] == runs["params"] and runs[None][1] != runs["params_ema"][1]


# 2 -------------------------------------------------------------------------------------------
def test_tsa_file_without_tsa_iter_trains_everything_from_iteration_1(tmp_path):
    """EDVRModel freezes only `if self.train_tsa_iter` (edvr_model.py): absent means no phase."""
    src = OPTS / "train" / "train_EDVR_M_x4_SR_REDS.yml"
    path = _edit(src, tmp_path / "t.yml", lambda o: o["train"].pop("tsa_iter"))
    cfg = load_config(path)
    assert cfg.init and cfg.resolved(with_tsa=True).tsa_iter == 0
    assert load_config(src).resolved(with_tsa=True).tsa_iter == 50_000  # given: kept


# 3 -------------------------------------------------------------------------------------------
def test_perceptual_opt_is_one_line_error_before_training(tmp_path):
    res = CliRunner().invoke(main, ["train", "--config", str(OPTS / "train" / "train_EDVRM_woTSA_GAN_TODO.yml"),
                                    "--run-dir", str(tmp_path / "run")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and "train.perceptual_opt (PerceptualLoss) cannot be honoured" in lines[0]
    assert not (tmp_path / "run").exists()


# 4 -------------------------------------------------------------------------------------------
def test_ema_starts_from_the_pretrain_files_params_ema(tmp_path):
    """SRModel.init_training_settings loads net_g_ema from pretrain_network_g's 'params_ema'."""
    from vsrdata.training.config import TrainConfig
    from vsrdata.training.loop import train

    a, b = _two_entries(tmp_path / "init.pth")
    gt, lq = fixed_clip(tmp_path)
    cfg = TrainConfig(run_dir=str(tmp_path / "run"), preset="edvr-tiny", dataset="clips", gt_path=str(gt),
                      lq_path=str(lq), gt_size=32, batch_size=1, num_workers=0, total_iter=1, periods=[10],
                      ema_decay=0.5, save_freq=1, print_freq=1, init=str(tmp_path / "init.pth"), tsa_iter=0)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(cfg)
    finally:
        torch.set_num_threads(n)
    ck = torch.load(tmp_path / "run" / "checkpoints" / "iter_00000001.pth", map_location="cpu", weights_only=True)
    for k, ema in ck["params_ema"].items():  # one update: ema = 0.5 * start + 0.5 * params (exact in fp32)
        if ema.is_floating_point():
            torch.testing.assert_close(ema, 0.5 * b[k] + 0.5 * ck["params"][k], rtol=0, atol=1e-6)
    log = (tmp_path / "run" / "train.log").read_text()
    assert "EMA copy starts from the init checkpoint's 'params_ema' entry" in log


# 5 -------------------------------------------------------------------------------------------
def test_network_g_ema_decay_is_an_error_naming_the_key(tmp_path):
    """build_network passes network_g to EDVR(**opt), which has no ema_decay argument."""
    path = _edit(OPTS / "train" / "train_EDVR_L_x4_SR_REDS.yml", tmp_path / "t.yml",
                 lambda o: o["network_g"].update(ema_decay=0.999))
    with pytest.raises(ConfigError, match=r"network_g.ema_decay is not an EDVR option .*train.ema_decay"):
        load_config(path)


# 6 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [None, "mine"])
def test_test_file_save_img_writes_frames_where_basicsr_does(reds, tmp_path, suffix):
    """video_base_model.py: results/<name>/visualization/<dataset name>/<clip>/<frame>_<suffix or name>.png."""
    path = _test_file(reds, tmp_path, lambda o: o["val"].update(suffix=suffix))
    res = _evaluate(path, tmp_path / "o", "--save-frames")
    assert res.exit_code == 0, res.output
    label = suffix or "EDVR_M_x4_SR_REDS_official"
    vis = tmp_path / "o" / "visualization" / "REDS4" / reds["clip"]
    frames = sorted((reds["gt"] / reds["clip"]).iterdir())
    assert sorted(p.name for p in vis.iterdir()) == [f"{f.stem}_{label}.png" for f in frames]
    same = tmp_path / "o" / "test" / "frames" / reds["clip"] / frames[3].name  # --save-frames' copy
    assert np.array_equal(cv2.imread(str(vis / f"{frames[3].stem}_{label}.png")), cv2.imread(str(same)))
    path = _test_file(reds, tmp_path, lambda o: o["val"].update(save_img=False))
    assert _evaluate(path, tmp_path / "n").exit_code == 0 and not (tmp_path / "n" / "visualization").exists()


def test_test_num_frame_other_than_the_networks_is_one_line_error(reds, tmp_path):
    """BasicSR builds 3-frame windows and its 5-frame EDVR fails in the fusion conv (RuntimeError)."""
    path = _test_file(reds, tmp_path, lambda o: o["datasets"]["test"].update(num_frame=3))
    res = _evaluate(path, tmp_path / "o")
    assert res.exit_code == 1 and "Traceback" not in res.output and not (tmp_path / "o").exists()
    assert "datasets.test.num_frame 3 does not match network_g.num_frame 5" in res.output


def test_vimeo90k_test_file_scores_the_centre_frame_of_each_septuplet(reds, tmp_path):
    """VideoTestVimeo90KDataset: clips <seq>/<sub> of the meta file, GT im4, LQ im1-7 (7 frames)."""
    for root, src in (("gt", reds["gt"]), ("lq", reds["lq"])):
        dst = tmp_path / root / "sequences" / "00001" / "0266"
        dst.mkdir(parents=True)
        for i, f in enumerate(sorted((src / reds["clip"]).iterdir())):
            (dst / f"im{i + 1}.png").write_bytes(f.read_bytes())
    (tmp_path / "meta.txt").write_text("00001/0266 7 (180,320,3)\n")
    _two_entries(tmp_path / "vimeo.pth", num_frame=7)

    def edit(o):
        o["datasets"]["test"].update(dataroot_gt=str(tmp_path / "gt" / "sequences"),
                                     dataroot_lq=str(tmp_path / "lq" / "sequences"),
                                     meta_info_file=str(tmp_path / "meta.txt"))
        o["network_g"].update(TINY)
        o["path"] = {"pretrain_model_g": str(tmp_path / "vimeo.pth"), "strict_load": True}
    path = _edit(OPTS / "test" / "test_EDVR_L_x4_SR_Vimeo90K.yml", tmp_path / "t.yml", edit)
    res = _evaluate(path, tmp_path / "o")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "o" / "test" / "report.json").read_text())
    assert [c["clip"] for c in report["clips"]] == ["00001/0266"]
    assert [f["frame"] for f in report["clips"][0]["per_frame"]] == ["im4.png"]
    assert report["protocol"]["channel"] == "rgb" and report["protocol"]["num_frame"] == 7
    vis = tmp_path / "o" / "visualization" / "Vimeo90K-Test" / "vimeo90k"
    assert [p.name for p in vis.iterdir()] == ["00001_0266_im4_EDVR_L_x4_Vimeo90K_SR_official.png"]


# 7 -------------------------------------------------------------------------------------------
def test_non_strict_init_skips_shape_mismatches_and_lists_them(tmp_path):
    """base_model._print_different_keys_loading: with strict false a tensor of another shape is
    skipped (warned about), the rest load."""
    from vsrdata.edvr.checkpoint.init import init_from_checkpoint

    torch.manual_seed(0)
    sd = build_edvr("edvr-tiny").state_dict()
    sd["conv_last.weight"] = torch.zeros(3, 8, 3, 3)
    save_atomic({"params": sd}, tmp_path / "w.pth")
    model = build_edvr("edvr-tiny")
    before = model.state_dict()["conv_last.weight"].clone()
    report = init_from_checkpoint(model, tmp_path / "w.pth", "edvr-tiny", strict=False)
    assert report["mismatched"] == [f"conv_last.weight (3, 8, 3, 3) vs model {tuple(before.shape)}"]
    assert torch.equal(model.state_dict()["conv_last.weight"], before)
    assert all(torch.equal(model.state_dict()[k], sd[k]) for k in report["loaded"])
    assert len(report["loaded"]) == len(sd) - 1
    from vsrdata.training.setup import init_lines

    assert "skipped 1 tensor(s) whose shape differs" in init_lines(report, None)[0]
    with pytest.raises(CheckpointError, match="strict_load_g"):
        init_from_checkpoint(build_edvr("edvr-tiny"), tmp_path / "w.pth", "edvr-tiny", strict=True)


# 8 -------------------------------------------------------------------------------------------
def test_irrelevant_keys_are_named_once():
    notes: list[str] = []
    load_config(OPTS / "train" / "train_EDVR_M_x4_SR_REDS.yml", on_note=notes.append)
    named = [n for n in notes if n.startswith("BasicSR option file: no effect here: ")]
    assert len(named) == 1
    keys = named[0].split(": ", 2)[2].split(", ")
    assert len(keys) == len(set(keys))
    for key in ("datasets.train.name", "datasets.train.io_backend", "datasets.val.cache_data",
                "datasets.train.dataroot_flow", "datasets.train.dataset_enlarge_ratio", "datasets.train.prefetch_mode",
                "dist_params", "find_unused_parameters", "val.save_img"):
        assert key in keys


def test_datasets_val_num_frame_is_read(tmp_path):
    path = _edit(OPTS / "train" / "train_EDVR_M_x4_SR_REDS.yml", tmp_path / "t.yml",
                 lambda o: o["datasets"]["val"].update(num_frame=7))
    with pytest.raises(ConfigError, match="datasets.val.num_frame 7 does not match network_g.num_frame 5"):
        load_config(path)
