"""Output paths every writer checks the same way, and OS errors as one line naming the path.

- `refuse_inside(out, inputs)`: an output that is one of its inputs or lies inside one (symlinks
  resolved) is refused before anything is written: a later run over the input would read the
  output as input (a merged DB inside a shard DB, SR frames inside the source clip), and a
  clean-up of the output could touch the input. Used by make-lr, to-lmdb, lmdb-merge, extract and
  infer (split-test refuses any overlap of OUT and its sources, the stricter rule it needs).
- `check_writable(folder)`: the destination folder can be written, tested before long work.
- `os_problem(exc, path)`: the one-line text of an OSError ("No space left on device",
  "Permission denied"), always naming the path.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

from vsrdata.errors import OutputError


def os_problem(exc: OSError, path: str | os.PathLike | None = None) -> str:
    """'<reason>: <path>' for `exc`; `path` is used when the exception does not carry one (a
    `write()` that hits ENOSPC names no file)."""
    where = getattr(exc, "filename", None) or path
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{reason}: {where}" if where else reason


def refuse_inside(out: str | os.PathLike, inputs: Iterable[str | os.PathLike], *, what: str = "output",
                  choose: str = "an output path", source: str = "input folder") -> None:
    """OutputError when `out` is one of the folders `inputs` or lies inside one (symlinks
    resolved; inputs that are not folders are ignored). `what` names the output in the message
    ('DB', 'destination'), `source` the input ('source folder'); `choose` says what to pick
    instead ('a DB path')."""
    out = Path(out)
    out_real = out.resolve()
    for item in inputs:
        src = Path(item)
        if not src.is_dir():
            continue
        src_real = src.resolve()
        if out_real == src_real:
            raise OutputError(f"{what} {out} is the {source} {src} itself (choose {choose} outside it)")
        if src_real in out_real.parents:
            raise OutputError(f"{what} {out} is inside the {source} {src} (choose {choose} outside it)")


def check_writable(folder: str | os.PathLike, what: str = "output folder") -> None:
    """OutputError naming `folder` (its nearest existing ancestor when missing) unless a file can
    be created there: checked before long work, so a read-only destination fails in a second."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{what} {folder} cannot be created: {probe} is not a folder")
    try:  # a real probe: os.access says yes to root on a read-only mount
        fd, name = tempfile.mkstemp(prefix=".vsrdata-probe-", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise OutputError(f"{what} {folder} is not writable ({exc.strerror or exc}: {probe})") from None
