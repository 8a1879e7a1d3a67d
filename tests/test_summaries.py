"""Summaries that say where things are: make-lr's output, doctor's extras, evaluate's report folder
named with the run, and the Python API writing nothing unless asked."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner

from test_evaluate import _tiny_checkpoint, make_split
from vsrdata.cli import main
from vsrdata.errors import ConfigError
from vsrdata.evaluation.evaluate import default_out_dir, evaluate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_make_lr_names_its_output(tmp_path):
    src = tmp_path / "gt" / "000"
    src.mkdir(parents=True)
    (src / "00000000.png").write_bytes((FIXTURES / "reds" / "train_sharp" / "000" / "00000000.png").read_bytes())
    res = CliRunner().invoke(main, ["make-lr", str(tmp_path / "gt"), str(tmp_path / "lr"), "-j", "1", "-q"])
    assert res.exit_code == 0, res.output
    assert f"BIx4 frames: {tmp_path / 'lr'}" in res.output and (tmp_path / "lr" / "000" / "00000000.png").is_file()


def test_doctor_lists_the_extras_with_versions():
    res = CliRunner().invoke(main, ["doctor", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    for shown, dist in (("onnxruntime", "onnxruntime"), ("PyAV", "av"), ("PySceneDetect", "scenedetect"),
                        ("TensorBoard", "tensorboard"), ("pyiqa", "pyiqa"), ("lpips", "lpips")):
        line = next(x for x in res.output.splitlines() if x.startswith(shown + " "))
        try:
            assert metadata.version(dist) in line
        except metadata.PackageNotFoundError:
            assert "not installed" in line and "pip install" in line


def test_report_folder_names_the_run(tmp_path):
    run = tmp_path / "edvr_m_own"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("config.json", "log.jsonl"):
        (run / name).write_text("{}")
    ds = tmp_path / "reds4"
    assert default_out_dir(ds, run / "best.pth") == Path("results/reds4/edvr_m_own_best")
    assert default_out_dir(ds, run / "checkpoints" / "iter_00000300.pth") == Path(
        "results/reds4/edvr_m_own_iter_00000300")
    assert default_out_dir(ds, tmp_path / "EDVR_M.pth") == Path("results/reds4/EDVR_M")
    assert default_out_dir(ds, None) == Path("results/reds4/bicubic")


def test_python_api_writes_nothing_unless_asked_and_refuses_the_cli_order(tmp_path, monkeypatch):
    pytest.importorskip("vsrdata.edvr.checkpoint")
    split = make_split(tmp_path / "ds", clips=("000",), n=3)
    _tiny_checkpoint(tmp_path / "tiny.pth")
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    report = evaluate(split, tmp_path / "tiny.pth", preset="edvr-tiny", device="cpu")
    assert len(report.clips) == 1 and report.paths == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no ./results
    with pytest.raises(ConfigError, match=r"takes the dataset first .* call evaluate\(dataset="):
        evaluate(tmp_path / "tiny.pth", split)
    with pytest.raises(ConfigError, match="save_frames needs out_dir"):
        evaluate(split, tmp_path / "tiny.pth", save_frames=True)
