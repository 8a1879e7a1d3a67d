"""core/locks.py: one writer per output (per shard), measured as a second real process sees it.

Why make-lr and split-test are locked too: two make-lr runs with --overwrite and different
degradations on one DST, started together, left a tree whose make_lr.json said 'bi' while 3 of
its 120 frames were BD (exit 0 both); a second split-test --overwrite deletes the frames of a
running one. Shards of one DST must still run side by side (N machines, one tree).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from vsrdata.cli import main
from vsrdata.core.locks import LOCK_NAME, OutputLock
from vsrdata.errors import OutputError

REDS = Path(__file__).resolve().parent.parent / "fixtures" / "reds" / "train_sharp"

_HOLD = """
import sys
from vsrdata.core.locks import OutputLock
shard = tuple(int(v) for v in sys.argv[3].split("/")) if len(sys.argv) > 3 else None
with OutputLock(sys.argv[1], sys.argv[2], shard=shard):
    print("held", flush=True)
    sys.stdin.readline()
"""


class Holder:
    """Another process holding the lock of `folder` until `release()`."""

    def __init__(self, folder: Path, what: str, shard: str | None = None):
        args = [sys.executable, "-c", _HOLD, str(folder), what] + ([shard] if shard else [])
        self.proc = subprocess.Popen(args, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout.readline().strip() == "held"

    def release(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_make_lr_on_a_dst_being_written_stops_at_once(tmp_path):
    dst = tmp_path / "lr"
    holder = Holder(dst, "DST")
    try:
        result = run("make-lr", REDS, dst, "-j", "1", "-q", "--overwrite")
        assert result.exit_code == 1
        assert result.output.strip() == (f"Error: DST {dst} is being built by process {holder.proc.pid}; "
                                         f"wait for it to finish (or stop it) and run again")
        assert not list(dst.glob("*/*.png"))
    finally:
        holder.release()
    assert run("make-lr", REDS, dst, "-j", "1", "-q").exit_code == 0
    assert not (dst / LOCK_NAME).exists()


def test_shards_run_side_by_side_but_one_shard_twice_is_refused(tmp_path):
    dst = tmp_path / "lr"
    holder = Holder(dst, "DST", "0/2")
    try:
        result = run("make-lr", REDS, dst, "-j", "1", "-q", "--shard", "1/2")
        assert result.exit_code == 0, result.output
        result = run("make-lr", REDS, dst, "-j", "1", "-q", "--shard", "0/2")
        assert result.exit_code == 1 and f"is being built by process {holder.proc.pid}" in result.output
        result = run("make-lr", REDS, dst, "-j", "1", "-q")
        assert result.exit_code == 1 and "is being built by sharded runs" in result.output
    finally:
        holder.release()
    assert run("make-lr", REDS, dst, "-j", "1", "-q", "--shard", "0/2").exit_code == 0
    assert not list(dst.glob(f"{LOCK_NAME}*"))  # the last shard out removes the lock files


def test_split_test_on_an_out_being_written_stops_at_once(tmp_path):
    out = tmp_path / "split"
    holder = Holder(out, "OUT")
    try:
        result = run("split-test", REDS, out, "-j", "1", "-q", "--overwrite")
        assert result.exit_code == 1 and f"OUT {out} is being built by process {holder.proc.pid}" in result.output
    finally:
        holder.release()
    result = run("split-test", REDS, out, "-j", "1", "-q")
    assert result.exit_code == 0, result.output
    assert not (out / LOCK_NAME).exists()


def test_lock_is_released_when_its_process_dies(tmp_path):
    holder = Holder(tmp_path / "o", "OUT")
    holder.proc.kill()
    holder.proc.wait(timeout=30)
    with OutputLock(tmp_path / "o", "OUT"):
        with pytest.raises(OutputError, match="is being built by process"):
            OutputLock(tmp_path / "o", "OUT").acquire()
