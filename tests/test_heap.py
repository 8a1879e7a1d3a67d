"""vsrdata.core.heap: glibc keeps freed memory for reuse (measured by page faults in fresh
processes), and every opt-out leaves malloc alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vsrdata.core import heap

ROOT = Path(__file__).resolve().parent.parent
ALLOCATOR_VARS = ("VSRDATA_MALLOC", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES",
                  "LD_PRELOAD")

# Allocate, touch and free a 64 MiB block five times; report the minor page faults of each round.
CHILD = r"""
import json, resource, sys
import numpy as np
from vsrdata.core import heap
state = heap.keep_freed_memory() if sys.argv[1] == "keep" else "untouched"
faults = []
for _ in range(5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = np.ones(2**24, dtype=np.float32)  # 64 MiB, above glibc's largest mmap threshold
    del block
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"state": state, "faults": faults}))
"""


def _clean_env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_VARS}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _run_child(mode: str, **extra) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, mode], env=_clean_env(**extra), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _is_glibc() -> bool:
    return heap._glibc() is not None


@pytest.mark.skipif(not _is_glibc(), reason="the heap setting applies to glibc only")
def test_kept_heap_reuses_pages_that_system_malloc_faults_in_again():
    system = _run_child("plain")
    kept = _run_child("keep")
    assert kept["state"].startswith("kept (glibc"), kept
    # Without the setting every round maps fresh pages: 16,384 faults of 4 KiB (a few dozen with
    # transparent huge pages). With it, rounds 2-5 reuse round 1's pages.
    assert min(system["faults"][1:]) >= 16, system
    assert sum(kept["faults"][1:]) * 10 <= sum(system["faults"][1:]), (kept, system)


@pytest.mark.skipif(not _is_glibc(), reason="the heap setting applies to glibc only")
def test_environment_opt_out_in_a_fresh_process():
    out = _run_child("keep", VSRDATA_MALLOC="system")
    assert out["state"] == "unchanged ($VSRDATA_MALLOC=system)"
    assert min(out["faults"][1:]) >= 16, out  # malloc was left alone


@pytest.mark.parametrize("name,value,why", [
    ("VSRDATA_MALLOC", "System", "$VSRDATA_MALLOC=system"),
    ("MALLOC_MMAP_MAX_", "65536", "$MALLOC_MMAP_MAX_ is set"),
    ("MALLOC_TRIM_THRESHOLD_", "131072", "$MALLOC_TRIM_THRESHOLD_ is set"),
    ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=131072", "$GLIBC_TUNABLES sets malloc"),
    ("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "$LD_PRELOAD holds an allocator"),
])
def test_user_allocator_choices_are_respected(monkeypatch, name, value, why):
    for var in ALLOCATOR_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(name, value)
    monkeypatch.setattr(heap, "_state", None)
    assert heap.keep_freed_memory() == f"unchanged ({why})"  # returns before any mallopt call
    monkeypatch.setenv("VSRDATA_MALLOC", "system")  # another opt-out now: the first answer stands
    assert heap.keep_freed_memory() == f"unchanged ({why})"


@pytest.mark.skipif(not _is_glibc(), reason="the heap setting applies to glibc only")
def test_cpu_torch_engine_keeps_the_heap_by_default():
    code = ("import torch; from vsrdata.edvr.arch import build_edvr; "
            "from vsrdata.evaluation.engines import TorchEngine; "
            "e = TorchEngine(build_edvr('edvr-tiny'), 'cpu'); print(e.heap)")
    proc = subprocess.run([sys.executable, "-c", code], env=_clean_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "kept (glibc: M_MMAP_MAX=0, M_TRIM_THRESHOLD=-1)"
