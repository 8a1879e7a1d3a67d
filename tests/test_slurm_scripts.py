"""The Slurm scripts in docs/slurm/ (shown in README) parse, and the preparation array run with a
fake Slurm environment (two array tasks, then the merge) gives the same LMDBs as one plain build."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import lmdb
import pytest

ROOT = Path(__file__).resolve().parent.parent
SLURM = ROOT / "docs" / "slurm"
FIXTURES = ROOT / "fixtures"
SCRIPTS = sorted(SLURM.glob("*.sbatch")) + sorted(SLURM.glob("*.sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses(script):
    p = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_readme_shows_the_scripts():
    readme = (ROOT / "README.md").read_text()
    for script in SCRIPTS:
        assert f"docs/slurm/{script.name}" in readme


def _items(db: Path) -> list[tuple[bytes, bytes]]:
    env = lmdb.open(str(db), readonly=True, lock=False)
    with env.begin() as txn:
        items = list(txn.cursor())
    env.close()
    return items


@pytest.mark.slow
def test_prepare_array_equals_one_build(tmp_path):
    gt = tmp_path / "train_sharp"
    shutil.copytree(FIXTURES / "reds" / "train_sharp", gt)
    vsrdata = f"{sys.executable} -m vsrdata"
    base = {**os.environ, "GT": str(gt), "LQ": str(tmp_path / "lq"), "OUT": str(tmp_path / "out"),
            "VSRDATA": vsrdata, "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "0",
            "SLURM_CPUS_PER_TASK": "1"}
    for stage in ("lr", "lmdb"):
        for task in ("0", "1"):
            env = {**base, "STAGE": stage, "SLURM_ARRAY_TASK_ID": task, "SLURM_ARRAY_JOB_ID": "7"}
            p = subprocess.run(["bash", str(SLURM / "prepare.sbatch")], env=env, capture_output=True, text=True,
                               timeout=300)
            assert p.returncode == 0, (stage, task, p.stderr[-2000:])
    env = {k: v for k, v in base.items() if not k.startswith("SLURM_ARRAY")}
    p = subprocess.run(["bash", str(SLURM / "prepare.sbatch")], env={**env, "STAGE": "merge"},
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]

    # the same without Slurm: make-lr, then one to-lmdb per folder
    ref = tmp_path / "ref"
    for argv in (["make-lr", str(gt), str(ref / "lq"), "--workers", "1"],
                 ["to-lmdb", str(gt), str(ref / "gt.lmdb"), "--workers", "1"],
                 ["to-lmdb", str(ref / "lq"), str(ref / "lq.lmdb"), "--workers", "1"]):
        p = subprocess.run([sys.executable, "-m", "vsrdata", *argv], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
    for ours, theirs in (("train_gt.lmdb", "gt.lmdb"), ("train_lq.lmdb", "lq.lmdb")):
        assert _items(tmp_path / "out" / ours) == _items(ref / theirs)
        assert (tmp_path / "out" / ours / "meta_info.txt").read_bytes() == \
            (ref / theirs / "meta_info.txt").read_bytes()
