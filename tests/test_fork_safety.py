"""A process that used PyAV can fork workers safely (vsrdata.core.video.pyav).

Frames that went through swscale hold an FFmpeg thread pool; left in a reference cycle, they are
freed by the first garbage collection of a forked child, which then blocks for ever on a pool
whose threads stayed in the parent (a full test run hung this way in a DataLoader worker). With
PyAV loaded through `load_av`, the parent collects before every fork. Without it, the child below
hangs on this machine's PyAV 18 (checked by hand with `import av` in place of `load_av`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import gc, os, sys, time
import numpy as np
from vsrdata.core.video.pyav import load_av
av = load_av()
gc.disable()  # the cycles below stay until a collection, as in a long-running process
for _ in range(3):
    f = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
    g = f.reformat(format="yuv420p", width=32, height=32)
    g.to_ndarray(format="rgb24")
    holder = {"f": f, "g": g}
    holder["self"] = holder
    del f, g, holder
pid = os.fork()
if pid == 0:
    gc.collect()
    os._exit(0)
for _ in range(200):
    done, _status = os.waitpid(pid, os.WNOHANG)
    if done:
        sys.exit(0)
    time.sleep(0.05)
os.kill(pid, 9)
sys.exit("the forked child hung in its garbage collection")
"""


def test_a_child_forked_after_pyav_collects_without_hanging():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
