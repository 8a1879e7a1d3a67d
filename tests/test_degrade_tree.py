"""`vsrdata degrade`: replay, worker/shard/kill invariance, hidden metadata, recipe errors."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vsrdata.cli import main
from vsrdata.core.image_io import read_image, write_image
from vsrdata.pipelines.degrade import ENTRIES, MANIFEST, degrade_tree

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "reds" / "train_sharp"
ROOT = Path(__file__).resolve().parent.parent


def _source(tmp_path: Path, clips: int = 3, frames: int = 3) -> Path:
    """Small real clips: 64 x 96 crops of the REDS-layout fixture frames."""
    src = tmp_path / "gt"
    for c in range(clips):
        for f in range(frames):
            img = read_image(FIX / f"{c % 3:03d}" / f"{f:08d}.png")
            y, x = 20 + 7 * (c // 3), 40 + 11 * (c // 3)
            write_image(src / f"{c:03d}" / f"{f:08d}.png", img[y:y + 64, x:x + 96])
    return src


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".vsrdata-lock")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    src = _source(tmp)
    degrade_tree(src, tmp / "lr", "realbasicvsr", seed=5, workers=1, progress=False)
    return src, tmp / "lr", _tree(tmp / "lr")


def test_outputs_and_manifest(reference):
    src, lr, tree = reference
    assert sorted(os.listdir(lr)) == sorted([MANIFEST, ENTRIES, "000", "001", "002"])
    assert read_image(lr / "000" / "00000000.png").shape == (16, 24, 3)
    # BasicSR lists an LQ root with glob('*') (VideoTestDataset) and scandir skipping hidden
    # names: only the clip folders show up.
    assert sorted(os.path.basename(p) for p in glob.glob(str(lr / "*"))) == ["000", "001", "002"]


def test_workers_1_vs_4_identical(reference, tmp_path):
    src, _, tree = reference
    degrade_tree(src, tmp_path / "lr", "realbasicvsr", seed=5, workers=4, progress=False)
    assert _tree(tmp_path / "lr") == tree


def test_shards_merge_identical(reference, tmp_path):
    src, _, tree = reference
    for i in (1, 0):
        degrade_tree(src, tmp_path / "lr", "realbasicvsr", seed=5, workers=1, shard=(i, 2), progress=False)
    assert _tree(tmp_path / "lr") == tree


def test_replay_rebuilds_identical_bytes(reference, tmp_path):
    src, lr, tree = reference
    result = CliRunner().invoke(main, ["degrade", "--replay", str(lr / MANIFEST), str(src), str(tmp_path / "again"),
                                       "-j", "1", "-q"])
    assert result.exit_code == 0, result.output
    assert _tree(tmp_path / "again") == tree


def test_replay_refuses_a_source_that_does_not_match(reference, tmp_path):
    src, lr, _ = reference
    other = _source(tmp_path, clips=2)
    result = CliRunner().invoke(main, ["degrade", "--replay", str(lr / MANIFEST), str(other), str(tmp_path / "x")])
    assert result.exit_code == 1
    assert "manifest clip '002' is not in SRC" in result.output
    assert not (tmp_path / "x").exists()


def test_other_recipe_or_seed_refused(reference):
    src, lr, tree = reference
    with pytest.raises(Exception, match="refusing to mix"):
        degrade_tree(src, lr, "realbasicvsr", seed=6, workers=1, progress=False)
    assert _tree(lr) == tree


def test_kill_9_then_rerun_is_byte_identical(tmp_path):
    src = _source(tmp_path, clips=8, frames=3)
    degrade_tree(src, tmp_path / "whole", "realbasicvsr", seed=2, workers=1, progress=False)
    cmd = [sys.executable, "-m", "vsrdata", "degrade", str(src), str(tmp_path / "lr"), "-r", "realbasicvsr",
           "--seed", "2", "-j", "1", "-q"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((tmp_path / "lr" / ENTRIES).glob("*.json"))) >= 2:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(list((tmp_path / "lr" / ENTRIES).glob("*.json"))) < 8      # killed mid-run
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    assert _tree(tmp_path / "lr") == _tree(tmp_path / "whole")


BAD_RECIPES = [
    ("nonsense_key: 1\n", "nonsense_key: unknown recipe key"),
    ("blur_kernel_size: 20\n", "blur_kernel_size: must be an odd integer in 7-21"),
    ("blur_kernel_size2: 23\n", "blur_kernel_size2: must be an odd integer in 7-21"),
    ("blur_sigma: [0, 3]\n", "blur_sigma: must be > 0"),
    ("blur_sigma2: [-1, 1]\n", "blur_sigma2: must be > 0"),
    ("jpeg_range: [0, 95]\n", "jpeg_range: must be in [1, 100]"),
    ("jpeg_range2: [30, 101]\n", "jpeg_range2: must be in [1, 100]"),
    ("codec_list: [libnothing]\ncodec_prob: [1]\n", "codec_list: video encoder 'libnothing' is not in this PyAV build"),
    ("kernel_list: [iso, blobby]\n", "kernel_list: unknown entry 'blobby'"),
    ("kernel_prob: [0.5, 0.5]\n", "kernel_prob: 2 probabilities for 6 kernel_list entries"),
    ("resize_prob: [0.5, 0.5]\n", "resize_prob: expected a list of 3 probabilities"),
    ("sinc_prob: 1.5\n", "sinc_prob: must be in [0.0, 1.0]"),
    ("noise_range: [30, 1]\n", "noise_range: low 30.0 is above high 1.0"),
    ("gray_noise_prob: yes\n", "gray_noise_prob: expected a number"),
    ("resize_even: 3\n", "resize_even: expected true or false"),
    ("final_compression: gif\n", "final_compression: must be one of jpeg, codec"),
    ("crf_range: [18, 35]\ncodec_list: [mpeg4]\ncodec_prob: [1]\n", "crf_range: mpeg4 has no CRF mode"),
    ("base: realfoo\n", "base: must be one of realesrgan, realbasicvsr"),
    ("sigma_step: -1\n", "sigma_step: must be"),
    ("- a\n- b\n", "a recipe must be a mapping"),
]


@pytest.mark.parametrize("text,message", BAD_RECIPES)
def test_bad_recipe_key_one_line_before_writing(tmp_path, text, message):
    recipe = tmp_path / "bad.yml"
    recipe.write_text(text)
    src = _source(tmp_path, clips=1, frames=1)
    result = CliRunner().invoke(main, ["degrade", str(src), str(tmp_path / "lr"), "-r", str(recipe)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    assert message in result.output
    assert not (tmp_path / "lr").exists()


def test_recipe_file_with_our_keys_runs(tmp_path):
    recipe = tmp_path / "mine.yml"
    recipe.write_text("base: realbasicvsr\nscale: 2\njpeg_range: [60, 90]\ncodec_list: [libx264]\n"
                      "codec_prob: [1]\ncrf_range: [20, 30]\nbitrate_range: [10000, 20000]\n")
    src = _source(tmp_path, clips=1, frames=2)
    result = CliRunner().invoke(main, ["degrade", str(src), str(tmp_path / "lr"), "-r", str(recipe), "-j", "1", "-q"])
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "lr" / "000" / "00000000.png").shape == (32, 48, 3)


def test_scale_option_against_recipe_file_scale(tmp_path):
    recipe = tmp_path / "mine.yml"
    recipe.write_text("base: realesrgan\nscale: 2\n")
    src = _source(tmp_path, clips=1, frames=1)
    result = CliRunner().invoke(main, ["degrade", str(src), str(tmp_path / "lr"), "-r", str(recipe), "-s", "4"])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "mine.yml sets scale 2 but x4 is asked for" in result.output
    assert not (tmp_path / "lr").exists()
    result = CliRunner().invoke(main, ["degrade", str(src), str(tmp_path / "lr"), "-r", str(recipe), "-s", "2",
                                       "-j", "1", "-q"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("name", ["bi", "bd", "bd-duf"])
def test_fixed_recipes_equal_make_lr(tmp_path, name):
    from vsrdata.pipelines.make_lr import make_lr

    src = _source(tmp_path, clips=1, frames=2)
    degrade_tree(src, tmp_path / "a", name, workers=1, progress=False)
    make_lr(src, tmp_path / "b", 4, name, workers=1, progress=False)
    for p in sorted((tmp_path / "b").rglob("*.png")):
        assert p.read_bytes() == (tmp_path / "a" / p.relative_to(tmp_path / "b")).read_bytes()


def test_tampered_manifest_is_one_line(reference, tmp_path):
    import json

    src, lr, _ = reference
    manifest = json.loads((lr / MANIFEST).read_text())
    del manifest["clips"]["001"]["steps"][1]["size"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(manifest))
    result = CliRunner().invoke(main, ["degrade", "--replay", str(bad), str(src), str(tmp_path / "x"), "-j", "1", "-q"])
    assert result.exit_code == 1
    assert "replay: manifest entry of clip '001' is malformed (KeyError: 'size')" in result.output


def test_grey_clip_refused_by_a_real_world_recipe_before_writing(tmp_path):
    src = tmp_path / "gt"
    write_image(src / "000" / "00000000.png", np.full((32, 32), 7, np.uint8))
    result = CliRunner().invoke(main, ["degrade", str(src), str(tmp_path / "lr"), "-r", "realesrgan"])
    assert result.exit_code == 1
    assert "real-world recipes need 8-bit colour frames, this clip is 1-channel uint8" in result.output
    assert not (tmp_path / "lr").exists()
