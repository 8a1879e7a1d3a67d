"""Shared by the LMDB benchmarks: run a Python snippet in a subprocess while sampling the peak
anonymous RSS of its whole process tree (the LMDB map is file-backed, so RssAnon is what grows
with a data set held in memory), and read the JSON object it prints last."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vsrdata.pipelines.to_lmdb import process_tree_anon_bytes  # noqa: E402

MIB = 1 << 20


def run_sampled(name: str, code: str, args: list[str], interval: float = 0.05) -> dict:
    """`python -c code *args` with the repository on PYTHONPATH; its last stdout line parsed as
    JSON, plus `peak_mib`. SystemExit naming `name` with the child's stderr if it fails."""
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    peak = 0
    while proc.poll() is None:
        peak = max(peak, process_tree_anon_bytes(proc.pid) or 0)
        time.sleep(interval)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{err}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_mib"] = peak / MIB
    return result
