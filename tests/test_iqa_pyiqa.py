"""`--metrics pyiqa:NAME`: any pyiqa metric from weight files on disk, never downloaded.

pyiqa is an optional extra that CI does not install (it pulls torchvision, timm, transformers):
the tests that need it are skipped without it; the install-hint test runs everywhere.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests import iqa_weights
from tests.test_evaluate_metrics import _bicubic_frames, _split
from vsrdata.cli import main
from vsrdata.errors import ConfigError

FIX = Path(__file__).resolve().parent.parent / "fixtures"
HAS_PYIQA = importlib.util.find_spec("pyiqa") is not None
needs_pyiqa = pytest.mark.skipif(not HAS_PYIQA, reason="pyiqa is not installed (optional extra "
                                 "vsrdata[pyiqa]; CI does not install it)")
TRUNK, LIN = "alexnet-owt-7be5be79.pth", "LPIPS_v0.1_alex-df73285e.pth"

# every name lookup, connection or urllib request this process makes while `_WATCH` is on
# (Python's audit events fire before the operating system is asked)
_WATCH: list[bool] = []
_NET: list[tuple] = []
_NET_EVENTS = ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "urllib.Request")
sys.addaudithook(lambda event, args: _NET.append((event, args)) if _WATCH and event in _NET_EVENTS else None)


@pytest.fixture
def network_watch():
    _NET.clear()
    _WATCH.append(True)
    yield _NET
    _WATCH.clear()


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty TORCH_HOME: torch hub's folder (and pyiqa's cache under it) in tmp, the user's untouched."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    return tmp_path / "th" / "hub"


def _lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.strip()]


def test_pyiqa_missing_is_one_line_install_hint(tmp_path, monkeypatch):
    if HAS_PYIQA:  # make `import pyiqa` fail as in an environment without it (Python's own mechanism)
        monkeypatch.setitem(sys.modules, "pyiqa", None)
    split = _split(tmp_path / "ds", n=2)
    out = tmp_path / "o"
    res = CliRunner().invoke(main, ["evaluate", "--bicubic", str(split), "--metrics", "psnr,pyiqa:musiq",
                                    "--out", str(out), "-q"])
    assert res.exit_code != 0 and "Traceback" not in res.output
    lines = _lines(res.output)
    assert len(lines) == 1 and lines[0] == "Error: pyiqa is not installed: pip install 'vsrdata[pyiqa]'", res.output
    assert not out.exists()  # nothing written


@needs_pyiqa
def test_unknown_pyiqa_name_says_how_to_list_names():
    from vsrdata.evaluation.metric_suite import parse_metrics

    with pytest.raises(ConfigError) as err:
        parse_metrics("psnr,pyiqa:no_such_metric")
    msg = str(err.value)
    assert "\n" not in msg and "'no_such_metric'" in msg and "pyiqa.list_models()" in msg
    # pyiqa's own spelling comes back whatever the case typed
    assert parse_metrics("psnr,PYIQA:PSNR") == ("psnr", "pyiqa:psnr")
    with pytest.raises(ConfigError, match="scores a set of images"):
        parse_metrics("pyiqa:fid")


@needs_pyiqa
def test_pyiqa_psnr_equals_ours_through_evaluate(tmp_path, torch_home, network_watch):
    """pyiqa's PSNR (RGB, and Y) against ours on fixture frames: a reference nobody here wrote."""
    split = _split(tmp_path / "ds", n=3)
    res = CliRunner().invoke(main, ["evaluate", "--bicubic", str(split), "--rgb", "--crop-border", "0",
                                    "--metrics", "psnr,ssim,pyiqa:psnr,pyiqa:psnry", "--out", str(tmp_path / "o"),
                                    "-q"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    frames = report["clips"][0]["per_frame"]
    assert len(frames) == 3
    for f in frames:
        # pyiqa: float32 on [0, 1], 10 log10(1 / (mse + 1e-8)); ours float64 without eps. The eps is
        # 6.5e-4 in 0-255 units: 4.343 * 6.5e-4 / mse dB = 1.7e-5 dB at these frames' mse (~160,
        # PSNR 26), and a float32 mean of 1.7e5 terms adds ~1e-6 relative (4e-6 dB): 1e-4 bounds both
        assert f["pyiqa:psnr"] == pytest.approx(f["psnr"], abs=1e-4)
        # pyiqa's psnry takes YIQ's luma (0.299, 0.587, 0.114; full range), the papers' Y is BT.601
        # limited range (the same weights x 219/255, + 16): differences scale by 219/255, so
        # PSNR-Y = psnry + 20 log10(255/219) = psnry + 1.3236 dB exactly, up to the rounding above
        assert f["pyiqa:psnry"] + 20 * math.log10(255 / 219) == pytest.approx(f["psnr_y"], abs=1e-4)
    assert "pyiqa:psnr" in (tmp_path / "o" / "report.csv").read_text().splitlines()[0]
    text = (tmp_path / "o" / "report.txt").read_text()
    assert "pyiqa:psnry" in text and "pyiqa " in text and "higher is better" in text
    assert "pyiqa:psnr" in (tmp_path / "o" / "report.html").read_text()
    assert "RGB float32 in [0, 1] NCHW" in json.dumps(report)
    assert network_watch == []


@needs_pyiqa
def test_missing_weights_one_line_and_no_network(torch_home, network_watch):
    import torch.hub
    from pyiqa.archs import niqe_arch
    from pyiqa.utils import download_util

    from vsrdata.evaluation.metrics_pyiqa import load_pyiqa

    before = (torch.hub.download_url_to_file, torch.hub.load_state_dict_from_url, download_util.load_file_from_url,
              niqe_arch.load_file_from_url)
    with pytest.raises(ConfigError) as err:  # torchvision's AlexNet first
        load_pyiqa("pyiqa:lpips")
    msg = str(err.value)
    assert "\n" not in msg and TRUNK in msg and str(torch_home / "checkpoints") in msg
    iqa_weights.save_pyiqa_lpips(torch_home)
    (torch_home / "pyiqa" / LIN).unlink()
    with pytest.raises(ConfigError) as err:  # then pyiqa's own linear layers, in pyiqa's cache
        load_pyiqa("pyiqa:lpips")
    msg = str(err.value)
    assert "\n" not in msg and LIN in msg and str(torch_home / "pyiqa") in msg
    assert network_watch == []  # the guards refused before any name lookup or connection
    # the download functions are pyiqa's and torch's own again (pyiqa binds them by name too)
    assert (torch.hub.download_url_to_file, torch.hub.load_state_dict_from_url, download_util.load_file_from_url,
            niqe_arch.load_file_from_url) == before


@needs_pyiqa
def test_cli_missing_pyiqa_weights_is_one_error_line(tmp_path, torch_home, network_watch):
    split = _split(tmp_path / "ds", n=2)
    res = CliRunner().invoke(main, ["evaluate", "--bicubic", str(split), "--metrics", "pyiqa:lpips",
                                    "--iqa-weights", str(tmp_path / "w"), "--out", str(tmp_path / "o"), "-q"])
    assert res.exit_code != 0 and "Traceback" not in res.output
    lines = _lines(res.output)
    assert len(lines) == 1 and lines[0].startswith("Error: pyiqa:lpips needs " + TRUNK), res.output
    assert str(tmp_path / "w") in lines[0] and str(torch_home / "checkpoints") in lines[0]
    assert network_watch == [] and not (tmp_path / "o").exists()


REF = json.loads((FIX / "lpips" / "lpips_reference.json").read_text())


@needs_pyiqa
def test_pyiqa_lpips_from_saved_weights_matches_the_lpips_package(torch_home, network_watch):
    """The files pyiqa and torchvision would download, written by the test (tests/iqa_weights.py):
    pyiqa's LPIPS on them gives the lpips package's numbers for the same weights (fixtures/lpips)."""
    from vsrdata.core.image_io import read_image, to_rgb
    from vsrdata.evaluation.metrics_pyiqa import load_pyiqa

    iqa_weights.save_pyiqa_lpips(torch_home)
    metric = load_pyiqa("pyiqa:lpips")
    assert metric.full_reference and metric.lower_better
    for pair in REF["pairs"]:
        a, b = (to_rgb(read_image(FIX / p)) for p in (pair["a"], pair["b"]))
        # the same float32 network; inputs x/255*2-1 here, x/127.5-1 there (a few ulps per pixel),
        # and another summation order: relative 1e-6 per layer; 1e-4 bounds it with margin
        assert metric(a, b) == pytest.approx(pair["lpips"], rel=1e-4)
    assert network_watch == []


@needs_pyiqa
def test_iqa_weights_folder_is_looked_in_first(tmp_path, torch_home, network_watch):
    from vsrdata.evaluation.metrics_pyiqa import load_pyiqa

    iqa_weights.save_pyiqa_lpips(tmp_path / "hub")
    folder = tmp_path / "w"  # the files flat in one folder, the caches empty
    folder.mkdir()
    for f in (tmp_path / "hub" / "checkpoints" / TRUNK, tmp_path / "hub" / "pyiqa" / LIN):
        f.rename(folder / f.name)
    metric = load_pyiqa("pyiqa:lpips", folder)
    pair = REF["pairs"][0]
    from vsrdata.core.image_io import read_image, to_rgb

    a, b = (to_rgb(read_image(FIX / p)) for p in (pair["a"], pair["b"]))
    assert metric(a, b) == pytest.approx(pair["lpips"], rel=1e-4)
    assert not (torch_home / "pyiqa").exists() and network_watch == []


@needs_pyiqa
def test_no_gt_scores_no_reference_pyiqa_on_output_and_bicubic(tmp_path, torch_home, network_watch):
    """pyiqa's NIQE from MATLAB's pristine model (the parameters vsrdata ships), saved by the test
    as the .mat file pyiqa reads; a set without GT scores it on the output and on bicubic. (Its
    values are not BasicSR's: pyiqa takes YIQ luma unrounded, MATLAB/BasicSR BT.601 Y rounded.)"""
    import shutil

    import numpy as np
    import scipy.io

    from vsrdata.evaluation.metric_suite import MetricSuite

    pris = np.load(Path(__file__).resolve().parent.parent / "vsrdata" / "data" / "niqe" / "niqe_pris_params.npz")
    (torch_home / "pyiqa").mkdir(parents=True)
    scipy.io.savemat(torch_home / "pyiqa" / "niqe_modelparameters.mat",
                     {"mu_prisparam": pris["mu_pris_param"], "cov_prisparam": pris["cov_pris_param"]})
    split = _split(tmp_path / "ds", n=2)
    lq = tmp_path / "lq"
    shutil.copytree(split / "BIx4", lq)
    res = CliRunner().invoke(main, ["evaluate", "--bicubic", "--lq", str(lq), "--metrics", "niqe,pyiqa:niqe",
                                    "--out", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "o" / "report.json").read_text())
    frames = data["clips"][0]["per_frame"]
    assert all(f["pyiqa:niqe"] > 0 and f["niqe"] > 0 for f in frames)
    assert "no reference" in data["protocol"]["metrics"]["pyiqa:niqe"]
    # a model's output and the bicubic baseline are both scored (the baseline run has one column)
    ups = _bicubic_frames(split, n=2)
    suite = MetricSuite(("pyiqa:niqe",), reference=False)
    vals = suite.frame(suite.start_clip("000"), ups[0], None, ups[1])
    assert vals["pyiqa:niqe"] == frames[0]["pyiqa:niqe"] and vals["bicubic_pyiqa:niqe"] == frames[1]["pyiqa:niqe"]
    res = CliRunner().invoke(main, ["evaluate", "--bicubic", "--lq", str(lq), "--metrics", "pyiqa:psnr", "--out",
                                    str(tmp_path / "o2"), "-q"])
    assert res.exit_code != 0 and "need a ground truth" in res.output and "pyiqa:psnr" in res.output
    assert network_watch == []


def test_lq_alone_without_out_goes_to_results_named_after_the_lq_folder(tmp_path, monkeypatch):
    import shutil

    split = _split(tmp_path / "ds", n=1)
    shutil.copytree(split / "BIx4", tmp_path / "VideoLQ")
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["evaluate", "--bicubic", "--lq", "VideoLQ", "-q"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "results" / "VideoLQ" / "bicubic" / "report.json").is_file()


@needs_pyiqa
def test_val_metrics_log_a_pyiqa_metric(tmp_path, torch_home):
    import torch

    from tests.test_val_metrics import Bilinear
    from vsrdata.training.config import TrainConfig
    from vsrdata.training.logs import format_event
    from vsrdata.training.validate import load_val_clips, validate

    with pytest.raises(ConfigError, match="unknown pyiqa metric 'nope'"):  # names checked with the config
        TrainConfig(val_metrics="psnr,pyiqa:nope").validate()
    clips = load_val_clips(_split(tmp_path / "val", n=2))
    got = validate(Bilinear(), clips, 3, torch.device("cpu"), metrics="psnr,ssim,pyiqa:psnr")
    # validation PSNR is RGB, crop 0, mean of per-frame values, as pyiqa's psnr (bound: see above)
    assert got["extra"]["pyiqa:psnr"] == pytest.approx(got["psnr"], abs=1e-4)
    line = format_event({"kind": "val", "iter": 5, "psnr": got["psnr"], "ssim": got["ssim"], "best": True,
                         **got["extra"]})
    assert ", pyiqa:psnr " in line


@needs_pyiqa
def test_weight_file_of_another_shape_is_one_line(torch_home):
    import torch

    from vsrdata.evaluation.metrics_pyiqa import load_pyiqa

    iqa_weights.save_pyiqa_lpips(torch_home)
    torch.save({"lin0.model.1.weight": torch.zeros(1, 3, 1, 1)}, torch_home / "pyiqa" / LIN)
    with pytest.raises(ConfigError) as err:
        load_pyiqa("pyiqa:lpips")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("pyiqa:lpips could not be built") and "lin0.model.1.weight" in msg


@needs_pyiqa
def test_hugging_face_backbones_come_from_its_cache_only(tmp_path, torch_home, network_watch, monkeypatch):
    """timm backbones that pyiqa takes from the Hugging Face hub: offline, one line naming the file
    and the hub cache; each build names itself, also after a module imported during an earlier
    build kept one of the guards (timm wraps hf_hub_download in a partial when it is imported)."""
    import huggingface_hub.constants

    from vsrdata.evaluation.metrics_pyiqa import load_pyiqa

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    offline_before = huggingface_hub.constants.HF_HUB_OFFLINE
    for name in ("maniqa", "topiq_nr"):
        with pytest.raises(ConfigError) as err:
            load_pyiqa(f"pyiqa:{name}")
        msg = str(err.value)
        assert "\n" not in msg and msg.startswith(f"pyiqa:{name} needs model.safetensors of the Hugging Face model")
        assert str(tmp_path / "hf") in msg
    assert network_watch == [] and huggingface_hub.constants.HF_HUB_OFFLINE == offline_before
