"""`make demo`'s pipeline end to end on the fixtures, with a very short training run."""

from __future__ import annotations

import json

import pytest

from vsrdata.demo import run_demo


@pytest.mark.slow
def test_demo_pipeline_runs_every_step(tmp_path, capsys):
    out = tmp_path / "demo"
    assert run_demo(out, iterations=6, workers=1) == 0
    printed = capsys.readouterr().out
    for step in ("[1/5] make-lr", "[2/5] split-test", "[3/5] to-lmdb", "[4/5] train", "[5/5] evaluate"):
        assert step in printed
    # Every stage left its product where the summary says.
    assert len(list((out / "reds" / "train_sharp_bicubic" / "X4" / "000").glob("*.png"))) == 7
    split = json.loads((out / "datasets" / "REDS4-mini" / "split.json").read_text())
    assert list(split["clips"]) == ["000"]
    assert split["clips"]["000"]["lr_size"][:2] == [45, 80] and split["clips"]["000"]["lr_pad"] == [3, 0]
    meta = (out / "lmdb" / "train_sharp.lmdb" / "meta_info.txt").read_text().splitlines()
    assert meta[0] == "000/00000000.png (180,320,3) 1" and len(meta) == 21
    report = json.loads((out / "eval" / "report.json").read_text())
    assert "Bicubic" in printed and "Average" in printed
    assert (out / "eval" / "compare" / "000.png").is_file()
    assert report["protocol"]["channel"] == "rgb" and report["clips"][0]["frames"] == 7
    assert 20 < report["average"]["bicubic_psnr"] < 40 and report["average"]["psnr"] > 10
    # A second run resumes: nothing is redone by the data steps.
    assert run_demo(out, iterations=6, workers=1) == 0
    again = capsys.readouterr().out
    assert "21 written" not in again and "is complete; kept" in again
