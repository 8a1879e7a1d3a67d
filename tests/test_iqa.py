"""LPIPS from local weight files, against numbers of the `lpips` package (fixtures/lpips/)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vsrdata.core.image_io import read_image, to_rgb
from vsrdata.errors import ConfigError
from vsrdata.evaluation import iqa

from tests import iqa_weights

FIX = Path(__file__).resolve().parent.parent / "fixtures"
REF = json.loads((FIX / "lpips" / "lpips_reference.json").read_text())


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lpips")
    iqa_weights.save(folder)  # the published formats, written by the test itself
    return folder


@pytest.fixture(scope="module")
def lp(weights):
    return iqa.load_lpips(weights)


def _rgb(rel):
    return to_rgb(read_image(FIX / rel))


@pytest.mark.parametrize("pair", REF["pairs"], ids=lambda p: p["a"].split("/")[-2])
def test_lpips_matches_the_lpips_package(lp, pair):
    # both sides run the same float32 convolutions (equal here; another torch build may sum in
    # another order: relative error ~1e-6 per layer sum); 1e-4 relative bounds it with margin
    assert lp(_rgb(pair["a"]), _rgb(pair["b"])) == pytest.approx(pair["lpips"], rel=1e-4)


def test_lpips_of_identical_frames_is_zero(lp):
    a = _rgb(REF["pairs"][0]["a"])
    assert lp(a, a) == 0.0


def test_missing_weight_files_are_one_line(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(ConfigError) as err:
        iqa.load_lpips(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and iqa.TRUNK_FILE in msg and str(tmp_path) in msg
    iqa_weights.save(tmp_path / "w")
    (tmp_path / "w" / "alex.pth").unlink()
    monkeypatch.setattr(iqa, "_lpips_package_file", lambda: None)
    with pytest.raises(ConfigError) as err:
        iqa.load_lpips(tmp_path / "w")
    assert "\n" not in str(err.value) and "alex.pth" in str(err.value) and "vsrdata[iqa]" in str(err.value)


def test_wrong_file_is_one_line(tmp_path):
    import torch

    iqa_weights.save(tmp_path)
    torch.save({"features.0.weight": torch.zeros(2, 2)}, tmp_path / iqa.TRUNK_FILE)
    with pytest.raises(ConfigError, match=r"features.0.weight of shape \(64, 3, 11, 11\)"):
        iqa.load_lpips(tmp_path)


def test_evaluate_lpips_tlp_dists_columns(weights, dists_weights, tmp_path):
    import shutil

    from click.testing import CliRunner

    from tests.test_evaluate_metrics import _split
    from vsrdata.cli import main

    both = tmp_path / "w"  # one folder holds all the weight files
    both.mkdir()
    for f in [*weights.iterdir(), *dists_weights.iterdir()]:
        shutil.copy(f, both / f.name)
    split = _split(tmp_path / "ds", n=3)
    res = CliRunner().invoke(main, ["evaluate", "--bicubic", str(split), "--metrics", "psnr,lpips,tlp,dists",
                                    "--iqa-weights", str(both), "--out", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "o" / "report.json").read_text())
    frames = data["clips"][0]["per_frame"]
    assert all(f["lpips"] > 0 for f in frames) and frames[0]["tlp"] is None and frames[1]["tlp"] >= 0
    assert all(f["dists"] > 0 for f in frames)
    assert "LPIPS" in res.output and "DISTS" in res.output


def test_cli_lpips_without_weights_is_one_error_line(tmp_path, monkeypatch):
    import torch
    from click.testing import CliRunner

    from tests.test_evaluate_metrics import _split
    from vsrdata.cli import main

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    split = _split(tmp_path / "ds", n=2)
    res = CliRunner().invoke(main, ["evaluate", "--bicubic", str(split), "--metrics", "lpips", "-q"])
    assert res.exit_code != 0 and "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: LPIPS needs") and iqa.TRUNK_FILE in lines[0]
    assert str(tmp_path / "hub" / "checkpoints") in lines[0]


DREF = json.loads((FIX / "lpips" / "dists_reference.json").read_text())


@pytest.fixture(scope="module")
def dists_weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dists")
    iqa_weights.save_dists(folder)  # torchvision VGG16 and DISTS_pytorch formats, written here
    return folder


def test_dists_matches_the_dists_package(dists_weights):
    from vsrdata.evaluation.dists import load_dists

    dists = load_dists(dists_weights)
    for pair in DREF["pairs"]:
        (r0, r1), (c0, c1) = pair["crop"]
        a, b = (np.ascontiguousarray(_rgb(p)[r0:r1, c0:c1]) for p in (pair["a"], pair["b"]))
        # same float32 network; 1e-4 relative covers another summation order (see LPIPS above)
        assert dists(a, b) == pytest.approx(pair["dists"], rel=1e-4)
        assert abs(dists(a, a)) < 1e-6  # S1 = S2 = 1 for identical inputs, up to float32 rounding


def test_dists_missing_weights_is_one_line(tmp_path, monkeypatch):
    import torch

    from vsrdata.evaluation import dists

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(dists, "_package_file", lambda: [])
    with pytest.raises(ConfigError) as err:
        dists.load_dists(tmp_path)
    assert "\n" not in str(err.value) and dists.VGG_FILE in str(err.value)
