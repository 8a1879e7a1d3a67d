"""pipelines/runner.py: the one process pool (ordered results, clean abort, spawn re-import)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REDS = FIXTURES / "reds" / "train_sharp"

_UNGUARDED = """
from vsrdata.pipelines.make_lr import make_lr

make_lr({src!r}, {dst!r}, workers=2, progress=False)
print("done")
"""

_GUARDED = """
from vsrdata.pipelines.make_lr import make_lr

def main():
    make_lr({src!r}, {dst!r}, workers=2, progress=False)
    print("done")

if __name__ == "__main__":
    main()
"""


def _run_script(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    script = tmp_path / "my_script.py"
    script.write_text(text.format(src=str(REDS), dst=str(tmp_path / "lr")))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)


def test_unguarded_script_gets_one_line_saying_to_add_the_main_guard(tmp_path):
    """Issue: a script calling make_lr(workers=2) at top level died with 'worker process died
    unexpectedly (out of memory?)'. Now the parent refuses before starting a worker."""
    proc = _run_script(tmp_path, _UNGUARDED)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert 'if __name__ == "__main__":' in last and "my_script.py, line 4" in last, proc.stderr[-2000:]
    assert "died unexpectedly" not in proc.stderr
    assert not (tmp_path / "lr" / "000").exists()


def test_guarded_script_runs_the_pool(tmp_path):
    proc = _run_script(tmp_path, _GUARDED)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "done"
    assert len(list((tmp_path / "lr").glob("*/*.png"))) == len(list(REDS.glob("*/*.png")))


def test_map_ordered_keeps_order_and_raises_the_jobs_error_in_turn():
    from contextlib import closing

    from vsrdata.errors import InputError
    from vsrdata.pipelines.runner import map_ordered

    with closing(map_ordered("os.path:basename", [f"/a/{i}" for i in range(40)], workers=2)) as results:
        assert [r for _, r in results] == [str(i) for i in range(40)]
    local = {"/a/3": "kept"}.get
    with closing(map_ordered("os.path:basename", ["/a/1", "/a/3"], workers=2, local=local)) as results:
        assert list(results) == [("/a/1", "1"), ("/a/3", "kept")]
    items = [str(REDS / "000" / "00000000.png"), str(FIXTURES / "no_such.png")]
    with pytest.raises(InputError, match="no_such.png"):
        with closing(map_ordered("vsrdata.core.image_io:read_image", items, workers=2)) as results:
            for _ in results:
                pass


def _slow_two_part_job(flag: str) -> str:
    """Reports half its weight, then waits until the parent has shown that half (the parent's
    callback creates `flag`); without a live progress channel it gives up after 20 s."""
    import os
    import time

    from vsrdata.errors import InputError
    from vsrdata.pipelines.runner import report_progress
    from vsrdata.pipelines.summary import WRITTEN

    report_progress(5)
    deadline = time.monotonic() + 20
    while not os.path.exists(flag):
        if time.monotonic() > deadline:
            raise InputError(f"the parent never showed the partial progress of {flag}")
        time.sleep(0.02)
    return WRITTEN


@pytest.mark.parametrize("workers", [1, 2])
def test_a_job_moves_the_bar_before_it_ends_and_the_item_tops_up_to_its_weight(tmp_path, workers):
    """Issue: extract's bar only moved when a whole video finished. A job's `report_progress`
    reaches the parent while the job is still running (in-process and through the pool)."""
    from vsrdata.pipelines.runner import run_jobs

    flags = [str(tmp_path / f"flag{i}") for i in range(2)]
    seen: list[int] = []

    def bar(event) -> None:  # a vsrdata.progress.ProgressEvent
        seen.append(event.added)
        assert event.total == 20 and event.done == sum(seen) and event.unit == "frame"
        if sum(seen) >= 5 * workers:  # the partial report of every running job has arrived
            for flag in flags:
                Path(flag).touch()

    summary = run_jobs(_slow_two_part_job, flags, workers=workers, progress=bar, weights=[10, 10])
    assert summary.failed == 0, summary.errors
    assert sum(seen) == 20 and seen[0] == 5  # topped up to the weights, never past
