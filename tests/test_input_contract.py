"""One input contract (docs/CONVENTIONS.md#frame-contract): every command that takes a clip tree
(make-lr, split-test, to-lmdb, train, evaluate; infer takes one clip) refuses the same bad frames
with the same one-line message naming the file, before writing anything.

Parametrised over command x defect, so a command that stops applying the rule fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

import badinputs as bad
from vsrdata.cli import main

LQ_SIZE = bad.GT_SIZE // bad.SCALE


def _trees(tmp_path: Path) -> tuple[Path, Path]:
    gt = bad.write_tree(tmp_path / "GT")
    lq = tmp_path / "LQ"
    for clip in sorted(gt.iterdir()):
        (lq / clip.name).mkdir(parents=True)
        for p in sorted(clip.iterdir()):
            img = cv2.imread(str(p))
            cv2.imwrite(str(lq / clip.name / p.name), cv2.resize(img, (LQ_SIZE, LQ_SIZE), interpolation=cv2.INTER_AREA))
    return gt, lq


def _train_args(gt, lq, out):
    return ["train", "--preset", "edvr-tiny", "--dataset", "clips", "--gt", gt, "--lq", lq, "--run-dir", out,
            "--val-partition", "none", "--total-iter", "1", "--num-workers", "0", "--batch-size", "1",
            "--gt-size", "16"]


# command -> (argv from (GT tree, LQ tree, output path), which tree it reads the defect from)
COMMANDS = {
    "make-lr": (lambda gt, lq, out: ["make-lr", gt, out, "-q", "-j", "1"], "gt"),
    "degrade": (lambda gt, lq, out: ["degrade", gt, out, "-r", "realesrgan", "-q", "-j", "1"], "gt"),
    "split-test": (lambda gt, lq, out: ["split-test", gt, out, "-q", "-j", "1"], "gt"),
    "to-lmdb": (lambda gt, lq, out: ["to-lmdb", gt, out, "-q", "-j", "1"], "gt"),
    "train-gt": (_train_args, "gt"),
    "train-lq": (_train_args, "lq"),
    "evaluate": (lambda gt, lq, out: ["evaluate", "--bicubic", "--gt", gt, "--lq", lq, "--out", out, "-q"], "lq"),
    "infer": (lambda gt, lq, out: ["infer", gt / "000", out, "-c", out.parent / "w.pth", "-q"], "gt"),
    "infer-empty": (lambda gt, lq, out: ["infer", gt / "002", out, "-c", out.parent / "w.pth", "-q"], "gt"),
}


def run(argv) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in argv])
    return result.exit_code, result.output


# infer takes one clip folder: the damaged one, or (infer-empty) the empty folder itself
CASES = [(c, d) for c in sorted(COMMANDS) for d in sorted(bad.DEFECTS)
         if not c.startswith("infer") or (c == "infer-empty") == (d == "empty-clip-folder")]


@pytest.mark.parametrize(("command", "defect"), CASES)
def test_every_command_refuses_a_bad_frame_with_one_message(tmp_path, command, defect):
    gt, lq = _trees(tmp_path)
    (tmp_path / "w.pth").write_bytes(b"not read: the input is refused first")
    argv, side = COMMANDS[command]
    if command == "evaluate" and defect == "empty-clip-folder":
        side = "gt"  # evaluate lists the clips of its GT root
    tree = gt if side == "gt" else lq
    path = bad.damage(tree / "000", defect, bad.GT_SIZE if side == "gt" else LQ_SIZE)
    out = tmp_path / "out"
    code, output = run(argv(gt, lq, out))
    assert code == 1, output
    lines = output.strip().splitlines()
    assert lines[-1].startswith("Error: ") and "Traceback" not in output, output
    assert re.search(bad.message(defect, path), lines[-1]), lines[-1]
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()], "nothing may be written"


@pytest.mark.parametrize("command", ["split-test", "train", "evaluate"])
def test_grey_gt_with_colour_lq_is_refused_by_every_pairing_command(tmp_path, command):
    gt = bad.write_tree(tmp_path / "GT", channels=1)
    lq = bad.write_tree(tmp_path / "LQ", size=LQ_SIZE)
    out = tmp_path / "out"
    argv = {"split-test": ["split-test", gt, out, "--lr-root", lq, "-q", "-j", "1"],
            "train": _train_args(gt, lq, out),
            "evaluate": ["evaluate", "--bicubic", "--gt", gt, "--lq", lq, "--out", out, "-q"]}[command]
    code, output = run(argv)
    assert code == 1, output
    line = output.strip().splitlines()[-1]
    assert re.fullmatch(r"Error: (clip '?000'?.*): GT frames are 32x32x1 uint8 but LQ frames are 8x8x3 uint8 "
                        r"\(GT and LQ need the same channels and bit depth\)", line), line
