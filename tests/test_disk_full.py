"""A full disk is one error line that names the path being written (issue: "No space left on
device" without the path). A real full disk: a 64 KiB tmpfs mounted for the test; skipped where
the test may not mount one (not root, or no CAP_SYS_ADMIN in the container)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GT = ROOT / "fixtures" / "reds" / "train_sharp"


@pytest.fixture
def full_disk(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.parametrize("command", ["make-lr", "to-lmdb", "degrade"])
def test_a_full_disk_is_one_line_naming_the_output(full_disk, command):
    out = full_disk / ("x.lmdb" if command == "to-lmdb" else "lr")
    argv = {"make-lr": ["make-lr", GT, out, "-j", "1"], "to-lmdb": ["to-lmdb", GT, out, "-j", "1"],
            "degrade": ["degrade", GT, out, "--recipe", "bd", "-j", "1"]}[command]
    proc = subprocess.run([sys.executable, "-m", "vsrdata", *map(str, argv), "-q"], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(out) in errors[0], errors[0]  # the path, not only "No space left on device"
    assert any(word in errors[0] for word in ("No space left", "disk full")), errors[0]
