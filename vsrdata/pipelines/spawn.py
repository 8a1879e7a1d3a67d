"""What a spawn process pool needs besides the pool: the main-script guard and worker set-up.

`check_spawn_safe` refuses, with one line, to start a pool from an unguarded top-level line of
the `__main__` script (spawned workers re-import it). `prepare_worker` is every worker's first
step: die with the parent (Linux) and run single-threaded. Used by `runner`, the only pool.
"""

from __future__ import annotations

import os
import sys

from vsrdata.errors import ConfigError

__all__ = ["check_spawn_safe", "prepare_worker"]

_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def check_spawn_safe() -> None:
    """Refuse to start a spawn pool from an unguarded top-level line of the `__main__` script.

    A spawned worker re-imports the main script (as `__mp_main__`); a pool started by that
    script's top-level code without `if __name__ == "__main__":` would be started again in every
    worker, which Python stops by killing the worker -- the parent then only sees a dead worker.
    Here the parent finds the script's top-level line that led to this call and, when no
    `if __name__ == "__main__":` block encloses it, raises a one-line ConfigError saying so.
    Scripts without a source file (`python -c`, a REPL, frozen apps) are not re-imported: no check.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path or not str(path).endswith(".py"):
        return
    frame = sys._getframe(1)
    while frame is not None and not (frame.f_code.co_name == "<module>" and frame.f_globals is vars(main)):
        frame = frame.f_back
    if frame is None or _guarded(path, frame.f_lineno):
        return
    raise ConfigError(f"{path}, line {frame.f_lineno}: worker processes re-import this script, so put "
                      f"the code that starts them under `if __name__ == \"__main__\":`")


def _guarded(path: str, lineno: int) -> bool:
    """True if line `lineno` of the script `path` lies inside an `if __name__ == ...` block
    (or the source cannot be read: then we cannot tell and do not refuse)."""
    import ast

    try:
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), path)
    except (OSError, SyntaxError, ValueError):
        return True
    for node in ast.walk(tree):
        if (isinstance(node, ast.If) and any(isinstance(n, ast.Name) and n.id == "__name__"
                                             for n in ast.walk(node.test))
                and node.lineno < lineno <= (node.end_lineno or lineno)):  # body or else branch
            return True
    return False


def _die_with_parent(parent_pid: int) -> None:
    """Linux: have the kernel SIGKILL this worker when the parent dies (e.g. `kill -9` of the
    job), so no orphan keeps writing into the tree while the user re-runs the command."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        return
    if os.getppid() != parent_pid:  # parent died before prctl took effect
        os._exit(1)


def prepare_worker(parent_pid: int) -> None:
    """Worker-process set-up shared by every pool of the package: die with the parent and run
    single-threaded (thread variables set before numpy/cv2 load; `cv2.setNumThreads(1)`)."""
    _die_with_parent(parent_pid)
    for var in _THREAD_ENV:
        os.environ[var] = "1"
    import cv2

    cv2.setNumThreads(1)
