"""The README's "Your own footage" section, run end to end as written (tiny videos, CPU), with
what a newcomer should be told checked at each step."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from media import make_video
from test_extract import shot
from vsrdata.cli import main

pytest.importorskip("av")
pytest.importorskip("scenedetect")

README = Path(__file__).resolve().parents[1] / "README.md"

# What makes the README's commands tiny: the options each command gets on top of the README's own.
SMALL = {
    "extract": ["-n", "8", "--scene-cuts", "off", "-j", "1", "-q"],
    "make-lr": ["-j", "1", "-q"],
    "to-lmdb": ["-j", "1", "-q"],
    "split-test": ["-j", "1", "-q"],
    "train": ["--total-iter", "4", "--val-freq", "2", "--save-freq", "2", "--gt-size", "32", "--batch-size", "1",
              "-j", "0", "--val-max-frames", "2"],  # not -q: what training says is checked
    "evaluate": ["--device", "cpu", "-q"],
    "infer": ["--device", "cpu", "-q"],
}


def readme_commands() -> list[list[str]]:
    """The vsrdata commands of the README's "Your own footage" bash block, continuations joined."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Your own footage"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = block.replace("\\\n", " ").splitlines()
    return [shlex.split(line, comments=True) for line in lines if line.strip().startswith("vsrdata ")]


def small(argv: list[str]) -> list[str]:
    args = argv[1:]
    args = ["96x64" if a == "1280x720" else a for a in args]  # the fixture videos are 96x64
    if args[0] == "train":
        args = ["edvr-tiny" if a == "edvr-m" else a for a in args]
    return args + SMALL[args[0]]


@pytest.mark.slow
def test_readme_own_footage_section_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for d in ("footage/train", "footage/val"):
        Path(d).mkdir(parents=True)
    make_video(Path("footage/train/a.mp4"), shot("000", 24), fps=25, audio=None)
    make_video(Path("footage/val/b.mp4"), shot("002", 16), fps=25, audio=None)

    commands = readme_commands()
    assert [c[1] for c in commands] == ["extract", "extract", "make-lr", "to-lmdb", "to-lmdb", "split-test",
                                        "train", "evaluate", "infer"]
    out = {}
    for argv in commands:
        res = CliRunner().invoke(main, small(argv))
        assert res.exit_code == 0, (argv, res.output)
        out.setdefault(argv[1], []).append(res.output)

    # summaries say what was made and where
    assert re.search(r" 3 clip\(s\).*; 24 frames -> data/mine/train_sharp", out["extract"][0])
    assert re.search(r" 2 clip\(s\).*; 16 frames -> data/mine/val_sharp", out["extract"][1])
    assert "BIx4 frames: data/mine/train_sharp_bicubic/X4" in out["make-lr"][0]
    train = out["train"][0]
    assert "no clip left out of training (--val-partition none)" in train
    assert "schedule: lr 0.0004, one cosine cycle" in train
    assert "validation: PSNR-RGB (reds4, first 2 frames) on 2 clip(s), 4 frame(s)" in train
    assert "val PSNR-RGB (reds4, first 2 frames)" in train
    run = Path("experiments/edvr_m_mine")
    for label, name in (("best checkpoint", "best.pth"), ("report (open in a browser)", "report.html"),
                        ("curves", "curves.png"), ("log", "train.log")):
        assert f"{label}: {run / name}" in train and (run / name).is_file(), label
    # evaluate's report is named with the run; its scores name channel and protocol
    report = Path("results/mine_val/edvr_m_mine_best")
    assert f"open in a browser: {report / 'report.html'}" in out["evaluate"][0]
    page = (report / "report.html").read_text(encoding="utf-8")
    assert "PSNR-Y (generic)" in page and "bicubic PSNR-Y (generic)" in page
    assert "http://" not in page and "https://" not in page
    # infer into a PNG folder: the listing is frames only, the cut record is a dot-file
    frames = sorted(p.name for p in Path("out/mine_000_x4").iterdir() if not p.name.startswith("."))
    assert frames == sorted(p.name for p in Path("datasets/mine_val/BIx4/000").iterdir())
    assert Path("out/mine_000_x4/.scenes.json").is_file()
