"""`make gpu-check` (bench/gpu_check.py) must work the first time a GPU shows up: its CPU smoke
mode runs every section's code path in its smallest form, and without CUDA the real mode says so
and exits 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "gpu_check.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_without_cuda_says_so_and_exits_0(tmp_path):
    p = subprocess.run([sys.executable, str(SCRIPT), "--log-dir", str(tmp_path)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert "no CUDA device" in p.stdout


@pytest.mark.slow
def test_smoke_runs_every_section(tmp_path):
    p = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--log-dir", str(tmp_path)], capture_output=True,
                       text=True, timeout=400)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    table = p.stdout[p.stdout.index("section "):]
    for name in ("cuda-tests", "doctor", "dcn+edvr-step", "train-loop", "eval-precision"):
        assert any(line.startswith(name) and " ok " in line for line in table.splitlines()), table
    assert {"doctor.log", "eval-precision.log"} <= {f.name for f in tmp_path.iterdir()}


def test_unknown_section_is_refused(tmp_path):
    p = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--only", "nope", "--log-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "unknown section" in p.stderr
