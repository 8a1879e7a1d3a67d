"""`torchrun --nproc_per_node=2 -m vsrdata evaluate` (gloo, CPU) == one process, and the split /
gather helpers of `vsrdata.evaluation.distributed`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_evaluate import _tiny_checkpoint, make_split
from vsrdata.evaluation.distributed import DistEnv, dist_env, map_sharded

pytest.importorskip("vsrdata.edvr.checkpoint")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _evaluate(procs: int, ckpt: Path, split: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"]
              if procs > 1 else [sys.executable])
    cmd = [*launch, "-m", "vsrdata", "evaluate", str(ckpt), str(split), "--preset", "edvr-tiny", "--device", "cpu",
           "--out", str(out), "-q", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=240)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_gloo_processes_write_the_report_of_one(tmp_path):
    # 3 clips on 2 processes: rank 0 scores clips 000 and 002, rank 1 clip 001 (an uneven split)
    split = make_split(tmp_path / "ds", clips=("000", "001", "002"), n=5)
    ckpt = tmp_path / "tiny.pth"
    _tiny_checkpoint(ckpt)
    extra = ("--save-frames", "--with-bicubic", "--scene-cuts", "auto")
    one = _evaluate(1, ckpt, split, tmp_path / "one", *extra)
    two = _evaluate(2, ckpt, split, tmp_path / "two", *extra)
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-3000:]
    assert two.stdout.count("Average") == 1  # rank 0 alone prints the table
    a, b = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert sorted(a) == sorted(b)  # the same set of files: report, strips, frames, scenes.json
    assert "compare/001.png" in b and "frames/001/00000004.png" in b  # written by rank 1
    ja, jb = json.loads(a.pop("report.json")), json.loads(b.pop("report.json"))
    assert (ja["protocol"].pop("processes"), jb["protocol"].pop("processes")) == (1, 2)
    ja.pop("paths"), jb.pop("paths")  # they name the two output folders
    assert ja == jb  # same clip order, same numbers to the last bit
    assert [c["clip"] for c in jb["clips"]] == ["000", "001", "002"]
    assert a == b  # report.csv, report.txt, scenes.json, strips and frames byte for byte


def test_an_error_on_one_rank_stops_every_rank(tmp_path):
    split = make_split(tmp_path / "ds", clips=("000", "001", "002"), n=3)
    (split / "GT" / "001" / "00000001.png").write_bytes(b"not a png")  # clip 001 is rank 1's
    ckpt = tmp_path / "tiny.pth"
    _tiny_checkpoint(ckpt)
    two = _evaluate(2, ckpt, split, tmp_path / "two")
    assert two.returncode != 0
    assert "Error:" in two.stderr and "00000001.png" in two.stderr, two.stderr[-3000:]
    assert not (tmp_path / "two" / "report.json").exists()


def test_dist_env_and_round_robin_split():
    assert dist_env({}) == DistEnv(0, 0, 1)
    env = dist_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"})
    assert (env.rank, env.local_rank, env.world, env.main) == (3, 1, 4, False)
    assert map_sharded(lambda x: x * x, [1, 2, 3]) == [1, 4, 9]  # one process: every item, in order

